"""The reward library: storage, seeds, retrieval (same card, then BM25), leave-one-out, the loop's
use of it (a scripted run whose first prompt shows an entry and whose best is added), the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

from autoreward.errors import ConfigError
from autoreward.library import (
    Entry,
    Exclude,
    Fitness,
    Library,
    entry_id,
    fields_read,
    learned,
    not_verified,
    parse_header,
    shipped_entries,
)
from autoreward.llm import read_log

REPO = Path(__file__).parents[1]
GOOD = (REPO / "examples" / "halfcheetah_backwards.py").read_text()
CHEETAH_FIELDS = ["dt", "x_position", "pitch", "x_velocity", "torso_height"]


def reward(*fields: str, marker: str = "") -> str:
    """A minimal reward program reading ``fields`` of the state (and a marker to find it by)."""
    terms = " + ".join(f"float(np.sum(state.{f}))" for f in fields) or "0.0"
    return f"import numpy as np\n\ndef compute_reward(prev, action, state, memory):\n    # {marker}\n    total = {terms}\n    return total, {{'t': total}}\n"


def entry(env: str, task: str, code: str, fitness: float | None = 1.0, untrained: float | None = 0.0, preset: str | None = None,
          source: str = "file:x.py") -> Entry:
    fit = None if fitness is None else Fitness(name="f", value=fitness, untrained=untrained)
    return Entry(id=entry_id(env, code), env=env, preset=preset, task=task, code=code, fitness=fit, source=source, date="2026-11-01")


@pytest.fixture
def lib(tmp_path) -> Library:
    """A library without shipped seeds: a cheetah task far from the query, a cheetah task close
    to it, two other cards' tasks close to it (one reads a field the cheetah lacks), an
    unrelated Crafter task and a cheetah reward whose policy learned nothing."""
    lib = Library(tmp_path / "lib", seeds=())
    for e in [
        entry("HalfCheetah-v5", "jump as high as it can", reward("z_velocity", marker="cheetah-jump")),
        entry("HalfCheetah-v5", "run backwards quickly", reward("x_velocity", marker="cheetah-back")),
        entry("Walker2d-v5", "walk forward steadily", reward("x_velocity", marker="walker-forward")),
        entry("Hopper-v5", "run backwards as fast as possible without falling", reward("x_velocity", "pitch", marker="hopper-back")),
        entry("Walker2d-v5", "run backwards while staying healthy", reward("x_velocity", "is_healthy", marker="walker-healthy")),
        entry("Crafter-v1", "collect wood from trees", reward("dist_tree", marker="crafter-wood")),
        entry("Ant-v5", "run backwards", reward("x_velocity", marker="ant-useless"), fitness=-1.0, untrained=0.0),
        entry("Swimmer-v5", "swim in circles", reward("x_velocity", marker="swimmer")),
    ]:
        lib.add(e)
    return lib


def markers(entries: list[Entry]) -> list[str]:
    return [e.code.split("# ")[1].split("\n")[0] for e in entries]


def test_same_card_first_then_bm25_order_among_the_others(lib):
    got = lib.relevant("HalfCheetah-v5", "run backwards as fast as possible", k=10, fields=CHEETAH_FIELDS)
    # the card's own entries first, the closer task first (even the one sharing no word);
    # then other cards by BM25: the Hopper task shares four words; left out: the healthy walker
    # reads is_healthy (the cheetah has no such field), the forward walker, Crafter and Swimmer
    # share no word with the task, the Ant reward did worse than the untrained policy
    assert markers(got) == ["cheetah-back", "cheetah-jump", "hopper-back"]
    assert markers(lib.relevant("HalfCheetah-v5", "run backwards as fast as possible", k=2, fields=CHEETAH_FIELDS)) == ["cheetah-back", "cheetah-jump"]
    # without the field filter the healthy walker is shown, ranked by BM25 below the Hopper task
    unfiltered = markers(lib.relevant("HalfCheetah-v5", "run backwards as fast as possible", k=10))
    assert unfiltered[:3] == ["cheetah-back", "cheetah-jump", "hopper-back"] and unfiltered[3] == "walker-healthy"
    # on a card with no entry of its own, BM25 decides alone
    assert markers(lib.relevant("Humanoid-v5", "collect wood", k=3)) == ["crafter-wood"]
    assert lib.relevant("HalfCheetah-v5", "anything", k=0) == []


def test_leave_one_out_excludes_by_env_preset_task_and_source(lib):
    own = entry("HalfCheetah-v5", "Make the half-cheetah run backwards", reward("x_velocity", marker="own-expert"), preset="run_backwards",
                source="shipped:experts/halfcheetah_run_backwards.py")
    winner = entry("HalfCheetah-v5", "make the half-cheetah  RUN backwards", reward("x_velocity", "pitch", marker="earlier-winner"),
                   source="run:/runs/x/iter0/cand1")
    lib.add(own), lib.add(winner)
    task = "make the half-cheetah run backwards"
    assert {"own-expert", "earlier-winner"} <= set(markers(lib.relevant("HalfCheetah-v5", task, k=10)))
    leave_out = [Exclude(env="HalfCheetah-v5", preset="run_backwards"), Exclude(env="HalfCheetah-v5", task=task)]
    got = markers(lib.relevant("HalfCheetah-v5", task, k=10, exclude=leave_out))
    assert "own-expert" not in got and "earlier-winner" not in got  # task matched ignoring case and spacing
    assert "cheetah-back" in got  # other tasks of the card stay
    assert "own-expert" not in markers(lib.relevant("HalfCheetah-v5", task, k=10, exclude=[Exclude(source="experts/")]))
    assert "cheetah-jump" not in markers(lib.relevant("HalfCheetah-v5", task, k=10, exclude=[Exclude(id=entry_id("HalfCheetah-v5", reward("z_velocity", marker="cheetah-jump"))[:5])]))
    # a rule matches only when every field it sets matches: the preset on another env does not
    assert "own-expert" in markers(lib.relevant("HalfCheetah-v5", task, k=10, exclude=[Exclude(env="Hopper-v5", preset="run_backwards")]))
    with pytest.raises(ValidationError, match="at least one"):
        Exclude()
    from autoreward.loop import RunConfig

    cfg = RunConfig(task="t", env="HalfCheetah-v5", library_exclude=[{"env": "HalfCheetah-v5", "preset": "run_backwards"}])
    assert cfg.library_exclude[0].matches(own) and not cfg.library_exclude[0].matches(winner)


def test_store_replaces_by_content_hides_shipped_and_skips_damaged_files(tmp_path):
    seeds = tmp_path / "examples"
    (seeds / "experts" / "sparse").mkdir(parents=True)
    (seeds / "experts" / "cheetah_back.py").write_text('"""Expert.\n\nenv: HalfCheetah-v5\ntask: run_backwards\nfitness: 2.5\nuntrained: -0.1\n"""\n' + reward("x_velocity"))
    (seeds / "experts" / "sparse" / "cheetah_back.py").write_text('"""env: HalfCheetah-v5\ntask: run_backwards\n"""\n' + reward("pitch"))
    (seeds / "no_header.py").write_text(reward("pitch"))
    (seeds / "free_form.py").write_text('"""env: Hopper-v5\ntask: hop in place\n"""\n' + reward("x_velocity"))
    (seeds / "unknown_env.py").write_text('"""env: Nope-v1\ntask: x\n"""\n' + reward("x_velocity"))
    found = {e.source: e for e in shipped_entries(seeds)}
    assert set(found) == {"shipped:experts/cheetah_back.py", "shipped:free_form.py"}  # sparse/, headerless and unknown env skipped
    expert = found["shipped:experts/cheetah_back.py"]
    assert expert.preset == "run_backwards" and expert.task.startswith("Make the half-cheetah run backwards")  # the preset's words
    assert expert.fitness is not None and expert.fitness.value == 2.5 and expert.fitness.untrained == -0.1 and expert.fitness.success == 3.0
    assert found["shipped:free_form.py"].preset is None and found["shipped:free_form.py"].task == "hop in place"
    assert parse_header("x = (") == {}

    lib = Library(tmp_path / "lib", seeds=[seeds])
    lib.add(entry("Hopper-v5", "hop", reward("x_velocity", marker="m"), fitness=1.0))
    lib.add(entry("Hopper-v5", "hop", reward("x_velocity", marker="m"), fitness=2.0))  # same code: replaced
    assert [e.fitness.value for e in lib.stored()] == [2.0]
    assert len(lib.entries()) == 3
    assert lib.get(expert.id[:4]).source == expert.source  # a unique prefix is enough
    lib.remove(expert.id)  # shipped: hidden, the file stays
    assert expert.id not in [e.id for e in lib.entries()] and (seeds / "experts" / "cheetah_back.py").exists()
    lib.add(expert)  # adding it again brings it back
    assert expert.id in [e.id for e in Library(tmp_path / "lib", seeds=[seeds]).entries()]
    # a run whose best was the shipped code stores it under the same id, measured its way; removing
    # that shows the shipped one again (it once hid it), and only a second remove hides it
    lib.add(expert.model_copy(update={"source": "run:/somewhere", "fitness": None}))
    assert lib.get(expert.id).source == "run:/somewhere"
    assert lib.remove(expert.id)[1] is False and lib.get(expert.id).source == expert.source
    assert lib.remove(expert.id)[1] is True and expert.id not in [e.id for e in lib.entries()]
    lib.add(expert)
    with pytest.raises(ConfigError, match="no library entry"):
        lib.get("zzzz")
    (lib.root / "entries" / "broken.json").write_text("{not json")
    assert len(lib.entries()) == 3 and lib.damaged == [str(lib.root / "entries" / "broken.json")]


def test_only_a_best_that_beat_the_untrained_policy_and_was_not_caught_hacking_is_verified():
    def entry(value: float, untrained: float | None) -> Entry:
        return Entry(id="e", env="HalfCheetah-v5", task="run backwards", code=GOOD,
                     fitness=Fitness(name="f", value=value, untrained=untrained), source="file:x.py", date="2026-11-24")

    assert not_verified(entry(1.2, -0.1), []) == "" and not_verified(entry(1.2, None), ["no progress: ..."]) == ""
    assert not_verified(entry(0.1, 0.1), []) == "its policy's fitness 0.1 is no better than the untrained policy's 0.1"
    assert not_verified(entry(-0.3, 0.02), []).startswith("its policy's fitness -0.3 is no better")
    # issue 25: beating the untrained policy by noise is no admission; a tenth of the way to success is
    noise = entry(-6e-5, -3e-4).model_copy(update={"fitness": Fitness(name="f", value=-6e-5, untrained=-3e-4, success=3.0)})
    assert "by too little" in not_verified(noise, []) and "10% of the way to the success threshold 3" in not_verified(noise, [])
    assert not noise.verified
    enough = noise.model_copy(update={"fitness": Fitness(name="f", value=0.31, untrained=-3e-4, success=3.0)})
    assert not_verified(enough, []) == "" and enough.verified
    flag = "reward hacking: the reward rose while the task fitness fell"
    assert not_verified(entry(1.2, -0.1), ["component x is negligible", flag]) == f"the analyzer flagged it ({flag})"


def test_fields_read_ignores_modules_memory_action_and_method_calls():
    code = (REPO / "examples" / "crafter" / "collect_wood_reward.py").read_text()
    assert {"achievement_counts", "dist_tree", "facing_block", "pos"} <= fields_read(code)
    assert not {"setdefault", "add", "values", "square", "sum"} & fields_read(code)
    assert fields_read(GOOD) == {"x_velocity", "pitch"}


def test_the_shipped_examples_are_seeds():
    shipped = {e.source: e for e in Library(Path("/nonexistent"), seeds=None).entries()}
    cheetah = shipped["shipped:halfcheetah_backwards.py"]
    assert cheetah.env == "HalfCheetah-v5" and cheetah.preset == "run_backwards" and cheetah.code == GOOD
    assert {"shipped:crafter/collect_wood_reward.py", "shipped:metaworld/reach_reward.py"} <= set(shipped)
    # a measured header is read, and every measured shipped example beat its untrained policy (as a run's best must)
    assert cheetah.fitness is not None and cheetah.fitness.value > 0 and cheetah.fitness.unit == "m/s"
    measured = [e for e in shipped.values() if e.fitness is not None]
    assert len(measured) >= 5 and all(not_verified(e, []) == "" for e in measured)


# ---------------------------------------------------------------------------------------------
# The loop: the first prompt shows the library, the best is added


FAST = ["--steps", "1024", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]
MARKED = reward("x_velocity", marker="library-example-7f3a").replace("float(np.sum(state.x_velocity))", "-float(state.x_velocity)")


def run_cli(tmp_path: Path, answer: str, *extra: str, rc: int = 0) -> tuple[subprocess.CompletedProcess, Path]:
    script = tmp_path / "s.yaml"
    rules = [{"match": "Measured numbers:", "response": "It moved backwards."}]
    script.write_text(yaml.safe_dump(rules + [answer]))
    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards",
         "--model", f"scripted:{script}", "--iterations", "1", "--samples", "1", "--review", "off", *extra, "--out", "runs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900, check=False,
    )
    assert r.returncode == rc, r.stdout + r.stderr
    return r, next((tmp_path / "runs").iterdir())


def first_prompt(run: Path) -> str:
    rec = next(e for e in read_log(run) if e.get("template") == "designer_initial.j2")
    return "\n".join(m["content"] for m in rec["messages"])


@pytest.mark.slow
def test_a_run_shows_the_library_to_the_designer_and_adds_its_best(tmp_path):
    lib = Library(tmp_path / "lib")
    marked = lib.add(Entry(id=entry_id("HalfCheetah-v5", MARKED), env="HalfCheetah-v5", preset="run_backwards", task="run backwards",
                           code=MARKED, fitness=Fitness(name="run_backwards", value=1.234, untrained=-0.01, success=3.0, unit="m/s"),
                           source="file:marked.py", date="2026-11-01"))
    r, run = run_cli(tmp_path, f"```python\n{GOOD.replace('-0.1 *', '-0.2 *')}```", *FAST, "--library", str(lib.root))
    prompt = first_prompt(run)
    assert "library-example-7f3a" in prompt and "Measured fitness of a policy trained with it: 1.23 m/s (untrained policy: -0.01)" in prompt
    snap = json.loads((run / "library.json").read_text())  # experts for this preset may join the shipped one: only the first is sure
    assert snap["examples"][0]["id"] == marked.id and len(snap["examples"]) == 2 and all(e["same_env"] for e in snap["examples"])

    result = json.loads((run / "result.json").read_text())
    metrics = json.loads((run / "iter0/cand0/metrics.json").read_text())
    from autoreward.api import saved_config
    from autoreward.loop import Loop
    from autoreward.rundir import Run

    def add_again(untrained: float, library: Path) -> tuple[Loop, str]:
        """The same run's best offered to ``library`` again, with the untrained policy's fitness set."""
        metrics["untrained"]["fitness_mean"] = untrained
        (run / "iter0/cand0/metrics.json").write_text(json.dumps(metrics))
        out = io.StringIO()
        # run() settles the preset's threshold before anything else; a Loop that only adds to the library is told it
        cfg = saved_config(Run.load(run)).model_copy(update={"library_dir": str(library), "success": 3.0})
        loop = Loop(run, cfg, console=Console(file=out, width=300))
        loop.add_to_library()
        return loop, out.getvalue()

    said = r.stdout
    # 1,024 PPO steps may or may not learn: the run adds its best only if its policy covered a tenth of
    # the way from the untrained policy's fitness to the 3 m/s threshold (library.learned)
    fit = Fitness(name="f", value=metrics["fitness"], untrained=metrics["untrained"]["fitness_mean"], success=3.0)
    if not learned(fit):
        assert result["library_added"] is None and not_verified(Entry(id="e", env="HalfCheetah-v5", task="t", code="", fitness=fit, source="x",
                                                                       date="2026-12-08"), []) in result["library_skipped"]
        assert "library: the best reward was not added: its policy's fitness" in said
        # the same run, had its training paid (the untrained policy's fitness moved 0.5 m/s below the trained one's)
        loop, said = add_again(metrics["fitness"] - 0.5, lib.root)
        result = loop.result()
        assert "library_skipped" not in result
    else:  # and the opposite: had the untrained policy scored more, the run's best would stay out
        saved = metrics["untrained"]["fitness_mean"]
        loop, out = add_again(metrics["fitness"] + 0.5, tmp_path / "other")
        assert Library(tmp_path / "other").stored() == [] and "no better than the untrained policy" in loop.state["library_skipped"]
        assert "library: the best reward was not added" in out
        metrics["untrained"]["fitness_mean"] = saved  # as the run measured it, for the checks below
        (run / "iter0/cand0/metrics.json").write_text(json.dumps(metrics))
    added = Library(tmp_path / "lib").get(result["library_added"])
    assert added.source == f"run:{(run / 'iter0/cand0').resolve()}" and added.code == (run / "iter0/cand0/reward.py").read_text()
    assert (added.env, added.preset, added.task) == ("HalfCheetah-v5", "run_backwards", "run backwards")
    assert added.fitness is not None and added.fitness.value == metrics["fitness"] and added.fitness.untrained == metrics["untrained"]["fitness_mean"]
    assert added.fitness.success == 3.0 and added.fitness.unit == "m/s" and "critic: accepted after 0 repair(s)" in added.verdict
    assert f"library: added the best reward as {added.id}" in said

    # a resumed run shows the designer the same entries, whatever was added since
    import datetime as dt

    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()  # newer than the entry the run added today, whatever today is
    lib.add(Entry(id="0" * 8, env="HalfCheetah-v5", preset="run_backwards", task="run backwards", code=MARKED + "\n# newer\n",
                  fitness=Fitness(name="run_backwards", value=2.0), source="file:newer.py", date=tomorrow))
    assert lib.relevant("HalfCheetah-v5", "run backwards", k=2, preset="run_backwards")[0].id == "0" * 8
    loop = Loop(run, saved_config(Run.load(run)))
    assert [e["id"] for e in loop.library_examples()] == [e["id"] for e in snap["examples"]]


def test_no_library_neither_shows_nor_adds(tmp_path):
    """A rejected sample (no code, no repairs) ends the run without training: fast."""
    (tmp_path / "c.yaml").write_text("max_repairs: 0\n")
    lib = Library(tmp_path / "lib")
    _, run = run_cli(tmp_path, "I cannot write code.", "--config", "c.yaml", "--library", str(lib.root), "--no-library", rc=1)  # nothing trained: exit 1
    assert "Verified rewards" not in first_prompt(run) and not (run / "library.json").exists()
    assert json.loads((run / "run.json").read_text())["config"]["library"] is False
    assert lib.stored() == []


# ---------------------------------------------------------------------------------------------
# The command line


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", "library", *args], check=False, capture_output=True, text=True, timeout=120)


def test_cli_add_list_show_remove_and_one_line_errors(tmp_path):
    lib = ["--library", str(tmp_path / "lib")]
    r = cli("add", str(REPO / "examples" / "halfcheetah_backwards.py"), "--env", "HalfCheetah-v5", "--task", "run_backwards",
            "--fitness", "1.5", "--untrained", "-0.2", *lib)
    assert r.returncode == 0, r.stderr
    eid = entry_id("HalfCheetah-v5", GOOD)
    assert f"added {eid}" in r.stdout
    r = cli("list", "--env", "HalfCheetah-v5", *lib)
    assert eid in r.stdout and "1.5 m/s" in r.stdout and "run_backwards" in r.stdout
    r = cli("show", eid[:5], *lib)
    assert r.returncode == 0 and "task: Make the half-cheetah run backwards" in r.stdout and "def compute_reward" in r.stdout
    r = cli("remove", eid, *lib)
    # it is also a shipped example: the stored copy (with the user's measured fitness) goes first, then the shipped one is hidden
    assert r.returncode == 0 and f"removed {eid}" in r.stdout and "(the shipped example shows again; remove it again to hide it)" in r.stdout
    r = cli("remove", eid, *lib)
    assert r.returncode == 0 and f"removed {eid}" in r.stdout and "(shipped: hidden)" in r.stdout
    assert eid not in cli("list", *lib).stdout

    (tmp_path / "no_fn.py").write_text("x = 1\n")
    for args, msg in [
        (("show", "ffffffff"), "no library entry 'ffffffff'"),
        (("remove", "ffffffff"), "no library entry 'ffffffff'"),
        (("add", str(tmp_path / "missing.py"), "--env", "HalfCheetah-v5", "--task", "t"), "does not exist"),
        (("add", str(tmp_path / "no_fn.py"), "--env", "HalfCheetah-v5", "--task", "t"), "no top-level function named compute_reward"),
        (("add", str(REPO / "examples" / "halfcheetah_backwards.py"), "--env", "Nope-v0", "--task", "t"), "no env card for 'Nope-v0'"),
    ]:
        r = cli(*args, *lib)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")


def test_the_library_bench_suite_compares_prompts_leave_one_out(tmp_path, monkeypatch):
    """`autoreward bench --suite library` on one task, one scripted sample per mode: both modes are
    judged by the critic, and the library mode never shows the task's own preset."""
    from rich.console import Console

    from autoreward.bench.library import run

    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump([f"```python\n{GOOD}```"]))
    monkeypatch.setenv("AUTOREWARD_BENCH_MODEL", f"scripted:{script}")
    monkeypatch.setenv("AUTOREWARD_BENCH_LIBRARY_SAMPLES", "1")
    monkeypatch.setenv("AUTOREWARD_BENCH_LIBRARY_TASKS", "0")  # HalfCheetah-v5 run_backwards
    with open(tmp_path / "log.txt", "w") as log:
        out = run(Console(file=log))
    by_mode = {r["mode"]: r for r in out["rows"]}
    assert set(by_mode) == {"no-library", "library"} and all(r["accepted"] and r["spearman"] > 0.5 for r in out["rows"])
    assert by_mode["no-library"]["shown"] == [] and len(by_mode["library"]["shown"]) == 2
    assert not any("run_backwards" in s for s in by_mode["library"]["shown"])  # leave-one-out
    assert out["library_accepted_rate"] == out["no-library_accepted_rate"] == 1.0


@pytest.fixture(scope="module")
def library_seen_by_a_module_fixture() -> str:
    import os

    return os.environ.get("AUTOREWARD_LIBRARY", "")


def test_module_fixtures_never_reach_the_users_library(library_seen_by_a_module_fixture):
    """Module-scoped fixtures run before the function-scoped library_dir: one of them (a scripted
    run in test_bugs_15) added its best reward to the user's own library."""
    from platformdirs import user_data_dir

    assert library_seen_by_a_module_fixture, "AUTOREWARD_LIBRARY is unset: a run here would write to the user's library"
    assert not Path(library_seen_by_a_module_fixture).is_relative_to(user_data_dir("autoreward", appauthor=False))
