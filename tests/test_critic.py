"""The critic's behaviour probe and its saved verdict."""

from __future__ import annotations

import json

from autoreward.critic import Verdict, check_program, load_verdict
from autoreward.program import RewardProgram


def test_good_reward_is_accepted_with_statistics(cheetah, cheetah_recording, tmp_path, backwards_source):
    v = check_program(RewardProgram(backwards_source), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert v.accepted, v.message
    dry = next(c for c in v.checks if c.name == "dry_run")
    assert dry.details["transitions"] >= 1000
    assert set(dry.details["components"]) == {"backward", "upright", "ctrl"}
    assert dry.details["per_call_us"] > 0
    probe = next(c for c in v.checks if c.name == "probe")
    assert probe.details["spearman"] > 0.5
    saved = json.loads((tmp_path / "critic.json").read_text())
    assert saved["accepted"] is True and saved["message"] == "accepted"
    assert load_verdict(tmp_path / "critic.json").accepted


def test_sign_flipped_reward_is_caught_by_the_probe(cheetah, cheetah_recording, tmp_path, backwards_source):
    """Rewarding +x velocity for 'run backwards' (what the local model wrote) must be rejected."""
    flipped = backwards_source.replace("backward = -state.x_velocity", "backward = state.x_velocity")
    assert flipped != backwards_source
    v = check_program(RewardProgram(flipped), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert not v.accepted
    assert v.failed.name == "probe"
    assert "wrong way" in v.failed.message and "backward" in v.failed.message
    assert v.failed.details["spearman"] <= -0.2


def test_recording_has_episode_ends_and_enough_transitions(cheetah, cheetah_recording):
    from autoreward.episode import load_recording

    eps = load_recording(cheetah_recording, cheetah)
    assert sum(e.length for e in eps) >= 1000
    assert all(e.truncated or e.terminated for e in eps)


def test_verdict_round_trips():
    v = Verdict.from_dict({"accepted": False, "checks": [{"name": "static", "passed": False, "message": "m"}]})
    assert v.message == "static: m" and v.to_dict()["accepted"] is False
