"""The reward-quality suite (autoreward/bench/quality.py): end to end on a tiny budget with a
scripted LLM server answering a known program, and its one-line errors."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    from tests.llm_servers import ScriptedLLMServer
except ImportError:  # pytest run from tests/
    from llm_servers import ScriptedLLMServer  # type: ignore[no-redef]

ROOT = Path(__file__).parents[1]
EXPERT = (ROOT / "examples" / "halfcheetah_backwards.py").read_text()
#: the known program the scripted designer hands back (not the expert: plain backward speed)
KNOWN = '''import numpy as np

def compute_reward(prev, action, state, memory):
    backward = (prev.x_position - state.x_position) / state.dt
    ctrl = -0.05 * float(np.sum(np.square(action)))
    return backward + ctrl, {"backward": backward, "ctrl": ctrl}
'''
TINY = {  # budgets under the suite's own entry: they override quality.yaml's defaults and the suite's
    "suites": {"quality-quick": {"iterations": 1, "samples": 1, "steps": 512, "seeds": [1000, 1001, 1002], "eval_episodes": 1, "parallel": 2,
                                 "workers": 1, "n_envs": 1, "hyperparams": {"n_steps": 256, "n_epochs": 1, "batch_size": 64}}},
    "tasks": {"halfcheetah_run_backwards": {"max_episode_steps": 100}},
}


def bench(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", "bench", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=900, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_quality_suite_end_to_end_hns_from_its_own_seeds(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    with ScriptedLLMServer(default=f"```python\n{KNOWN}```") as server:
        server.rule("Does this code reward the task as written?", "VERDICT: ACCEPT\nREASON: fine.")
        server.rule("Measured numbers:", "It ran backwards.")
        r = bench(tmp_path, "--suite", "quality-quick", "--tasks", "halfcheetah_run_backwards", "--model", "openai/test-model",
                  "--config", str(cfg), "--out", "q.json",
                  env={"AUTOREWARD_API_BASE": server.openai_base, "OPENAI_API_KEY": "sk-test", "AUTOREWARD_CACHE_DIR": str(tmp_path / "cache")})
        prompts = [q.prompt for q in server.requests]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "q.json").read_text())
    assert res["suite"] == "quality-quick" and res["model"] == "openai/test-model"
    assert "halfcheetah_run_backwards [library]: generated" in r.stdout  # the variant is text, not eaten as markup
    t = res["tasks"]["halfcheetah_run_backwards"]
    assert t["env"] == "HalfCheetah-v5" and t["preset"] == "run_backwards" and t["budget"]["steps"] == 512
    assert set(t["variants"]) == {"library"}  # the quick suite's variant
    v = t["variants"]["library"]
    # the loop's best is the known program, re-trained with the 3 fresh seeds (the loop used seed 0)
    best = Path(v["run_dir"]) / v["best"] / "reward.py"
    assert best.read_text().strip() == KNOWN.strip()
    for kind in ("expert", "sparse"):
        assert len(t[kind]["fitness"]["per_seed"]) == 3 and not t[kind]["failed_seeds"]
    gen = v["generated"]
    assert len(gen["fitness"]["per_seed"]) == 3 and not gen["failed_seeds"]
    for d in gen["job_dirs"]:  # each re-training job trained the known program at a fresh seed
        m = json.loads((Path(d) / "metrics.json").read_text())
        assert m["steps"] == 512 and m["seed"] in (1000, 1001, 1002)
    # the untrained policy at a seed does not depend on the reward it then learns from: every kind's
    # job measured the same value before training, and that is the JSON's untrained figure
    before = [[json.loads((Path(d) / "metrics.json").read_text())["untrained"]["fitness_mean"] for d in k["job_dirs"]]
              for k in (t["expert"], t["sparse"], gen)]
    assert before[0] == before[1] == before[2] == t["untrained"]["fitness"]["per_seed"]
    # HNS by hand, from the JSON's own per-seed numbers
    g, e, u = (statistics.fmean(x["fitness"]["per_seed"]) for x in (gen, t["expert"], t["untrained"]))
    assert g == pytest.approx(gen["fitness"]["mean"]) and e == pytest.approx(t["expert"]["fitness"]["mean"])
    assert t["expert"]["fitness"]["sd"] == pytest.approx(statistics.stdev(t["expert"]["fitness"]["per_seed"]))
    if e - u > 1e-9:
        assert v["hns"]["value"] == pytest.approx((g - u) / (e - u))
        assert res["library_hns_mean"] == pytest.approx(v["hns"]["value"]) and res["library_hns_median"] == pytest.approx(v["hns"]["value"])
        assert res["library_fraction_hns_ge_1"] == (1.0 if v["hns"]["value"] >= 1 else 0.0)
    else:
        assert v["hns"]["value"] is None and "expert did not beat" in v["hns"]["why"]
    # cost: tokens and LLM seconds from the run's own log; env steps = loop + 9 re-trainings
    assert v["tokens"] > 0 and v["llm_calls"] >= 2 and v["llm_seconds"] >= 0
    assert v["llm_answers"] >= 2 and v["llm_cached"] == 0 == res["llm_cached_total"]  # a fresh cache
    assert v["loop_env_steps"] == 512 and t["retrain_env_steps"] == 9 * 512
    assert res["env_steps_total"] == 512 + 9 * 512 and res["tokens_total"] == v["tokens"]
    assert res["wall_s"] > 0 and t["wall_s"] > 0
    from autoreward.bench.quality import markdown

    table = markdown(res)  # the benchmarks/*.md table: one row per task and variant, numbers from the JSON
    assert "| halfcheetah_run_backwards | library |" in table and f"{res['env_steps_total']:,} env steps" in table
    # leave-one-out: the task's own expert never reached a designer prompt
    designer = [p for p in prompts if "compute_reward" in p and "Does this code reward" not in p]
    assert designer and not any("keep upright, small control cost" in p for p in designer)
    from autoreward.library import entry_id

    shown = v["library_shown"]  # the ids the run's library.json names: other shipped rewards, never the task's own
    assert shown and entry_id("HalfCheetah-v5", EXPERT) not in shown


def test_llm_spend_counts_the_answers_the_cache_gave_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run asking what a first one asked costs nothing; the bench says so instead of
    reporting its 0 s as the model's speed."""
    from autoreward.bench.quality import llm_spend
    from autoreward.llm import get_client, read_log

    monkeypatch.setenv("AUTOREWARD_CACHE_DIR", str(tmp_path / "cache"))
    msgs = [{"role": "user", "content": "Make the cheetah run backwards."}]
    with ScriptedLLMServer(default="def compute_reward(): ...") as server:
        for run in ("first", "second"):
            client = get_client("openai/test-model", tmp_path / run, api_base=server.openai_base, api_key="sk-test")
            client.complete(msgs, n=2, temperature=0.5)
            if run == "second":
                client.complete(msgs + [{"role": "user", "content": "Again, differently."}], n=1, temperature=0.5)
    first, second = (llm_spend(read_log(tmp_path / run)) for run in ("first", "second"))
    assert first == {**first, "llm_calls": 1, "llm_answers": 2, "llm_cached": 0}
    assert second == {**second, "llm_calls": 2, "llm_answers": 3, "llm_cached": 2}


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    r = bench(tmp_path, "--suite", "quality-quick", "--tasks", "no_such_task", "--variants", "none")
    assert r.returncode != 0 and "unknown task no_such_task" in r.stderr and "Traceback" not in r.stderr
    r = bench(tmp_path, "--suite", "quality", "--variants", "sideways")
    assert r.returncode != 0 and "unknown variant sideways" in r.stderr and "Traceback" not in r.stderr
    r = bench(tmp_path, "--suite", "quick", "--model", "openai/x")
    assert r.returncode != 0 and "not an option of --suite quick" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"defaults": {"seeds": [0], "loop_seed": 0}}))
    r = bench(tmp_path, "--suite", "quality", "--config", str(bad), "--variants", "none")
    assert r.returncode != 0 and "differ from loop_seed" in r.stderr and "Traceback" not in r.stderr


