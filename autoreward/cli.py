"""The command line only: parse, call the library, print. No logic a test cannot reach without it.

User mistakes arrive here as ``AutorewardError`` and leave as one line on stderr with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from autoreward.errors import AutorewardError, ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a sentence into a working, checked, trained reward function.",
)
envs_app = typer.Typer(help="List env cards and show what the LLM is told about an env.", invoke_without_command=True)
app.add_typer(envs_app, name="envs")
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

CardsOpt = typer.Option(None, "--cards", help="Extra directory of env cards (also AUTOREWARD_CARDS).")
PolicyOpt = typer.Option("", "--policy", help="SB3 policy: MlpPolicy, CnnPolicy or MultiInputPolicy (default: the card's).")
EnvKwargOpt = typer.Option(
    [], "--env-kwarg", help="Env constructor argument key=value over the preset's (repeatable), e.g. obs_mode=pixels on Crafter-v1."
)


def _env_kwargs(card: Any, raw: list[str], preset_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Parse ``--env-kwarg`` and build the env once with them, so a wrong name or value fails
    here with the constructor's own message instead of inside a training worker."""
    extra = _parse_sets(raw, "--env-kwarg", "obs_mode=pixels")
    if extra:
        try:
            card.make_env(**{**preset_kwargs, **extra}).close()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--env-kwarg: {card.id} does not accept {extra}: {exc}", "see the env's constructor arguments") from exc
    return extra


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
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
) -> None:
    """Check a reward program without an LLM: static policy, dry run, behaviour probe.

    Exit 0 if accepted, 1 if rejected."""
    from autoreward.cards import load_card
    from autoreward.critic import check_program, record_rollouts
    from autoreward.program import RewardProgram
    from autoreward.rundir import new_run_dir, record_run, write_text

    program = RewardProgram.from_file(reward)
    card = load_card(env, _cards(cards))
    card.task(task)
    run = new_run_dir(out, card.id, f"check-{task}")
    record_run(run, "check", {"reward": str(reward), "env": card.id, "task": task})
    write_text(run / "candidate" / "reward.py", program.source)
    with console.status("checking (dry run and behaviour probe in the sandbox)..."):
        rec = record_rollouts(card, run / "recordings" / "probe_seed0.npz", make_kwargs=card.task(task).make_kwargs)
        verdict = check_program(program, card, task, run / "candidate", rec)
    _print_verdict(verdict)
    console.print(f"verdict: {run / 'candidate' / 'critic.json'}")
    raise typer.Exit(0 if verdict.accepted else 1)


def _print_verdict(verdict: Any) -> None:
    for c in verdict.checks:
        mark = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
        console.print(f"{mark} {c.name}: {c.message}" if c.message else f"{mark} {c.name}", highlight=False, markup=True)
        d = c.details
        if c.name == "dry_run" and c.passed:
            comps = ", ".join(f"{k} mean {v['mean']:.3g} [{v['min']:.3g}, {v['max']:.3g}]" for k, v in d.get("components", {}).items())
            console.print(f"     total mean {d['total']['mean']:.3g} [{d['total']['min']:.3g}, {d['total']['max']:.3g}], {d['per_call_us']} µs/call; {comps}", highlight=False, markup=False)
        for w in c.warnings:
            console.print(f"     [yellow]warning[/]: {w}")
    console.print("[bold green]ACCEPTED[/]" if verdict.accepted else "[bold red]REJECTED[/]")


