"""The child side of the sandbox: what a worker process does to itself and offers its jobs.

Limits and isolation are applied by the worker before it reads any generated code
(:func:`apply_limits`); jobs use :class:`CallGuard` to bound one reward call, :func:`emit` to
send progress to the parent and :func:`short_traceback` to turn a reward's exception into a
message the Designer can act on. Nothing here imports the rest of autoreward.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def emit(event: str, **data: Any) -> None:
    """One JSON line on stdout for the parent (progress bars, status)."""
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def apply_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """Set CPU, memory and core limits on this process; isolate the network if the OS lets us."""
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    mem = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return {"network_isolated": isolate_network()}


def isolate_network() -> bool:
    """Move into a new, empty network namespace. False where the OS refuses (then say so)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return False
    try:  # map ourselves so file ownership still looks right
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        pass
    return True


class CallTimeout(Exception):
    """A single reward call ran past its time budget."""


class CallGuard:
    """Interrupts a reward call that runs longer than ``seconds``.

    A watchdog thread checks a start timestamp every few milliseconds and raises
    KeyboardInterrupt in the main thread (``_thread.interrupt_main``) when a call overstays;
    the per-call cost on the hot path is two attribute writes, no system calls.
    Code stuck inside one long C call cannot be interrupted this way; the CPU and wall-clock
    limits catch that.
    """

    def __init__(self, seconds: float) -> None:
        import _thread

        self.seconds = seconds
        self.started: float | None = None
        self.fired = False
        self._interrupt = _thread.interrupt_main
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        period = min(0.05, self.seconds / 4)
        while True:
            time.sleep(period)
            s = self.started
            if s is not None and time.perf_counter() - s > self.seconds and not self.fired:
                self.fired = True
                self._interrupt()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.fired = False
        self.started = time.perf_counter()
        try:
            return fn(*args)
        except KeyboardInterrupt:
            if self.fired:
                raise CallTimeout(f"a single call took longer than {self.seconds:g} s (infinite loop?)") from None
            raise
        finally:
            self.started = None


def short_traceback(exc: BaseException, limit: int = 6) -> str:
    """The traceback lines that point into the reward program, for the Designer to read."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in ("<reward>", "<fitness>")]
    lines = [f"  line {f.lineno}, in {f.name}" + (f": {f.line}" if f.line else "") for f in frames[-limit:]]
    head = f"{type(exc).__name__}: {exc}"
    return head + ("\n" + "\n".join(lines) if lines else "")
