"""The on-disk layout of a run, atomic writes and resume.

A run directory holds everything a run produced, so a killed run resumes where it stopped and
every number in a report can be traced to a file::

    runs/<env>__<task>__<YYYYmmdd-HHMMSS>-<4 hex>/
        run.json            what was asked: command, config, package versions
        state.json          a loop's progress: iteration, parent, feedback, tokens, cost
        fitness.json        a proposed fitness for a free-form task (edit it, then resume)
        recordings/         rollouts the critic replays (trusted, recorded once)
        iter<i>/designs.json  the designer's answers, the code extracted, repairs, accepted
        iter<i>/cand<j>/    a loop's candidates; `check` and `eval` runs have one, candidate/
            reward.py  candidate.json  vetting.json  critic.json  review.json  job.json  worker.log
            progress.csv  metrics.json  analysis.json  analysis.md  policy.zip

Names never collide (time plus random suffix) and a finished step is recognised by the file
it wrote last, written atomically (tmp + rename). :class:`Run` and :class:`Candidate` are the
typed readers every command uses.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import secrets
import sys
import tempfile
import time
from importlib import metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoreward.errors import DiskFullError, RunDirError


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a file, a kill never leaves one."""
    write_text(path, json.dumps(data, indent=2, default=_default) + "\n")


FULL_DISK_ENV = "AUTOREWARD_TEST_ENOSPC"
"""Test switch: a file name whose writes fail as if the disk were full (no unprivileged way to
fill a disk in a test)."""
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_text(path: Path, text: str) -> None:
    """Write atomically (tmp + rename). A full disk is a one-line DiskFullError; the file's
    previous content, and every other file, stays as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            if os.environ.get(FULL_DISK_ENV) == path.name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            f.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise DiskFullError(f"cannot write {path}: {os.strerror(exc.errno).lower()}",
                                "free space there, then `autoreward resume` the run: everything written before is intact") from None
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        fix = ("it records how the run was made: restore it, or start a new run" if Path(path).name == "run.json"
               else "it is damaged: delete it, and `autoreward resume` redoes the step that wrote it")
        raise RunDirError(f"{path} is not valid JSON ({exc})", fix) from None


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    return str(o)


def slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")
    return s[:n] or "run"


def new_run_dir(root: Path, env_id: str, task: str) -> Path:
    """A fresh directory ``<env>__<task>__<time>-<hex>`` that cannot collide with another."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        name = f"{slug(env_id)}__{slug(task)}__{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        path = root / name
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"cannot create a new run directory under {root}")  # pragma: no cover


def versions() -> dict[str, str]:
    """Package versions recorded with every run, so a result can be reproduced."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("autoreward", "stable-baselines3", "gymnasium", "mujoco", "torch", "numpy", "crafter", "litellm", "llama-cpp-python"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def record_run(path: Path, command: str, config: dict[str, Any], **extra: Any) -> None:
    """Write ``run.json`` (command, config, argv, versions) unless it exists (resume keeps the
    first)."""
    f = Path(path) / "run.json"
    if f.exists():
        return
    write_json(f, {"command": command, "config": config, **extra, "argv": sys.argv, "cwd": os.getcwd(), "versions": versions(), "created": time.time()})


def _read_optional(path: Path) -> Any:
    return read_json(path) if path.exists() else None


@dataclass
class Candidate:
    """One reward candidate's directory, read: its critic status, training metrics, analysis."""

    rel: str  # path inside the run directory, e.g. "iter0/cand1" or "candidate"
    dir: Path
    status: dict[str, Any]  # accepted, repairs, error, history, review_objection
    metrics: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None  # critic.json
    duplicate: dict[str, Any] | None = None  # duplicate.json: not trained, same program or same behaviour as ``of``

    @classmethod
    def read(cls, run_dir: Path, cand: Path) -> "Candidate | None":
        """The candidate in ``cand``, or None when the critic has not finished with it yet."""
        verdict = _read_optional(cand / "critic.json")
        if (cand / "candidate.json").exists():
            status = read_json(cand / "candidate.json")
        elif verdict is not None:  # `check` / `eval` runs: one candidate, no repairs
            status = {"accepted": verdict["accepted"], "repairs": 0, "error": "" if verdict["accepted"] else verdict.get("message", "")}
        else:
            return None
        return cls(
            rel=cand.relative_to(run_dir).as_posix(), dir=cand, status=status,
            metrics=_read_optional(cand / "metrics.json"), analysis=_read_optional(cand / "analysis.json"),
            review=_read_optional(cand / "review.json"), verdict=verdict, duplicate=_read_optional(cand / "duplicate.json"),
        )

    @property
    def accepted(self) -> bool:
        return bool(self.status.get("accepted"))

    @property
    def trained(self) -> bool:
        """Training finished, successfully or not (``metrics.json`` exists)."""
        return self.metrics is not None

    @property
    def ok(self) -> bool:
        """Trained successfully, with a fitness."""
        return bool(self.metrics and self.metrics.get("ok") and self.metrics.get("fitness") is not None)

    @property
    def fitness(self) -> float | None:
        return float(self.metrics["fitness"]) if self.ok and self.metrics else None

    @property
    def error(self) -> str:
        """Why it failed: training's error, else the critic's; '' when it did not fail."""
        if self.metrics is not None and not self.metrics.get("ok"):
            return str(self.metrics.get("error", "training failed"))
        return "" if self.accepted else str(self.status.get("error", ""))

    @property
    def source(self) -> str:
        return (self.dir / "reward.py").read_text()

    def summary(self) -> dict[str, Any]:
        """The plain-data line written into ``summary.json`` and ``result.json``."""
        m = self.metrics or {}
        return {"path": self.rel, "ok": self.ok, "fitness": self.fitness, "solved": bool(m.get("solved", False)), "error": self.error}


