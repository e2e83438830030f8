"""Training one reward candidate with stable-baselines3, top to bottom (CleanRL's readability).

This is the child side (the sandboxed ``train`` job; ``run.py`` is the parent side). In order,
one function per step, called by :func:`run_train_job`:

1. ``_settings``: the card's defaults under the spec's overrides;
2. ``_reward``: compile the reward (or the potential that shapes the task's own signal);
3. ``_env_stack``: build the wrapper stack;
4. ``_model``: a new model, or the earlier rung's to continue;
5. ``_evaluator``: the one evaluation protocol, bound to this model;
6. ``_learn``: evaluate the untrained policy, train with periodic fitness evaluations, evaluate
   the final policy with the same protocol;
7. ``_save`` and ``_results``: write ``policy.zip`` and ``normalization.npz``, and
   ``metrics.json`` (``progress.csv`` is written as the evaluations come) into the candidate
   directory.

Every number here is this process's view of itself (the reward runs here): the parent has the
saved policy judged by a separate job (``judge.py``), whose numbers decide. A reward that
raises at step 50,000 fails this candidate only, with the step and the program's traceback.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from autoreward.cards import EnvCard, load_card_file
from autoreward.episode import Episode, fitness_function
from autoreward.errors import RewardProgramError
from autoreward.program import PotentialCaller, RewardCaller, RewardError
from autoreward.rundir import read_json, write_json
from autoreward.sandbox.child import short_traceback
from autoreward.sandbox.registry import job
from autoreward.train.algos import algorithm, discount, hyperparams_for
from autoreward.train.evaluate import evaluate, evaluation_mode
from autoreward.train.judge import NORMALIZATION, save_normalization

if TYPE_CHECKING:  # SB3 and torch load in the job, never when the parent imports this module
    from autoreward.train.callbacks import ComponentStatsCallback, FitnessEvalCallback
    from autoreward.train.wrappers import Shaping

REPLAY_FILE = "replay_buffer.pkl"

#: runs the evaluation protocol on the current policy: ``(keep episodes, deterministic)`` -> results
Evaluator = Callable[..., dict[str, Any]]


@job("train")
def run_train_job(p: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Train inside the sandboxed worker, one step after another (the module docstring lists
    them). Returns the metrics dict (also written to disk)."""
    trainer = p.get("trainer") or "sb3"
    if trainer == "sbx" and int(p.get("threads", 1)) <= 1:  # JAX, like torch, on one thread per job
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch

    torch.set_num_threads(max(1, int(p.get("threads", 1))))
    s = _settings(p, trainer)
    try:
        reward, shaping = _reward(s, limits)
    except RewardProgramError as exc:
        return s.done(error=f"static: {exc.message}")
    venv, hp = _env_stack(s, reward, shaping)
    model = _model(s, venv, hp)
    run_eval = _evaluator(s, venv, model, reward, shaping)
    stats, evalcb = _callbacks(s, model, run_eval)
    try:
        final, train_seconds = _learn(s, model, stats, evalcb, run_eval)
    except RewardError as exc:
        return s.done(
            error=f"the reward failed {exc}: {short_traceback(exc.__cause__ or exc)}",
            failed_at_step=int(model.num_timesteps), progress=evalcb.rows, components=stats.summary(),
        )
    _save(s, venv, model)
    return s.done(**_results(s, model, stats, evalcb, final, train_seconds))


@dataclass
class _Settings:
    """The job's settings, the card's defaults under the spec's overrides, and the metrics
    record that every outcome (a failure too) ends in."""

    p: dict[str, Any]
    out_dir: Path
    card: EnvCard
    algo: str
    trainer: str
    steps: int
    seed: int
    n_envs: int
    vec_env: str
    max_steps: int | None
    fitness: Callable[[Episode], float]
    success: float
    make_kwargs: dict[str, Any]
    policy: str
    #: a later rung of successive halving continues an earlier rung's policy (from this
    #: directory) up to ``steps``; ``prev`` is that rung's metrics, ``done_before`` its steps
    cont: Path | None
    prev: dict[str, Any]
    done_before: int
    metrics: dict[str, Any]

    def done(self, **extra: Any) -> dict[str, Any]:
        """The metrics with ``extra``, written to ``metrics.json``: the job's answer."""
        self.metrics.update(extra)
        write_json(self.out_dir / "metrics.json", self.metrics)
        return self.metrics


