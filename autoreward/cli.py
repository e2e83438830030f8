"""The command line only: parse, call the library, print. No logic a test cannot reach without it.

User mistakes arrive here as ``AutorewardError`` and leave as one line on stderr with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from autoreward.errors import AutorewardError, ConfigError, ExitCode, Interrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a sentence into a working, checked, trained reward function.",
)
envs_app = typer.Typer(help="List env cards and show what the LLM is told about an env.", invoke_without_command=True)
app.add_typer(envs_app, name="envs")
library_app = typer.Typer(help="The reward library: verified rewards shown to the designer as examples.", no_args_is_help=True)
app.add_typer(library_app, name="library")
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

CardsOpt = typer.Option(None, "--cards", help="Extra directory of env cards (also AUTOREWARD_CARDS).")
ShapingOpt = typer.Option(
    "reward", "--shaping",
    help="reward: the program is the reward; potential: it defines compute_potential(state) and training uses the task's own "
    "reward + gamma * phi(s') - phi(s), which cannot change the optimal policy.",
)
PolicyOpt = typer.Option("", "--policy", help="SB3 policy: MlpPolicy, CnnPolicy or MultiInputPolicy (default: the card's).")
NEnvsOpt = typer.Option(0, "--n-envs", min=0, help="Envs each candidate trains on at once (0: the card's; subprocesses where the card says so).")
TrainerOpt = typer.Option("sb3", "--trainer", help="sb3 (PyTorch) or sbx (JAX, pip install 'autoreward[sbx]'; faster SAC on a CPU).")
EnvKwargOpt = typer.Option(
    [], "--env-kwarg", help="Env constructor argument key=value over the preset's (repeatable), e.g. obs_mode=pixels on Crafter-v1."
)
TensorboardOpt = typer.Option(
    False, "--tensorboard", help="SB3 TensorBoard logs per candidate in <candidate>/tensorboard (pip install 'autoreward[tb]')."
)
RequireConfinementOpt = typer.Option(
    False, "--require-confinement", envvar="AUTOREWARD_REQUIRE_CONFINEMENT",
    help="Refuse to run generated code without every OS-level confinement (Landlock, network namespace).",
)


def _require_confinement(required: bool) -> None:
    """``--require-confinement``: fail now, in one line, if this machine cannot confine the sandbox."""
    if required:
        from autoreward.sandbox import require_confinement

        require_confinement()


def _cards(cards: Optional[Path]) -> list[Path]:
    return [cards] if cards else []


@envs_app.callback()
def envs_list(ctx: typer.Context, cards: Optional[Path] = CardsOpt) -> None:
    """List env cards and their preset tasks."""
    if ctx.invoked_subcommand:
        return
    from autoreward.cards import all_cards

    table = Table("env", "algo", "state fields", "presets (success threshold)")
    for cid, card in sorted(all_cards(_cards(cards)).items()):
        presets = ", ".join(f"{n} (≥{t.success:g}{' ' + t.unit if t.unit else ''})" for n, t in card.tasks.items())
        table.add_row(cid, card.training.algo, str(len(card.state)), presets)
    console.print(table)


@envs_app.command("show")
def envs_show(env: str = typer.Argument(..., help="Env id, e.g. HalfCheetah-v5."), cards: Optional[Path] = CardsOpt) -> None:
    """Print exactly the text the LLM gets about ENV, then its presets."""
    from autoreward.cards import load_card, render_card

    card = load_card(env, _cards(cards))
    sys.stdout.write(render_card(card))
    sys.stdout.write("\nPreset tasks:\n")
    for name, t in card.tasks.items():
        sys.stdout.write(f"- {name}: {t.description} Fitness: {t.fitness_doc or t.fitness} Success: >= {t.success:g}{' ' + t.unit if t.unit else ''}.\n")
    if card.measures:
        sys.stdout.write("\nNamed episode measures (a fitness for a free-form task may use them by name):\n")
        for name, m in card.measures.items():
            sys.stdout.write(f"- {name}{f' ({m.unit})' if m.unit else ''}: {m.doc}\n")


def _parse_sets(sets: list[str], flag: str = "--set", example: str = "learning_rate=3e-4") -> dict[str, Any]:
    """``--set key=value`` hyperparameter overrides (or ``--env-kwarg``); values are parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"{flag} {s!r} is not key=value", f"e.g. {flag} {example}")
        k, v = s.split("=", 1)
        val = yaml.safe_load(v)
        if isinstance(val, str):  # YAML 1.1 reads 3e-4 as text
            try:
                val = float(val)
            except ValueError:
                pass
        out[k.strip()] = val
    return out