def test_every_task_names_a_card_preset_and_reward_files_that_exist() -> None:
    from autoreward.bench.quality import load_config, plan

    data = load_config("quality")
    tasks = plan(data, "quality", None, None)
    assert len(tasks) >= 8 and len({t["env"] for t in tasks}) >= 4
    for t in tasks:
        for kind in ("expert", "sparse"):
            assert "def compute_reward" in t["files"][kind].read_text()
        assert len(t["budget"]["seeds"]) >= 3 and t["budget"]["loop_seed"] not in t["budget"]["seeds"]
    assert sum("potential" in t["variants"] for t in tasks) >= 2
    quick = plan(load_config("quality-quick"), "quality-quick", None, None)
    assert len(quick) == 3


def test_bench_flags_choose_the_variants() -> None:
    from autoreward.bench.quality import choose_variants
    from autoreward.errors import ConfigError

    assert choose_variants(None) is None  # the suite's own
    assert choose_variants("none") == []
    assert choose_variants(None, no_library=True) == ["no-library"]
    assert choose_variants("library,potential", no_library=True) == ["no-library", "potential-no-library"]
    assert choose_variants(None, shaping="potential") == ["library", "potential"]
    assert choose_variants("library,no-library", shaping="potential") == ["library", "no-library", "potential"]
    with pytest.raises(ConfigError, match="choose reward or potential"):
        choose_variants(None, shaping="phi")
