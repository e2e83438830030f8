"""Sandbox limits: bad reward programs cost their own budget and come back as precise errors."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from autoreward.critic import check_program
from autoreward.program import RewardProgram
from autoreward.sandbox import Limits, run_job, scrubbed_env

HEAD = "import numpy as np\nimport math\n\ndef compute_reward(prev, action, state, memory):\n"


def verdict_for(body: str, cheetah, rec, tmp_path, limits=None):
    return check_program(RewardProgram(HEAD + body), cheetah, "run_backwards", tmp_path, rec, limits=limits)


def test_infinite_loop_is_interrupted_per_call(cheetah, cheetah_recording, tmp_path):
    v = verdict_for("    while True:\n        pass\n    return 0.0, {}\n", cheetah, cheetah_recording, tmp_path)
    assert not v.accepted
    assert v.failed.name == "dry_run"
    assert "transition 0" in v.failed.message and "longer than" in v.failed.message


def test_loop_late_in_the_data_names_the_transition(cheetah, cheetah_recording, tmp_path):
    body = (
        "    memory['n'] = memory.get('n', 0) + 1\n"
        "    if memory['n'] == 50:\n        while True:\n            pass\n"
        "    return -state.x_velocity, {}\n"
    )
    v = verdict_for(body, cheetah, cheetah_recording, tmp_path)
    assert "transition 49 (episode 0, step 49)" in v.failed.message


def test_memory_bomb_hits_the_memory_limit(cheetah, cheetah_recording, tmp_path):
    v = verdict_for("    x = np.ones((1 << 31,))\n    return 0.0, {}\n", cheetah, cheetah_recording, tmp_path, Limits(memory_mb=1024, call_seconds=5))
    assert not v.accepted
    assert "memory limit" in v.failed.message or "MemoryError" in v.failed.message


def test_forbidden_import_never_reaches_the_sandbox(cheetah, cheetah_recording, tmp_path):
    v = check_program(RewardProgram("import os\n" + HEAD + "    return 0.0, {}\n"), cheetah, "run_backwards", tmp_path, cheetah_recording)
    assert [c.name for c in v.checks] == ["static"]
    assert "only numpy and math" in v.failed.message
    assert not (tmp_path / "job.json").exists()


def test_runtime_import_is_refused_too(cheetah, cheetah_recording, tmp_path):
    """Belt and braces: even past the static check, the namespace's __import__ refuses."""
    from autoreward.program import _safe_import

    with pytest.raises(ImportError):
        _safe_import("os")


@pytest.mark.parametrize(
    "body, expected",
    [
        ("    return float('nan'), {}\n", "the total reward is nan"),
        ("    return 1.0, {'a': float('inf')}\n", "component 'a' is inf"),
        ("    return 1.0\n", "must return a pair"),
        ("    return 'x', {}\n", "must be a float"),
        ("    return state.x_velocity / 0.0, {}\n", "ZeroDivisionError"),
        ("    return np.array([1.0, 2.0]), {}\n", "must be a float"),
    ],
)
def test_bad_outputs_are_precise(body, expected, cheetah, cheetah_recording, tmp_path):
    v = verdict_for(body, cheetah, cheetah_recording, tmp_path)
    assert not v.accepted and v.failed.name == "dry_run"
    assert expected in v.failed.message
    assert "state:" in v.failed.message  # the Designer sees the values that broke it


def test_exception_shows_the_line_in_the_program(cheetah, cheetah_recording, tmp_path):
    v = verdict_for("    x = memory['missing']\n    return 0.0, {}\n", cheetah, cheetah_recording, tmp_path)
    assert "KeyError" in v.failed.message and "line 5" in v.failed.message


def test_components_that_do_not_add_up_to_the_total_are_a_warning(cheetah, cheetah_recording, tmp_path):
    """Issue 11 part 4: a total that is not the sum of its components trains (Eureka-style rewards
    transform their terms); the warning still says which component is missing from the total."""
    body = "    a = -state.x_velocity\n    b = 1.0\n    return a, {'a': a, 'b': b}\n"
    v = verdict_for(body, cheetah, cheetah_recording, tmp_path)
    assert v.failed is None
    assert any("component 'b' seems to be missing from the total" in w for w in v.warnings), v.warnings


def test_unknown_state_field_lists_the_real_ones(cheetah, cheetah_recording, tmp_path):
    v = verdict_for("    return state.speed, {}\n", cheetah, cheetah_recording, tmp_path)
    assert "AttributeError" in v.failed.message and "only these attributes: dt, x_position" in v.failed.message


def test_nondeterminism_and_constants_are_rejected(cheetah, cheetah_recording, tmp_path):
    v = verdict_for("    return float(np.random.rand()), {}\n", cheetah, cheetah_recording, tmp_path / "a")
    assert "not deterministic" in v.failed.message or "random" in v.failed.message
    v = verdict_for("    return 1.0, {'c': 1.0}\n", cheetah, cheetah_recording, tmp_path / "b")
    assert "constant" in v.failed.message


