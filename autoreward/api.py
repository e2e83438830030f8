"""The Python API: the same operations as the command line, for notebooks and scripts.

    import autoreward
    result = autoreward.synthesize("make the half-cheetah run backwards", env="HalfCheetah-v5",
                                   preset="run_backwards", iterations=2, samples=2, steps=20_000)
    print(result.fitness, result.best_path)

``cli.py`` only parses arguments, calls these functions and prints what they return, so a
script gets exactly what the command line does. Bad input raises an
:class:`~autoreward.errors.AutorewardError` with a one-line message.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import ValidationError
from rich.console import Console

from autoreward.cards import EnvCard, load_card
from autoreward.critic import Verdict, check_program, record_rollouts
from autoreward.errors import ConfigError, Interrupted, LLMUnreachableError, RunDirError
from autoreward.export import export_candidate
from autoreward.loop import Hook, Loop, RunConfig
from autoreward.program import RewardProgram
from autoreward.rundir import Candidate, Run, new_run_dir, read_json, record_run, write_text
from autoreward.train.algos import algorithm, validate_hyperparams, validate_policy
from autoreward.train.run import TrainSpec, train_candidate

#: keys of ``autoreward run --config FILE`` and keyword arguments of :func:`synthesize` beyond
#: :class:`~autoreward.loop.RunConfig`'s fields
RUN_EXTRA_OPTIONS = ("out", "interactive")
#: what a reward program defines: the reward itself, or a potential that shapes the task's own signal
SHAPINGS = ("reward", "potential")


# ---------------------------------------------------------------------------------------------
# Run directories


def load_run(path: Path | str) -> Run:
    """A run directory, read (``Run.candidates()``, ``Run.best()``)."""
    return Run.load(path)


def candidate(run: Run, rel: str) -> Candidate:
    """The candidate ``rel`` (e.g. ``iter0/cand1``) of ``run``, or a one-line error listing them."""
    for cand in run.candidates():
        if cand.rel == rel.strip("/"):
            return cand
    known = ", ".join(c.rel for c in run.candidates()) or "none yet"
    raise RunDirError(f"{run.path} has no candidate {rel!r}", f"candidates: {known}")


@dataclass
class Diff:
    """The unified diff of two candidates' code, ``old`` to ``new``."""

    old: Candidate
    new: Candidate
    text: str


def diff(run: Run, old: str | None = None, new: str | None = None) -> Diff:
    """Diff two candidates' code; by default the best of each of the last two iterations that
    trained one (what the refinement changed)."""
    if (old is None) != (new is None):
        raise ConfigError("--diff takes two candidates or none", "e.g. --diff iter0/cand0 iter1/cand1")
    if old is not None and new is not None:
        a, b = candidate(run, old), candidate(run, new)
    else:
        bests: dict[str, Candidate] = {}
        for c in run.candidates():
            it = c.rel.split("/")[0]
            if c.ok and (it not in bests or (c.fitness or 0.0) > (bests[it].fitness or 0.0)):
                bests[it] = c
        if len(bests) < 2:
            raise RunDirError(
                f"{run.path} has {len(bests)} iteration(s) with a trained candidate; the default diff needs two",
                "name two candidates: --diff iter0/cand0 iter0/cand1",
            )
        a, b = list(bests.values())[-2:]
    text = "".join(difflib.unified_diff(
        a.source.splitlines(keepends=True), b.source.splitlines(keepends=True), f"{a.rel}/reward.py", f"{b.rel}/reward.py",
    ))
    return Diff(a, b, text)


