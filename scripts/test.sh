#!/usr/bin/env bash
# Set up .venv/ (scripts/setup.sh) and run the whole test suite, slow and live-model tests included.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
