"""Each critic check and the one reward caller, in-process on recorded transitions.

The programs here are written by hand for the tests (trusted), so compiling them in the test
process is fine; generated code only ever runs in the sandbox (tests in test_sandbox.py).
"""

from __future__ import annotations

import numpy as np
import re

import pytest

from autoreward.critic.dry_run import call_program, dry_run, judge_calls, sum_mismatch
from autoreward.critic.probe import WRONG_WAY_RHO, probe
from autoreward.critic.review import review
from autoreward.critic.static import check_static
from autoreward.episode import fitness_function, load_recording
from autoreward.program import RewardCaller, RewardOutputError, check_source
from autoreward.prompts_io import render
from autoreward.sandbox.child import CallTimeout

HEAD = "import numpy as np\nimport math\n\ndef compute_reward(prev, action, state, memory):\n"


@pytest.fixture(scope="module")
def episodes(cheetah, cheetah_recording):
    return load_recording(cheetah_recording, cheetah)


@pytest.fixture(scope="module")
def backwards_fitness(cheetah):
    return fitness_function(cheetah.task("run_backwards").fitness)


def caller(body: str, seconds: float | None = 1.0) -> RewardCaller:
    return RewardCaller.compile(HEAD + body, seconds)


# ---- the reward caller ----------------------------------------------------------------------


def test_caller_validates_and_returns_floats(episodes):
    ep = episodes[0]
    call = caller("    return np.float32(-state.x_velocity), {'back': np.array([-state.x_velocity])}\n")
    total, comps = call(ep.states[0], ep.actions[0], ep.states[1], {})
    assert type(total) is float and type(comps["back"]) is float
    assert total == pytest.approx(-ep.states[1].x_velocity, rel=1e-6)


def test_caller_gives_a_read_only_action_and_state(episodes):
    ep = episodes[0]
    writable = np.array(ep.actions[0])  # as SB3 hands it over: writeable
    with pytest.raises(ValueError, match="read-only"):
        caller("    action[0] = 5.0\n    return 0.0, {}\n")(ep.states[0], writable, ep.states[1], {})
    assert writable.flags.writeable and writable[0] != 5.0  # the caller's copy was frozen, not ours

    def mutate(prev, action, state, memory):  # the static policy refuses this; the view refuses it too
        state.x_velocity = 1.0

    with pytest.raises(AttributeError):
        RewardCaller(mutate)(ep.states[0], writable, ep.states[1], {})
    with pytest.raises(ValueError, match="read-only"):
        RewardCaller(lambda p, a, s, m: s.joint_angles.__setitem__(0, 2.0))(ep.states[0], writable, ep.states[1], {})


def test_caller_turns_a_discrete_action_into_a_frozen_array():
    call = RewardCaller(lambda p, a, s, m: (float(a.ndim + a.flags.writeable), {}))
    assert call(None, np.int64(3), None, {}) == (0.0, {})


def test_caller_rejects_malformed_output_precisely():
    with pytest.raises(RewardOutputError, match="pair"):
        RewardCaller(lambda *a: 1.0)(None, np.zeros(1), None, {})
    with pytest.raises(RewardOutputError, match="component 'x' is nan"):
        RewardCaller(lambda *a: (0.0, {"x": float("nan")}))(None, np.zeros(1), None, {})


def test_caller_time_guard_interrupts_a_python_loop():
    call = caller("    while True:\n        pass\n    return 0.0, {}\n", seconds=0.2)
    with pytest.raises(CallTimeout, match="longer than 0.2 s"):
        call(None, np.zeros(6), None, {})


