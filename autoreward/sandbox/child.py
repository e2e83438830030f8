"""The child side of the sandbox: what a worker process does to itself and offers its jobs.

Limits and confinement are applied by the worker before it reads any generated code
(:func:`apply_limits`, ``confine.confine``); jobs use :class:`CallGuard` to bound one reward
call, :func:`emit` to send progress to the parent and :func:`short_traceback` to turn a
reward's exception into a message the Designer can act on. Nothing here imports the rest of
autoreward.
"""

from __future__ import annotations

import json
import mmap
import os
import resource
import sys
import threading
import time
import traceback
from typing import Any, Callable

#: the heartbeat, three doubles shared with the parent: [monotonic start of the running
#: reward call (0 = none), number of calls begun, 1 while the program's module code runs]
HEARTBEAT_BYTES = 24
#: no file the child writes (its log included) may grow past this (RLIMIT_FSIZE)
FILE_LIMIT_BYTES = 1 << 30
_beat: memoryview = memoryview(bytearray(HEARTBEAT_BYTES)).cast("d")


_events = sys.stdout


def claim_stdout() -> None:
    """Keep the pipe to the parent (fd 1) for :func:`emit` alone and point fd 1 at stderr (the
    worker log): whatever a program prints, from Python or C, can neither flood nor fake the
    parent's events."""
    global _events
    _events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)


def emit(event: str, **data: Any) -> None:
    """One JSON line to the parent (progress bars, status)."""
    _events.write(json.dumps({"event": event, **data}) + "\n")
    _events.flush()


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this worker when the process that started it dies.

    The worker runs in its own session (so the watchdog can kill its whole group), which also
    puts it out of reach of a kill -9 or a terminal hang-up aimed at the parent's group: without
    this an orphaned worker trained on until its own CPU limit. Linux only (prctl
    PR_SET_PDEATHSIG); elsewhere the parent's watchdog and the job's limits still apply."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def apply_limits(limits: dict[str, Any]) -> None:
    """Set CPU, memory, file-size and core limits on this process."""
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    mem = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))  # output floods


def open_heartbeat(path: str) -> None:
    """Map the parent's heartbeat file, so the start time of every guarded call is visible to
    the parent, which kills the job when one call overstays in C code the guard cannot
    interrupt. Shared memory, not a write per call: the hot path stays two stores."""
    global _beat
    fd = os.open(path, os.O_RDWR)
    try:
        _beat = memoryview(mmap.mmap(fd, HEARTBEAT_BYTES)).cast("d")
    finally:
        os.close(fd)


class CallTimeout(Exception):
    """A single reward call ran past its time budget."""


class CallGuard:
    """Interrupts a reward call that runs longer than ``seconds``.

    One watchdog thread per process checks the running call's start time in the heartbeat
    every few milliseconds and raises KeyboardInterrupt in the main thread
    (``_thread.interrupt_main``) when the active guard's call overstays; the per-call cost on
    the hot path is a few stores, no system calls. Code stuck inside one long C call cannot be
    interrupted this way: the parent watches the same start time through the heartbeat
    (:func:`open_heartbeat`) and kills the job.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        _start_watchdog(seconds / 4)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        global _active
        beat = _beat
        self.fired = False
        _active = self
        beat[1] += 1
        beat[0] = time.monotonic()
        try:
            return fn(*args)
        except KeyboardInterrupt:
            if self.fired:
                raise CallTimeout(f"a single call took longer than {self.seconds:g} s (infinite loop?)") from None
            raise
        finally:
            beat[0] = 0.0

    def define(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the program's module-level code under the same budget (it is not a call)."""
        _beat[2] = 1.0
        try:
            return self.call(fn, *args)
        except CallTimeout:
            raise CallTimeout(f"defining the program (its module-level code) took longer than {self.seconds:g} s") from None
        finally:
            _beat[1] -= 1
            _beat[2] = 0.0


_active: CallGuard | None = None  # the guard whose call is running
_period = 0.05
_watchdog: threading.Thread | None = None


def _start_watchdog(period: float) -> None:
    """Start the process's one watchdog (once), checking at least every ``period`` seconds.

    ``interrupt_main`` does nothing while SIGINT is ignored, and a process started in the
    background (``nohup autoreward run … &``, a CI step) inherits SIGINT ignored down to its
    sandbox workers: the guard then never fired and an infinite loop ran until the parent's
    heartbeat kill. So the main thread gets Python's own SIGINT handler back here."""
    global _period, _watchdog
    import signal

    if threading.current_thread() is threading.main_thread() and not callable(signal.getsignal(signal.SIGINT)):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _period = min(_period, period)
    if _watchdog is None:
        _watchdog = threading.Thread(target=_watch, daemon=True, name="autoreward-call-guard")
        _watchdog.start()


def _watch() -> None:
    import _thread

    while True:
        time.sleep(_period)
        started, guard = _beat[0], _active
        if started and guard is not None and not guard.fired and time.monotonic() - started > guard.seconds:
            guard.fired = True
            _thread.interrupt_main()


def short_traceback(exc: BaseException, limit: int = 6) -> str:
    """The traceback lines that point into the reward program, for the Designer to read."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in ("<reward>", "<fitness>")]
    lines = [f"  line {f.lineno}, in {f.name}" + (f": {f.line}" if f.line else "") for f in frames[-limit:]]
    head = f"{type(exc).__name__}: {exc}"
    return head + ("\n" + "\n".join(lines) if lines else "")
