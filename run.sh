#!/usr/bin/env bash
# One command on a fresh machine: install everything, then run the main job on the
# embedded default: validate every shipped pathway and write their diagram pages to out/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export DO_NOT_TRACK=1
.venv/bin/pathways validate pathways/
.venv/bin/pathways check
mkdir -p out
for name in diabetes copd heartfailure; do
  .venv/bin/pathways diagram "$name" --html "out/$name.html"
done
echo "done: open out/diabetes.html, out/copd.html or out/heartfailure.html in a browser (works offline)"
