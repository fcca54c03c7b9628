#!/usr/bin/env bash
# git for deploy from git (docs/git.md): the platform runs the system git (fetch, ls-remote, and
# `git http-backend` for git push), and the tests serve their repositories with `git daemon`; both
# programs are part of Debian's git package.
set -euo pipefail
if ! command -v git >/dev/null || [ ! -x /usr/lib/git-core/git-http-backend ] || [ ! -x /usr/lib/git-core/git-daemon ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends git
fi
git --version
test -x "$(git --exec-path)/git-http-backend"
test -x "$(git --exec-path)/git-daemon"
# SSH deploy keys (packages/server/test/git-ssh.test.ts runs its own sshd on 127.0.0.1).
if [ ! -x /usr/sbin/sshd ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client
fi
/usr/sbin/sshd -V 2>&1 | head -1 || true
