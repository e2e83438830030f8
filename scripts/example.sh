#!/usr/bin/env bash
# Set up .venv/ (scripts/setup.sh) and run a real example end to end, offline, on the CPU:
# check a hand-written "run backwards" reward for HalfCheetah-v5 in the sandbox, train PPO with
# it and report the task fitness against the untrained policy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/autoreward eval examples/halfcheetah_backwards.py --env HalfCheetah-v5 --task run_backwards \
  --steps 30000 --max-episode-steps 300 --eval-episodes 3 \
  --set learning_rate=3e-4 --set n_steps=1024 --set n_epochs=10 "$@"