def _settings(p: dict[str, Any], trainer: str) -> _Settings:
    """1. Settings: the card's defaults under the spec's overrides."""
    card = load_card_file(Path(p["card_path"]))
    algo = p.get("algo") or card.training.algo
    steps, seed = int(p["steps"]), int(p.get("seed", 0))
    n_envs = int(p.get("n_envs") or card.training.n_envs)
    # the card says which is faster for its env (benchmarks/search-*); one env never needs a subprocess
    vec_env = (p.get("vec_env") or card.training.vec_env) if n_envs > 1 else "dummy"
    cont = Path(p["continue_dir"]) if p.get("continue_dir") else None
    prev: dict[str, Any] = read_json(cont / "metrics.json") if cont else {}
    metrics: dict[str, Any] = {
        "ok": False, "env": card.id, "task": p["task"], "algo": algo, "steps": steps, "seed": seed, "n_envs": n_envs,
        "vec_env": vec_env, "trainer": trainer,
        "reward": "program" if p.get("source") else "env", "shaping": p.get("shaping") or "reward",
    }
    return _Settings(
        p=p, out_dir=Path(p["out_dir"]), card=card, algo=algo, trainer=trainer, steps=steps, seed=seed, n_envs=n_envs, vec_env=vec_env,
        max_steps=p.get("max_episode_steps") or card.training.max_episode_steps,
        fitness=fitness_function(p["fitness"], card.measure_exprs, card.field_names), success=float(p["success"]),
        make_kwargs=dict(p.get("make_kwargs") or {}), policy=p.get("policy") or card.training.policy,
        cont=cont, prev=prev, done_before=int(prev.get("steps", 0)), metrics=metrics,
    )


def _reward(s: _Settings, limits: dict[str, Any]) -> tuple[RewardCaller | None, Shaping | None]:
    """2. The reward program (None: the env's own reward), or a potential that shapes the task's
    own signal: the env's reward when the task is the env's objective, else its fitness at the
    end. Raises RewardProgramError for a program that does not compile."""
    from autoreward.train.wrappers import Shaping

    p, card = s.p, s.card
    if not p.get("source"):
        return None, None
    call_seconds = float(limits["call_seconds"])
    if s.metrics["shaping"] != "potential":
        return RewardCaller.compile(p["source"], call_seconds), None
    task_spec = card.tasks.get(p["task"])
    env_task = bool(task_spec and task_spec.env_objective and task_spec.fitness == p["fitness"])
    gamma = discount(card.training.hyperparams, s.algo, p.get("hyperparams") or {})
    shaping = Shaping(PotentialCaller.compile(p["source"], call_seconds), gamma, "env" if env_task else "fitness")
    s.metrics.update(gamma=gamma, task_signal=shaping.task_signal)
    return None, shaping


