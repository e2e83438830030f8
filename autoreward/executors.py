"""Where candidate training jobs run. A job is plain data (a ``TrainSpec`` and an output
folder), so an executor only decides where and how many at once; each job still runs in its
own sandboxed worker process.

``LocalPool`` runs ``workers`` jobs at a time on this machine (default: one per core). The
threads it uses only wait on worker processes, so they cost no CPU; each job trains with one
torch thread. The loop never asks the LLM while a pool trains (designing and checking come
before, analysing after), so the embedded model's threads and the trainers do not compete for
the cores.

``RayPool`` hands the same job to a Ray task (``pip install autoreward[ray]``): the task calls
the very function the local pool calls, so the job still runs in a sandboxed worker on
whichever node Ray picks, with the per-candidate ``num_cpus``/``num_gpus`` Ray reserves for it.
The job writes into its candidate folder directly, so the run directory (and the card) must be
at the same path on every node: a shared filesystem, or one machine. Its progress events come
back on a ``ray.util.queue.Queue`` for the live view. Ray does the scheduling and the transport;
there is no distribution code of our own.
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from autoreward.errors import ConfigError
from autoreward.rundir import write_json
from autoreward.sandbox import JobResult
from autoreward.train.run import TrainSpec, train_candidate

OnEvent = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    """What the loop and successive halving need: a width and ``submit(spec, out) -> Future``."""

    workers: int

    def submit(self, spec: TrainSpec, out_dir: Path, on_event: OnEvent | None = None) -> Future[JobResult]: ...

    def __enter__(self) -> "Executor": ...

    def __exit__(self, *exc: Any) -> None: ...


class LocalPool:
    """Runs training jobs ``workers`` at a time on this machine (``submit(spec, out) -> Future``)."""

    def __init__(self, workers: int = 0) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="autoreward-train")

    def submit(self, spec: TrainSpec, out_dir: Path, on_event: OnEvent | None = None) -> Future[JobResult]:
        return self._pool.submit(train_candidate, spec, out_dir, None, on_event)

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True)
            return
        # Ctrl-C (or any error) in the waiting thread: start nothing more, kill the workers, and
        # do not wait; their threads end at once, recording no failure (sandbox.JobsStopped)
        from autoreward.sandbox.parent import stop_all_jobs

        self._pool.shutdown(wait=False, cancel_futures=True)
        stop_all_jobs()


def _ray_train(spec: dict[str, Any], out_dir: str, events: Any = None) -> dict[str, Any]:
    """The Ray task: the local pool's job, on whichever node Ray chose (plain data in and out).
    ``events`` (a ``ray.util.queue.Queue``) carries the job's progress events back to the driver."""
    missing = [p for p in (spec["card_path"], str(Path(out_dir).parent), spec.get("continue_dir") or "") if p and not Path(p).exists()]
    if missing:  # no shared filesystem: say so instead of training into a folder nobody reads
        return asdict(JobResult(False, {}, f"{', '.join(missing)} not found on Ray node {socket.gethostname()}: "
                                           "the run directory and the card must be on a filesystem every node shares, at the same path"))
    on_event = None if events is None else (lambda e: events.put_nowait((out_dir, e)))
    return asdict(train_candidate(TrainSpec(**spec), Path(out_dir), None, on_event))


def _reachable(address: str) -> None:
    """Ray retries an unreachable ``host:port`` for minutes; one TCP connect says it at once."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "ray://..." (Ray Client) and the like: Ray itself answers fast
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot connect to Ray at {address}: {exc.strerror or exc}",
                          "start the cluster (ray start --head) and pass its GCS address, e.g. --ray-address 10.0.0.1:6379") from None


class RayPool:
    """Runs training jobs as Ray tasks, each reserving ``num_cpus`` CPUs and ``num_gpus`` GPUs.

    Connects to ``address`` (``auto``: the cluster this machine belongs to; empty: a Ray instance
    already started in this process, else a new local one), and disconnects only from what it
    started itself."""

    def __init__(self, address: str = "", num_cpus: float = 1.0, num_gpus: float = 0.0) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray, which is not installed", "pip install 'autoreward[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            _reachable(address)
            try:
                ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"cannot connect to Ray at {address or 'a new local instance'}: {first}",
                                  "start the cluster (ray start --head) or check --ray-address") from None
            self._started = True
        self.num_cpus, self.num_gpus = float(num_cpus), float(num_gpus)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.workers = max(1, int(cpus // self.num_cpus) if self.num_cpus > 0 else int(cpus))
        self._task = ray.remote(_ray_train).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)
        self._events: Any = None  # a ray.util.queue.Queue, made when a job first wants its events
        self._listeners: dict[str, OnEvent] = {}
        self._pump: threading.Thread | None = None
        self._closing = threading.Event()

    def _queue(self) -> Any:
        """The queue every job's events come back on (one small actor for the pool, started on
        first use), and the driver thread that hands each event to its job's ``on_event``."""
        if self._events is None:
            from ray.util.queue import Queue

            self._events = Queue(actor_options={"num_cpus": 0})  # it only relays: reserves no CPU a trainer needs
            self._pump = threading.Thread(target=self._relay, name="autoreward-ray-events", daemon=True)
            self._pump.start()
        return self._events

    def _relay(self) -> None:
        from ray.util.queue import Empty

        while not self._closing.is_set():
            try:
                out_dir, event = self._events.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue's actor is gone (Ray shut down): nothing more will come
                return
            listener = self._listeners.get(out_dir)
            if listener is not None:
                try:
                    listener(event)
                except Exception:  # noqa: BLE001 - a broken display must not stop the others' progress
                    pass

    def submit(self, spec: TrainSpec, out_dir: Path, on_event: OnEvent | None = None) -> Future[JobResult]:
        """Run the job as a Ray task; ``on_event`` gets its progress events on the driver."""
        threads = max(spec.threads, int(self.num_cpus))  # the CPUs Ray reserved are the job's to use
        key = str(Path(out_dir).resolve())
        if on_event is not None:
            self._listeners[key] = on_event
        ref = self._task.remote(asdict(replace(spec, threads=threads)), key, self._queue() if on_event is not None else None)
        out: Future[JobResult] = Future()

        def _done(f: Future[Any]) -> None:
            try:
                result = JobResult(**f.result())
            except BaseException as exc:  # a Ray failure (node lost, task crashed) is the job's error
                result = JobResult(False, {}, f"Ray task failed: {type(exc).__name__}: {str(exc).strip()[:500]}")
            if not (out_dir / "metrics.json").exists():  # the job never ran: readers still find why
                out_dir.mkdir(parents=True, exist_ok=True)
                write_json(out_dir / "metrics.json", {**result.result, "ok": False, "error": result.error})
            out.set_result(result)

        ref.future().add_done_callback(_done)
        return out

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self._events is not None:
            self._events.shutdown()
        if self._started:
            self._ray.shutdown()


def make_executor(kind: str, workers: int = 0, address: str = "", num_cpus: float = 1.0, num_gpus: float = 0.0) -> Executor:
    """The executor a run's config names: ``local`` (``workers`` at a time) or ``ray``."""
    if kind == "ray":
        return RayPool(address, num_cpus, num_gpus)
    if kind != "local":
        raise ConfigError(f"unknown --executor {kind!r}", "use local or ray")
    return LocalPool(workers)
