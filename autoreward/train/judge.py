"""The judge: a trained policy's fitness, measured where no reward program ever ran.

The training job compiles and calls the candidate's reward, so every number it computes about
itself could have been reached by that reward (a program that replaced ``numpy.mean`` once
reported 1,000 m/s for a policy that had not learned to move). So the numbers that decide
anything (fitness, success, "solved", the untrained baseline, halving's cuts, the library's
"verified", the quality suite's HNS) come from this separate sandboxed ``judge`` job:

- it never compiles a reward: it builds the policy network from the card's settings and loads
  only its weights (``policy.zip``'s tensors, ``weights_only``), and the observation
  statistics from ``normalization.npz`` (plain arrays, no pickle), so nothing the training
  process wrote can run code here (SBX's JAX policies exist only as pickles: for them the judge
  unpickles ``policy.zip``, still sandboxed, still without a reward);
- it evaluates with the one protocol (:func:`~autoreward.train.evaluate.evaluate`: deterministic
  actions, episode ``i`` seeded ``EVAL_SEED + i``), the final policy and, once per set of
  training settings, the untrained one (the same seed builds the same initial network);
- it runs the card's analyzer hook on its own episodes.

The parent (:func:`judge_candidate`) merges its numbers into ``metrics.json`` over the training
job's, keeps the training job's own as ``self_reported`` (shown, deciding nothing), and notes
when the two disagree: with the same policy and seeds they agree exactly unless the reward
interfered with its own evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autoreward.rundir import read_json, write_json
from autoreward.sandbox import JobResult, Limits, run_job
from autoreward.sandbox.registry import job

NORMALIZATION = "normalization.npz"  # the observation statistics the policy was trained with, as plain arrays
JUDGE_DIR = "judge"  # inside a candidate folder: the judge job's own directory
#: the training job's own report until the judge has merged its numbers into ``metrics.json``
TRAINING_REPORT = "training.json"
#: what the judge measures and the parent takes over from it (the training job's own go to ``self_reported``)
JUDGED = ("untrained", "final", "final_episodes", "fitness", "success_rate", "solved", "env_analysis", "final_sampled")


def save_normalization(venv: Any, path: Path) -> None:
    """Write the VecNormalize observation statistics as plain arrays (training side)."""
    rms = venv.obs_rms
    np.savez(path, mean=np.asarray(rms.mean, np.float64), var=np.asarray(rms.var, np.float64),
             clip_obs=np.float64(venv.clip_obs), epsilon=np.float64(venv.epsilon))


def normalizer(path: Path | None, shape: tuple[int, ...]) -> Any:
    """``obs -> normalized obs`` exactly as SB3's ``VecNormalize.normalize_obs`` computes it,
    from ``normalization.npz`` (``None``: the untrained policy's, mean 0 and variance 1)."""
    if path is None:
        mean, var, clip, eps = np.zeros(shape), np.ones(shape), 10.0, 1e-8
    else:
        with np.load(path, allow_pickle=False) as z:
            mean, var, clip, eps = z["mean"], z["var"], float(z["clip_obs"]), float(z["epsilon"])
    return lambda obs: np.clip((obs - mean) / np.sqrt(var + eps), -clip, clip).astype(np.float32)


class _NoOptimizer:
    """The judge never trains: an optimizer that holds nothing. (Building torch's Adam imports
    ``torch._dynamo``, 2-3 s of the judge's start-up; the weights' initialisation does not touch
    the optimizer, so the same seed builds the same network without it.)"""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        pass

    def load_state_dict(self, state: Any, strict: bool = True) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}


def _model(p: dict[str, Any], card: Any, algo: str, trainer: str) -> Any:
    """The policy network the training job built (same class, settings and seed), untrained."""
    import warnings

    from stable_baselines3.common.vec_env import DummyVecEnv

    from autoreward.train.algos import algorithm, hyperparams_for

    hp = hyperparams_for(card.training.hyperparams, algo, p.get("hyperparams") or {}, trainer)
    if algo == "sac":
        hp["buffer_size"] = 1  # an off-policy replay buffer is never filled here
    if trainer == "sb3":
        hp["policy_kwargs"] = {**hp.get("policy_kwargs", {}), "optimizer_class": _NoOptimizer}
    make_kwargs = dict(p.get("make_kwargs") or {})
    venv = DummyVecEnv([lambda: card.make_env(**make_kwargs)])
    cls = algorithm(algo).load(trainer)
    with warnings.catch_warnings():  # PPO's advice on batch sizes concerns training
        warnings.simplefilter("ignore")
        model = cls(p.get("policy") or card.training.policy, venv, seed=int(p.get("seed", 0)), device="cpu", verbose=0, **hp)
    return model