@app.command("eval")
def eval_cmd(
    reward: Path = typer.Argument(..., help="A Python file defining compute_reward(prev, action, state, memory)."),
    env: str = typer.Option(..., "--env", help="Env id, e.g. HalfCheetah-v5."),
    task: str = typer.Option("default", "--task", help="Preset task of the env card."),
    steps: int = typer.Option(50_000, "--steps", min=1, help="Environment steps to train."),
    algo: str = typer.Option("", "--algo", help="ppo or sac (default: the card's)."),
    seed: int = typer.Option(0, "--seed"),
    sets: list[str] = typer.Option([], "--set", help="Hyperparameter override key=value (repeatable)."),
    max_episode_steps: Optional[int] = typer.Option(None, "--max-episode-steps", help="Shorter episodes for quick runs."),
    eval_episodes: int = typer.Option(5, "--eval-episodes", min=1),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    skip_check: bool = typer.Option(False, "--skip-check", help="Train even if the critic rejects the reward."),
    policy: str = PolicyOpt,
    env_kwargs: list[str] = EnvKwargOpt,
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
) -> None:
    """Check, then train a policy with a given reward and report task fitness."""
    from autoreward.cards import load_card
    from autoreward.critic import check_program, record_rollouts
    from autoreward.program import RewardProgram
    from autoreward.rundir import new_run_dir, record_run, write_text
    from autoreward.train.algos import algorithm, validate_hyperparams, validate_policy
    from autoreward.train.run import TrainSpec

    if algo:
        algorithm(algo)
    program = RewardProgram.from_file(reward)
    card = load_card(env, _cards(cards))
    t = card.task(task)
    hp = _parse_sets(sets)
    validate_hyperparams(algo or card.training.algo, hp)
    validate_policy(policy)
    make_kwargs = {**t.make_kwargs, **_env_kwargs(card, env_kwargs, t.make_kwargs)}
    run = new_run_dir(out, card.id, task)
    cand = run / "candidate"
    spec = TrainSpec(
        card_path=card.path, task=task, fitness=t.fitness, success=t.success, source=program.source, steps=steps,
        algo=algo or card.training.algo, seed=seed, hyperparams=hp, max_episode_steps=max_episode_steps,
        eval_episodes=eval_episodes, device=device, make_kwargs=make_kwargs, policy=policy,
    )
    record_run(run, "eval", {"reward": str(reward), "env": card.id, "task": task, "spec": {**spec.__dict__, "source": None}})
    write_text(cand / "reward.py", program.source)
    console.print(f"run directory: {run}")
    with console.status("checking..."):
        rec = record_rollouts(card, run / "recordings" / "probe_seed0.npz", make_kwargs=make_kwargs)
        verdict = check_program(program, card, task, cand, rec)
    _print_verdict(verdict)
    if not verdict.accepted and not skip_check:
        console.print("not training a rejected reward (use --skip-check to train anyway)")
        raise typer.Exit(1)
    job = _train_with_progress(spec, cand)
    m = json.loads((cand / "metrics.json").read_text())
    if not job.ok:
        err.print(f"[red]training failed[/]: {job.error}", highlight=False)
        raise typer.Exit(1)
    u, f = m["untrained"], m["final"]
    table = Table("", "task fitness", "success rate", "env return")
    table.add_row("untrained", f"{u['fitness_mean']:.3f}", f"{u['success_rate']:.2f}", f"{u['env_return_mean']:.1f}")
    table.add_row(f"after {steps} steps", f"{f['fitness_mean']:.3f}", f"{f['success_rate']:.2f}", f"{f['env_return_mean']:.1f}")
    console.print(table)
    console.print(f"{m['steps_per_second']:.0f} steps/s on {m['device']}; {'solved' if m['solved'] else 'not solved'} (threshold {t.success:g}{' ' + t.unit if t.unit else ''})")
    console.print(f"metrics: {cand / 'metrics.json'}  policy: {cand / 'policy.zip'}")


def _train_with_progress(spec: Any, cand: Path) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from autoreward.train.run import train_candidate

    with Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fit]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    ) as progress:
        bar = progress.add_task("train", total=spec.steps, fit="")

        def on_event(e: dict[str, Any]) -> None:
            if e.get("event") == "progress":
                progress.update(bar, completed=e["step"])
            elif e.get("event") == "eval":
                progress.update(bar, fit=f"fitness {e['fitness']:.3g}")

        job = train_candidate(spec, cand, on_event=on_event)
        if job.ok:
            progress.update(bar, completed=spec.steps)
    return job


@app.command()
def bench(
    suite: str = typer.Option("quick", "--suite", help="quick or crafter."),
    out: Path = typer.Option(Path("bench.json"), "--out", help="Where to write the JSON results."),
) -> None:
    """Measure speed targets (ratios measured in one run, since these machines are noisy)."""
    from autoreward.bench import SUITES
    from autoreward.bench import suite as suite_fn
    from autoreward.rundir import write_json

    if suite not in SUITES:
        raise ConfigError(f"unknown --suite {suite!r}", f"choose one of: {', '.join(SUITES)}")
    results = suite_fn(suite)(console)

    write_json(out, results)
    console.print_json(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}))
    console.print(f"written: {out}")


# ---------------------------------------------------------------------------------------------
# The designer-critic-analyzer loop


