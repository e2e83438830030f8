#!/usr/bin/env bash
# Set up .venv/ (scripts/setup.sh) and run a real example end to end, offline, on the CPU:
# the embedded local model designs reward programs for "make the half-cheetah run backwards",
# the critic checks them in the sandbox (and asks the model to review them), PPO trains the
# accepted ones for the card's budget (140,000 steps on 16 envs, where the shipped expert reaches
# 3 m/s; successive halving: each trains a quarter of the budget, the better half goes on),
# the analyzer reports, and the model refines the best: 2 iterations x 4 samples.
# The run ends with report.html in its directory; then the best reward is exported as one
# standalone module (gymnasium + numpy only) beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p runs
stamp=$(mktemp runs/.example-start.XXXXXX)
.venv/bin/autoreward run "make the half-cheetah run backwards without flipping over" \
  --env HalfCheetah-v5 --preset run_backwards --iterations 2 --samples 4 --review advise \
  --max-episode-steps 300 --eval-episodes 3 --out runs "$@"
run=$(find runs -maxdepth 1 -name 'HalfCheetah-v5__*' -newer "$stamp" -type d | sort | tail -1)
rm -f "$stamp"
if [ -n "$run" ]; then .venv/bin/autoreward export "$run" -o "$run/my_reward.py"; fi
