#!/usr/bin/env bash
# The minipaas Ansible role's checks (ansible/test/converge.sh, run by test/ansible/role.test.ts):
# ansible (7.7, with community.docker) and ansible-lint from Debian, debootstrap for the throwaway hosts'
# root filesystem, openssl for the TLS client checks. Docker itself comes from 10-docker.sh.
set -euo pipefail
need=()
command -v ansible-playbook >/dev/null || need+=(ansible)
command -v ansible-lint >/dev/null || need+=(ansible-lint)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
ansible --version | head -1
ansible-lint --version | head -1