@app.command()
def check(
    reward: Path = typer.Argument(..., help="A Python file defining compute_reward(prev, action, state, memory)."),
    env: str = typer.Option(..., "--env", help="Env id, e.g. HalfCheetah-v5."),
    task: str = typer.Option("default", "--task", help="Preset task of the env card."),
    shaping: str = ShapingOpt,
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
    require_confinement: bool = RequireConfinementOpt,
) -> None:
    """Check a reward program without an LLM: static policy, dry run, behaviour probe.

    Exit 0 if accepted, 1 if rejected."""
    _require_confinement(require_confinement)
    from autoreward import api

    with console.status("checking (dry run and behaviour probe in the sandbox)..."):
        verdict = api.check(reward, env, task, out=out, cards=_cards(cards), shaping=shaping)
    _print_verdict(verdict)
    console.print(f"verdict: {verdict.run_dir / 'candidate' / 'critic.json'}")
    raise typer.Exit(ExitCode.OK if verdict.accepted else ExitCode.FAILED)


def _print_verdict(verdict: Any) -> None:
    for c in verdict.checks:
        mark = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        console.print(f"{mark} {c.name}: {c.message}" if c.message else f"{mark} {c.name}", highlight=False, markup=True)
        d = c.details
        if c.name == "dry_run" and c.passed:
            comps = ", ".join(f"{k} mean {v['mean']:.3g} [{v['min']:.3g}, {v['max']:.3g}]" for k, v in d.get("components", {}).items())
            whole = d.get("potential", d["total"])  # a potential's own values, not its change per step
            console.print(f"     {'phi' if 'potential' in d else 'total'} mean {whole['mean']:.3g} [{whole['min']:.3g}, {whole['max']:.3g}], "
                          f"{d['per_call_us']} µs/call; {comps}", highlight=False, markup=False)
        for w in c.warnings:
            console.print(f"     [yellow]warning[/]: {w}")
    if getattr(verdict, "confinement", None):
        console.print(f"     confinement: {_confinement_line(verdict.confinement)}", highlight=False, markup=False)
    console.print("[bold green]ACCEPTED[/]" if verdict.accepted else "[bold red]REJECTED[/]")


def _confinement_line(conf: dict[str, Any]) -> str:
    """What OS-level confinement the sandbox ran under, e.g. 'landlock (ABI 7), landlock_tcp, netns'."""
    from autoreward.sandbox.confine import MECHANISMS

    on = [m + (f" (ABI {conf.get('landlock_abi')})" if m == "landlock" else "") for m in MECHANISMS if conf.get(m)]
    off = [m for m in MECHANISMS if not conf.get(m)]
    return (", ".join(on) or "none") + ("; not active: " + ", ".join(off) if off else "")


