"""Where candidate training jobs run. A job is plain data (a ``TrainSpec`` and an output
folder), so an executor only decides where and how many at once; each job still runs in its
own sandboxed worker process.

``LocalPool`` runs ``workers`` jobs at a time on this machine (default: one per core). The
threads it uses only wait on worker processes, so they cost no CPU; each job trains with one
torch thread. The loop never asks the LLM while a pool trains (designing and checking come
before, analysing after), so the embedded model's threads and the trainers do not compete for
the cores.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from autoreward.sandbox import JobResult
from autoreward.train.run import TrainSpec, train_candidate


class LocalPool:
    """Runs training jobs ``workers`` at a time on this machine (``submit(spec, out) -> Future``)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="autoreward-train")

    def submit(self, spec: TrainSpec, out_dir: Path, on_event: Callable[[dict[str, Any]], None] | None = None) -> Future[JobResult]:
        return self._pool.submit(train_candidate, spec, out_dir, None, on_event)

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        # on Ctrl-C the waiting threads see their worker's process group killed by run_job
        self._pool.shutdown(wait=True, cancel_futures=True)
