"""The parent side of training: a plain-data spec, and the call that runs it in the sandbox.

A :class:`TrainSpec` holds only paths, strings and numbers, so it crosses process and machine
boundaries unchanged; :func:`train_candidate` hands it to the sandboxed ``train`` job
(``job.py``), then has the saved policy evaluated by the sandboxed ``judge`` job (``judge.py``),
which never loads the reward, and makes sure ``metrics.json`` exists afterwards, whatever
happened in either child.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from autoreward.rundir import read_json, write_json
from autoreward.sandbox import JobResult, Limits, run_job
from autoreward.train import job as _job  # noqa: F401  (registers the "train" job)
from autoreward.train.algos import algorithm
from autoreward.train.judge import NORMALIZATION, TRAINING_REPORT, judge_candidate


@dataclass
class TrainSpec:
    """Everything a training job needs, as plain data (crosses process/machine boundaries)."""

    card_path: str
    task: str
    fitness: str
    success: float
    source: str | None  # None: train on the env's own reward (baseline / benchmark)
    steps: int = 50_000
    algo: str = ""  # "" = the card's default
    seed: int = 0
    hyperparams: dict[str, Any] = field(default_factory=dict)  # overrides of the card's values
    n_envs: int = 0  # 0 = the card's default
    vec_env: str = ""  # "dummy" (one process) or "subproc" (one process per env); "" = the card's
    trainer: str = "sb3"  # "sb3" or "sbx" (SB3's JAX port; train/algos.TRAINERS)
    eval_every: int = 0  # 0 = steps // 5
    eval_episodes: int = 5
    max_episode_steps: int | None = None
    device: str = "auto"
    threads: int = 1
    save_policy: bool = True  # False: the policy is deleted once the judge has evaluated it
    make_kwargs: dict[str, Any] = field(default_factory=dict)  # the task's env settings
    policy: str = ""  # "" = the card's (e.g. CnnPolicy with Crafter's obs_mode=pixels)
    #: also evaluate the final policy with sampled actions (seeded) and report it apart as
    #: ``final_sampled``; for benchmarks only, never used to judge or select a candidate
    sampled_eval: bool = False
    #: successive halving: continue the policy saved in this folder (an earlier rung) up to ``steps``
    continue_dir: str = ""
    save_replay_buffer: bool = False  # off-policy algorithms keep their buffer across rungs
    tensorboard: bool = False  # SB3's TensorBoard log in <out_dir>/tensorboard (needs the tensorboard package)
    #: "reward": ``source`` defines compute_reward; "potential": it defines compute_potential(state)
    #: and training uses the task's own signal + gamma * phi(s') - phi(s) (``wrappers.Shaping``)
    shaping: str = "reward"
    #: end training at the first periodic evaluation whose fitness reaches ``success`` (the
    #: behaviour benchmark's time to threshold, ``eval --stop-at-success``); metrics say where
    stop_at_success: bool = False


def train_candidate(
    spec: TrainSpec,
    out_dir: Path,
    limits: Limits | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> JobResult:
    """Run one training job in the sandbox, then the judge; the result (ok or a precise error)
    is returned, its ``result`` the contents of ``metrics.json``, which is written either way.

    Until the judge has merged its numbers, the training job's own report is ``training.json``,
    never ``metrics.json``: a run stopped between the two (Ctrl-C) leaves no candidate that looks
    finished with self-reported numbers, and its resume judges the saved policy without
    training it again."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if limits is None:
        limits = Limits.for_training(spec.steps, algorithm(spec.algo or "ppo").budget_steps_per_s)
    trained, metrics_path = out_dir / TRAINING_REPORT, out_dir / "metrics.json"
    if trained.exists() and (out_dir / "policy.zip").exists() and not metrics_path.exists():
        result = JobResult(True, read_json(trained), wall_seconds=float(read_json(trained).get("wall_seconds") or 0.0))
    else:
        trained.unlink(missing_ok=True)
        result = run_job("train", {**asdict(spec), "out_dir": str(out_dir)}, out_dir, limits, on_event)
        if not metrics_path.exists() or not result.ok:
            metrics = dict(result.result)
            metrics.update(ok=result.ok, error=result.error, wall_seconds=result.wall_seconds)
            write_json(metrics_path, metrics)
            return result
        report = read_json(metrics_path)
        report["wall_seconds"] = round(result.wall_seconds, 3)
        write_json(trained, report)
        metrics_path.unlink()
    judged = judge_candidate(spec, out_dir, training_seconds=result.wall_seconds)
    if not spec.save_policy:  # kept only as long as the judge needed it
        for name in ("policy.zip", "vecnormalize.pkl", NORMALIZATION):
            (out_dir / name).unlink(missing_ok=True)
    # the result callers read (benchmarks, HNS) is metrics.json, the judge's numbers merged in
    merged = read_json(metrics_path)
    return replace(result, ok=judged.ok and bool(merged.get("ok")), result=merged, error="" if judged.ok else judged.error,
                   wall_seconds=result.wall_seconds + judged.wall_seconds)