@app.command("eval")
def eval_cmd(
    reward: Path = typer.Argument(..., help="A Python file defining compute_reward(prev, action, state, memory)."),
    env: str = typer.Option(..., "--env", help="Env id, e.g. HalfCheetah-v5."),
    task: str = typer.Option("default", "--task", help="Preset task of the env card."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Environment steps to train (default: the card's budget for the task, where its expert reaches the success threshold)."),
    algo: str = typer.Option("", "--algo", help="ppo or sac (default: the card's)."),
    seed: int = typer.Option(0, "--seed"),
    sets: list[str] = typer.Option([], "--set", help="Hyperparameter override key=value (repeatable)."),
    max_episode_steps: Optional[int] = typer.Option(None, "--max-episode-steps", help="Shorter episodes for quick runs."),
    eval_episodes: int = typer.Option(5, "--eval-episodes", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    skip_check: bool = typer.Option(False, "--skip-check", help="Train even if the critic rejects the reward."),
    shaping: str = ShapingOpt,
    policy: str = PolicyOpt,
    env_kwargs: list[str] = EnvKwargOpt,
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
    require_confinement: bool = RequireConfinementOpt,
    tensorboard: bool = TensorboardOpt,
    n_envs: int = NEnvsOpt,
    trainer: str = TrainerOpt,
    stop_at_success: bool = typer.Option(False, "--stop-at-success", help="End training at the first evaluation that reaches the task's success threshold (prints the steps it took)."),
) -> None:
    """Check, then train a policy with a given reward and report task fitness."""
    _require_confinement(require_confinement)
    from autoreward import api

    if steps is None:  # the bar needs the total before training starts
        steps = _card(env, cards).budget_steps(task)
    with _TrainingProgress(steps) as progress:
        ev = api.evaluate(
            reward, env, task, steps=steps, algo=algo, seed=seed, hyperparams=_parse_sets(sets), max_episode_steps=max_episode_steps,
            eval_episodes=eval_episodes, device=device, skip_check=skip_check, policy=policy, shaping=shaping,
            env_kwargs=_parse_sets(env_kwargs, "--env-kwarg", "obs_mode=pixels"), out=out, cards=_cards(cards),
            on_verdict=progress.on_verdict, on_event=progress.on_event, tensorboard=tensorboard, n_envs=n_envs, trainer=trainer,
            stop_at_success=stop_at_success,
        )
        if ev.ok:
            progress.finish(int((ev.metrics or {}).get("steps_done") or steps))
    if not ev.trained:
        console.print("not training a rejected reward (use --skip-check to train anyway)")
        raise typer.Exit(ExitCode.FAILED)
    if not ev.ok or not ev.metrics:
        err.print(f"[red]training failed[/]: {ev.error}", highlight=False)
        raise typer.Exit(ExitCode.FAILED)
    m, t = ev.metrics, _task_spec(env, task, cards)
    u, f = m["untrained"], m["final"]
    table = Table("", "task fitness", "success rate", "env return")
    table.add_row("untrained", f"{u['fitness_mean']:.3f}", f"{u['success_rate']:.2f}", f"{u['env_return_mean']:.1f}")
    done = int(m.get("steps_done") or steps)
    table.add_row(f"after {done} steps" + (" (stopped at the threshold)" if m.get("stopped_at_success") else ""), f"{f['fitness_mean']:.3f}", f"{f['success_rate']:.2f}", f"{f['env_return_mean']:.1f}")
    console.print(table)
    judge = m.get("judge") or {}
    solved = f"{'solved' if m['solved'] else 'not solved'} (threshold {t.success:g}{' ' + t.unit if t.unit else ''})"
    judged = f"; judged by a separate process that never loaded the reward ({judge['seconds']:.1f} s)" if "seconds" in judge else ""
    console.print(f"{m['steps_per_second']:.0f} steps/s on {m['device']}; {solved}{judged}")
    if judge.get("disagrees"):
        err.print(f"warning: {judge['disagrees']}", highlight=False, markup=False)
    console.print(f"metrics: {ev.candidate_dir / 'metrics.json'}  policy: {ev.candidate_dir / 'policy.zip'}")


def _card(env: str, cards: Optional[Path]) -> Any:
    from autoreward.cards import load_card

    return load_card(env, _cards(cards))


def _task_spec(env: str, task: str, cards: Optional[Path]) -> Any:
    return _card(env, cards).task(task)


class _TrainingProgress:
    """The critic's spinner, the verdict, then a training bar with fitness and ETA, fed by
    ``api.evaluate``'s callbacks."""

    def __init__(self, steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fit]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )
        self.checking = self.progress.add_task("checking (dry run and behaviour probe in the sandbox)...", total=None, fit="")
        self.bar = self.progress.add_task("training", total=steps, fit="", visible=False)

    def __enter__(self) -> "_TrainingProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def on_verdict(self, verdict: Any) -> None:
        self.progress.remove_task(self.checking)
        console.print(f"run directory: {verdict.run_dir}")
        _print_verdict(verdict)
        self.progress.update(self.bar, visible=verdict.accepted)

    def finish(self, steps: int) -> None:
        self.progress.update(self.bar, completed=steps)

    def on_event(self, e: dict[str, Any]) -> None:
        if e.get("event") == "progress":
            self.progress.update(self.bar, completed=e["step"], visible=True)
        elif e.get("event") == "eval":
            self.progress.update(self.bar, fit=f"fitness {e['fitness']:.3g}")


@app.command()
def bench(
    suite: str = typer.Option("quick", "--suite", help="quick, crafter, fitness, metaworld, search, quality, quality-quick, behaviour or judge."),
    out: Path = typer.Option(Path("bench.json"), "--out", help="Where to write the JSON results."),
    model: Optional[str] = typer.Option(None, "--model", help="quality suites: the model the loop uses (default: the embedded one)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", help="quality suites: comma-separated task names (autoreward/bench/quality.yaml)."),
    variants: Optional[str] = typer.Option(None, "--variants", help="quality suites: loop variants, comma-separated: library, no-library, potential, potential-no-library, or none (experts and baselines only)."),
    no_library: bool = typer.Option(False, "--no-library", help="quality suites: the loop without the reward library (same as --variants no-library)."),
    shaping: Optional[str] = typer.Option(None, "--shaping", help="quality suites: potential also runs the loop with --shaping potential on every task, beside the normal mode."),
    bench_config: Optional[Path] = typer.Option(None, "--config", help="quality suites: a YAML merged over autoreward/bench/quality.yaml (budgets, tasks); behaviour: over behaviour.yaml."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="behaviour: comma-separated training seeds (default: behaviour.yaml's)."),
    cap: Optional[float] = typer.Option(None, "--cap", min=1, help="behaviour: wall-time cap per training job, in seconds (default 600)."),
    profiles: Optional[str] = typer.Option(None, "--profiles", help="behaviour: card training profiles, comma-separated: default (the card's settings), zoo (before issue 22)."),
    device: Optional[str] = typer.Option(None, "--device", help="behaviour: where policies train, cpu (default) or cuda."),
) -> None:
    """Measure speed targets (ratios measured in one run, since these machines are noisy) and reward quality."""
    import inspect

    from autoreward.bench import SUITES
    from autoreward.bench import suite as suite_fn
    from autoreward.rundir import write_json

    if suite not in SUITES:
        raise ConfigError(f"unknown --suite {suite!r}", f"choose one of: {', '.join(SUITES)}")
    from autoreward.bench.quality import choose_variants

    options = {"model": model, "tasks": _csv(tasks), "variants": choose_variants(variants, no_library, shaping), "config": bench_config,
               "seeds": _ints(seeds, "--seeds"), "cap_s": cap, "profiles": _csv(profiles),
               "device": _device(device)}
    fn = suite_fn(suite)
    given = {k: v for k, v in options.items() if v is not None}
    takes_options = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    if given and not takes_options:
        flags = ", ".join(f"--{k}" for k in given)
        raise ConfigError(f"{flags}: not an option of --suite {suite}", "drop them, or use --suite quality / quality-quick")
    results = fn(console, out=out, **given) if takes_options else fn(console)  # out: written as it goes, so a stop keeps the rest

    write_json(out, results)
    console.print_json(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}))
    console.print(f"written: {out}")


