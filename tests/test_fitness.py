"""Free-form tasks: a proposed fitness is checked on the recorded rollouts, repaired by its
proposer and shown (or confirmed) before any reward is designed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoreward.critic.fitness import check_fitness
from autoreward.designer import propose_fitness
from autoreward.episode import compile_fitness, load_recording
from autoreward.errors import ConfigError, RewardProgramError
from autoreward.prompts_io import render

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
FAST = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]
ARRAY = "FITNESS: ep.series('x_velocity') / ep.duration\nTHRESHOLD: 0.01\nDESCRIPTION: speed"  # what the 1.5B model wrote
FIXED = "FITNESS: backward_speed\nTHRESHOLD: 2.0\nDESCRIPTION: mean backward speed in m/s"


@pytest.fixture(scope="module")
def episodes(cheetah, cheetah_recording):
    return load_recording(cheetah_recording, cheetah)


def check(cheetah, episodes, expr, success):
    return check_fitness(compile_fitness(expr, cheetah.measure_exprs), success, episodes)


def test_a_good_fitness_passes_with_its_range(cheetah, episodes):
    r = check(cheetah, episodes, "backward_speed", 2.0)
    assert r.passed, r.message
    d = r.details
    assert d["worst"]["value"] < 0 < d["best"]["value"] and d["episodes"] == len(episodes)
    assert d["best"]["value"] == pytest.approx(max((e.first.x_position - e.last.x_position) / e.duration for e in episodes))


@pytest.mark.parametrize(
    ("expr", "success", "kind", "words"),
    [
        ("ep.series('x_velocity') / ep.duration", 0.01, "fitness_error", "an array of shape"),
        ("ep.last.speed", 1.0, "fitness_error", "AttributeError"),
        ("ep.torso_height", 1.0, "fitness_error", "torso_height is a state field, read it with ep.last.torso_height"),
        ("ep.speed", 1.0, "fitness_error", "it has first, last, series(name)"),
        ("'fast'", 1.0, "fitness_error", "a str, not a number"),
        ("float('nan') * backward_speed", 1.0, "fitness_error", "finite"),
        ("1.0 + 0.0 * backward_speed", 2.0, "fitness_constant", "cannot tell better"),
        ("backward_speed", -10.0, "fitness_threshold", "already reaches the threshold"),
        ("backward_speed", 1000.0, "fitness_threshold", "implausibly far above"),
    ],
)
def test_a_broken_fitness_fails_with_a_message_for_its_proposer(cheetah, episodes, expr, success, kind, words):
    r = check(cheetah, episodes, expr, success)
    assert not r.passed and r.kind == kind and words in r.message, r.message


def test_a_threshold_half_the_untrained_rollouts_reach_goes_back(cheetah, episodes):
    """A Hopper proposal's threshold sat below the recorded rollouts' mean, so the run stopped as
    "solved" with a policy worse than untrained: a threshold that half the rollouts reach needs no learning."""
    values = np.sort([check(cheetah, [e], "backward_speed", 1e-9).details["values"]["min"] for e in episodes])
    below_median = float(values[len(values) // 2]) - 1e-6
    r = check(cheetah, episodes, "backward_speed", below_median)
    assert not r.passed and r.kind == "fitness_threshold" and "a threshold must need learning" in r.message, r.message
    assert f"of the {len(episodes)} recorded rollouts" in r.message
    assert check(cheetah, episodes, "backward_speed", float(values[-1])).passed  # only the best reaches it: fine


def test_measures_compose_by_name_and_only_used_ones_run(cheetah, episodes):
    ep = episodes[0]
    f = compile_fitness("backward_speed * 2 + upright_fraction", cheetah.measure_exprs)
    expected = 2 * (ep.first.x_position - ep.last.x_position) / ep.duration + float(np.mean(np.abs(ep.steps("pitch")) < 1.0))
    assert f(ep) == pytest.approx(expected)
    # the 1.5B model wrote measures as attributes of ep (and might call them): same meaning
    assert compile_fitness("ep.backward_speed * 2 + upright_fraction(ep)", cheetah.measure_exprs)(ep) == pytest.approx(expected)
    assert compile_fitness("ep.last.backward_speed * 2 + upright_fraction", cheetah.measure_exprs, cheetah.field_names)(ep) == pytest.approx(expected)
    assert compile_fitness("ep.last.pitch", {"pitch": "0.0"}, cheetah.field_names)(ep) == ep.last.pitch  # a field stays a field
    assert compile_fitness("np.mean(ep.series('backward_speed')) * 2 + ep.steps('upright_fraction')", cheetah.measure_exprs,
                           cheetah.field_names)(ep) == pytest.approx(expected)
    assert compile_fitness("np.mean(ep.series('pitch'))", {"pitch": "0.0"}, cheetah.field_names)(ep) == pytest.approx(np.mean(ep.series("pitch")))
    broken = {**cheetah.measure_exprs, "unused": "ep.nothing_here"}  # never evaluated: not named
    assert compile_fitness("backward_speed", broken)(ep) == pytest.approx((ep.first.x_position - ep.last.x_position) / ep.duration)
    with pytest.raises(RewardProgramError):  # the measures obey the same policy as any fitness
        compile_fitness("bad", {"bad": "ep.__class__"})


def test_every_card_measure_runs_on_its_own_rollouts():
    """Each card's named measures give one finite number on short diverse rollouts of that card."""
    from autoreward.cards import StateExtractor, all_cards
    from autoreward.episode import behaviour_policies, rollout

    cards = [c for c in all_cards().values() if c.measures]
    assert len(cards) >= 11
    for card in cards:
        env = card.make_env()
        try:
            extract = StateExtractor(card, env)
            eps = [rollout(card, env, extract, pol, seed=i, max_steps=30) for i, pol in enumerate(behaviour_policies(env.action_space, 3, 0))]
        finally:
            env.close()
        for name in card.measures:
            values = [compile_fitness(name, card.measure_exprs)(e) for e in eps]
            assert all(np.ndim(v) == 0 and np.isfinite(float(v)) for v in values), (card.id, name, values)