def export(run: Run | Path | str, out: Path | str, candidate_rel: str | None = None) -> Path:
    """Write the best (or ``candidate_rel``'s) reward as a standalone module at ``out``; see
    :mod:`autoreward.export`."""
    run = run if isinstance(run, Run) else load_run(run)
    if run.config.get("shaping") == "potential":
        raise ConfigError(f"{run.path} wrote potentials (--shaping potential); export writes reward wrappers only",
                          "shape the env's reward with gamma * phi(s') - phi(s) by hand, phi from the run's best reward.py")
    if candidate_rel:
        cand = candidate(run, candidate_rel)
        if not cand.accepted:
            raise ConfigError(f"candidate {cand.rel} was rejected by the critic: {cand.error[:200]}", "export an accepted candidate")
    else:
        best = run.best()
        if best is None:
            raise RunDirError(f"{run.path} has no trained candidate to export", "pass --candidate iterN/candM, or finish the run")
        cand = best
    return export_candidate(run, cand, Path(out))


def report(run: Run | Path | str, *, videos: bool = True, video_seconds: float = 20.0, log: Callable[[str], None] | None = None) -> Path:
    """Write ``report.html`` into the run directory (see :mod:`autoreward.report`): plots, code,
    verdicts, analyses, feedback, and videos of the best policy and one failure per candidate."""
    from autoreward.report import write_report

    run = run if isinstance(run, Run) else load_run(run)
    if video_seconds <= 0:
        raise ConfigError(f"--video-seconds {video_seconds:g} must be positive", "e.g. --video-seconds 20, or --no-videos")
    return write_report(run, videos=videos, video_seconds=video_seconds, log=log)


# ---------------------------------------------------------------------------------------------
# One reward: check, evaluate


def require_tensorboard(wanted: bool) -> None:
    """``--tensorboard`` needs the tensorboard package: a one-line error before anything runs."""
    import importlib.util

    if wanted and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("--tensorboard needs the tensorboard package, which is not installed", "pip install 'autoreward[tb]'")


def _program(reward: str | Path) -> RewardProgram:
    """A reward given as a path, or as source text (anything with a line break)."""
    if isinstance(reward, str) and "\n" in reward:
        return RewardProgram(reward)
    return RewardProgram.from_file(reward)