@job("judge")
def run_judge_job(p: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the saved policy (and, when asked, the untrained one) in a process where no
    reward program is ever compiled. Returns ``{"ok", "final", "episodes", "untrained", ...}``."""
    import torch

    from autoreward.cards import load_card_file
    from autoreward.episode import fitness_function
    from autoreward.train.algos import algorithm
    from autoreward.train.evaluate import EVAL_SEED, evaluate, evaluation_mode

    torch.set_num_threads(max(1, int(p.get("threads", 1))))
    card = load_card_file(Path(p["card_path"]))
    policy_dir = Path(p["policy_dir"])
    algo, trainer = p.get("algo") or card.training.algo, p.get("trainer") or "sb3"
    fitness, success = fitness_function(p["fitness"], card.measure_exprs, card.field_names), float(p["success"])
    max_steps = p.get("max_episode_steps") or card.training.max_episode_steps
    make_kwargs = dict(p.get("make_kwargs") or {})

    def judge(model: Any, norm: Any, keep: bool, deterministic: bool = True) -> dict[str, Any]:
        def act(obs: Any) -> Any:
            return model.predict(norm(obs) if norm is not None else obs, deterministic=deterministic)[0]

        with evaluation_mode(model.policy) if trainer == "sb3" else contextlib.nullcontext():
            return evaluate(card, fitness, success, act, n_episodes=int(p.get("eval_episodes", 5)), max_steps=max_steps,
                            keep_episodes=keep, make_kwargs=make_kwargs)

    out: dict[str, Any] = {"ok": True}
    model = _model(p, card, algo, trainer)
    shape = model.observation_space.shape
    if p.get("untrained"):
        out["untrained"] = _summary(judge(model, normalizer(None, shape) if card.training.normalize_obs else None, keep=False))
    if trainer == "sb3":
        model.set_parameters(str(policy_dir / "policy.zip"), exact_match=True, device="cpu")  # tensors only (weights_only)
    else:  # SBX keeps its JAX parameters in the pickled data: no weights-only form exists
        model = algorithm(algo).load(trainer).load(policy_dir / "policy.zip", device="cpu")
    norm = normalizer(policy_dir / NORMALIZATION, shape) if card.training.normalize_obs else None
    final = judge(model, norm, keep=bool(card.analyzer))
    episodes = final.pop("_episodes", None)
    if card.analyzer and episodes:
        mod, _, name = card.analyzer.partition(":")
        task = card.tasks.get(p["task"])
        hook = getattr(importlib.import_module(mod), name)
        out["env_analysis"] = hook(episodes, fitness, success, **(task.analysis if task else {}))
    out["episodes"] = final.pop("episodes")
    out["final"] = final
    if p.get("sampled_eval"):  # benchmarks only: sampled actions, seeded so they repeat
        torch.manual_seed(EVAL_SEED)
        out["final_sampled"] = {k: v for k, v in judge(model, norm, keep=False, deterministic=False).items() if k != "episodes"}
    return out


def _summary(ev: dict[str, Any]) -> dict[str, Any]:
    return {"fitness_mean": ev["fitness_mean"], "success_rate": ev["success_rate"], "env_return_mean": ev["env_return_mean"]}


# ---------------------------------------------------------------------------------------------
# Parent side


#: the packages whose versions can change an untrained network or its evaluation
_VERSIONED = ("torch", "stable-baselines3", "sbx-rl", "jax", "gymnasium", "mujoco", "numpy", "crafter", "metaworld")
#: our own code on the judge's path: an edit there may change what it measures
_OWN_CODE = ("train/judge.py", "train/evaluate.py", "episode.py", "cards/state.py", "cards/schema.py", "cards/mujoco_helpers.py")


def _untrained_key(payload: dict[str, Any]) -> str:
    """Everything the untrained policy's judged numbers depend on, and nothing of the reward:
    the card's text, the settings that build the network (its seed included), the evaluation
    protocol, the versions of the packages and of our code on the judge's path."""
    from importlib import metadata

    keys = ("task", "fitness", "success", "algo", "trainer", "seed", "hyperparams", "policy", "make_kwargs", "max_episode_steps",
            "eval_episodes", "threads")
    data: dict[str, Any] = {k: payload.get(k) for k in keys}
    card = Path(payload["card_path"])
    data["card"] = hashlib.sha256(b"".join(p.read_bytes() for p in [card, *sorted(card.parent.glob("_*.y*ml"))])).hexdigest()
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    data["versions"] = versions
    root = Path(__file__).resolve().parents[1]
    data["code"] = hashlib.sha256(b"".join((root / f).read_bytes() for f in _OWN_CODE if (root / f).exists())).hexdigest()
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:24]


