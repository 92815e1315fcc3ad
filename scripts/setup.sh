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

# The diagram page inlines Mermaid's renderer so it opens offline: take the published
# bundle from the npm registry once (npm checks its integrity), keep it with the package.
vendor=src/pathways/views/vendor
if [ ! -f "$vendor/mermaid.min.js" ] || [ "$(cat "$vendor/VERSION" 2>/dev/null)" != "$MERMAID_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is needed once to fetch the Mermaid renderer (apt-get install npm), or set PATHWAYS_MERMAID_JS to a mermaid.min.js" >&2
    exit 1
  fi
  echo "setup: fetching mermaid $MERMAID_VERSION from the npm registry"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "mermaid@$MERMAID_VERSION" >/dev/null 2>&1 && tar xzf "mermaid-$MERMAID_VERSION.tgz" package/dist/mermaid.min.js package/LICENSE)
  mkdir -p "$vendor"
  cp "$tmp/package/dist/mermaid.min.js" "$vendor/mermaid.min.js"
  cp "$tmp/package/LICENSE" "$vendor/LICENSE"
  echo "$MERMAID_VERSION" > "$vendor/VERSION"
  rm -rf "$tmp"
fi

# The web application (pathways web) serves htmx itself, from the same folder: no CDN, works offline.
if [ ! -f "$vendor/htmx.min.js" ] || [ "$(cat "$vendor/HTMX_VERSION" 2>/dev/null)" != "$HTMX_VERSION" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is needed once to fetch htmx for the web application (apt-get install npm)" >&2
    exit 1
  fi
  echo "setup: fetching htmx $HTMX_VERSION from the npm registry"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null 2>&1 && tar xzf "htmx.org-$HTMX_VERSION.tgz" package/dist/htmx.min.js package/LICENSE)
  mkdir -p "$vendor"
  cp "$tmp/package/dist/htmx.min.js" "$vendor/htmx.min.js"
  cp "$tmp/package/LICENSE" "$vendor/HTMX_LICENSE"
  echo "$HTMX_VERSION" > "$vendor/HTMX_VERSION"
  rm -rf "$tmp"
fi

# The coordinator's editor (pathways web) uses CodeMirror 6, taken from the npm registry with the
# versions locked in scripts/codemirror/package-lock.json (npm ci checks each package's integrity)
# and bundled once with esbuild into one file served by the app.
codemirror_stamp=$(cat scripts/codemirror/package-lock.json scripts/codemirror/entry.js | sha256sum | cut -d' ' -f1)
if [ ! -f "$vendor/codemirror.min.js" ] || [ "$(cat "$vendor/CODEMIRROR_VERSION" 2>/dev/null)" != "$codemirror_stamp" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is needed once to fetch CodeMirror for the pathway editor (apt-get install npm)" >&2
    exit 1
  fi
  echo "setup: fetching CodeMirror 6 from the npm registry (scripts/codemirror/package-lock.json) and bundling it with esbuild"
  tmp=$(mktemp -d)
  cp scripts/codemirror/package.json scripts/codemirror/package-lock.json scripts/codemirror/entry.js "$tmp/"
  (cd "$tmp" && npm ci --silent --no-audit --no-fund >/dev/null \
     && npx --no-install esbuild entry.js --bundle --minify --format=iife --global-name=CM --legal-comments=none \
          --outfile=codemirror.min.js --log-level=warning)
  mkdir -p "$vendor"
  cp "$tmp/codemirror.min.js" "$vendor/codemirror.min.js"
  cp "$tmp/node_modules/codemirror/LICENSE" "$vendor/CODEMIRROR_LICENSE"
  echo "$codemirror_stamp" > "$vendor/CODEMIRROR_VERSION"
  rm -rf "$tmp"
fi

# PDF documents are made by WeasyPrint, which needs Pango (and fonts) from the system.
if ! .venv/bin/python -c 'import weasyprint' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Pango and fonts for PDF documents from Debian's packages"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core >/dev/null
  else
    echo "setup: WeasyPrint cannot load Pango; install libpango-1.0-0, libpangoft2-1.0-0 and fonts-dejavu-core (needed for --format pdf)" >&2
  fi
fi
