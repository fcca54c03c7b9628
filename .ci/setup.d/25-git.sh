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
