#!/usr/bin/env bash
# debootstrap builds the docker runtime's base image (minipaas images:bootstrap, called by the docker tests)
# from the apt source configured on the machine: nothing can be pulled from a registry here.
set -euo pipefail
if ! command -v debootstrap >/dev/null && [ ! -x /usr/sbin/debootstrap ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap
fi
echo "debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
