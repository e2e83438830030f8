#!/usr/bin/env bash
# Set up .venv/ (scripts/setup.sh) and run a real example end to end, offline, on the CPU:
# the embedded local model designs reward programs for "make the half-cheetah run backwards",
# the critic checks them in the sandbox (and asks the model to review them), PPO trains the
# accepted ones, the analyzer reports, and the model refines the best: 2 iterations x 2 samples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/autoreward run "make the half-cheetah run backwards without flipping over" \
  --env HalfCheetah-v5 --preset run_backwards --iterations 2 --samples 2 --review advise \
  --steps 20000 --max-episode-steps 300 --eval-episodes 3 \
  --set learning_rate=3e-4 --set n_steps=1024 --set n_epochs=10 "$@"
