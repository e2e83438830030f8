#!/usr/bin/env bash
# Create .venv/ in the repository root and install autoreward with the embedded local model.
# Idempotent: a second run only installs what changed. Quiet: a few lines say what it does; the
# output of apt-get and pip goes to .venv/setup.log, whose last lines are printed if a step fails.
#   AUTOREWARD_TORCH   the torch requirement to install first (default: the CPU build
#                      torch==2.13.0; GPU users set e.g. AUTOREWARD_TORCH="torch==2.14.1")
#   AUTOREWARD_EXTRAS  extras to install (default: local,test,ray,sbx,tb,docs)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
LOG=.venv/setup.log
: >"$LOG"
echo "setup: .venv/ (the output of each step goes to $LOG)"

# Run one step with its output in the log; on failure, show the log's tail and stop.
run() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: failed: $*" >&2
    echo "setup: the last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

# System packages for the report: libosmesa6 renders MuJoCo offscreen without a GPU (MUJOCO_GL=osmesa),
# chromium is the browser the report's test opens. Installed only when missing, as root or via sudo;
# without apt (or the rights) setup goes on and says so in one line.
if ! { [ -e /usr/lib/x86_64-linux-gnu/libOSMesa.so.8 ] || ldconfig -p 2>/dev/null | grep -q libOSMesa; } || ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "setup: apt-get install libosmesa6 chromium"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libosmesa6 chromium; } >>"$LOG" 2>&1 \
      || echo "setup: apt-get could not install libosmesa6 chromium; report videos and the browser test need them (see $LOG)"
  else
    echo "setup: libosmesa6 and chromium are missing and apt-get is unavailable (or not root); report videos and the browser test need them"
  fi
fi

PIP=(.venv/bin/python -m pip install --progress-bar off)
TORCH=${AUTOREWARD_TORCH:-torch==2.13.0}
# ray, sbx and tb: the Ray executor, the SBX trainer and --tensorboard, so their tests run too; docs: the
# documentation site's tools (mkdocs), which CI builds (AUTOREWARD_EXTRAS=local,test skips them all)
EXTRAS=${AUTOREWARD_EXTRAS:-local,test,ray,sbx,tb,docs}
run "${PIP[@]}" --upgrade pip
# The CPU torch first: a plain `torch` requirement with nothing installed pulls a multi-GB CUDA build.
echo "setup: $TORCH, then autoreward[$EXTRAS]"
run "${PIP[@]}" "$TORCH"
# mujoco 4.0 ships its files in mujoco-core/mujoco-studio; metaworld pins mujoco==3.3.0, whose
# files overlap theirs, so remove the split packages first or `import mujoco` breaks.
if .venv/bin/python -m pip show -q mujoco-core >/dev/null 2>&1; then
  run .venv/bin/python -m pip uninstall -y mujoco-studio mujoco-core mujoco
fi
# llama-cpp-python builds from source; the native build segfaulted in decode on these CPUs.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX512=OFF}"
if [[ ",$EXTRAS," == *",local,"* ]] && ! .venv/bin/python -m pip show -q llama-cpp-python >/dev/null 2>&1; then
  echo "setup: building llama-cpp-python from source (the slow step: about 7 minutes on 2 cores, once)"
fi
run "${PIP[@]}" -e ".[$EXTRAS]"
run .venv/bin/autoreward --help
echo "setup: done in $((SECONDS - start)) s: .venv/bin/autoreward"
