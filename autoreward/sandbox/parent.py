"""The parent side of the sandbox: start a limited child, watch it, read its result.

The main process never imports or executes generated code. Every check and every training run
happens in ``python -m autoreward.sandbox.worker`` started by :func:`run_job` with:

- an environment rebuilt from an allow-list (no ``*_API_KEY``, ``*_TOKEN``, ``*SECRET*``...),
  ``HOME`` and ``TMPDIR`` inside the job's directory, which is also the working directory;
- CPU-time (RLIMIT_CPU) and memory (RLIMIT_DATA) limits the child sets on itself before it
  reads any generated code, no core files, and its own process group;
- OS-level confinement the child applies to itself (``confine``): a fresh network namespace
  and Landlock (writes only in the job directory, reads only Python, packages, a few system
  files and the paths the job names, no TCP, no signals or ptrace outside the sandbox);
  ``confinement`` in the result says what is active (``network_isolated`` = its ``netns``);
- a wall-clock watchdog in the parent that kills the whole process group;
- a per-call watchdog inside the child that interrupts one reward call running too long, and
  a heartbeat the parent watches, which kills the job when one call overstays inside C code
  the in-child watchdog cannot interrupt.

Results come back as JSON (``result.json``); progress events as JSON lines on stdout.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from autoreward.errors import SandboxError
from autoreward.sandbox import registry
from autoreward.sandbox.child import HEARTBEAT_BYTES
from autoreward.sandbox.confine import missing

SECRET_RE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.I)
ENV_ALLOW = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE", "MUJOCO_GL", "PYOPENGL_PLATFORM", "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "NUMBA_CACHE_DIR", "AUTOREWARD_CARDS",
    "COVERAGE_PROCESS_START", "AUTOREWARD_SELFTEST_PORT",
)
#: parent-side switches (never passed to the child's environment, only into job.json)
REQUIRE_ENV = "AUTOREWARD_REQUIRE_CONFINEMENT"  # "1": refuse jobs without every mechanism
OFF_ENV = "AUTOREWARD_CONFINEMENT_OFF"  # e.g. "landlock,netns": switch mechanisms off (debugging)
#: test-only: lets the parent run ``test:*`` jobs (``sandbox.testing``), which execute code with
#: the AST policy off to show that confinement holds alone. Nothing in the CLI names such a
#: job, and generated code runs in the child, which cannot change the parent's environment.
TESTING_ENV = "AUTOREWARD_SANDBOX_TESTING"
#: how long past its budget one reward call may run before the parent kills the job: the
#: in-child guard interrupts Python-level loops well within this, C-level work it cannot
CALL_GRACE_SECONDS = 1.0

_live: set[subprocess.Popen] = set()  # the workers this process runs now, for stop_all_jobs
_live_lock = threading.Lock()
_generation = [0]  # bumped by stop_all_jobs: a job started before it was stopped, not failed


class JobsStopped(KeyboardInterrupt):
    """Raised by ``run_job`` in a job's own thread when ``stop_all_jobs`` killed it (Ctrl-C in
    the main thread): an interrupted job is not a failed one, so no failure is recorded for it
    and ``resume`` runs it again."""


def stop_all_jobs() -> None:
    """Kill every sandboxed worker this process runs (Ctrl-C while a pool trains: the pool's
    threads only wait on their workers, and would otherwise hold the process until they end)."""
    with _live_lock:
        _generation[0] += 1
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)


@dataclass
class Limits:
    """Budgets for one sandboxed job. A job that exceeds one fails with a precise error."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 600
    memory_mb: int = 4096
    call_seconds: float = 1.0  # one reward call

    @classmethod
    def for_check(cls) -> "Limits":
        return cls(wall_seconds=120.0, cpu_seconds=240, memory_mb=2048, call_seconds=1.0)

    @classmethod
    def for_training(cls, steps: int, steps_per_s: float) -> "Limits":
        """Twice the time ``steps`` take at a conservative ``steps_per_s``, plus set-up time."""
        wall = 180.0 + steps / steps_per_s * 2
        return cls(wall_seconds=wall, cpu_seconds=int(wall * 2) + 60, memory_mb=6144, call_seconds=2.0)


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """The child's environment: an allow-list minus anything that looks like a secret."""
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW and not SECRET_RE.search(k)}
    env.update(
        HOME=str(workdir),
        TMPDIR=str(workdir / "tmp"),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
    )
    env.setdefault("NUMBA_CACHE_DIR", str(workdir / "tmp" / "numba"))
    env.setdefault("MUJOCO_GL", "egl" if env.get("CUDA_VISIBLE_DEVICES") else "disable")
    # keep the child able to import autoreward from a checkout without installation
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class JobResult:
    """What came back from a child: its JSON result, or why there is none."""

    ok: bool
    result: dict[str, Any]
    error: str = ""
    returncode: int | None = None
    wall_seconds: float = 0.0
    log_path: str = ""
    #: why the parent killed it: "call_timeout" (one reward call stuck past its budget),
    #: "wall_timeout", or "" (it ended by itself); callers branch on this, not on ``error``
    killed: str = ""