def _device(device: Optional[str]) -> Optional[str]:
    """``--device`` checked before any job starts: cuda where torch sees no GPU is a one-line error."""
    if device is None:
        return None
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: use cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: torch sees no GPU here", "install a CUDA build of torch (AUTOREWARD_TORCH) on a GPU machine, or use --device cpu")
    return device


def _csv(text: Optional[str]) -> Optional[list[str]]:
    """A comma-separated option as a list; None when not given."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ints(text: Optional[str], flag: str) -> Optional[list[int]]:
    """A comma-separated option of integers (``--seeds 0,1,2``); None when not given."""
    try:
        return [int(t) for t in _csv(text) or []] or None
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give whole numbers separated by commas", f"e.g. {flag} 0,1,2") from None


# ---------------------------------------------------------------------------------------------
# The designer-critic-analyzer loop


@app.command()
def run(
    ctx: typer.Context,
    task: Optional[str] = typer.Argument(None, help='The task in words, e.g. "make the half-cheetah run backwards"; - reads it from stdin.'),
    task_file: Optional[Path] = typer.Option(None, "--task-file", help="Read the task text from this file (- for stdin) instead of TASK."),
    env: Optional[str] = typer.Option(None, "--env", help="Env id, e.g. HalfCheetah-v5."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset whose fitness judges candidates (default: the designer proposes one)."),
    model: Optional[str] = typer.Option(None, "--model", help="local (default), scripted:FILE, openai/..., anthropic/..., ollama/..."),
    iterations: int = typer.Option(2, "--iterations", min=1),
    samples: int = typer.Option(2, "--samples", min=1, help="Reward programs asked for per iteration."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps per candidate (default: the card's budget for the preset, where its expert reaches the success threshold)."),
    algo: str = typer.Option("", "--algo", help="ppo or sac (default: the card's)."),
    seed: int = typer.Option(0, "--seed"),
    sets: list[str] = typer.Option([], "--set", help="Hyperparameter override key=value (repeatable)."),
    max_episode_steps: Optional[int] = typer.Option(None, "--max-episode-steps"),
    eval_episodes: int = typer.Option(3, "--eval-episodes", min=1),
    review: str = typer.Option("veto", "--review", help="LLM review of accepted programs: veto, advise (recorded, no veto) or off."),
    no_review: bool = typer.Option(False, "--no-review", help="Same as --review off."),
    fitness: Optional[str] = typer.Option(None, "--fitness", help="Fitness expression over ep (free-form tasks)."),
    success: Optional[float] = typer.Option(None, "--success", help="Success threshold for --fitness."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Stop after this many LLM tokens."),
    max_cost: Optional[float] = typer.Option(None, "--max-cost", help="Stop after this many dollars of LLM cost."),
    max_wall: Optional[float] = typer.Option(None, "--max-wall", help="Stop after this many seconds."),
    max_env_steps: Optional[int] = typer.Option(None, "--max-env-steps", min=1, help="Stop before training more than this many env steps in all."),
    interactive: bool = typer.Option(False, "--interactive", help="Pause after each iteration for feedback."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept a proposed fitness without asking (free-form tasks in a terminal)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Candidates trained at once (0: one per core)."),
    halving: str = typer.Option("auto", "--halving", help="Successive halving: auto (on with >= 4 candidates), on or off."),
    executor: str = typer.Option("local", "--executor", help="Where candidates train: local (--workers at a time) or ray (pip install 'autoreward[ray]')."),
    n_envs: int = NEnvsOpt,
    trainer: str = TrainerOpt,
    ray_address: str = typer.Option("", "--ray-address", help="With --executor ray: the cluster (host:6379 or auto); default a new local Ray instance."),
    shaping: str = ShapingOpt,
    policy: str = PolicyOpt,
    env_kwargs: list[str] = EnvKwargOpt,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
    require_confinement: bool = RequireConfinementOpt,
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of run options (keys as in `autoreward.synthesize`); flags override it."),
    library: Optional[Path] = typer.Option(None, "--library", help="Reward library folder (default: AUTOREWARD_LIBRARY, else the user data dir)."),
    no_library: bool = typer.Option(False, "--no-library", help="Neither show library examples to the designer nor add this run's best."),
    no_report: bool = typer.Option(False, "--no-report", envvar="AUTOREWARD_NO_REPORT", help="Do not write report.html (plots, code, videos) at the end."),
    tensorboard: bool = TensorboardOpt,
) -> None:
    """Design, check, train and refine reward programs for TASK on ENV."""
    _require_confinement(require_confinement)
    from autoreward import api

    if task_file is not None or task == "-":
        task = _read_task(task, task_file)

    typed = functools.partial(_typed, ctx)
    # synthesize's keyword -> (value, whether the user typed the flag); typed flags override the
    # --config file, which overrides the flags' defaults
    flags = {
        "task": (task, typed("task", "task_file")), "env": (env, typed("env")), "preset": (preset, typed("preset")), "model": (model, typed("model")),
        "iterations": (iterations, typed("iterations")), "samples": (samples, typed("samples")), "steps": (steps, typed("steps")),
        "algo": (algo, typed("algo")), "seed": (seed, typed("seed")), "hyperparams": (_parse_sets(sets), typed("sets")),
        "max_episode_steps": (max_episode_steps, typed("max_episode_steps")), "eval_episodes": (eval_episodes, typed("eval_episodes")),
        "review": ("off" if no_review else review, typed("review", "no_review")), "fitness": (fitness, typed("fitness")),
        "success": (success, typed("success")), "max_tokens": (max_tokens, typed("max_tokens")), "max_cost": (max_cost, typed("max_cost")),
        "max_wall_s": (max_wall, typed("max_wall")), "max_env_steps": (max_env_steps, typed("max_env_steps")), "interactive": (interactive, typed("interactive")), "policy": (policy, typed("policy")),
        "env_kwargs": (_parse_sets(env_kwargs, "--env-kwarg", "obs_mode=pixels"), typed("env_kwargs")), "device": (device, typed("device")),
        "out": (out, typed("out")), "cards": ([cards] if cards else [], typed("cards")), "workers": (workers, typed("workers")), "halving": (halving, typed("halving")),
        "executor": (executor, typed("executor")), "ray_address": (ray_address, typed("ray_address")),
        "n_envs": (n_envs, typed("n_envs")), "trainer": (trainer, typed("trainer")),
        "shaping": (shaping, typed("shaping")),
        "library": (not no_library, typed("no_library")), "library_dir": (str(library) if library else None, typed("library")),
        "report": (not no_report, typed("no_report")), "tensorboard": (tensorboard, typed("tensorboard")),
    }
    options = _run_options(flags, config)
    hook = _interactive_hook if options.pop("interactive", False) else None
    ask = not yes and sys.stdin.isatty() and sys.stdout.isatty()  # CI and pipes: the fitness is printed and accepted
    result = api.synthesize(options.pop("task"), options.pop("env"), console=console, hook=hook,
                            confirm_fitness=_confirm_fitness if ask else None, **options)
    _print_result(result.summary)


def _typed(ctx: typer.Context, *params: str) -> bool:
    """Whether the user gave any of these parameters (on the command line or in the environment),
    so that it overrides ``--config``; by name: typer may bring its own click's enum."""
    return any(getattr(ctx.get_parameter_source(p), "name", "") in ("COMMANDLINE", "ENVIRONMENT") for p in params)