def checked_env_kwargs(card: EnvCard, extra: dict[str, Any], preset_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Env constructor arguments over the preset's, checked by building the env once, so a wrong
    name or value fails here with the constructor's own message, not inside a training worker."""
    if extra:
        try:
            card.make_env(**{**preset_kwargs, **extra}).close()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--env-kwarg: {card.id} does not accept {extra}: {exc}", "see the env's constructor arguments") from exc
    return dict(extra)


@dataclass
class RunVerdict(Verdict):
    """The critic's verdict and the run directory it was saved in (``candidate/critic.json``)."""

    run_dir: Path = field(default_factory=Path)


def check_shaping(shaping: str) -> str:
    """``--shaping``: reward (the program is the reward) or potential (it defines a potential)."""
    if shaping not in SHAPINGS:
        raise ConfigError(f"unknown --shaping {shaping!r}", f"use {' or '.join(SHAPINGS)}")
    return shaping


def _check_in(run_dir: Path, program: RewardProgram, card: EnvCard, task: str, make_kwargs: dict[str, Any], shaping: str = "reward") -> RunVerdict:
    rec = record_rollouts(card, run_dir / "recordings" / "probe_seed0.npz", make_kwargs=make_kwargs)
    v = check_program(program, card, task, run_dir / "candidate", rec, shaping=shaping)
    return RunVerdict(**{f.name: getattr(v, f.name) for f in fields(v)}, run_dir=run_dir)  # every Verdict field, present and future


def check(
    reward: str | Path, env: str, task: str = "default", *, out: Path | str = "runs", cards: list[Path] | None = None,
    shaping: str = "reward",
) -> RunVerdict:
    """Static policy, dry run and behaviour probe of one reward (a file or source text), without
    an LLM; the verdict is saved in a new run directory under ``out``. ``shaping="potential"``:
    the file defines ``compute_potential(state)`` instead."""
    check_shaping(shaping)
    program = _program(reward)
    card = load_card(env, cards)
    t = card.task(task)
    run = new_run_dir(Path(out), card.id, f"check-{task}")
    record_run(run, "check", {"reward": str(reward) if "\n" not in str(reward) else "<source>", "env": card.id, "task": task, "shaping": shaping})
    write_text(run / "candidate" / "reward.py", program.source)
    return _check_in(run, program, card, task, t.make_kwargs, shaping)


@dataclass
class Evaluation:
    """One reward checked and (if accepted, or forced) trained: the verdict and ``metrics.json``."""

    run_dir: Path
    verdict: RunVerdict
    trained: bool = False
    ok: bool = False
    error: str = ""
    metrics: dict[str, Any] | None = None

    @property
    def candidate_dir(self) -> Path:
        return self.run_dir / "candidate"


def evaluate(
    reward: str | Path, env: str, task: str = "default", *, steps: int | None = None, algo: str = "", seed: int = 0,
    hyperparams: dict[str, Any] | None = None, max_episode_steps: int | None = None, eval_episodes: int = 5,
    device: str = "auto", skip_check: bool = False, policy: str = "", env_kwargs: dict[str, Any] | None = None,
    out: Path | str = "runs", cards: list[Path] | None = None, tensorboard: bool = False,
    on_verdict: Callable[[RunVerdict], None] | None = None, on_event: Callable[[dict[str, Any]], None] | None = None,
    shaping: str = "reward", n_envs: int = 0, trainer: str = "sb3", stop_at_success: bool = False,
) -> Evaluation:
    """Check, then train a policy with one reward and measure task fitness (``eval``).

    ``on_verdict`` is called once the critic is done, ``on_event`` with the training's progress
    events; a rejected reward is not trained unless ``skip_check``. ``shaping="potential"``: the
    file defines ``compute_potential(state)`` and training shapes the task's own signal with it.
    ``steps`` None: the card's budget for ``task`` (where its expert reaches the success threshold).
    ``stop_at_success``: end training at the first periodic evaluation at the threshold (how many
    steps a reward needs, as the behaviour benchmark measures it)."""
    check_shaping(shaping)
    if algo:
        algorithm(algo)
    program = _program(reward)
    card = load_card(env, cards)
    t = card.task(task)
    steps = steps or card.budget_steps(task)
    hp = dict(hyperparams or {})
    validate_hyperparams(algo or card.training.algo, hp, trainer)
    validate_policy(policy)
    require_tensorboard(tensorboard)
    make_kwargs = {**t.make_kwargs, **checked_env_kwargs(card, env_kwargs or {}, t.make_kwargs)}
    run = new_run_dir(Path(out), card.id, task)
    spec = TrainSpec(
        card_path=card.path, task=task, fitness=t.fitness, success=t.success, source=program.source, steps=steps,
        algo=algo or card.training.algo, seed=seed, hyperparams=hp, max_episode_steps=max_episode_steps,
        eval_episodes=eval_episodes, device=device, make_kwargs=make_kwargs, policy=policy, tensorboard=tensorboard, shaping=shaping,
        n_envs=n_envs, trainer=trainer, stop_at_success=stop_at_success,
    )
    record_run(run, "eval", {"reward": str(reward) if "\n" not in str(reward) else "<source>", "env": card.id, "task": task, "spec": {**spec.__dict__, "source": None}})
    write_text(run / "candidate" / "reward.py", program.source)
    verdict = _check_in(run, program, card, task, make_kwargs, shaping)
    if on_verdict:
        on_verdict(verdict)
    result = Evaluation(run, verdict)
    if not verdict.accepted and not skip_check:
        return result
    job = train_candidate(spec, result.candidate_dir, on_event=on_event)
    m = result.candidate_dir / "metrics.json"
    result.trained, result.ok, result.error = True, bool(job.ok), "" if job.ok else str(job.error)
    result.metrics = read_json(m) if m.exists() else None
    return result


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class Result:
    """What a loop run produced: the best program, its fitness and every candidate."""

    run_dir: Path
    best_source: str | None
    best_path: Path | None
    fitness: float | None
    untrained_fitness: float | None
    candidates: list[Candidate]
    stopped: str = ""
    summary: dict[str, Any] = field(default_factory=dict)  # result.json

    @classmethod
    def of(cls, run_dir: Path, summary: dict[str, Any]) -> "Result":
        run = load_run(run_dir)
        best = run.best()
        return cls(
            run_dir=run.path, best_source=best.source if best else None, best_path=best.dir / "reward.py" if best else None,
            fitness=best.fitness if best else None,
            untrained_fitness=best.metrics["untrained"]["fitness_mean"] if best and best.metrics else None,
            candidates=run.candidates(), stopped=str(summary.get("stopped", "")), summary=summary,
        )


def read_run_options(path: Path | str) -> dict[str, Any]:
    """The options in a ``run --config`` YAML file: a mapping of :func:`synthesize`'s keyword
    arguments (``task``, ``env`` and ``RunConfig``'s fields, plus ``out`` and ``interactive``)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config {p} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {p} is not readable YAML: {' '.join(str(exc).split())}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {p} must be a mapping of option: value", "e.g. steps: 20000")
    known = [*RunConfig.model_fields, *RUN_EXTRA_OPTIONS]
    for key in data:
        if key not in known:
            raise ConfigError(f"--config {p}: unknown key {key!r}", f"known keys: {', '.join(known)}")
    return data


def saved_config(run: Run) -> RunConfig:
    """The loop config recorded in a run's run.json, or a one-line error naming what is wrong."""
    try:
        return RunConfig(**run.config)
    except (TypeError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": ("config",), "msg": str(exc)}
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{run.path / 'run.json'}: {where}: {first['msg']}", "fix it in run.json, or start a new run") from None


#: The longest task text ``run`` accepts, in characters (README: "Task text"). A task is a
#: sentence or a paragraph; facts about the environment come from its card. A longer text is
#: refused, not cut: a cut would silently change what is asked, and the whole text goes into
#: every designer prompt, where the embedded model's 8k-token context also holds the card,
#: the reward code and the answer.
MAX_TASK_CHARS = 4000


def check_task(task: str | None) -> str:
    """The task text, stripped, or a one-line error when it is empty or over the limit."""
    text = (task or "").strip()
    if not text:
        raise ConfigError("the task text is empty", 'describe the behaviour in words, e.g. autoreward run "run backwards" --env HalfCheetah-v5, or use --task-file FILE')
    if len(text) > MAX_TASK_CHARS:
        raise ConfigError(
            f"the task text is {len(text):,} characters, over the limit of {MAX_TASK_CHARS:,}",
            "describe the behaviour in a paragraph; facts about the environment belong in its env card (--cards)",
        )
    return text


def run_config(task: str, env: str, **options: Any) -> RunConfig:
    """A validated :class:`~autoreward.loop.RunConfig`: task text, card, preset, algorithm,
    hyperparameters, policy and env arguments are checked here, before a run directory exists."""
    task = check_task(task)
    cards = options.pop("cards", None) or []
    cards = [str(Path(c).resolve()) for c in ([cards] if isinstance(cards, (str, Path)) else cards)]
    card = load_card(env, [Path(c) for c in cards])
    preset, algo = options.get("preset"), options.get("algo", "")
    if preset:
        card.task(preset)
    if (options.get("fitness") is None) != (options.get("success") is None):
        raise ConfigError("--fitness and --success go together")
    if algo:
        algorithm(algo)
    validate_hyperparams(algo or card.training.algo, options.get("hyperparams") or {}, options.get("trainer") or "sb3")
    validate_policy(options.get("policy", ""))
    require_tensorboard(bool(options.get("tensorboard")))
    options["env_kwargs"] = checked_env_kwargs(card, options.get("env_kwargs") or {}, card.task(preset).make_kwargs if preset else {})
    if not options.get("steps"):  # the card's budget: where its expert reaches the task's success threshold
        options["steps"] = card.budget_steps(preset)
    try:
        return RunConfig(task=task, env=card.id, cards=cards, **options)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise ConfigError(f"run option {where}: {e['msg']} (got {e.get('input')!r})") from None


def synthesize(
    task: str, env: str, *, out: Path | str = "runs", console: Console | None = None, hook: Hook | None = None,
    confirm_fitness: Callable[..., dict[str, Any]] | None = None, **options: Any,
) -> Result:
    """Design, check, train and refine reward programs for ``task`` on ``env`` (``run``).

    ``options`` are :class:`~autoreward.loop.RunConfig`'s fields (``preset``, ``model``,
    ``iterations``, ``samples``, ``steps``, ``hyperparams``...). ``hook(loop, iteration)`` is
    asked after each iteration for human steering, ``confirm_fitness(loop, proposal)`` about a
    proposed fitness; ``console`` receives the progress lines."""
    from autoreward.llm import get_client

    cfg = run_config(task, env, **options)
    get_client(cfg.model)  # a missing key or unknown model fails here, before a run directory exists
    run_dir = new_run_dir(Path(out), cfg.env, cfg.preset or task)
    record_run(run_dir, "run", cfg.model_dump(), interactive=hook is not None)
    console = console or Console()
    console.print(f"run directory: {run_dir}")
    steering = {"confirm_fitness": confirm_fitness} if confirm_fitness else {}
    with _guarded(run_dir, fresh=True):
        summary = Loop(run_dir, cfg, console, hook=hook, **steering).run()
    return Result.of(run_dir, summary)


@contextmanager
def _guarded(run_dir: Path, fresh: bool = False) -> Iterator[None]:
    """One line for the ways a loop stops early without a mistake of the user's. Ctrl-C: what is
    saved and how to continue (the CLI exits 130). An LLM server that cannot be reached: a run
    made by this call that never got an answer holds nothing worth keeping and is removed;
    otherwise the line says how to continue once the server answers."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: finished steps are saved in {run_dir}", f"continue with `autoreward resume {run_dir}`") from None
    except LLMUnreachableError as exc:
        from autoreward.llm.client import read_exchanges

        if fresh and not any(r.get("responses") for r in read_exchanges(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)
            raise LLMUnreachableError(exc.message, f"{exc.hint}; no run directory was kept") from None
        raise LLMUnreachableError(exc.message, f"{exc.hint}; finished steps are saved: `autoreward resume {run_dir}` once it answers") from None


def resume(run_dir: Path | str, *, console: Console | None = None, hook: Hook | None = None) -> Result:
    """Continue a run killed at any point, without re-asking the LLM or retraining."""
    run = load_run(run_dir)
    run.require_loop("resume")
    with _guarded(run.path):
        summary = Loop(run.path, saved_config(run), console, hook=hook).run()
    return Result.of(run.path, summary)


def refine(
    run_dir: Path | str, *, feedback: str | None = None, edit: str | Path | None = None, prefer: str | None = None,
    iterations: int = 1, console: Console | None = None,
) -> Result:
    """Continue a finished run with feedback in words, an edited reward, or a preferred parent."""
    if not (feedback or edit or prefer):
        raise ConfigError("refine needs --feedback, --edit or --prefer")
    run = load_run(run_dir)
    run.require_loop("refine")
    source = _program(edit).source if edit else None
    loop = Loop(run.path, saved_config(run), console)
    if prefer:
        loop.apply({"action": "prefer", "candidate": prefer})
    loop.extend(iterations)
    if feedback:
        loop.apply({"action": "feedback", "text": feedback})
    if source:
        loop.apply({"action": "edit", "source": source})
    with _guarded(run.path):
        summary = loop.run()
    return Result.of(run.path, summary)
