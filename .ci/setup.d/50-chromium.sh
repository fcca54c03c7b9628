#!/usr/bin/env bash
# Debian's chromium drives the browser tests (playwright-core; browsers are never downloaded here):
# the landing page and login (test/e2e/landing-page.test.ts).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
/usr/bin/chromium --version