def test_wall_clock_watchdog_kills_the_job(cheetah, cheetah_recording, tmp_path):
    lim = Limits(wall_seconds=4, cpu_seconds=100, memory_mb=2048, call_seconds=1000)
    v = verdict_for("    while True:\n        pass\n    return 0.0, {}\n", cheetah, cheetah_recording, tmp_path, lim)
    assert not v.accepted and "wall-clock limit of 4 s" in v.failed.message


def test_cpu_limit_kills_the_job(cheetah, cheetah_recording, tmp_path):
    lim = Limits(wall_seconds=60, cpu_seconds=3, memory_mb=2048, call_seconds=1000)
    v = verdict_for("    while True:\n        pass\n    return 0.0, {}\n", cheetah, cheetah_recording, tmp_path, lim)
    assert not v.accepted and "CPU-time limit of 3 s" in v.failed.message


def test_child_environment_has_no_secrets_and_no_network(tmp_path, monkeypatch):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    threading.Thread(target=lambda: srv.accept(), daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    monkeypatch.setenv("AUTOREWARD_SELFTEST_PORT", str(port))
    assert "OPENAI_API_KEY" not in scrubbed_env(tmp_path)
    job = run_job("selftest", {}, tmp_path, Limits(wall_seconds=30, cpu_seconds=20, memory_mb=1024))
    assert job.ok, job.error
    r = job.result
    assert not [n for n in r["env_names"] if "KEY" in n or "TOKEN" in n]
    assert r["cwd"] == str(tmp_path.resolve())
    assert r["rlimit_cpu"] == 20 and r["rlimit_data"] == 1024 * 1024 * 1024
    if r["network_isolated"]:
        assert r["loopback"].startswith("refused")
    else:  # pragma: no cover - OS without namespaces: documented in the README
        pytest.skip("this OS does not allow a private network namespace")
    srv.close()


def test_a_c_level_call_is_killed_by_the_parent_within_seconds(cheetah, cheetah_recording, tmp_path):
    """One call inside one long C computation: the in-child guard cannot interrupt it, the parent
    sees its start time in the heartbeat and kills the job (not at the 120 s wall clock)."""
    body = "    memory['t'] = memory.get('t', 0) + 1\n    if memory['t'] == 3:\n        np.convolve(np.ones(10**6), np.ones(10**6))\n    return -state.x_velocity, {}\n"
    v = verdict_for(body, cheetah, cheetah_recording, tmp_path)
    msg = v.failed.message
    assert "at transition 2 (reward call 3 of this job)" in msg and "could not be interrupted" in msg
    assert v.failed.kind == "timeout"  # a timeout like the in-child guard's, for the repair prompt
    killed_after = float(msg.rsplit("killed after ", 1)[1].split(" s")[0])
    assert killed_after < Limits.for_check().call_seconds + 3


def test_state_arrays_cannot_be_made_writable_again(cheetah):
    from autoreward.cards import StateExtractor

    env = cheetah.make_env()
    try:
        obs, info = env.reset(seed=0)
        s = StateExtractor(cheetah, env)(obs, info, 0.0)
    finally:
        env.close()
    for arr in (s.joint_angles, s.joint_angles[1:], s.joint_angles.base):
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.setflags(write=True)


def test_recorded_arrays_cannot_be_made_writable_again(cheetah, cheetah_recording):
    from autoreward.episode import load_recording

    ep = load_recording(cheetah_recording, cheetah)[0]
    for arr in (ep.actions, ep.actions[0], ep.actions[0].base, ep.states[1].joint_velocities, ep.env_rewards):
        with pytest.raises(ValueError, match="WRITEABLE"):
            arr.setflags(write=True)


def test_readonly_action_freezes_copies_and_passes_frozen_rows_through():
    import numpy as np

    from autoreward.program import frozen_array, readonly_action

    live = np.zeros(3)
    a = readonly_action(live)
    with pytest.raises(ValueError, match="WRITEABLE"):
        a.setflags(write=True)
    live[0] = 5.0
    assert a[0] == 0.0  # a copy: the env's buffer is not the reward's
    batch = frozen_array(np.ones((4, 3)))
    row = batch[1]
    assert readonly_action(row) is row  # no copy per step for rows of a frozen batch
    owner = np.ones(3)
    owner.flags.writeable = False  # read-only but re-enableable: must be copied
    assert not np.shares_memory(readonly_action(owner), owner)
    assert readonly_action(2).shape == ()


def test_a_bool_indicator_is_a_number_not_an_error():
    """The 1.5B model wrote ``{"upright_fraction": 1 if ... else 0}`` and ``{"alive": state.is_healthy}``:
    a 0/1 indicator trains like 1.0/0.0, so it is read as one (numpy bools too)."""
    from autoreward.program import validate_output

    assert validate_output((True, {"alive": True, "fell": np.bool_(False)})) == (1.0, {"alive": 1.0, "fell": 0.0})
    assert validate_output((np.float32(2.5), {"a": np.array([1.5]), "b": 1})) == (2.5, {"a": 1.5, "b": 1.0})
    with pytest.raises(Exception, match="component 'a' must be a float, got str"):
        validate_output((1.0, {"a": "yes"}))
