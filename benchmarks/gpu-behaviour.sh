#!/usr/bin/env bash
# Time to behaviour on a GPU (issue 22, item 4): the behaviour suite's HalfCheetah run-backwards and
# Hopper rows with the cards' default settings, first on one CPU core of the same machine, then with
# the policy on the GPU (--device cuda), so the ratio comes from one run on one machine.
# About 6 minutes: HalfCheetah reaches 3 m/s in 19-27 s on one core; Hopper default is capped
# (CAP seconds per job; it stands at about 1,000 of 2,500 on the CPU).
#
#   bash benchmarks/gpu-behaviour.sh [OUT_PREFIX]     # writes OUT_PREFIX-cpu.json, OUT_PREFIX-cuda.json
#
# Needs autoreward installed with a CUDA build of torch: on a GPU machine with PyPI,
# `AUTOREWARD_TORCH="torch==2.13.0" AUTOREWARD_EXTRAS=test bash scripts/setup.sh` (PyPI's Linux
# torch wheel is the CUDA build). PYTHON picks another interpreter that has the packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-benchmarks/behaviour-gpu-$(date +%F)}
CAP=${CAP:-120}
TASKS=halfcheetah_run_backwards,hopper_default
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "torch sees no GPU: install a CUDA build of torch (see this script's header)"
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
PY
nproc; lscpu | grep -m1 "Model name" || true
# one core each (the env steps and the reward run on it), as the CPU rows of the suite were measured
for dev in cpu cuda; do
  taskset -c 1 "$PY" -m autoreward.cli bench --suite behaviour --tasks "$TASKS" --profiles default --cap "$CAP" \
    --device "$dev" --out "$OUT-$dev.json"
done
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
cpu, gpu = (json.load(open(f"{out}-{d}.json")) for d in ("cpu", "cuda"))
for name in cpu["tasks"]:
    a, b = cpu["tasks"][name]["profiles"]["default"], gpu["tasks"][name]["profiles"]["default"]
    print(f"{name}: train steps/s cpu {a['median_train_steps_per_s']} cuda {b['median_train_steps_per_s']}; "
          f"wall s to threshold cpu {a['median_wall_s_to_threshold']} cuda {b['median_wall_s_to_threshold']}; "
          f"best fitness cpu {max(j['best_fitness'] for j in a['jobs']):.4g} cuda {max(j['best_fitness'] for j in b['jobs']):.4g}")
PY