def test_caller_time_guard_works_in_a_process_started_with_sigint_ignored():
    """`nohup autoreward run … &` starts with SIGINT ignored (inherited by the sandbox workers),
    and the guard's interrupt_main then did nothing: the loop ran on until the parent's kill."""
    import signal
    import subprocess
    import sys

    source = HEAD + "    while True:\n        pass\n    return 0.0, {}\n"
    code = ("import numpy as np\nfrom autoreward.program import RewardCaller\nfrom autoreward.sandbox.child import CallTimeout\n"
            f"call = RewardCaller.compile({source!r}, 0.2)\n"
            "try:\n    call(None, np.zeros(6), None, {})\nexcept CallTimeout as e:\n    print('guarded:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert "guarded: a single call took longer than 0.2 s" in r.stdout, r.stdout + r.stderr


# ---- static -------------------------------------------------------------------------------------


def test_static_check_kinds():
    assert check_static(None).kind == "no_code"
    bad = check_static("import os\n" + HEAD + "    return 0.0, {}\n")
    assert not bad.passed and bad.kind == "static" and "line 1" in bad.message and bad.details["findings"]
    example = render("reward_example_continuous.j2")
    assert check_static(example, example).kind == "example_copy"
    assert check_static(example).passed  # without an example to compare with, it is just valid


# ---- dry run ------------------------------------------------------------------------------------


def test_dry_run_passes_with_statistics(episodes, backwards_source):
    result, data = dry_run(RewardCaller.compile(backwards_source, 1.0), episodes)
    assert result.passed and result.details["transitions"] == sum(e.length for e in episodes) == data.calls
    assert set(result.details["components"]) == {"backward", "upright", "ctrl"}
    assert len(data.totals) == len(episodes) and len(data.components["ctrl"]) == data.calls


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        ("    return 1.0 + 0.0 * state.x_velocity, {'c': 1.0}\n", "constant", "constant"),
        ("    return state.speed, {}\n", "exception", "only these attributes"),
        ("    return 'fast', {}\n", "output", "must be a float"),
        ("    if state.x_velocity > -100:\n        while True:\n            pass\n    return 0.0, {}\n", "timeout", "transition 0"),
    ],
)
def test_dry_run_failures_have_a_kind_and_a_place(episodes, cheetah, body, kind, words):
    result, _ = dry_run(caller(body, 0.2), episodes, cheetah.field_names)
    assert not result.passed and result.kind == kind, result.message
    assert words in result.message


def test_a_huge_total_goes_back_before_training_with_its_transition_and_term(episodes, cheetah):
    """Issue 25: an exp of the velocity reached 5.5e13 in the dry run, was accepted, and training
    failed at its first evaluation with an infinite total. Now the critic rejects it and says
    where and which term."""
    body = "    boom = math.exp(-30.0 * state.x_velocity)\n    return boom + 1.0, {'boom': boom, 'alive': 1.0}\n"
    result, _ = dry_run(caller(body, 0.2), episodes, cheetah.field_names)
    assert not result.passed and result.kind == "magnitude", result.message
    assert "too large" in result.message and "'boom'" in result.message and re.search(r"episode \d+ step \d+", result.message)
    fine = "    v = -state.x_velocity\n    return 1e3 * v, {'v': 1e3 * v}\n"  # large, bounded: trains
    assert dry_run(caller(fine, 0.2), episodes, cheetah.field_names)[0].passed


def test_a_reward_that_differs_on_replay_is_not_deterministic(episodes, backwards_source):
    """A program can hardly be nondeterministic any more (np.random is a static finding, each
    episode gets a fresh instance of the program), but the parent still compares the replay the
    child sent back with the first pass, and says where they differ."""
    failed, calls = call_program(RewardCaller.compile(backwards_source, 1.0), episodes)
    assert failed is None and len(calls.replay) == 3
    calls.replay[0][3] += 1.0
    result, _ = judge_calls(calls, episodes)
    assert result.kind == "nondeterministic" and "episode 0 step 3" in result.message


