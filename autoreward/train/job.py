"""Training one reward candidate with stable-baselines3, top to bottom (CleanRL's readability).

This is the child side (the sandboxed ``train`` job; ``run.py`` is the parent side). In order:
compile the reward, build the wrapper stack, evaluate the untrained policy, train with periodic
fitness evaluations, evaluate the final policy with the same protocol, and write
``metrics.json``, ``progress.csv``, ``policy.zip`` and ``normalization.npz`` into the candidate
directory. Every number here is this process's view of itself (the reward runs here): the
parent has the saved policy judged by a separate job (``judge.py``), whose numbers decide. A reward
that raises at step 50,000 fails this candidate only, with the step and the program's
traceback.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Callable

from autoreward.cards import load_card_file
from autoreward.episode import fitness_function
from autoreward.errors import RewardProgramError
from autoreward.program import PotentialCaller, RewardCaller, RewardError
from autoreward.rundir import read_json, write_json
from autoreward.sandbox.child import short_traceback
from autoreward.sandbox.registry import job
from autoreward.train.algos import algorithm, discount, hyperparams_for
from autoreward.train.evaluate import evaluate, evaluation_mode
from autoreward.train.judge import NORMALIZATION, save_normalization

REPLAY_FILE = "replay_buffer.pkl"


@job("train")
def run_train_job(p: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Train inside the sandboxed worker. Returns the metrics dict (also written to disk)."""
    trainer = p.get("trainer") or "sb3"
    if trainer == "sbx" and int(p.get("threads", 1)) <= 1:  # JAX, like torch, on one thread per job
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    from autoreward.train.callbacks import ComponentStatsCallback, FitnessEvalCallback, ProgressCallback
    from autoreward.train.wrappers import EpisodeFitnessWrapper, PotentialShapingVecWrapper, RewardProgramVecWrapper, Shaping, StateWrapper

    # 1. settings: the card's defaults under the spec's overrides
    torch.set_num_threads(max(1, int(p.get("threads", 1))))
    out_dir = Path(p["out_dir"])
    card = load_card_file(Path(p["card_path"]))
    algo = p.get("algo") or card.training.algo
    steps, seed = int(p["steps"]), int(p.get("seed", 0))
    n_envs = int(p.get("n_envs") or card.training.n_envs)
    # the card says which is faster for its env (benchmarks/search-*); one env never needs a subprocess
    vec_env = (p.get("vec_env") or card.training.vec_env) if n_envs > 1 else "dummy"
    max_steps = p.get("max_episode_steps") or card.training.max_episode_steps
    fitness, success = fitness_function(p["fitness"], card.measure_exprs, card.field_names), float(p["success"])
    make_kwargs = dict(p.get("make_kwargs") or {})
    policy = p.get("policy") or card.training.policy
    # a later rung of successive halving continues an earlier rung's policy up to ``steps``
    cont = Path(p["continue_dir"]) if p.get("continue_dir") else None
    prev: dict[str, Any] = read_json(cont / "metrics.json") if cont else {}
    done_before = int(prev.get("steps", 0))
    metrics: dict[str, Any] = {
        "ok": False, "env": card.id, "task": p["task"], "algo": algo, "steps": steps, "seed": seed, "n_envs": n_envs,
        "vec_env": vec_env, "trainer": trainer,
        "reward": "program" if p.get("source") else "env", "shaping": p.get("shaping") or "reward",
    }

    def done(**extra: Any) -> dict[str, Any]:
        metrics.update(extra)
        write_json(out_dir / "metrics.json", metrics)
        return metrics

    # 2. the reward program (None: the env's own reward), or a potential that shapes the task's
    # own signal: the env's reward when the task is the env's objective, else its fitness at the end
    reward: RewardCaller | None = None
    shaping: Shaping | None = None
    task_spec = card.tasks.get(p["task"])
    if p.get("source"):
        try:
            if metrics["shaping"] == "potential":
                env_task = bool(task_spec and task_spec.env_objective and task_spec.fitness == p["fitness"])
                gamma = discount(card.training.hyperparams, algo, p.get("hyperparams") or {})
                shaping = Shaping(PotentialCaller.compile(p["source"], float(limits["call_seconds"])), gamma, "env" if env_task else "fitness")
                metrics.update(gamma=gamma, task_signal=shaping.task_signal)
            else:
                reward = RewardCaller.compile(p["source"], float(limits["call_seconds"]))
        except RewardProgramError as exc:
            return done(error=f"static: {exc.message}")

    # 3. the env stack: Monitor records the env's own return before our reward replaces it
    def make(i: int) -> Callable[[], Any]:
        def _init() -> Any:
            env = Monitor(card.make_env(**make_kwargs, **({"max_episode_steps": max_steps} if max_steps else {})))
            if reward is not None or shaping is not None:
                env = StateWrapper(env, card)
            if shaping is not None and shaping.task_signal == "fitness":
                env = EpisodeFitnessWrapper(env, card, fitness, max_steps or 1000)
            env.reset(seed=seed + i)
            return env

        return _init

    venv: Any = (SubprocVecEnv if vec_env == "subproc" else DummyVecEnv)([make(i) for i in range(n_envs)])
    if reward is not None:
        venv = RewardProgramVecWrapper(venv, reward)
    elif shaping is not None:
        venv = PotentialShapingVecWrapper(venv, shaping)
    hp = hyperparams_for(card.training.hyperparams, algo, p.get("hyperparams") or {}, trainer)
    if cont:
        venv = VecNormalize.load(str(cont / "vecnormalize.pkl"), venv)
    else:
        venv = VecNormalize(venv, norm_obs=card.training.normalize_obs, norm_reward=True, gamma=hp.get("gamma", 0.99))
    venv.seed(seed)

    # 4. the model (or the earlier rung's, with its replay buffer for off-policy algorithms)
    cls = algorithm(algo).load(trainer)
    tb = {"tensorboard_log": str(out_dir / "tensorboard")} if p.get("tensorboard") else {}  # inside the job dir: Landlock lets it write there
    if cont:
        model = cls.load(cont / "policy.zip", env=venv, device=p.get("device", "auto"), **tb)
        if (cont / REPLAY_FILE).exists():
            model.load_replay_buffer(cont / REPLAY_FILE)
    else:
        model = cls(policy, venv, seed=seed, device=p.get("device", "auto"), verbose=0, **tb, **hp)
    metrics.update(
        device=str(model.device), policy=policy, policy_class=type(model.policy).__name__, make_kwargs=make_kwargs,
        hyperparams={k: (str(v) if k == "policy_kwargs" else v) for k, v in hp.items()},
    )

    # 5. the one evaluation protocol: deterministic actions, seeded episodes, our reward alongside
    def act(obs: Any, deterministic: bool = True) -> Any:
        o = venv.normalize_obs(obs) if card.training.normalize_obs else obs
        return model.predict(o, deterministic=deterministic)[0]

    def run_eval(keep: bool = False, deterministic: bool = True) -> dict[str, Any]:
        with evaluation_mode(model.policy) if trainer == "sb3" else contextlib.nullcontext():
            return evaluate(
                card, fitness, success, lambda o: act(o, deterministic), n_episodes=int(p.get("eval_episodes", 5)),
                reward=reward, shaping=shaping, max_steps=max_steps, keep_episodes=keep, make_kwargs=make_kwargs,
            )

    # 6. train: untrained evaluation, learning with periodic evaluations, final evaluation
    stats = ComponentStatsCallback(every=max(steps // 50, 100), start=done_before)
    progress_csv = out_dir / "progress.csv"
    progress_csv.unlink(missing_ok=True)
    evalcb = FitnessEvalCallback(int(p.get("eval_every") or max(steps // 5, 1)), run_eval, progress_csv, start=done_before,
                                 stop_at=success if p.get("stop_at_success") else None)
    evalcb.init_callback(model)
    try:
        if cont:
            evalcb.rows = list(prev["progress"])  # the curve goes on from the earlier rung
        else:
            evalcb.record(0)
        baseline_seconds = evalcb.eval_seconds
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps - done_before, callback=[stats, evalcb, ProgressCallback(steps)], reset_num_timesteps=not cont)
        train_seconds = time.perf_counter() - t0 - (evalcb.eval_seconds - baseline_seconds)
        final = run_eval()  # the training process's own view (``self_reported``); the judge's decides
    except RewardError as exc:
        return done(
            error=f"the reward failed {exc}: {short_traceback(exc.__cause__ or exc)}",
            failed_at_step=int(model.num_timesteps), progress=evalcb.rows, components=stats.summary(),
        )

    # 7. results: the policy and its observation statistics, for the judge (``judge.py``), which
    # measures every number a decision reads in a process that never loads this reward
    model.save(out_dir / "policy.zip")
    venv.save(str(out_dir / "vecnormalize.pkl"))  # for a later rung of successive halving
    if card.training.normalize_obs:  # else the policy sees the raw observations, and so does the judge
        save_normalization(venv, out_dir / NORMALIZATION)
    if p.get("save_replay_buffer") and hasattr(model, "save_replay_buffer"):
        model.save_replay_buffer(out_dir / REPLAY_FILE)
    return done(
        ok=True,
        train_seconds=round(train_seconds + float(prev.get("train_seconds", 0.0)), 3),
        eval_seconds=round(evalcb.eval_seconds + float(prev.get("eval_seconds", 0.0)), 3),
        steps_per_second=round((int(model.num_timesteps) - done_before) / train_seconds, 1),
        steps_done=int(model.num_timesteps),  # fewer than ``steps`` when stopped at success
        stopped_at_success=evalcb.stopped_at,
        untrained=_summary(evalcb.rows[0]),
        final={k: v for k, v in final.items() if k != "episodes"},
        final_episodes=final["episodes"],
        progress=evalcb.rows,
        components=stats.summary(),
        fitness=final["fitness_mean"],
        success_rate=final["success_rate"],
        solved=bool(final["fitness_mean"] >= success),
    )


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"fitness_mean": row["task/fitness"], "success_rate": row["task/success_rate"], "env_return_mean": row["eval/env_return"]}