def untrained_cache_dir() -> Path:
    """Where the untrained policy's judged numbers are kept, one file per :func:`_untrained_key`:
    the user's cache directory (``AUTOREWARD_CACHE_DIR``), written only by the parent (a sandboxed
    job may write nothing outside its own folder), so every run and ``eval`` with the same
    settings evaluates the untrained policy once."""
    from autoreward.llm.base import cache_root

    return cache_root() / "untrained"


def _limits(spec: Any, with_untrained: bool) -> Limits:
    """Room for start-up and the evaluations at a slow 100 steps/s (Crafter's pixels, a busy
    machine), twice over when the untrained policy is evaluated too."""
    from autoreward.cards import load_card_file

    max_steps = spec.max_episode_steps or load_card_file(Path(spec.card_path)).training.max_episode_steps or 1000
    runs = (2 if with_untrained else 1) + (1 if spec.sampled_eval else 0)
    wall = 120.0 + runs * spec.eval_episodes * max_steps / 100.0
    return Limits(wall_seconds=wall, cpu_seconds=int(wall * 2), memory_mb=4096)


def judge_candidate(spec: Any, out_dir: Path, untrained: dict[str, Any] | None = None, training_seconds: float = 0.0) -> JobResult:
    """Run the judge on the policy the training job saved in ``out_dir`` and merge its numbers
    with the training job's report (``training.json``) into ``out_dir/metrics.json``. ``untrained``: the untrained policy's judged numbers when
    already known; else they come from the cache (:func:`untrained_cache_dir`) or from this
    judge job, which then fills it."""
    payload = {k: getattr(spec, k) for k in ("card_path", "task", "fitness", "success", "algo", "trainer", "seed", "hyperparams",
                                             "policy", "make_kwargs", "max_episode_steps", "eval_episodes", "threads", "sampled_eval")}
    cache = untrained_cache_dir() / f"{_untrained_key(payload)}.json"
    if untrained is None and cache.exists():
        untrained = read_json(cache)
    jobdir = out_dir / JUDGE_DIR
    shutil.rmtree(jobdir, ignore_errors=True)  # nothing the training job left there is read
    payload.update(policy_dir=str(out_dir), untrained=untrained is None)
    res = run_job("judge", payload, jobdir, _limits(spec, untrained is None))
    trained = read_json(out_dir / TRAINING_REPORT)
    if not res.ok:
        trained.update(ok=False, error=f"the judge could not evaluate the trained policy: {res.error}")
        write_json(out_dir / "metrics.json", trained)
        return res
    judged = res.result
    if untrained is None:
        untrained = judged["untrained"]
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_json(cache, untrained)
    m = merge(trained, judged, untrained, float(spec.success), res.wall_seconds)
    if training_seconds:  # what judging cost beside training (README: the judge's cost)
        m["judge"].update(training_job_seconds=round(training_seconds, 3), share=round(res.wall_seconds / training_seconds, 4))
    write_json(out_dir / "metrics.json", m)
    return res


def merge(trained: dict[str, Any], judged: dict[str, Any], untrained: dict[str, Any], success: float, seconds: float) -> dict[str, Any]:
    """``metrics.json``: the training job's numbers (curve, components, speed), the judge's in
    every field a decision reads, and the training job's own evaluation as ``self_reported``."""
    m = {k: v for k, v in trained.items() if k not in JUDGED}
    own_final = trained.get("final") or {}
    own_eps = trained.get("final_episodes") or []
    final, episodes = dict(judged["final"]), [dict(e) for e in judged["episodes"]]
    for e, own in zip(episodes, own_eps):
        e["reward_return"] = own.get("reward_return")  # the candidate's own return: a self-report by nature
    if "reward_return_mean" in own_final:
        final["reward_return_mean"] = own_final["reward_return_mean"]
    m["self_reported"] = {k: own_final.get(k) for k in ("fitness_mean", "success_rate", "env_return_mean") if k in own_final}
    m.update(untrained=untrained, final=final, final_episodes=episodes, fitness=final["fitness_mean"],
             success_rate=final["success_rate"], solved=bool(final["fitness_mean"] >= success))
    for k in ("env_analysis", "final_sampled"):
        if judged.get(k) is not None:
            m[k] = judged[k]
    m["judge"] = {"seconds": round(seconds, 3), "process": "a separate sandboxed job that never loaded the reward"}
    own = own_final.get("fitness_mean")
    if own is not None and not _close(float(own), final["fitness_mean"]):
        m["judge"]["disagrees"] = (f"the training process reported fitness {own:.6g}, the judge measured {final['fitness_mean']:.6g} for the "
                                   "same policy and episodes: the reward may have interfered with its own evaluation")
    return m


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))

