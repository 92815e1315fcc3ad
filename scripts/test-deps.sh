#!/usr/bin/env bash
# System packages the tests use: headless Chromium (the diagram page, the audit report and the
# documents are rendered in a real browser) and pdftotext (poppler-utils: the text of the PDF
# documents). Installed from Debian's packages when missing and we may; otherwise those tests
# skip, unless PATHWAYS_REQUIRE_BROWSER=1 (CI) makes their absence a failure.
set -uo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
if [ ${#missing[@]} = 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]} from Debian's packages"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit $?
fi
echo "test-deps: ${missing[*]} not installed; the tests that need them will be skipped" >&2