@dataclass
class Run:
    """A run directory, read: what made it (``kind``: run, check or eval), its config, its
    candidates and the best of them."""

    path: Path
    kind: str
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)  # candidates() skipped: rel -> why (one line)

    @classmethod
    def load(cls, path: Path | str) -> "Run":
        """An existing run directory, or a one-line error saying what is wrong with the path."""
        p = Path(path)
        pick = "give a directory that `autoreward run`, `check` or `eval` printed; `ls runs/` lists them"
        if not p.exists():
            raise RunDirError(f"run directory {p} does not exist", pick)
        if not p.is_dir():
            raise RunDirError(f"{p} is a file, not a run directory", pick)
        if not (p / "run.json").exists():
            raise RunDirError(f"{p} is not an autoreward run directory (no run.json)", pick)
        info = read_json(p / "run.json")
        kind, config = info.get("command"), info.get("config")
        if isinstance(kind, list) and isinstance(config, dict):  # the first layout: argv, then a nested config
            info = {**info, "interactive": bool(config.get("interactive"))}
            kind, config = config.get("command"), config.get("config", config)
        if kind not in ("run", "check", "eval") or not isinstance(config, dict):
            raise RunDirError(f"{p / 'run.json'} does not say which autoreward command made it", "it may be damaged; start a new run")
        return cls(p, kind, config, info)

    def require_loop(self, action: str) -> None:
        """A one-line error when ``action`` (resume, refine) needs a loop run and this is not one."""
        if self.kind != "run":
            raise RunDirError(
                f"{self.path} was made by `autoreward {self.kind}`, not `autoreward run`: there is no loop to {action}",
                f"start one with `autoreward run \"TASK\" --env {self.config.get('env', 'ENV')}`",
            )

    def save_config(self, config: dict[str, Any]) -> None:
        """Replace the recorded config (refine raises the iteration cap)."""
        self.config = config
        self.info = {**self.info, "command": self.kind, "config": config}
        write_json(self.path / "run.json", self.info)

    @property
    def state(self) -> dict[str, Any]:
        return _read_optional(self.path / "state.json") or {}

    @property
    def fitness_proposal(self) -> dict[str, Any] | None:
        return _read_optional(self.path / "fitness.json")

    def candidates(self, iteration: int | None = None) -> list[Candidate]:
        """Every candidate the critic has finished with (of one iteration if given), in order."""
        pattern = "iter*/cand*" if iteration is None else f"iter{iteration}/cand*"
        dirs = [p for p in self.path.glob(pattern) if p.is_dir()]
        if iteration is None and (self.path / "candidate").is_dir():
            dirs.append(self.path / "candidate")
        found = []
        for d in sorted(dirs, key=_natural):
            try:
                found.append(Candidate.read(self.path, d))
            except RunDirError as exc:  # one damaged file costs its candidate, not the listing
                self.damaged[d.relative_to(self.path).as_posix()] = exc.one_line()
        return [c for c in found if c is not None]

    def unfinished(self) -> list[tuple[str, str]]:
        """``(rel, why)`` for every designed sample of a loop run that has no candidate yet:
        the run stopped (an error, a kill, a budget) while the critic or the repairs were at
        work. ``why`` is the last rejection recorded in ``vetting.json``, else what
        ``designs.json`` says of the answer; ``resume`` picks such samples up."""
        out = []
        for designs in sorted(self.path.glob("iter*/designs.json"), key=_natural):
            try:
                entries = read_json(designs)
            except RunDirError:
                continue
            for e in entries if isinstance(entries, list) else []:
                cand = designs.parent / f"cand{e.get('index')}"
                if (cand / "candidate.json").exists():
                    continue
                tried = (_read_optional(cand / "vetting.json") or {}).get("history") or []
                if tried:
                    why = f"rejected {len(tried)} time(s) so far, last: {tried[-1].get('error', '')}"
                elif e.get("source") is None:
                    why = "the answer contained no Python code"
                else:
                    why = "not checked yet"
                out.append((cand.relative_to(self.path).as_posix(), f"{why}; the run stopped before the critic finished (autoreward resume continues)"))
        return out

    def best(self) -> Candidate | None:
        """The trained candidate with the highest task fitness, across all iterations."""
        ok = [c for c in self.candidates() if c.ok]
        return max(ok, key=lambda c: c.fitness if c.fitness is not None else float("-inf")) if ok else None


def _natural(p: Path) -> list[Any]:
    """Sort key that puts iter2 before iter10 and cand2 before cand10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.as_posix())]