@app.command()
def run(
    task: str = typer.Argument(..., help='The task in words, e.g. "make the half-cheetah run backwards".'),
    env: str = typer.Option(..., "--env", help="Env id, e.g. HalfCheetah-v5."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset whose fitness judges candidates (default: the designer proposes one)."),
    model: Optional[str] = typer.Option(None, "--model", help="local (default), scripted:FILE, openai/..., anthropic/..., ollama/..."),
    iterations: int = typer.Option(2, "--iterations", min=1),
    samples: int = typer.Option(2, "--samples", min=1, help="Reward programs asked for per iteration."),
    steps: int = typer.Option(20_000, "--steps", min=1, help="Training steps per candidate."),
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
    interactive: bool = typer.Option(False, "--interactive", help="Pause after each iteration for feedback."),
    policy: str = PolicyOpt,
    env_kwargs: list[str] = EnvKwargOpt,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
) -> None:
    """Design, check, train and refine reward programs for TASK on ENV."""
    from autoreward.cards import load_card
    from autoreward.loop import RunConfig
    from autoreward.rundir import new_run_dir, record_run
    from autoreward.train.algos import algorithm, validate_hyperparams, validate_policy

    card = load_card(env, _cards(cards))
    if preset:
        card.task(preset)
    if (fitness is None) != (success is None):
        raise ConfigError("--fitness and --success go together")
    if algo:
        algorithm(algo)
    if review not in ("veto", "advise", "off"):
        raise ConfigError(f"unknown --review {review!r}", "use veto, advise or off")
    hp = _parse_sets(sets)
    validate_hyperparams(algo or card.training.algo, hp)
    validate_policy(policy)
    extra_kwargs = _env_kwargs(card, env_kwargs, card.task(preset).make_kwargs if preset else {})
    cfg = RunConfig(
        task=task, env=card.id, preset=preset, model=model, iterations=iterations, samples=samples, steps=steps, algo=algo,
        seed=seed, max_episode_steps=max_episode_steps, eval_episodes=eval_episodes, review="off" if no_review else review, hyperparams=hp,
        fitness=fitness, success=success, max_tokens=max_tokens, max_cost=max_cost, max_wall_s=max_wall,
        cards=[str(cards.resolve())] if cards else [], policy=policy, env_kwargs=extra_kwargs, device=device,
    )
    from autoreward.llm import get_client

    get_client(model)  # a missing key or unknown model fails here, before a run directory exists
    run_dir = new_run_dir(out, card.id, preset or task)
    record_run(run_dir, "run", cfg.model_dump(), interactive=interactive)
    console.print(f"run directory: {run_dir}")
    _run_loop(run_dir, cfg, interactive)


def _run_loop(run_dir: Path, cfg: Any, interactive: bool) -> None:
    from autoreward.loop import Loop

    loop = Loop(run_dir, cfg, console, hook=_interactive_hook if interactive else None)
    result = loop.run()
    _print_result(result)


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
        raise typer.Exit(1)
    console.print(f"best reward: {result['best_reward']}")
    console.print(f"best fitness: {result['best_fitness']:.4g} (untrained policy: {result['untrained_fitness']:.4g})")
    console.print(f"inspect: autoreward show {result['run_dir']}")


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
            flags = "duplicate, not trained"
        if cand.error:
            flags = cand.error[:80]
        if cand.status.get("review_objection"):
            flags = (flags + "; " if flags else "") + "reviewer objected: " + cand.status["review_objection"][:80]
        table.add_row(
            cand.rel, "accepted" if cand.accepted else "rejected", str(cand.status.get("repairs", 0)),
            f"{m['untrained']['fitness_mean']:.3g}" if m else "", f"{m['fitness']:.3g}" if m else "",
            f"{m['success_rate']:.2f}" if m else "", flags,
        )
    console.print(table)


@app.command()
def resume(run_dir: Path = typer.Argument(..., help="A run directory under runs/.")) -> None:
    """Continue a run killed at any point, without re-asking the LLM or retraining."""
    from autoreward.loop import RunConfig
    from autoreward.rundir import Run

    run = Run.load(run_dir)
    run.require_loop("resume")
    _run_loop(run.path, RunConfig(**run.config), bool(run.info.get("interactive")))


@app.command()
def refine(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    feedback: Optional[str] = typer.Option(None, "--feedback", help="Words for the designer."),
    edit: Optional[Path] = typer.Option(None, "--edit", help="Your edited reward file, checked and trained as a candidate."),
    prefer: Optional[str] = typer.Option(None, "--prefer", help="Candidate to refine instead of the best, e.g. iter0/cand1."),
    iterations: int = typer.Option(1, "--iterations", min=1, help="More iterations to run."),
) -> None:
    """Continue a finished run with feedback, an edited reward, or a preferred candidate."""
    from autoreward.loop import Loop, RunConfig
    from autoreward.program import RewardProgram
    from autoreward.rundir import Run

    if not (feedback or edit or prefer):
        raise ConfigError("refine needs --feedback, --edit or --prefer")
    run = Run.load(run_dir)
    run.require_loop("refine")
    source = RewardProgram.from_file(edit).source if edit else None
    loop = Loop(run.path, RunConfig(**run.config), console)
    if prefer:
        loop.apply({"action": "prefer", "candidate": prefer})
    loop.extend(iterations)
    if feedback:
        loop.apply({"action": "feedback", "text": feedback})
    if source:
        loop.apply({"action": "edit", "source": source})
    _print_result(loop.run())


@app.command()
def show(run_dir: Path = typer.Argument(..., help="A run directory under runs/.")) -> None:
    """The best reward with syntax highlighting, its verdict, analysis and every candidate."""
    from rich.syntax import Syntax

    from autoreward.rundir import Run

    run = Run.load(run_dir)
    console.print(f"[bold]{run.path.name}[/]: {run.config.get('task', '')} on {run.config.get('env', '')}")
    proposal = run.fitness_proposal
    if proposal:
        console.print(f"fitness (proposed, editable in {run.path / 'fitness.json'}): {proposal['fitness']}  success ≥ {proposal['success']}", markup=False)
    _candidates_table(run)
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


def main() -> None:
    """Entry point: one line for user mistakes, a traceback only for our own bugs."""
    try:
        app()
    except AutorewardError as exc:
        err.print(f"error: {exc.one_line()}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; finished steps are saved in the run directory")
        sys.exit(130)


if __name__ == "__main__":
    main()