def test_random_numbers_are_a_static_finding():
    findings = check_source(HEAD + "    memory['k'] = memory.get('k', 0) + 1\n    return float(np.random.rand()), {}\n")
    assert any(f.check == "state" and "deterministic function of prev, action, state and memory" in f.message for f in findings), findings


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("    a = -state.x_velocity\n    return a + 1.0, {'a': a}\n", "not in any component"),
        ("    a, b = -state.x_velocity, 1.0\n    return a, {'a': a, 'b': b}\n", "'b' seems to be missing"),
    ],
)
def test_a_sum_mismatch_is_a_warning_with_its_own_term(episodes, cheetah, body, words):
    """Components that do not add up to the total no longer reject: the difference is a term."""
    result, data = dry_run(caller(body, 0.2), episodes, cheetah.field_names)
    assert result.passed and result.kind == "", result.message
    assert any(words in w and "(not in components)" in w for w in result.warnings), result.warnings
    assert len(data.components["(not in components)"]) == data.calls
    assert "(not in components)" in result.details["components"]


def test_dry_run_names_the_last_step_of_an_episode(episodes):
    n = episodes[0].length
    body = f"    memory['t'] = memory.get('t', 0) + 1\n    if memory['t'] == {n}:\n        return 1.0 / 0.0, {{}}\n    return 0.0, {{}}\n"
    result, _ = dry_run(caller(body), episodes)
    assert result.kind == "exception" and f"step {n - 1}, the last of its episode" in result.message


def test_sum_mismatch_is_silent_when_components_add_up():
    assert sum_mismatch(1.5, {"a": 1.0, "b": 0.5}) == "" and sum_mismatch(2.0, {}) == ""


# ---- probe -------------------------------------------------------------------------------------


def test_probe_accepts_the_right_way_and_names_components_against_the_task(episodes, backwards_source, backwards_fitness):
    good_caller = RewardCaller.compile(backwards_source, 1.0)
    good = probe(backwards_fitness, episodes, dry_run(good_caller, episodes)[1])
    assert good.passed and good.details["spearman"] > 0.5
    flipped = RewardCaller.compile(backwards_source.replace("backward = -state.x_velocity", "backward = state.x_velocity"), 1.0)
    bad = probe(backwards_fitness, episodes, dry_run(flipped, episodes)[1])
    assert not bad.passed and bad.kind == "wrong_way" and bad.details["spearman"] <= WRONG_WAY_RHO
    assert bad.details["against"] == ["backward"] and "components against the task: backward" in bad.message


def test_probe_reports_a_broken_fitness_as_the_fitness_fault(episodes, backwards_source):
    data = dry_run(RewardCaller.compile(backwards_source, 1.0), episodes)[1]
    result = probe(fitness_function("float(ep.series('x_velocity'))"), episodes, data)
    assert not result.passed and result.kind == "fitness_error" and "fitness function failed" in result.message


def test_probe_is_inconclusive_without_variation(episodes, backwards_source):
    data = dry_run(RewardCaller.compile(backwards_source, 1.0), episodes)[1]
    result = probe(lambda ep: 1.0, episodes, data)
    assert result.passed and "inconclusive" in result.message and result.warnings


# ---- LLM review (the real client path through a scripted backend) ------------------------------


def test_review_parses_the_answer_and_shows_the_probe(tmp_path, backwards_source):
    from autoreward.llm import get_client

    script = tmp_path / "s.yaml"
    script.write_text("- 'VERDICT: REJECT\nREASON: it rewards running forwards.'\n")
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    r = review(client.complete, "run backwards", "ENV", backwards_source, {"episodes": 24, "spearman": 0.91, "component_spearman": {"backward": 0.9}}, seed=0)
    assert r.accept is False and r.reason == "it rewards running forwards."
    asked = client.backend.prompts[0][-1]["content"]
    assert "0.91" in asked and "backward 0.90" in asked and "def compute_reward" in asked


