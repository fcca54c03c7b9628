#!/usr/bin/env bash
# Builds the throwaway host image of the converge test: a Debian bookworm root filesystem from debootstrap
# (nothing can be pulled here), plus python3 and sudo for Ansible. Everything else (Docker, fail2ban, syslog-ng,
# nftables, cron) is installed by the role itself during the converge.
# Usage: build-host-image.sh [TAG]   (default minipaas-test/ansible-host:bookworm-r2; reused when present)
set -euo pipefail
TAG=${1:-minipaas-test/ansible-host:bookworm-r2}
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "host image $TAG present"
  exit 0
fi
mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{ print $1; exit }')
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "no apt mirror configured on this machine" >&2; exit 1; }
work=$(mktemp -d /tmp/minipaas-ansible-host.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "debootstrap bookworm from $mirror"
/usr/sbin/debootstrap --variant=minbase --include=python3,sudo,ca-certificates,iproute2 bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# The apt source of the image is the machine's mirror; no service starts while packages are installed in a
# build, but the converge must start them, so no policy-rc.d is left behind.
echo "deb $mirror bookworm main" >"$work/rootfs/etc/apt/sources.list"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
tar -C "$work/rootfs" -c . | docker import --change 'CMD ["sleep", "infinity"]' - "$TAG" >/dev/null
echo "built $TAG"