def _env_stack(s: _Settings, reward: RewardCaller | None, shaping: Shaping | None) -> tuple[Any, dict[str, Any]]:
    """3. The env stack, and the algorithm's hyperparameters (its gamma normalizes the reward):
    Monitor records the env's own return before our reward replaces it."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    from autoreward.train.wrappers import EpisodeFitnessWrapper, PotentialShapingVecWrapper, RewardProgramVecWrapper, StateWrapper

    card, max_steps = s.card, s.max_steps

    def make(i: int) -> Callable[[], Any]:
        def _init() -> Any:
            env = Monitor(card.make_env(**s.make_kwargs, **({"max_episode_steps": max_steps} if max_steps else {})))
            if reward is not None or shaping is not None:
                env = StateWrapper(env, card)
            if shaping is not None and shaping.task_signal == "fitness":
                env = EpisodeFitnessWrapper(env, card, s.fitness, max_steps or 1000)
            env.reset(seed=s.seed + i)
            return env

        return _init

    venv: Any = (SubprocVecEnv if s.vec_env == "subproc" else DummyVecEnv)([make(i) for i in range(s.n_envs)])
    if reward is not None:
        venv = RewardProgramVecWrapper(venv, reward)
    elif shaping is not None:
        venv = PotentialShapingVecWrapper(venv, shaping)
    hp = hyperparams_for(card.training.hyperparams, s.algo, s.p.get("hyperparams") or {}, s.trainer)
    if s.cont:
        venv = VecNormalize.load(str(s.cont / "vecnormalize.pkl"), venv)
    else:
        venv = VecNormalize(venv, norm_obs=card.training.normalize_obs, norm_reward=True, gamma=hp.get("gamma", 0.99))
    venv.seed(s.seed)
    return venv, hp


def _model(s: _Settings, venv: Any, hp: dict[str, Any]) -> Any:
    """4. The model (or the earlier rung's, with its replay buffer for off-policy algorithms)."""
    p = s.p
    cls = algorithm(s.algo).load(s.trainer)
    tb = {"tensorboard_log": str(s.out_dir / "tensorboard")} if p.get("tensorboard") else {}  # inside the job dir: Landlock lets it write there
    if s.cont:
        model = cls.load(s.cont / "policy.zip", env=venv, device=p.get("device", "auto"), **tb)
        if (s.cont / REPLAY_FILE).exists():
            model.load_replay_buffer(s.cont / REPLAY_FILE)
    else:
        model = cls(s.policy, venv, seed=s.seed, device=p.get("device", "auto"), verbose=0, **tb, **hp)
    s.metrics.update(
        device=str(model.device), policy=s.policy, policy_class=type(model.policy).__name__, make_kwargs=s.make_kwargs,
        hyperparams={k: (str(v) if k == "policy_kwargs" else v) for k, v in hp.items()},
    )
    return model


def _evaluator(s: _Settings, venv: Any, model: Any, reward: RewardCaller | None, shaping: Shaping | None) -> Evaluator:
    """5. The one evaluation protocol: deterministic actions, seeded episodes, our reward alongside."""
    card = s.card

    def act(obs: Any, deterministic: bool = True) -> Any:
        o = venv.normalize_obs(obs) if card.training.normalize_obs else obs
        return model.predict(o, deterministic=deterministic)[0]

    def run_eval(keep: bool = False, deterministic: bool = True) -> dict[str, Any]:
        with evaluation_mode(model.policy) if s.trainer == "sb3" else contextlib.nullcontext():
            return evaluate(
                card, s.fitness, s.success, lambda o: act(o, deterministic), n_episodes=int(s.p.get("eval_episodes", 5)),
                reward=reward, shaping=shaping, max_steps=s.max_steps, keep_episodes=keep, make_kwargs=s.make_kwargs,
            )

    return run_eval


def _callbacks(s: _Settings, model: Any, run_eval: Evaluator) -> tuple[ComponentStatsCallback, FitnessEvalCallback]:
    """The statistics of the reward's components, and the periodic fitness evaluations (which
    write ``progress.csv`` and may stop training at the success threshold)."""
    from autoreward.train.callbacks import ComponentStatsCallback, FitnessEvalCallback

    steps, p = s.steps, s.p
    stats = ComponentStatsCallback(every=max(steps // 50, 100), start=s.done_before)
    progress_csv = s.out_dir / "progress.csv"
    progress_csv.unlink(missing_ok=True)
    evalcb = FitnessEvalCallback(int(p.get("eval_every") or max(steps // 5, 1)), run_eval, progress_csv, start=s.done_before,
                                 stop_at=s.success if p.get("stop_at_success") else None)
    evalcb.init_callback(model)
    return stats, evalcb


def _learn(
    s: _Settings, model: Any, stats: ComponentStatsCallback, evalcb: FitnessEvalCallback, run_eval: Evaluator,
) -> tuple[dict[str, Any], float]:
    """6. Train: untrained evaluation, learning with periodic evaluations, final evaluation; the
    final one and the seconds spent learning (evaluations not counted). A reward that fails
    raises RewardError."""
    from autoreward.train.callbacks import ProgressCallback

    if s.cont:
        evalcb.rows = list(s.prev["progress"])  # the curve goes on from the earlier rung
    else:
        evalcb.record(0)
    baseline_seconds = evalcb.eval_seconds
    t0 = time.perf_counter()
    model.learn(total_timesteps=s.steps - s.done_before, callback=[stats, evalcb, ProgressCallback(s.steps)], reset_num_timesteps=not s.cont)
    train_seconds = time.perf_counter() - t0 - (evalcb.eval_seconds - baseline_seconds)
    final = run_eval()  # the training process's own view (``self_reported``); the judge's decides
    return final, train_seconds


def _save(s: _Settings, venv: Any, model: Any) -> None:
    """7. The policy and its observation statistics, for the judge (``judge.py``), which measures
    every number a decision reads in a process that never loads this reward; the env
    statistics (and replay buffer, if asked) for a later rung of successive halving."""
    model.save(s.out_dir / "policy.zip")
    venv.save(str(s.out_dir / "vecnormalize.pkl"))  # for a later rung of successive halving
    if s.card.training.normalize_obs:  # else the policy sees the raw observations, and so does the judge
        save_normalization(venv, s.out_dir / NORMALIZATION)
    if s.p.get("save_replay_buffer") and hasattr(model, "save_replay_buffer"):
        model.save_replay_buffer(s.out_dir / REPLAY_FILE)


def _results(
    s: _Settings, model: Any, stats: ComponentStatsCallback, evalcb: FitnessEvalCallback, final: dict[str, Any], train_seconds: float,
) -> dict[str, Any]:
    """The trained candidate's metrics: timings (summed over rungs), the curve, the untrained and
    final evaluations, the components' statistics."""
    prev = s.prev
    return dict(
        ok=True,
        train_seconds=round(train_seconds + float(prev.get("train_seconds", 0.0)), 3),
        eval_seconds=round(evalcb.eval_seconds + float(prev.get("eval_seconds", 0.0)), 3),
        steps_per_second=round((int(model.num_timesteps) - s.done_before) / train_seconds, 1),
        steps_done=int(model.num_timesteps),  # fewer than ``steps`` when stopped at success
        stopped_at_success=evalcb.stopped_at,
        untrained=_summary(evalcb.rows[0]),
        final={k: v for k, v in final.items() if k != "episodes"},
        final_episodes=final["episodes"],
        progress=evalcb.rows,
        components=stats.summary(),
        fitness=final["fitness_mean"],
        success_rate=final["success_rate"],
        solved=bool(final["fitness_mean"] >= s.success),
    )


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"fitness_mean": row["task/fitness"], "success_rate": row["task/success_rate"], "env_return_mean": row["eval/env_return"]}
