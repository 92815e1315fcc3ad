#!/usr/bin/env bash
# One command: install what the tests need, then run them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
bash scripts/test-deps.sh
export DO_NOT_TRACK=1
exec .venv/bin/python -m pytest "$@"
