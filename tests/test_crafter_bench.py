"""The ``crafter`` bench suite end to end, with a tiny budget (the real numbers come from
``autoreward bench --suite crafter``; this only proves the suite runs and reports them)."""

from __future__ import annotations

import pytest
from rich.console import Console

from autoreward.bench import crafter as cb

def test_dense_rewards_come_from_the_examples():
    for preset in cb.PRESETS:
        source, path = cb.dense_reward_source(preset)
        assert path.parent.name == "crafter" and path.parent.parent.name == "examples"
        assert "def compute_reward(prev, action, state, memory)" in source


def test_bad_knob_fails_clearly(monkeypatch):
    monkeypatch.setenv("AUTOREWARD_BENCH_CRAFTER_SEEDS", "many")
    with pytest.raises(RuntimeError, match="AUTOREWARD_BENCH_CRAFTER_SEEDS"):
        cb.run(Console(quiet=True))


@pytest.mark.slow
def test_suite_runs_end_to_end(monkeypatch):
    for name, value in {
        "STEPS": "128", "SEEDS": "2", "EPISODES": "2", "MAX_STEPS": "40", "PARALLEL": "2",
        "THROUGHPUT_STEPS": "200",
    }.items():
        monkeypatch.setenv(f"AUTOREWARD_BENCH_CRAFTER_{name}", value)
    monkeypatch.setattr(cb, "HYPERPARAMS", {"n_steps": 64, "batch_size": 64, "n_epochs": 1})
    r = cb.run(Console(quiet=True))
    assert "failures" not in r, r.get("failures")
    assert r["steps_per_job"] == 128 and r["seeds"] == 2
    for key in ("crafter_steps_per_s_compact", "crafter_steps_per_s_pixels", "crafter_reset_s"):
        assert r[key] > 0
    floor = 1 / (2 * 2)
    for preset in cb.PRESETS:
        e = r["presets"][preset]
        for kind in ("dense", "sparse"):
            s = e[kind]["success_rate"]
            assert len(s["per_seed"]) == 2 and 0.0 <= s["mean"] <= 1.0 and s["std"] >= 0.0
            assert len(e[kind]["fitness"]["per_seed"]) == 2
            assert all(job["ok"] for job in e[kind]["jobs"])
            assert len(e[kind]["success_rate_sampled"]["per_seed"]) == 2
            assert all(0.0 <= v <= 1.0 for v in e[kind]["success_rate_sampled"]["per_seed"])
            curve = e[kind]["success_curve"]  # evaluations during training, mean over seeds
            assert curve[0][0] == 0 and len(curve) >= 2
            assert all(a[0] < b[0] <= 128 for a, b in zip(curve, curve[1:]))
            assert all(0.0 <= mean <= 1.0 and std >= 0.0 for _, mean, std in curve)
        d, sp = e["dense"]["success_rate"]["mean"], e["sparse"]["success_rate"]["mean"]
        assert e["ratio"] == pytest.approx(d / max(sp, floor), abs=1e-3)
        assert e["ratio_sparse_floored"] == (sp < floor)
        assert r[f"{preset}_ratio"] == e["ratio"]
        ds, ss = e["dense"]["success_rate_sampled"]["mean"], e["sparse"]["success_rate_sampled"]["mean"]
        assert e["ratio_sampled"] == pytest.approx(ds / max(ss, floor), abs=1e-3) == r[f"{preset}_ratio_sampled"]