def test_fitness_review_explains_only_the_measures_used(tmp_path, cheetah):
    from autoreward.critic.review import review_fitness
    from autoreward.llm import get_client

    script = tmp_path / "f.yaml"
    script.write_text("- 'VERDICT: ACCEPT\nREASON: higher backward speed is better.'\n")
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    r = review_fitness(client.complete, "hop backwards", "ENV", "backward_speed * 2", 1.0, cheetah.measures, seed=0)
    assert r.accept is True and r.reason == "higher backward speed is better."
    asked = client.backend.prompts[0][-1]["content"]
    assert "FITNESS: backward_speed * 2" in asked and "backward_speed = Mean speed along -x" in asked
    assert "forward_speed" not in asked  # a measure it does not use is not explained


def test_a_reward_slow_on_every_call_is_rejected_before_the_job_runs_out(episodes):
    """Each call stays under the per-call budget, but 4,800 of them would use the job's whole wall
    clock (and training would take hours): the dry run says so after 20 calls."""
    import time as _time

    from autoreward.critic.dry_run import SLOW_AFTER, SLOW_MEAN_S

    def slow(prev, action, state, memory):
        _time.sleep(SLOW_MEAN_S * 1.5)
        return -float(state.x_velocity), {}

    t0 = _time.perf_counter()
    result, data = dry_run(RewardCaller(slow), episodes)
    assert not result.passed and result.kind == "timeout" and "too slow" in result.message
    assert data.calls == SLOW_AFTER - 1 and _time.perf_counter() - t0 < 5


# ---- failing pays (envs whose episodes end when the agent fails) ---------------------------------


@pytest.fixture(scope="module")
def hopper_episodes(tmp_path_factory):
    from autoreward.cards import load_card
    from autoreward.critic import record_rollouts

    card = load_card("Hopper-v5")
    return load_recording(record_rollouts(card, tmp_path_factory.mktemp("hop") / "probe.npz"), card)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        # the embedded model's "hop backwards" reward: a bonus at the fall (its policy fell backwards in 20 steps)
        ("    effort = -0.05 * float(np.sum(np.square(action)))\n    total = effort\n    if not state.is_healthy:\n"
         "        total -= 100 * state.x_velocity\n    return total, {'effort': effort}\n",
         "The bonus comes from the part of the total outside the components dict"),
        # the same bonus inside a named component is named
        ("    fall = -100 * state.x_velocity if not state.is_healthy else 0.0\n    alive = 1.0 if state.is_healthy else 0.0\n"
         "    return fall + alive, {'fall': fall, 'alive': alive}\n", "The bonus comes from the component 'fall'"),
        # living costs: an effort penalty and nothing else
        ("    effort = -0.05 * float(np.sum(np.square(action)))\n    return effort, {'effort': effort}\n", "100% of the steps before"),
    ],
)
def test_a_reward_that_makes_failing_pay_is_rejected(hopper_episodes, body, words):
    from autoreward.critic.probe import failing_pays

    dry, data = dry_run(caller(body), hopper_episodes)
    assert dry.passed
    r = failing_pays(hopper_episodes, data)
    assert not r.passed and r.kind == "failing_pays" and words in r.message and "failing pays" in r.message, r.message
    assert sum(ep.terminated for ep in hopper_episodes) >= 3  # random behaviour falls: the check has material


def test_a_reward_that_pays_for_staying_up_passes_and_an_env_without_failures_is_not_judged(hopper_episodes, episodes):
    from autoreward.critic.probe import failing_pays

    body = ("    alive = 1.0 if state.is_healthy else 0.0\n    back = -state.x_velocity\n    effort = -0.05 * float(np.sum(np.square(action)))\n"
            "    return alive + back + effort, {'alive': alive, 'back': back, 'effort': effort}\n")
    _, data = dry_run(caller(body), hopper_episodes)
    r = failing_pays(hopper_episodes, data)
    assert r.passed and r.details["failing_step_mean"] < r.details["other_steps_mean"], r.message
    _, cheetah_data = dry_run(caller("    return -0.1, {'cost': -0.1}\n"), episodes)  # the cheetah never fails: nothing to judge
    assert failing_pays(episodes, cheetah_data).message.startswith("not judged")