def _signal_reason(rc: int, limits: Limits) -> str:
    sig = -rc if rc < 0 else rc - 128 if rc > 128 else 0
    if sig == signal.SIGXCPU:
        return f"CPU-time limit of {limits.cpu_seconds} s exceeded"
    if sig == signal.SIGKILL:
        return f"killed by signal SIGKILL (its memory limit of {limits.memory_mb} MB, the OS out-of-memory killer, or another process)"
    if sig == signal.SIGXFSZ:
        return "killed for writing a file (or its log) past the 1 GiB file-size limit"
    if sig == signal.SIGSEGV:
        return "crashed with a segmentation fault"
    if sig:
        return f"killed by signal {signal.Signals(sig).name}"
    return f"exited with status {rc}"


def run_job(
    kind: str,
    payload: dict[str, Any],
    workdir: Path,
    limits: Limits,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> JobResult:
    """Run the registered job ``kind`` (see ``registry``) in a worker in ``workdir`` under
    ``limits``; never raises for anything the child does (that is data for the Designer), only
    for our own set-up errors."""
    workdir = Path(workdir).resolve()
    payload = {k: (str(Path(v).resolve()) if k.endswith(("_path", "_dir")) and v else v) for k, v in payload.items()}
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    job_path, result_path, beat_path = workdir / "job.json", workdir / "result.json", workdir / "heartbeat"
    if result_path.exists():
        result_path.unlink()
    beat_path.write_bytes(bytes(HEARTBEAT_BYTES))
    job = {
        "kind": kind, "module": registry.registered_module(kind), "payload": payload, "limits": asdict(limits),
        "result_path": str(result_path), "heartbeat_path": str(beat_path), "read_paths": _read_paths(payload),
        "require_confinement": os.environ.get(REQUIRE_ENV) == "1",
        "confinement_off": [m.strip() for m in os.environ.get(OFF_ENV, "").split(",") if m.strip()],
        "testing": os.environ.get(TESTING_ENV) == "1",
        "parent_pid": os.getpid(),  # the worker dies with this process (child.die_with_parent)
    }
    job_path.write_text(json.dumps(job, indent=1))
    log_path = workdir / "worker.log"
    t0 = time.monotonic()
    with open(log_path, "ab") as log, open(beat_path, "rb") as beat_file:
        beat = memoryview(mmap.mmap(beat_file.fileno(), HEARTBEAT_BYTES, access=mmap.ACCESS_READ)).cast("d")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "autoreward.sandbox.worker", str(job_path)],
                cwd=workdir,
                env=scrubbed_env(workdir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # own process group: the watchdog kills all of it
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox worker: {exc}") from exc
        with _live_lock:
            _live.add(proc)
            generation = _generation[0]
        reader = threading.Thread(target=_pump_events, args=(proc, on_event, log_path), daemon=True)
        reader.start()
        try:
            killed = _watch(proc, beat, limits, t0)
        except BaseException:
            _kill_group(proc)  # Ctrl-C in the parent: take the child down with us
            raise
        finally:
            beat.release()
            with _live_lock:
                _live.discard(proc)
        if generation != _generation[0]:
            raise JobsStopped()
        reader.join(timeout=5)
    wall = time.monotonic() - t0
    rc = proc.returncode
    result: dict[str, Any] = {}
    if result_path.exists():
        try:
            result = json.loads(result_path.read_text())
        except json.JSONDecodeError:
            result = {}
    if killed:
        return JobResult(False, result, killed[1], rc, wall, str(log_path), killed=killed[0])
    if not result:
        tail = _log_tail(log_path)
        return JobResult(False, {}, f"the sandboxed worker {_signal_reason(rc, limits)} without a result{tail}", rc, wall, str(log_path))
    return JobResult(bool(result.get("ok")), result, str(result.get("error", "")), rc, wall, str(log_path))


def probe_confinement() -> dict[str, Any]:
    """The confinement a job gets on this machine: an empty job's ``confinement`` record."""
    with tempfile.TemporaryDirectory(prefix="autoreward-confinement-") as d:
        job = run_job("confinement", {}, Path(d), Limits(wall_seconds=60, cpu_seconds=30, memory_mb=1024))
    if "confinement" not in job.result:
        raise SandboxError(f"cannot probe the sandbox's confinement: {job.error}")
    return job.result["confinement"]


def require_confinement() -> dict[str, Any]:
    """``--require-confinement``: from now on every job of this process refuses to run without
    all of :data:`~autoreward.sandbox.confine.MECHANISMS`; fails at once, with what is missing
    and why, when this machine cannot provide them."""
    os.environ[REQUIRE_ENV] = "1"
    conf = probe_confinement()
    absent = missing(conf)
    if absent:
        why = f" ({conf['landlock_error']})" if conf.get("landlock_error") else ""
        raise SandboxError(
            f"--require-confinement: {', '.join(absent)} not available on this machine{why}",
            "Landlock needs Linux >= 5.13 with landlock among the LSMs (>= 6.7 for TCP, >= 6.12 for signals); "
            f"netns needs root or unprivileged user namespaces; {OFF_ENV} must be unset",
        )
    return conf


def _read_paths(payload: dict[str, Any]) -> list[str]:
    """The files and folders a job names (``*_path``, ``*_dir``, ``recording``), and the card
    templates beside a ``card_path`` (``_*.yaml``, which a card may name): the child may read
    these besides Python and its packages."""
    named = [v for k, v in payload.items() if isinstance(v, str) and v and (k.endswith(("_path", "_dir")) or k == "recording")]
    card = payload.get("card_path")
    templates = [str(p) for p in Path(card).parent.glob("_*.y*ml")] if isinstance(card, str) and card else []
    return named + templates


def _watch(proc: subprocess.Popen, beat: memoryview, limits: Limits, t0: float) -> tuple[str, str] | None:
    """Wait for the child; kill its group at the wall-clock limit, or when one reward call has
    run ``CALL_GRACE_SECONDS`` past its budget (C-level work the in-child guard cannot stop).
    Returns (kind, message) of the kill, None when it ended by itself."""
    deadline = t0 + limits.wall_seconds
    patience = limits.call_seconds + CALL_GRACE_SECONDS
    while True:
        try:
            proc.wait(timeout=0.25)
            return None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        started, calls, defining = beat[0], int(beat[1]), beat[2]
        if started and now - started > patience:
            _kill_group(proc)
            where = "while the program was being defined (its module-level code)" if defining else f"at transition {calls - 1} (reward call {calls} of this job)"
            return "call_timeout", (
                f"{where}: it took longer than {limits.call_seconds:g} s and could not be interrupted (stuck inside one "
                f"C-level computation, e.g. a huge numpy operation); the job was killed after {now - started:.1f} s"
            )
        if now > deadline:
            _kill_group(proc)
            return "wall_timeout", f"wall-clock limit of {limits.wall_seconds:.0f} s exceeded; the job was killed"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _pump_events(proc: subprocess.Popen, on_event: Callable[[dict[str, Any]], None] | None, log_path: Path) -> None:
    """Forward the child's JSON-line events; anything else it prints goes to the log."""
    assert proc.stdout is not None
    with open(log_path, "a") as log:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            if line.startswith("{") and on_event is not None:
                try:
                    on_event(json.loads(line))
                    continue
                except Exception:  # bad JSON or a broken callback must not kill the pump
                    pass
            log.write(line + "\n")


def _log_tail(log_path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return (": " + " | ".join(lines[-n:])[-400:]) if lines else ""
