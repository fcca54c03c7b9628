#!/usr/bin/env bash
# The Swarm toolkit's tests (packages/swarm/test, test/swarm): openssl (certs), Debian's docker-registry
# (deploy build pushes to it), caddy (deploy routing loads its config), busybox-static (the test image is
# a `docker import` of a busybox root filesystem), iproute2 and util-linux (network namespaces, nsenter).
# The Docker engine itself comes from 10-docker.sh; the tests start and stop everything else themselves.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v caddy >/dev/null || need+=(caddy)
command -v busybox >/dev/null || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian's packages start their services where systemd runs them; the tests run their own on free ports.
caddy version | head -1
docker-registry --version 2>/dev/null | head -1 || true
