#!/usr/bin/env bash
# Installs everything pathways needs into ./.venv. Idempotent: a second run with unchanged
# pyproject.toml and constraints.txt takes a second. Called by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

MERMAID_VERSION=12.3.0
HTMX_VERSION=2.0.11
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "setup: pathways needs Python 3.11 or 3.12 (python3.11 not found); install it and run again" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.pathways-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned dependencies (constraints.txt)"
  .venv/bin/python -m pip install --quiet --upgrade "pip>=23.2"
  .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi

# The browser scripts the pages use, served by pathways itself (no CDN, works offline), taken
# from the npm registry once: npm checks each package's integrity (a pinned version against the
# registry's, `npm ci` against the lockfile). They are fetched again only when a file is missing
# or its stamp (the version, or the lockfile's hash) changed; otherwise npm is not needed.
vendor=src/pathways/views/vendor
root=$PWD

# vendor_fetch WHAT PURPOSE STAMP_FILE STAMP "FROM=TO ..." COMMAND [ARG...]
#   Unless each TO is in $vendor and $vendor/STAMP_FILE holds STAMP: runs COMMAND ARG... FROM...
#   in a new temporary folder (it fetches from the npm registry and leaves each FROM there),
#   copies each FROM to $vendor/TO, then writes STAMP (last: an interrupted fetch is done again).
#   WHAT and PURPOSE (what it is needed for) name it in the messages. COMMAND runs in an `if`,
#   where `set -e` does not stop it: it chains its steps with &&.
vendor_fetch() {
  local what=$1 purpose=$2 stamp_file=$3 stamp=$4 pair complete=yes tmp
  local -a pairs froms=()
  read -r -a pairs <<<"$5"
  shift 5
  for pair in "${pairs[@]}"; do
    froms+=("${pair%%=*}")
    [ -f "$vendor/${pair#*=}" ] || complete=no
  done
  if [ "$complete" = yes ] && [ "$(cat "$vendor/$stamp_file" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is needed once to fetch $what for $purpose: install it (apt-get install npm) and run again" >&2
    exit 1
  fi
  echo "setup: fetching $what from the npm registry"
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && "$@" "${froms[@]}") >"$tmp/npm.log" 2>&1; then
    echo "setup: fetching $what from the npm registry failed; check the network (or npm's proxy settings) and run again. npm said:" >&2
    grep -v '^npm error  *at ' "$tmp/npm.log" | tail -n 15 | sed 's/^/  /' >&2  # (not node's stack)
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$vendor"
  for pair in "${pairs[@]}"; do
    cp "$tmp/${pair%%=*}" "$vendor/${pair#*=}"
  done
  echo "$stamp" > "$vendor/$stamp_file"
  rm -rf "$tmp"
}

# npm_pack NAME VERSION FILE...: the published package NAME@VERSION (NAME unscoped: the tarball is
# NAME-VERSION.tgz); FILE... taken out of it.
npm_pack() {
  local name=$1 version=$2
  shift 2
  npm pack --no-fund "$name@$version" && tar xzf "$name-$version.tgz" "$@"
}

# bundle_codemirror: CodeMirror 6 with the versions locked in scripts/codemirror/package-lock.json
# (npm ci), bundled with esbuild into codemirror.min.js.
bundle_codemirror() {
  cp "$root"/scripts/codemirror/{package.json,package-lock.json,entry.js} . \
    && npm ci --no-audit --no-fund \
    && npx --no-install esbuild entry.js --bundle --minify --format=iife --global-name=CM --legal-comments=none \
         --outfile=codemirror.min.js --log-level=warning
}

# The diagram page inlines Mermaid's renderer, so that it opens offline.
vendor_fetch "mermaid $MERMAID_VERSION" "the diagrams" VERSION "$MERMAID_VERSION" \
  "package/dist/mermaid.min.js=mermaid.min.js package/LICENSE=LICENSE" npm_pack mermaid "$MERMAID_VERSION"
# The web application (pathways web) serves htmx.
vendor_fetch "htmx $HTMX_VERSION" "the web application" HTMX_VERSION "$HTMX_VERSION" \
  "package/dist/htmx.min.js=htmx.min.js package/LICENSE=HTMX_LICENSE" npm_pack htmx.org "$HTMX_VERSION"
# The coordinator's editor (pathways web): rebuilt when the lockfile or the entry changes.
codemirror_stamp=$(cat scripts/codemirror/package-lock.json scripts/codemirror/entry.js | sha256sum | cut -d' ' -f1)
vendor_fetch "CodeMirror 6 (scripts/codemirror/package-lock.json; bundled with esbuild)" "the pathway editor" \
  CODEMIRROR_VERSION "$codemirror_stamp" \
  "codemirror.min.js=codemirror.min.js node_modules/codemirror/LICENSE=CODEMIRROR_LICENSE" bundle_codemirror

# PDF documents are made by WeasyPrint, which needs Pango (and fonts) from the system.
if ! .venv/bin/python -c 'import weasyprint' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Pango and fonts for PDF documents from Debian's packages"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core >/dev/null
  else
    echo "setup: WeasyPrint cannot load Pango; install libpango-1.0-0, libpangoft2-1.0-0 and fonts-dejavu-core (needed for --format pdf)" >&2
  fi
fi
