#!/usr/bin/env bash
# The Docker engine (Debian's docker.io) for the Docker/Swarm runtimes, the Swarm toolkit and the Ansible
# converge test. No systemd here: dockerd runs in the background and we wait for its socket to answer.
set -euo pipefail
if ! command -v dockerd >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io
fi
if ! docker version >/dev/null 2>&1; then
  dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker version --format 'docker engine {{.Server.Version}}'
