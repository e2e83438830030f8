#!/usr/bin/env bash
# Create .venv/ in the repository root and install autoreward with the embedded local model.
# Idempotent: a second run only installs what changed.
#   AUTOREWARD_TORCH   the torch requirement to install first (default: the CPU build
#                      torch==2.13.0; GPU users set e.g. AUTOREWARD_TORCH="torch==2.14.1")
#   AUTOREWARD_EXTRAS  extras to install (default: local,test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU torch first: a plain `torch` requirement with nothing installed pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "${AUTOREWARD_TORCH:-torch==2.13.0}"
# mujoco 4.0 ships its files in mujoco-core/mujoco-studio; metaworld pins mujoco==3.3.0, whose
# files overlap theirs, so remove the split packages first or `import mujoco` breaks.
if .venv/bin/python -m pip show -q mujoco-core >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y mujoco-studio mujoco-core mujoco
fi
# llama-cpp-python builds from source; the native build segfaulted in decode on these CPUs.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX512=OFF}"
.venv/bin/python -m pip install -q -e ".[${AUTOREWARD_EXTRAS:-local,test}]"
echo "autoreward installed: $(.venv/bin/autoreward --help >/dev/null && echo .venv/bin/autoreward)"
