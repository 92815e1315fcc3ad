#!/usr/bin/env bash
# System packages the tests use: headless Chromium (the diagram page is rendered in a real
# browser). Installed from Debian's packages when missing and we may; otherwise those tests
# skip, unless PATHWAYS_REQUIRE_BROWSER=1 (CI) makes their absence a failure.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing chromium from Debian's packages"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit $?
fi
echo "test-deps: chromium is not installed; browser tests will be skipped" >&2