def _run_options(flags: dict[str, tuple[Any, bool]], config: Optional[Path]) -> dict[str, Any]:
    """``synthesize``'s keywords from ``run``'s flags (keyword -> (value, typed by the user)) and
    the ``--config`` file: typed flags override the file, which overrides the flags' defaults."""
    from autoreward import api

    from_file = api.read_run_options(config) if config else {}
    options = {**{k: v for k, (v, t) in flags.items() if not t}, **from_file, **{k: v for k, (v, t) in flags.items() if t}}
    if options.get("task") is None or not options.get("env"):  # an empty TASK is api.check_task's error
        raise ConfigError("run needs TASK and --env", "give them on the command line or as `task:` and `env:` in --config")
    return options


def _read_task(task: Optional[str], task_file: Optional[Path]) -> str:
    """The task text from ``--task-file FILE`` or stdin (``-``); api.check_task judges its length."""
    if task_file is not None and task not in (None, "-"):
        raise ConfigError("give the task either as TASK or with --task-file, not both", "drop one of them")
    source = "-" if task_file is None else str(task_file)
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--task-file {source} does not exist", "check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"--task-file {source} is a directory", "give a text file holding the task in words") from None
    except OSError as exc:
        raise ConfigError(f"cannot read --task-file {source}: {exc.strerror or exc}", "check the file's permissions") from None
    where = "stdin" if source == "-" else source
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise ConfigError(f"the task in {where} is binary, not UTF-8 text", "give a text file holding the task in words")
    return text


