"""The on-disk layout of a run, atomic writes and resume.

A run directory holds everything a run produced, so a killed run resumes where it stopped and
every number in a report can be traced to a file::

    runs/<env>__<task>__<YYYYmmdd-HHMMSS>-<4 hex>/
        run.json            what was asked: command, config, package versions
        recordings/         rollouts the critic replays (trusted, recorded once)
        <candidate>/        one directory per reward candidate
            reward.py  critic.json  job.json  worker.log  progress.csv  metrics.json  policy.zip

Names never collide (time plus random suffix) and a finished step is recognised by the file
it wrote last, written atomically (tmp + rename).
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from autoreward.errors import RunDirError


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader never sees half a file, a kill never leaves one."""
    write_text(path, json.dumps(data, indent=2, default=_default) + "\n")


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path} is not valid JSON: {exc}") from None


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


def record_run(path: Path, config: dict[str, Any]) -> None:
    """Write ``run.json`` (command, config, versions) unless it exists (resume keeps the first)."""
    f = Path(path) / "run.json"
    if f.exists():
        return
    write_json(f, {"command": sys.argv, "cwd": os.getcwd(), "config": config, "versions": versions(), "created": time.time()})


def open_run_dir(path: Path) -> Path:
    """An existing run directory, or a one-line error saying what is wrong with the path."""
    p = Path(path)
    if not p.is_dir():
        raise RunDirError(f"run directory {p} does not exist", "list runs with `ls runs/`")
    if not (p / "run.json").exists():
        raise RunDirError(f"{p} is not an autoreward run directory (no run.json)")
    return p