def test_the_proposal_prompt_lists_measures_and_the_repair_prompt_the_error(cheetah):
    from autoreward.cards import render_card

    text = render("fitness_proposal.j2", env_text=render_card(cheetah), task="t", measures=cheetah.measures, feedback="")
    assert "- backward_speed (m/s): Mean speed along -x" in text
    plain = render("fitness_proposal.j2", env_text="E", task="t", measures={}, feedback="")
    assert "backward_speed" not in plain and "FITNESS:" in plain
    rep = render("fitness_repair.j2", env_text="E", task="t", measures={}, expr="x", threshold=1, episodes=24, error="it returned an array")
    assert "rejected: it returned an array" in rep and "FITNESS: x" in rep


def test_a_repair_that_repeats_the_rejected_proposal_gets_a_fresh_one(cheetah, episodes, tmp_path):
    """The 1.5B model answered each repair with the rejected proposal verbatim; the next try is
    then a fresh, warmer proposal told what to avoid."""
    from autoreward.llm import get_client

    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump([
        {"match": "Do not propose", "response": FIXED},
        {"match": "Propose how to measure success", "response": ARRAY},
        {"match": "You proposed this way", "response": ARRAY},
    ]))
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    prop = propose_fitness(client.complete, "ENV", "t", cheetah.measures, lambda e, s: check(cheetah, episodes, e, s), seed=0)
    assert prop.expr == "backward_speed" and [a["error"][:20] for a in prop.attempts[1:2]] == ["the repair repeated "]
    fresh = client.backend.prompts[-1][-1]["content"]
    assert "Do not propose ep.series('x_velocity') / ep.duration with threshold 0.01" in fresh and "an array of shape" in fresh


def test_propose_fitness_repairs_through_its_proposer(cheetah, episodes, tmp_path):
    """The real client path (scripted backend): the array answer is sent back with the exact
    message, the second answer passes; three failures end in a one-line ConfigError."""
    from autoreward.llm import get_client

    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump([ARRAY, FIXED]))
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    prop = propose_fitness(client.complete, "ENV", "hop backwards", cheetah.measures, lambda e, s: check(cheetah, episodes, e, s), seed=0)
    assert (prop.expr, prop.success) == ("backward_speed", 2.0) and len(prop.attempts) == 2
    assert "an array of shape" in prop.attempts[0]["error"] and prop.check["passed"]
    repair = client.backend.prompts[1][-1]["content"]
    assert "FITNESS: ep.series('x_velocity') / ep.duration" in repair and "an array of shape" in repair

    script.write_text(yaml.safe_dump([ARRAY]))
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    with pytest.raises(ConfigError, match="no usable fitness after 7 proposal"):  # 4 rounds, 3 of them repeated, so 3 fresh ones
        propose_fitness(client.complete, "ENV", "t", cheetah.measures, lambda e, s: check(cheetah, episodes, e, s), seed=0)