def _print_result(result: dict[str, Any]) -> None:
    if result.get("stopped"):
        console.print(f"stopped: {result['stopped']}")
    if result.get("samples"):
        per = result.get("seconds_per_design_sample")
        console.print(
            f"critic accepted {result['accepted_without_repair']}/{result['samples']} samples without repair, "
            f"{result['accepted_after_repair']}/{result['samples']} after repair"
            + (f"; {per:.0f} s per design sample" if per else "")
            + f"; {result['tokens']} LLM tokens"
        )
    if not result.get("best"):
        console.print("[red]no candidate was trained successfully[/]; see the run directory for the critic's reasons")
        console.print(f"inspect: autoreward show {result['run_dir']}")
        raise typer.Exit(ExitCode.FAILED)
    console.print(f"best reward: {result['best_reward']}")
    console.print(f"best fitness: {result['best_fitness']:.4g} (untrained policy: {result['untrained_fitness']:.4g})")
    console.print(f"inspect: autoreward show {result['run_dir']}")


def _confirm_fitness(loop: Any, proposal: dict[str, Any]) -> dict[str, Any]:
    """In a terminal: accept the proposed fitness (printed just above), edit it, or ask again."""
    while True:
        choice = typer.prompt("fitness: [a]ccept, [e]dit, [r]e-propose", default="a").strip().lower()[:1]
        if choice == "a":
            return {"action": "accept"}
        if choice == "e":
            expr = typer.prompt("fitness expression", default=proposal["fitness"])
            success = typer.prompt("success threshold", default=proposal["success"], type=float)
            return {"action": "edit", "fitness": expr, "success": success}
        if choice == "r":
            return {"action": "repropose", "feedback": typer.prompt("what should it measure instead?", default="")}


def _interactive_hook(loop: Any, iteration: int) -> dict[str, Any]:
    """Pause after an iteration: summary table, best code, then the user's choice."""
    from rich.syntax import Syntax

    _candidates_table(loop.run_dir)
    best = loop.best()
    if best:
        console.print(Syntax(best.source, "python", line_numbers=True))
    while True:
        choice = typer.prompt("[c]ontinue, [f]eedback, [e]dit best in $EDITOR, [p]refer a candidate, [s]top", default="c").strip().lower()[:1]
        if choice == "c":
            return {"action": "continue"}
        if choice == "s":
            return {"action": "stop"}
        if choice == "f":
            return {"action": "feedback", "text": typer.prompt("feedback for the designer")}
        if choice == "p":
            rel = typer.prompt("candidate (e.g. iter0/cand1)")
            if any(x.rel == rel and x.trained for x in loop.run_dir.candidates()):
                return {"action": "prefer", "candidate": rel}
            console.print(f"no trained candidate {rel}")
        if choice == "e" and best:
            import click

            text = click.edit(best.source, extension=".py")
            if text:
                return {"action": "edit", "source": text}
            console.print("no change made")


def _candidates_table(run: Any) -> None:
    """One row per candidate of ``run`` (a ``rundir.Run``): critic, repairs, fitness, flags."""
    table = Table("critic", "repairs", "untrained", "fitness", "success", "flags / error")
    table.columns[-1].overflow = "fold"
    table.columns.insert(0, Table("candidate").columns[0])
    table.columns[0].no_wrap = True
    for cand in run.candidates():
        m = cand.metrics if cand.ok else None
        flags = "; ".join((cand.analysis or {}).get("numbers", {}).get("flags", []))
        if cand.duplicate:
            flags = f"duplicate of {cand.duplicate['of']}, not trained" if cand.duplicate.get("of") else "duplicate, not trained"
        cut = (cand.metrics or {}).get("halving", {}).get("cut")
        if cut:
            flags = f"halving: {cut}" + (f"; {flags}" if flags else "")
        if cand.error:
            flags = cand.error[:80]
        if cand.status.get("review_objection"):
            flags = (flags + "; " if flags else "") + "reviewer objected: " + cand.status["review_objection"][:80]
        if cand.status.get("review") == "no verdict":
            flags = (flags + "; " if flags else "") + "reviewer gave no verdict: " + ((cand.review or {}).get("reason") or "")[:80]
        table.add_row(
            cand.rel, "accepted" if cand.accepted else "rejected", str(cand.status.get("repairs", 0)),
            f"{m['untrained']['fitness_mean']:.3g}" if m else "", f"{m['fitness']:.3g}" if m else "",
            f"{m['success_rate']:.2f}" if m else "", flags,
        )
    for rel, why in run.unfinished():  # samples the run stopped on: no candidate.json, maybe no reward.py
        table.add_row(rel, "unfinished", "", "", "", "", why)
    console.print(table)


