"""Training one reward candidate with stable-baselines3, top to bottom (CleanRL's readability).

``train_candidate`` (parent side) writes a plain-data spec and runs ``run_train_job`` in the
sandboxed worker; the worker compiles the reward, builds the wrapper stack, evaluates the
untrained policy, trains with periodic fitness evaluations, evaluates the final policy with the
same protocol and writes ``metrics.json``, ``progress.csv`` and ``policy.zip`` into the
candidate directory. A reward that raises at step 50,000 fails this candidate only, with the
step and the program's traceback.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from autoreward.rundir import write_json
from autoreward.sandbox import JobResult, Limits, run_job


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
    eval_every: int = 0  # 0 = steps // 5
    eval_episodes: int = 5
    max_episode_steps: int | None = None
    device: str = "auto"
    threads: int = 1
    save_policy: bool = True
    make_kwargs: dict[str, Any] = field(default_factory=dict)  # the task's env settings
    policy: str = ""  # "" = the card's (e.g. CnnPolicy with Crafter's obs_mode=pixels)
    #: also evaluate the final policy with sampled actions (seeded) and report it apart as
    #: ``final_sampled``; for benchmarks only, never used to judge or select a candidate
    sampled_eval: bool = False


def train_candidate(
    spec: TrainSpec,
    out_dir: Path,
    limits: Limits | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> JobResult:
    """Run one training job in the sandbox; the result (ok or a precise error) is returned and
    ``metrics.json`` is written either way."""
    out_dir.mkdir(parents=True, exist_ok=True)
    algo = spec.algo or "ppo"
    job = run_job("train", {**asdict(spec), "out_dir": str(out_dir)}, out_dir, limits or Limits.for_training(spec.steps, algo), on_event)
    if not (out_dir / "metrics.json").exists() or not job.ok:
        metrics = dict(job.result)
        metrics.update(ok=job.ok, error=job.error, wall_seconds=job.wall_seconds)
        write_json(out_dir / "metrics.json", metrics)
    return job


# ---------------------------------------------------------------------------------------------
# Worker side


def _policy_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    """Card hyperparameters are YAML data; turn names into the torch objects SB3 expects."""
    import torch.nn as nn

    out = dict(raw)
    act = out.get("activation_fn")
    if isinstance(act, str):
        table = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
        out["activation_fn"] = table[act.lower()]
    return out


def validate_hyperparams(algo: str, hp: dict[str, Any]) -> None:
    """Refuse unknown hyperparameter names in the parent, before a worker is started."""
    import inspect

    from stable_baselines3 import PPO, SAC

    from autoreward.errors import ConfigError

    cls = {"ppo": PPO, "sac": SAC}[algo]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}
    bad = sorted(set(hp) - allowed)
    if bad:
        raise ConfigError(f"unknown {algo.upper()} hyperparameter(s): {', '.join(bad)}", f"valid names include: {', '.join(sorted(a for a in allowed if not a.startswith('_'))[:12])}...")


POLICIES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


def validate_policy(policy: str) -> None:
    """Refuse a policy name SB3 does not know, in the parent."""
    from autoreward.errors import ConfigError

    if policy and policy not in POLICIES:
        raise ConfigError(f"unknown --policy {policy!r}", f"use one of {', '.join(POLICIES)}")


def hyperparams_for(card: Any, algo: str, overrides: dict[str, Any]) -> dict[str, Any]:
    hp = dict(card.training.hyperparams.get(algo, {}))
    hp.update(overrides)
    if "policy_kwargs" in hp:
        hp["policy_kwargs"] = _policy_kwargs(hp["policy_kwargs"])
    return hp


def run_train_job(p: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Train inside the sandboxed worker. Returns the metrics dict (also written to disk)."""
    import torch
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from autoreward.envcards import load_card_file
    from autoreward.episode import fitness_function
    from autoreward.errors import RewardProgramError
    from autoreward.program import compile_program
    from autoreward.train.callbacks import ComponentStatsCallback, FitnessEvalCallback, ProgressCallback
    from autoreward.train.evaluate import EVAL_SEED, evaluate
    from autoreward.train.wrappers import RewardError, RewardProgramVecWrapper, StateWrapper
    from autoreward.worker import CallGuard, short_traceback

    torch.set_num_threads(max(1, int(p.get("threads", 1))))
    out_dir = Path(p["out_dir"])
    card = load_card_file(Path(p["card_path"]))
    algo = p.get("algo") or card.training.algo
    steps = int(p["steps"])
    seed = int(p.get("seed", 0))
    n_envs = int(p.get("n_envs") or card.training.n_envs)
    max_steps = p.get("max_episode_steps") or card.training.max_episode_steps
    fitness = fitness_function(p["fitness"])
    make_kwargs = dict(p.get("make_kwargs") or {})
    success = float(p["success"])
    metrics: dict[str, Any] = {
        "ok": False,
        "env": card.id,
        "task": p["task"],
        "algo": algo,
        "steps": steps,
        "seed": seed,
        "n_envs": n_envs,
        "reward": "program" if p.get("source") else "env",
    }

    reward_fn = None
    guard = CallGuard(float(limits["call_seconds"]))
    if p.get("source"):
        try:
            reward_fn = compile_program(p["source"])
        except RewardProgramError as exc:
            metrics["error"] = f"static: {exc.message}"
            write_json(out_dir / "metrics.json", metrics)
            return metrics

    def make(i: int) -> Callable[[], Any]:
        def _init() -> Any:
            env = card.make_env(**make_kwargs, **({"max_episode_steps": max_steps} if max_steps else {}))
            env = Monitor(env)  # the env's own return, recorded before our reward replaces it
            if reward_fn is not None:
                env = StateWrapper(env, card)
            env.reset(seed=seed + i)
            return env

        return _init

    venv: Any = DummyVecEnv([make(i) for i in range(n_envs)])
    if reward_fn is not None:
        venv = RewardProgramVecWrapper(venv, reward_fn, call=guard.call)
    hp = hyperparams_for(card, algo, p.get("hyperparams") or {})
    venv = VecNormalize(venv, norm_obs=card.training.normalize_obs, norm_reward=True, gamma=hp.get("gamma", 0.99))
    venv.seed(seed)
    cls = {"ppo": PPO, "sac": SAC}[algo]
    model = cls(p.get("policy") or card.training.policy, venv, seed=seed, device=p.get("device", "auto"), verbose=0, **hp)
    metrics["device"] = str(model.device)
    metrics["policy"] = p.get("policy") or card.training.policy
    metrics["policy_class"] = type(model.policy).__name__
    metrics["make_kwargs"] = make_kwargs
    metrics["hyperparams"] = {k: (str(v) if k == "policy_kwargs" else v) for k, v in hp.items()}

    def act(obs: Any, deterministic: bool = True) -> Any:
        o = venv.normalize_obs(obs) if card.training.normalize_obs else obs
        return model.predict(o, deterministic=deterministic)[0]

    def run_eval(keep: bool = False, deterministic: bool = True) -> dict[str, Any]:
        return evaluate(
            card, fitness, success, lambda o: act(o, deterministic), n_episodes=int(p.get("eval_episodes", 5)),
            reward_fn=reward_fn, call=guard.call, max_steps=max_steps, keep_episodes=keep, make_kwargs=make_kwargs,
        )

    stats = ComponentStatsCallback(every=max(steps // 50, 100))
    eval_every = int(p.get("eval_every") or max(steps // 5, 1))
    progress_csv = out_dir / "progress.csv"
    progress_csv.unlink(missing_ok=True)
    evalcb = FitnessEvalCallback(eval_every, run_eval, progress_csv, stats)
    evalcb.init_callback(model)
    try:
        evalcb.record(0)  # the untrained policy, same protocol
        baseline_seconds = evalcb.eval_seconds
        t0 = time.perf_counter()
        model.learn(total_timesteps=steps, callback=[stats, evalcb, ProgressCallback(steps)])
        train_seconds = time.perf_counter() - t0 - (evalcb.eval_seconds - baseline_seconds)
        final = run_eval(keep=bool(card.analyzer))
        if p.get("sampled_eval"):
            torch.manual_seed(EVAL_SEED)  # the sampled actions are reproducible too
            metrics["final_sampled"] = {k: v for k, v in run_eval(deterministic=False).items() if k != "episodes"}
    except RewardError as exc:
        cause = exc.__cause__ or exc
        metrics["error"] = f"the reward failed {exc}: {short_traceback(cause)}"
        metrics["failed_at_step"] = int(model.num_timesteps)
        metrics["progress"] = evalcb.rows
        metrics["components"] = stats.summary()
        write_json(out_dir / "metrics.json", metrics)
        return metrics
    episodes = final.pop("_episodes", None)
    if card.analyzer and episodes:
        mod, _, name = card.analyzer.partition(":")
        import importlib

        metrics["env_analysis"] = getattr(importlib.import_module(mod), name)(episodes, p["task"], fitness, success)
    metrics.update(
        ok=True,
        train_seconds=round(train_seconds, 3),
        eval_seconds=round(evalcb.eval_seconds, 3),
        steps_per_second=round(steps / train_seconds, 1),
        untrained=_summary(evalcb.rows[0]),
        final={k: v for k, v in final.items() if k != "episodes"},
        final_episodes=final["episodes"],
        progress=evalcb.rows,
        components=stats.summary(),
        fitness=final["fitness_mean"],
        success_rate=final["success_rate"],
        solved=bool(final["fitness_mean"] >= success),
    )
    if p.get("save_policy", True):
        model.save(out_dir / "policy.zip")
        venv.save(str(out_dir / "vecnormalize.pkl"))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {"fitness_mean": row["task/fitness"], "success_rate": row["task/success_rate"], "env_return_mean": row["eval/env_return"]}
