#!/usr/bin/env bash
# What judging in a clean process costs per candidate, beside the code before it, in one run.
#   bash benchmarks/judge-vs-main.sh BEFORE_WORKTREE CARDS_DIR [ROUNDS]
# BEFORE_WORKTREE: a checkout of the commit before the judge (git worktree add /tmp/wt-main 443fb3b);
# CARDS_DIR: one HalfCheetah card both sides load (AUTOREWARD_CARDS), so both train with the same settings.
# Both sides run `autoreward eval` on the shipped expert at the same budget, interleaved (A B A B),
# pinned to one core; each prints the command's wall time and the candidate's metrics.
set -euo pipefail
BEFORE=$1 CARDS=$2 ROUNDS=${3:-2} STEPS=${STEPS:-200000} CORE=${CORE:-0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=$HERE/.venv/bin/python
OUT=$(mktemp -d /tmp/judge-vs-main-XXXX)
for r in $(seq 1 "$ROUNDS"); do
  for side in before after; do
    dir=$([ $side = before ] && echo "$BEFORE" || echo "$HERE")
    t0=$(date +%s.%N)
    (cd "$dir" && AUTOREWARD_CARDS=$CARDS AUTOREWARD_NO_REPORT=1 taskset -c "$CORE" "$PY" -m autoreward.cli eval \
      examples/halfcheetah_backwards.py --env HalfCheetah-v5 --task run_backwards --steps "$STEPS" --seed "$r" \
      --out "$OUT/$side$r" >"$OUT/$side$r.log" 2>&1)
    t1=$(date +%s.%N)
    m=$(find "$OUT/$side$r" -name metrics.json | head -1)
    "$PY" - "$side" "$r" "$t0" "$t1" "$m" <<'EOF'
import json, sys
side, r, t0, t1, path = sys.argv[1:]
m = json.load(open(path))
print(json.dumps({"side": side, "round": int(r), "command_s": round(float(t1) - float(t0), 2), "train_seconds": m.get("train_seconds"),
                  "steps_per_second": m.get("steps_per_second"), "fitness": m.get("fitness"),
                  "judge_s": (m.get("judge") or {}).get("seconds"), "self_reported": m.get("self_reported")}))
EOF
  done
done