@app.command()
def resume(run_dir: Path = typer.Argument(..., help="A run directory under runs/.")) -> None:
    """Continue a run killed at any point, without re-asking the LLM or retraining."""
    from autoreward import api

    run = api.load_run(run_dir)
    _print_result(api.resume(run.path, console=console, hook=_interactive_hook if run.info.get("interactive") else None).summary)


@app.command()
def refine(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    feedback: Optional[str] = typer.Option(None, "--feedback", help="Words for the designer."),
    edit: Optional[Path] = typer.Option(None, "--edit", help="Your edited reward file, checked and trained as a candidate."),
    prefer: Optional[str] = typer.Option(None, "--prefer", help="Candidate to refine instead of the best, e.g. iter0/cand1."),
    iterations: int = typer.Option(1, "--iterations", min=1, help="More iterations to run."),
) -> None:
    """Continue a finished run with feedback, an edited reward, or a preferred candidate."""
    from autoreward import api

    _print_result(api.refine(run_dir, feedback=feedback, edit=edit, prefer=prefer, iterations=iterations, console=console).summary)


@app.command()
def show(
    run_dir: Path = typer.Argument(..., help="A run directory under runs/."),
    pair: Optional[list[str]] = typer.Argument(None, help="With --diff: two candidates, e.g. iter0/cand0 iter1/cand0."),
    diff: bool = typer.Option(False, "--diff", help="Show the diff of two candidates' code (default: the best of the last two iterations)."),
) -> None:
    """The best reward with syntax highlighting, its verdict, analysis and every candidate."""
    from rich.syntax import Syntax

    from autoreward import api

    run = api.load_run(run_dir)
    if pair and not diff:
        raise ConfigError(f"unexpected argument(s) {' '.join(pair)}", "to compare two candidates: autoreward show RUN --diff A B")
    if diff:
        if pair and len(pair) != 2:
            raise ConfigError(f"--diff takes two candidates or none, not {len(pair)}", "e.g. --diff iter0/cand0 iter1/cand0")
        d = api.diff(run, *(pair or [None, None]))
        console.print(f"[bold]{d.old.rel}[/] (fitness {_fmt(d.old.fitness)}) → [bold]{d.new.rel}[/] (fitness {_fmt(d.new.fitness)})")
        console.print(Syntax(d.text, "diff") if d.text else "the two programs are identical")
        return
    console.print(f"[bold]{run.path.name}[/]: {run.config.get('task', '')} on {run.config.get('env', '')}")
    proposal = run.fitness_proposal
    if proposal:
        console.print(f"fitness (proposed, editable in {run.path / 'fitness.json'}): {proposal['fitness']}  success ≥ {proposal['success']}", markup=False)
    _candidates_table(run)
    for rel, why in run.damaged.items():
        err.print(f"warning: skipped {rel}: {why}", highlight=False, markup=False, soft_wrap=True)
    best = run.best()
    if best is None:
        console.print("no trained candidate yet")
        return
    console.print(f"\n[bold]best: {best.rel}[/] (fitness {best.fitness:.4g}) — {best.dir / 'reward.py'}")
    console.print(Syntax(best.source, "python", line_numbers=True))
    v = best.verdict or {}
    console.print(f"critic: {v.get('message', '')}" + (f"; warnings: {'; '.join(v['warnings'])}" if v.get("warnings") else ""), markup=False)
    if best.review:
        r = best.review
        console.print(f"review: {'accept' if r['accept'] else 'reject' if r['accept'] is False else 'no verdict'} — {r['reason']}", markup=False)
    if (best.dir / "analysis.md").exists():
        console.print((best.dir / "analysis.md").read_text(), markup=False, highlight=False)
    elif best.metrics:  # `eval` runs are not analyzed: the same numbers, without the LLM's summary
        from autoreward.analyzer import format_numbers, numbers

        console.print(format_numbers(numbers(best.metrics)), markup=False, highlight=False)


