#!/usr/bin/env bash
# Language toolchains for the detected stacks (packages/server/src/deploy/stack-detector.ts):
# - Python: Debian 12's python3 (3.11) and python3-venv (ensurepip, without which `python3 -m venv` fails),
#   for packages/server/test/python-stack.test.ts. No PyPI access: the tests build their wheels locally.
# - Go (golang-go) and Ruby (ruby, ruby-bundler) for the real Go and Ruby builds in stack-detector.test.ts
#   (stdlib-only, no module proxy or rubygems.org access needed).
set -euo pipefail
need=()
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need+=(python3 python3-venv)
fi
command -v go >/dev/null || need+=(golang-go)
command -v ruby >/dev/null || need+=(ruby)
command -v bundle >/dev/null || need+=(ruby-bundler)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
python3 --version
go version
bundle --version