def _script(tmp_path: Path, fitness_answers: list[str]) -> str:
    rules = [
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."},
        {"match": "Does this number rise when the task is done better?", "response": "VERDICT: ACCEPT\nREASON: it is the backward speed."},
        {"match": "Measured numbers:", "response": "Fine."},
        {"match": "You proposed this way to measure success", "response": FIXED},  # the fitness repair prompt
    ]
    first = {"match": "Propose how to measure success", "response": fitness_answers[0]}
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules + [first, f"```python\n{GOOD}```"]))
    return f"scripted:{path}"


def _cli(*args: str, cwd: Path):
    import subprocess

    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.slow
def test_free_form_run_repairs_the_fitness_not_the_reward(tmp_path):
    """The issue's failure: the model's fitness returned an array. It goes back to the fitness
    proposer; the reward designer never sees it; the candidate trains."""
    model = _script(tmp_path, [ARRAY])
    r = _cli("run", "hop backwards while staying upright", "--env", "HalfCheetah-v5", "--model", model, "--iterations", "1",
             "--samples", "1", *FAST, "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    f = json.loads((run / "fitness.json").read_text())
    assert f["fitness"] == "backward_speed" and len(f["attempts"]) == 2 and "an array of shape" in f["attempts"][0]["error"]
    assert f["review"]["accept"] is True and f["confirmed"] == "auto"  # not a terminal: printed and accepted
    assert "proposed fitness" in r.stdout and "worst" in r.stdout and "best" in r.stdout and "reviewer (advice only)" in r.stdout
    log = [json.loads(line) for line in (run / "llm_exchanges.jsonl").read_text().splitlines()]
    assert not [e for e in log if e["template"] == "designer_repair.j2"]
    templates = [e["template"] for e in log]
    assert templates.index("fitness_repair.j2") < templates.index("designer_initial.j2")  # settled before any reward
    # the designer reads the expression and the card's words for its measure, not the proposer's prose
    prompt = next(e for e in log if e["template"] == "designer_initial.j2")["messages"][-1]["content"]
    from autoreward.cards import load_card

    doc = load_card("HalfCheetah-v5").measures["backward_speed"].doc
    assert f"How success is measured: fitness = backward_speed per episode (success at >= 2; higher is better), where\n- backward_speed: {doc}" in prompt
    assert "mean backward speed in m/s" not in prompt
    assert json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"]


@pytest.mark.slow
def test_a_broken_user_fitness_or_edited_fitness_json_is_a_one_line_error(tmp_path):
    model = _script(tmp_path, [FIXED])
    r = _cli("run", "run backwards", "--env", "HalfCheetah-v5", "--model", model, "--fitness", "ep.series('x_velocity')",
             "--success", "1", "--out", "runs", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: --fitness") and "an array of shape" in r.stderr and "Traceback" not in r.stderr
    run = next((tmp_path / "runs").iterdir())
    assert not (run / "iter0").exists()  # nothing designed for a fitness that cannot judge it

    r = _cli("run", "run backwards", "--env", "HalfCheetah-v5", "--model", model, "--iterations", "1", "--samples", "1",
             *FAST, "--max-env-steps", "1", "--no-report", "--out", "runs2", cwd=tmp_path)  # stops before any training
    run = next((tmp_path / "runs2").iterdir())
    f = json.loads((run / "fitness.json").read_text())
    f["fitness"] = "ep.last.speed"  # a person edits it badly, then resumes
    (run / "fitness.json").write_text(json.dumps(f))
    r = _cli("resume", str(run), cwd=tmp_path)
    assert r.returncode == 2 and "fitness.json" in r.stderr and "AttributeError" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_person_edits_the_proposed_fitness_in_the_terminal(tmp_path):
    import os

    import pexpect

    model = _script(tmp_path, [FIXED])
    args = ["-m", "autoreward.cli", "run", "run backwards", "--env", "HalfCheetah-v5", "--model", model, "--iterations", "1",
            "--samples", "1", *FAST, "--out", str(tmp_path / "runs")]
    child = pexpect.spawn(sys.executable, args, cwd=str(tmp_path), timeout=300, encoding="utf-8", env=dict(os.environ), dimensions=(50, 200))
    child.expect(r"\[a\]ccept, \[e\]dit, \[r\]e-propose")
    assert "backward_speed" in child.before and "worst" in child.before
    child.sendline("e")
    child.expect("fitness expression")
    child.sendline("backward_speed * upright_fraction")
    child.expect("success threshold")
    child.sendline("1.5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    run = next((tmp_path / "runs").iterdir())
    f = json.loads((run / "fitness.json").read_text())
    assert f["fitness"] == "backward_speed * upright_fraction" and f["success"] == 1.5 and f["confirmed"] == "user-edited"
    m = json.loads((run / "iter0/cand0/metrics.json").read_text())
    assert m["ok"]


def test_measures_are_shown_most_relevant_first() -> None:
    """The prompt's example names the first measure and a small model copies it: for a backward
    task the backward measure must come before the forward one (card order put forward first)."""
    from autoreward.cards.loading import load_card
    from autoreward.designer import measures_by_relevance
    from autoreward.prompts_io import render

    card = load_card("Hopper-v5")
    assert list(card.measures)[0] == "forward_speed"  # the card's own order, which misled the model
    ordered = list(measures_by_relevance("hop backwards while staying upright", card.measures))
    assert sorted(ordered) == sorted(card.measures)
    assert ordered.index("backward_speed") < ordered.index("forward_speed")
    assert set(ordered[:2]) == {"backward_speed", "upright_fraction"}
    prompt = render("fitness_proposal.j2", env_text="", task="hop backwards", feedback="",
                    measures=measures_by_relevance("hop backwards", card.measures))
    assert "For example: FITNESS: backward_speed" in prompt
    ant = list(measures_by_relevance("walk towards the left, along +y", load_card("Ant-v5").measures))
    assert ant[0] == "left_speed"


def test_a_task_that_asks_to_stay_up_gets_a_product_example_and_a_subtracted_staying_measure_goes_back() -> None:
    """For "hop backwards while staying upright" the embedded model proposed
    ``upright_fraction + backward_speed - alive_fraction``: falling early scored higher, and the
    run stopped "solved" with a policy worse than untrained. The prompt now shows the product and
    the words check catches the subtraction."""
    from autoreward.cards.loading import load_card
    from autoreward.directions import asks_to_stay_up, direction_conflict, staying_measure

    hopper = load_card("Hopper-v5").measures
    task = "hop backwards while staying upright"
    assert "subtracts alive_fraction" in direction_conflict(task, "upright_fraction + backward_speed - alive_fraction", hopper)
    assert "subtracts alive_fraction" in direction_conflict("hop forward without ever falling", "forward_speed * (2 - 1 - alive_fraction)", hopper)
    assert "subtracts upright_fraction" in direction_conflict("run backwards, never flip over", "backward_speed - upright_fraction",
                                                              load_card("HalfCheetah-v5").measures)
    assert direction_conflict(task, "backward_speed * alive_fraction", hopper) is None
    assert direction_conflict("fall over as fast as you can", "1 - alive_fraction", hopper) is None  # falling is the task
    assert direction_conflict("hop forward", "forward_speed - alive_fraction", hopper) is None  # staying not asked
    assert asks_to_stay_up(task) and not asks_to_stay_up("hop backwards") and staying_measure(hopper) == "alive_fraction"

    # a measure the card marks lower_is_better (distance, tilt), only ever added, goes back too
    reacher, pendulum = load_card("Reacher-v5").measures, load_card("InvertedPendulum-v5").measures
    close = "keep the fingertip as close to the target as possible"
    assert "subtract it instead (e.g. -final_distance_to_target)" in direction_conflict(close, "final_distance_to_target - closeness - mean_joint_speed", reacher)
    assert direction_conflict(close, "closeness - 0.1 * final_distance_to_target", reacher) is None
    assert direction_conflict("move the fingertip far away from the target", "final_distance_to_target", reacher) is None  # more is asked for
    centre = "keep the pole balanced while keeping the cart near the centre"
    assert "adds mean_abs_cart_position" in direction_conflict(centre, "mean_abs_cart_position + mean_abs_pole_angle + cart_travel", pendulum)
    assert direction_conflict(centre, "balanced_fraction * (1 - mean_abs_cart_position)", pendulum) is None
    assert "adds mean_abs_pole_angle" in direction_conflict("keep the pole from tilting", "mean_abs_pole_angle", pendulum)  # "tilt" asks for less

    prompts: list[str] = []

    class Out:
        text = "FITNESS: backward_speed * alive_fraction\nTHRESHOLD: 1.0\nDESCRIPTION: m/s while up"

    def complete(msgs, **_):
        prompts.append(msgs[0]["content"])
        return [Out()]

    from autoreward.critic.verdict import CheckResult

    passed = lambda expr, success: CheckResult("fitness", True, "")  # noqa: E731 - only the prompts are under test here
    propose_fitness(complete, "", task, hopper, passed, seed=0)
    assert "FITNESS: backward_speed * alive_fraction" in prompts[0] and "Never subtract alive_fraction" in prompts[0]
    prompts.clear()
    propose_fitness(complete, "", "hop backwards", hopper, passed, seed=0)
    assert "For example: FITNESS: backward_speed" in prompts[0] and "Never subtract" not in prompts[0]


def test_a_fitness_pointing_the_opposite_way_goes_back_to_its_proposer(cheetah, episodes, tmp_path):
    """The embedded model proposed forward_speed for "swim backwards" (its numbers pass the sandbox
    check); the words say the opposite, so the proposal goes back with a message naming the twin."""
    from autoreward.directions import direction_conflict
    from autoreward.llm import get_client

    m = cheetah.measures
    assert "use backward_speed" in direction_conflict("run backwards fast", "forward_speed * upright_fraction", m)
    assert direction_conflict("run backwards fast", "-forward_speed", m) is None  # negated: points backward
    assert direction_conflict("run backwards fast", "upright_fraction - forward_speed", m) is None
    assert "subtracts forward_speed" in direction_conflict("run forward while keeping the torso high", "mean_torso_height - forward_speed", m)
    assert direction_conflict("run forward", "forward_speed", m) is None
    assert direction_conflict("run forward then backward", "forward_speed", m) is None  # both said: not ours to judge

    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump([
        {"match": "It was rejected before it was tried", "response": FIXED},
        {"match": "Propose how to measure success", "response": "FITNESS: forward_speed\nTHRESHOLD: 2\nDESCRIPTION: speed."},
    ]))
    client = get_client(f"scripted:{script}", log_dir=tmp_path, use_cache=False)
    tried: list[str] = []
    prop = propose_fitness(client.complete, "ENV", "run backwards", m,
                           lambda e, s: tried.append(e) or check(cheetah, episodes, e, s), seed=0)
    assert prop.expr == "backward_speed" and tried == ["backward_speed"]  # the wrong way never reached the sandbox
    assert "the task asks for 'backward' but the fitness uses forward_speed" in prop.attempts[0]["error"]


def test_a_proposal_over_ep_whose_values_run_against_the_tasks_direction_goes_back(cheetah, cheetah_recording, tmp_path):
    """The model wrote ``(ep.first.y_position - ep.last.y_position) / ep.duration`` for "walk
    towards the left, along +y" (it rises going right): no measure name to read, but over the
    recorded rollouts its values rank exactly against left_speed's. Same here with x on the cheetah."""
    from autoreward.critic.fitness import against_the_task, check_fitness_expr
    from autoreward.directions import wanted_measures

    forward = "(ep.last.x_position - ep.first.x_position) / ep.duration"
    r = check_fitness_expr(forward, 0.5, cheetah, cheetah_recording, tmp_path / "a", task="run backwards")
    assert not r.passed and r.kind == "fitness_direction" and "falls as backward_speed rises" in r.message, r.message
    assert check_fitness_expr(forward, 0.5, cheetah, cheetah_recording, tmp_path / "b", task="run forward").passed
    assert check_fitness_expr(forward, 0.5, cheetah, cheetah_recording, tmp_path / "c").passed  # the user's own: no task, no judgement
    assert check_fitness_expr("(ep.first.x_position - ep.last.x_position) / ep.duration", 0.5, cheetah, cheetah_recording,
                              tmp_path / "d", task="run backwards").passed

    assert wanted_measures("walk towards the left", {"left_speed": None, "right_speed": None}) == {"left_speed": 1}
    assert wanted_measures("walk left or right", {"left_speed": None, "right_speed": None}) == {}  # both said: not ours to judge
    close = against_the_task([3.0, 2.0, 1.0, 0.5], {"distance": -1}, {"distance": [4.0, 3.0, 2.0, 1.0]})
    assert "rises with distance" in close and "use -distance" in close
    assert against_the_task([3.0, 2.0, 1.0, 0.5], {"distance": -1}, {"distance": [1.0, 2.0, 3.0, 4.0]}) == ""
    assert against_the_task([1.0, 2.0, 3.0, 4.0], {"speed": 1}, {"speed": [1.0, 1.0, 1.0, 1.0]}) == ""  # a constant measure says nothing


def test_no_usable_fitness_names_the_cards_presets(tmp_path):
    """"open the drawer" on the drawer card: the embedded model found no usable fitness in 5
    answers, and the hint said only "pass --preset"; it now names the card's presets."""
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(["I am not sure how to measure that."]))
    r = _cli("run", "do the thing", "--env", "HalfCheetah-v5", "--model", f"scripted:{path}", "--iterations", "1", "--samples", "1",
             "--out", "runs", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: no usable fitness after") and "--preset run_backwards" in line and "--preset default" in line, line
    assert line.endswith("(this card's), or --fitness EXPR --success X)"), line
