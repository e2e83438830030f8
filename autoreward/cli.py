"""The command line only: parse, call the library, print. No logic a test cannot reach without it.

User mistakes arrive here as ``AutorewardError`` and leave as one line on stderr with a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
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
console = Console(soft_wrap=True)
err = Console(stderr=True)

CardsOpt = typer.Option(None, "--cards", help="Extra directory of env cards (also AUTOREWARD_CARDS).")


def _cards(cards: Optional[Path]) -> list[Path]:
    return [cards] if cards else []


@envs_app.callback()
def envs_list(ctx: typer.Context, cards: Optional[Path] = CardsOpt) -> None:
    """List env cards and their preset tasks."""
    if ctx.invoked_subcommand:
        return
    from autoreward.envcards import all_cards

    table = Table("env", "algo", "state fields", "presets (success threshold)")
    for cid, card in sorted(all_cards(_cards(cards)).items()):
        presets = ", ".join(f"{n} (≥{t.success:g}{' ' + t.unit if t.unit else ''})" for n, t in card.tasks.items())
        table.add_row(cid, card.training.algo, str(len(card.state)), presets)
    console.print(table)


@envs_app.command("show")
def envs_show(env: str = typer.Argument(..., help="Env id, e.g. HalfCheetah-v5."), cards: Optional[Path] = CardsOpt) -> None:
    """Print exactly the text the LLM gets about ENV, then its presets."""
    from autoreward.envcards import load_card, render_card

    card = load_card(env, _cards(cards))
    sys.stdout.write(render_card(card))
    sys.stdout.write("\nPreset tasks:\n")
    for name, t in card.tasks.items():
        sys.stdout.write(f"- {name}: {t.description} Fitness: {t.fitness_doc or t.fitness} Success: >= {t.success:g}{' ' + t.unit if t.unit else ''}.\n")


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    """``--set key=value`` hyperparameter overrides; values are parsed as YAML scalars."""
    import yaml

    out: dict[str, Any] = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"--set {s!r} is not key=value", "e.g. --set learning_rate=3e-4")
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
    from autoreward.envcards import load_card
    from autoreward.program import RewardProgram
    from autoreward.rundir import new_run_dir, record_run, write_text
    from autoreward.critic import check_program, record_rollouts

    program = RewardProgram.from_file(reward)
    card = load_card(env, _cards(cards))
    card.task(task)
    run = new_run_dir(out, card.id, f"check-{task}")
    record_run(run, {"command": "check", "reward": str(reward), "env": card.id, "task": task})
    write_text(run / "candidate" / "reward.py", program.source)
    with console.status("checking (dry run and behaviour probe in the sandbox)..."):
        rec = record_rollouts(card, run / "recordings" / "probe_seed0.npz")
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
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run directory."),
    cards: Optional[Path] = CardsOpt,
) -> None:
    """Check, then train a policy with a given reward and report task fitness."""
    from autoreward.critic import check_program, record_rollouts
    from autoreward.envcards import load_card
    from autoreward.program import RewardProgram
    from autoreward.rundir import new_run_dir, record_run, write_text
    from autoreward.train.trainer import TrainSpec, train_candidate

    if algo and algo not in ("ppo", "sac"):
        raise ConfigError(f"unknown --algo {algo!r}", "use ppo or sac")
    program = RewardProgram.from_file(reward)
    card = load_card(env, _cards(cards))
    t = card.task(task)
    hp = _parse_sets(sets)
    from autoreward.train.trainer import validate_hyperparams

    validate_hyperparams(algo or card.training.algo, hp)
    run = new_run_dir(out, card.id, task)
    cand = run / "candidate"
    spec = TrainSpec(
        card_path=card.path, task=task, fitness=t.fitness, success=t.success, source=program.source, steps=steps,
        algo=algo or card.training.algo, seed=seed, hyperparams=hp, max_episode_steps=max_episode_steps,
        eval_episodes=eval_episodes, device=device,
    )
    record_run(run, {"command": "eval", "reward": str(reward), "spec": {**spec.__dict__, "source": None}})
    write_text(cand / "reward.py", program.source)
    console.print(f"run directory: {run}")
    with console.status("checking..."):
        rec = record_rollouts(card, run / "recordings" / "probe_seed0.npz")
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

    from autoreward.train.trainer import train_candidate

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
    from autoreward import bench as bench_mod

    suites = bench_mod.SUITES
    if suite not in suites:
        raise ConfigError(f"unknown --suite {suite!r}", f"choose one of: {', '.join(suites)}")
    results = suites[suite](console)
    from autoreward.rundir import write_json

    write_json(out, results)
    console.print_json(json.dumps({k: v for k, v in results.items() if not isinstance(v, (dict, list))}))
    console.print(f"written: {out}")


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
