"""The ``search`` bench suite on a tiny budget: every headline field is there and means what it
says (the real figures are in benchmarks/search-*.json; no timing is asserted here)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from autoreward.bench import SUITES
from autoreward.bench.search import POOL, POOL_DIR


def test_the_pool_is_six_known_programs_and_the_suite_is_registered():
    assert SUITES["search"] == "autoreward.bench.search:run"
    assert len(POOL) >= 6 and all((POOL_DIR / f"{n}.py").exists() for n in POOL)


@pytest.mark.slow
def test_search_suite_on_a_tiny_budget(tmp_path):
    from autoreward.bench.search import run

    res = run(Console(quiet=True), steps=1200, seeds=1, speedup_steps=400, sbx_ppo_steps=256, sbx_sac_steps=300, episode_steps=300)
    json.dumps(res)  # plain data
    assert res["parallel_speedup_2_workers"] > 0 and res["parallel_wall_s_1_worker"] > 0
    # the critic passes every program in the pool (each fails only later, in training or in intent)
    assert all(v["accepted"] for v in res["critic"].values()), res["critic"]
    # behavioural dedupe catches the rescaled copy of good and nothing else
    assert res["dedupe_caught"] is True and res["duplicates"]["rescaled"]["of"] == "good"
    assert res["dedupe_false_positives"] == [] and "rescaled" not in res["trained"] and len(res["trained"]) == 5
    seed = res["halving_seeds"][0]
    # the program that breaks at step 251 fails in full training and is cut at halving's first rung
    assert seed["full_fitness"]["breaks_at_runtime"] is None
    assert "breaks_at_runtime" in seed["rungs"][0]["cut"] and seed["rungs"][0]["cut"]["breaks_at_runtime"].startswith("failed")
    assert seed["halving_winner"] in res["trained"] and seed["best"] in res["trained"]
    assert seed["picked_best"] == (seed["halving_winner"] == seed["best"])
    assert 0 < res["halving_step_fraction"] < 1 and 0 <= res["halving_picks_best_rate"] <= 1
    assert [r["steps"] for r in seed["rungs"]] == [300, 600, 1200]
    for algo in ("ppo", "sac"):
        assert res[f"sbx_speedup_{algo}"] > 0 and len(res[f"{algo}_steps_per_s_sbx"]) == 2
    assert res["subproc_speedup_ppo_2_envs"] > 0 and len(res["ppo_2_envs_steps_per_s_subproc"]) == 2
