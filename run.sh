#!/usr/bin/env bash
# One command on a fresh machine: install everything, then run the main job on the embedded
# default (Prefect's ephemeral server, SQLite store in .pathways/): validate and check the
# shipped pathways, write their diagram pages to out/, publish them, run an example cohort, verify the audit
# trail and write its report to out/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.pathways/prefect}
.venv/bin/pathways validate pathways/
.venv/bin/pathways check
mkdir -p out
for name in diabetes copd heartfailure; do
  .venv/bin/pathways diagram "$name" --html "out/$name.html"
done
for name in diabetes copd heartfailure; do  # the versions on disk, published in the store (a no-op when they are)
  .venv/bin/pathways publish "$name"
done
.venv/bin/pathways run diabetes --cohort examples/cohort-diabetes --at 2026-11-01
.venv/bin/pathways audit verify
.venv/bin/pathways audit report --pathway diabetes --period 2026Q4 --html out/audit-diabetes-2026Q4.html
echo "done: open out/diabetes.html, out/copd.html, out/heartfailure.html or out/audit-diabetes-2026Q4.html in a browser (works offline)"