def _fmt(x: Optional[float]) -> str:
    return "not trained" if x is None else f"{x:.4g}"


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A run directory under runs/."),
    output: Path = typer.Option(..., "-o", "--output", help="The module to write, e.g. my_reward.py."),
    cand: Optional[str] = typer.Option(None, "--candidate", help="Export this candidate instead of the best, e.g. iter0/cand1."),
) -> None:
    """Write the best reward as one standalone module (gymnasium + numpy): state extraction,
    compute_reward and a gymnasium.Wrapper."""
    from autoreward import api

    path = api.export(run_dir, output, cand)
    console.print(f"written: {path}  (import {path.stem}; env = {path.stem}.make_env())")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory under runs/."),
    no_videos: bool = typer.Option(False, "--no-videos", help="Skip the policy videos (each is a sandboxed replay)."),
    video_seconds: float = typer.Option(20.0, "--video-seconds", help="Longest video, in seconds of the episode."),
) -> None:
    """Write report.html into RUN_DIR: fitness, learning curves, components, hacking flags, each
    candidate's code, verdict and analysis, feedback, and videos of the policies."""
    from autoreward import api

    path = api.report(run_dir, videos=not no_videos, video_seconds=video_seconds, log=lambda s: console.print(s, markup=False, highlight=False))
    console.print(f"written: {path}  (open file://{path.resolve()})", markup=False, highlight=False)


# ---------------------------------------------------------------------------------------------
# The reward library

LibraryOpt = typer.Option(None, "--library", help="Library folder (default: AUTOREWARD_LIBRARY, else the user data dir).")


def _library(path: Optional[Path]) -> Any:
    from autoreward.library import Library

    return Library(path)


@library_app.command("list")
def library_list(env: Optional[str] = typer.Option(None, "--env", help="Only this env's entries."), library: Optional[Path] = LibraryOpt) -> None:
    """Every entry: id, env, task, measured fitness, where it came from."""
    lib = _library(library)
    entries = [e for e in lib.entries() if env is None or e.env == env]
    table = Table("id", "env", "task", "fitness", "source", "date", title=f"reward library: {lib.root}")
    for e in entries:
        fit = e.fitness.line() if e.fitness else "not measured"
        table.add_row(e.id, e.env, e.preset or e.task[:60], fit + ("" if e.verified else " [not shown: learned too little (library.learned)]"), e.source, e.date)
    console.print(table)
    for path in lib.damaged:
        err.print(f"warning: skipped {path}: not a library entry (fix or delete it)", highlight=False, markup=False)


@library_app.command("show")
def library_show(entry_id: str = typer.Argument(..., metavar="ID", help="An entry id (or its first characters)."), library: Optional[Path] = LibraryOpt) -> None:
    """One entry: what it was verified on, then its code."""
    e = _library(library).get(entry_id)
    console.print(f"id: {e.id}\nenv: {e.env}\npreset: {e.preset or '-'}\ntask: {e.task}", markup=False, highlight=False)
    console.print(f"fitness: {e.fitness.line() + ' — ' + e.fitness.name if e.fitness else 'not measured'}", markup=False, highlight=False)
    console.print(f"verdict: {e.verdict or '-'}\nsource: {e.source}\ndate: {e.date}\n", markup=False, highlight=False)
    sys.stdout.write(e.code if e.code.endswith("\n") else e.code + "\n")


@library_app.command("add")
def library_add(
    reward: Path = typer.Argument(..., metavar="FILE", help="A reward program defining compute_reward."),
    env: str = typer.Option(..., "--env", help="Env id the reward reads state from."),
    task: str = typer.Option(..., "--task", help="A preset name of the env, or the task in words."),
    fitness: Optional[float] = typer.Option(None, "--fitness", help="The task fitness a policy trained with it reached."),
    untrained: Optional[float] = typer.Option(None, "--untrained", help="The untrained policy's fitness, for comparison."),
    cards: Optional[Path] = CardsOpt,
    library: Optional[Path] = LibraryOpt,
) -> None:
    """Add a reward you vouch for (it must pass the static policy)."""
    from autoreward.library import from_file

    lib = _library(library)
    e = lib.add(from_file(reward, env, task, fitness=fitness, untrained=untrained, cards=_cards(cards)))
    console.print(f"added {e.id} ({e.env}: {e.task}) to {lib.root}", markup=False, highlight=False)


@library_app.command("remove")
def library_remove(entry_id: str = typer.Argument(..., metavar="ID", help="An entry id (or its first characters)."), library: Optional[Path] = LibraryOpt) -> None:
    """Remove an entry (a shipped one is hidden; its file under examples/ stays; a stored copy
    of a shipped one goes first, and the shipped one shows again)."""
    lib = _library(library)
    e, hidden = lib.remove(entry_id)
    back = not hidden and any(x.id == e.id for x in lib.entries())
    note = " (shipped: hidden)" if hidden else " (the shipped example shows again; remove it again to hide it)" if back else ""
    console.print(f"removed {e.id} ({e.env}: {e.task}){note}", markup=False, highlight=False)


def main() -> None:
    """Entry point: one line for user mistakes, a traceback only for our own bugs."""
    try:
        app()
    except AutorewardError as exc:
        prefix = "" if isinstance(exc, Interrupted) else "error: "  # an interrupt is the user's choice, not an error
        err.print(f"{prefix}{exc.one_line()}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; finished steps are saved in the run directory")
        sys.exit(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    main()
