"""Meta-World v3 cards: the template format, the env's seeded random goals, the reward state on
real physics (Meta-World's own scripted policies grasp, lift and succeed), the analyzer hook,
and `autoreward run` on the drawer with the scripted backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoreward.cards import StateExtractor, all_cards, load_card, load_card_file, render_card
from autoreward.cards.loading import merge_template
from autoreward.episode import Episode, fitness_function, rollout
from autoreward.errors import CardError
from autoreward.metaworld.analysis import analyze_episodes, steps_to_success

REPO = Path(__file__).resolve().parents[1]
TASKS = ["reach", "push", "pick-place", "drawer-open", "door-open", "button-press-topdown", "window-open", "drawer-close"]
IDS = [f"MetaWorld-{t}-v3" for t in TASKS]


def _rollout(card, policy, seed: int, steps: int = 500) -> Episode:
    """One episode driven by ``policy(obs)`` on the card's env, states as training extracts them."""
    env = card.make_env()
    try:
        return rollout(card, env, StateExtractor(card, env), lambda t, obs: policy(obs), seed, steps)
    finally:
        env.close()


def _expert(name: str):
    import metaworld.policies as policies

    return getattr(policies, name)().get_action


def test_eight_cards_share_one_template_and_render():
    cards = all_cards()
    assert set(IDS) <= set(cards)
    assert not [c for c in cards if c.startswith("_")]  # the template is not a card
    template = yaml.safe_load((REPO / "envs/_metaworld-v3.yaml").read_text())
    names = [f["name"] for f in template["state"]]
    for cid in IDS:
        card = cards[cid]
        assert card.field_names == names  # one state list; per-task overrides keep its order
        # fast PPO by default (issue 22: it reached reach's behaviour, SAC had not), SAC as profile zoo
        assert (card.training.algo, card.training.n_envs) == ("ppo", 16) and "Meta-World" in card.training.source
        assert card.with_profile("zoo").training.algo == "sac" and card.training.hyperparams["sac"]["gradient_steps"] == 1
        assert card.analyzer == "autoreward.metaworld.analysis:analyze_episodes"
        assert {"succeeded", "grasped_fraction", "final_object_to_goal", "steps_to_success"} <= set(card.measures)
        (task,) = card.tasks.values()
        assert task.env_objective and task.success == 0.99
        text = render_card(card)
        assert "Sawyer" in text and "state.task_distance" in text and card.summary.split(":")[0] in text
    reach, button = cards["MetaWorld-reach-v3"], cards["MetaWorld-button-press-topdown-v3"]
    dist = {c.id: next(f for f in c.state if f.name == "task_distance") for c in (reach, button)}
    assert "tcp_position" in dist[reach.id].expr and "[2]" in dist[button.id].expr  # per-task expressions
    assert dist[reach.id].unit == "m"  # the template's keys survive a partial override
    assert len(cards["MetaWorld-drawer-open-v3"].notes) == len(template["notes"]) + 1  # notes append


def test_template_merge_rules_and_errors(tmp_path):
    base = {"summary": "s", "state": [{"name": "a", "expr": "1", "doc": "A"}], "notes": ["n1"],
            "training": {"algo": "sac", "hyperparams": {"sac": {"gamma": 0.99, "tau": 0.005}}}}
    card = {"state": [{"name": "a", "doc": "A2"}, {"name": "b", "expr": "2", "doc": "B"}], "notes": ["n2"],
            "training": {"hyperparams": {"sac": {"gamma": 0.9}}}, "summary": "t"}
    m = merge_template(base, card)
    assert m["state"] == [{"name": "a", "expr": "1", "doc": "A2"}, {"name": "b", "expr": "2", "doc": "B"}]
    assert m["notes"] == ["n1", "n2"] and m["summary"] == "t"
    assert m["training"] == {"algo": "sac", "hyperparams": {"sac": {"gamma": 0.9, "tau": 0.005}}}
    assert base["state"][0]["doc"] == "A"  # the template itself is not changed
    # a user card beside its own template
    (tmp_path / "_fam.yaml").write_text(yaml.safe_dump({"summary": "family", "state": [{"name": "t", "expr": "env.t", "doc": "T"}]}))
    (tmp_path / "Mine-v0.yaml").write_text(yaml.safe_dump({"id": "Mine-v0", "template": "_fam.yaml", "tasks": {
        "x": {"description": "d", "fitness": "ep.env_return", "success": 1.0}}}))
    cards = all_cards([tmp_path])
    assert cards["Mine-v0"].summary == "family" and "_fam" not in cards
    (tmp_path / "Bad-v0.yaml").write_text(yaml.safe_dump({"id": "Bad-v0", "template": "_missing.yaml"}))
    with pytest.raises(CardError) as exc:
        load_card_file(tmp_path / "Bad-v0.yaml")
    assert "template '_missing.yaml' not found" in str(exc.value) and "\n" not in str(exc.value)


def test_goals_are_new_every_episode_and_seeded():
    card = load_card("MetaWorld-push-v3")
    env = card.make_env()
    extract = StateExtractor(card, env)

    def start(seed=None):
        obs, info = env.reset(seed=seed)
        s = extract(obs, info, 0.0)
        return np.concatenate([s.goal_position, s.object_position])

    a, b, again = start(7), start(), start(7)
    assert np.allclose(a, again) and not np.allclose(a, b)
    assert not np.allclose(start(8), a)
    with pytest.raises(Exception, match="unknown Meta-World task 'nope-v3'"):
        card.make_env(task="nope-v3")


def test_the_first_state_reads_where_the_reset_put_things():
    """Meta-World's drawer-open moves the cabinet at reset without recomputing derived positions:
    the first state read the handle's old place, every random rollout seemed to open the drawer
    by 0.015-0.07 m at step 1, and the preset's partial credit paid untrained policies up to 0.13."""
    card = load_card("MetaWorld-drawer-open-v3")
    env = card.make_env()
    extract = StateExtractor(card, env)
    for seed in (3, 4, 5):
        obs, info = env.reset(seed=seed)
        first = extract(obs, info, 0.0)
        obs, r, term, trunc, info = env.step(np.zeros(env.action_space.shape))
        after = extract(obs, info, r)
        assert abs(first.task_distance - after.task_distance) < 1e-3, (seed, first.task_distance, after.task_distance)
        assert np.allclose(first.object_position, after.object_position, atol=1e-3)


@pytest.mark.parametrize(("cid", "policy", "grasp"), [
    ("MetaWorld-pick-place-v3", "SawyerPickPlaceV3Policy", True),
    ("MetaWorld-drawer-open-v3", "SawyerDrawerOpenV3Policy", False),
    ("MetaWorld-button-press-topdown-v3", "SawyerButtonPressTopdownV3Policy", False),
])
def test_expert_policies_succeed_and_the_state_sees_grasp_and_lift(cid, policy, grasp):
    """Meta-World's own scripted policies on our env: the success flag, task distance, grasp and
    lift fields and the analyzer's numbers agree with what the policy did."""
    card = load_card(cid)
    ep = _rollout(card, _expert(policy), seed=3)
    assert np.any(ep.steps("success")), f"{cid}: the expert never succeeded"
    assert ep.series("task_distance")[0] > ep.last.task_distance
    if grasp:
        assert np.any(ep.steps("grasped")) and np.any(ep.steps("lifted")) and ep.last.object_height > 0.02
    else:
        assert not np.any(ep.steps("lifted"))
    speeds = np.linalg.norm(ep.steps("tcp_velocity"), axis=1)
    assert 0.01 < speeds.max() < 3.0  # m/s, a finite difference over 0.0125 s steps
    (task,) = card.tasks.values()
    fitness = fitness_function(task.fitness, card.measure_exprs)
    idle = _rollout(card, lambda obs: np.zeros(4), seed=3, steps=60)
    out = analyze_episodes([ep, idle], fitness, task.success, **task.analysis)
    assert out["success_rate"] == 0.5 and out["fitness_success_rate"] == 0.5
    assert out["mean_steps_to_success"] == steps_to_success(ep) and 0 < steps_to_success(ep) < 500
    assert out["grasp_rate"] == (0.5 if grasp else out["grasp_rate"]) and out["lift_rate"] == (0.5 if grasp else 0.0)
    assert "mean steps to success" in out["text"] and "grasped in" in out["text"]
    assert fitness_function("succeeded", card.measure_exprs)(ep) == 1.0
    assert fitness_function("steps_to_success", card.measure_exprs)(idle) == 60.0


def test_a_needed_grasp_that_never_happened_is_said():
    card = load_card("MetaWorld-pick-place-v3")
    (task,) = card.tasks.values()
    idle = _rollout(card, lambda obs: np.zeros(4), seed=1, steps=40)
    out = analyze_episodes([idle], fitness_function(task.fitness, card.measure_exprs), task.success, **task.analysis)
    assert out["success_rate"] == 0.0 and out["mean_steps_to_success"] is None
    assert "needs a grasp" in out["text"] and "needs a lift" in out["text"]


def _script(tmp_path: Path) -> str:
    reward = (REPO / "examples/metaworld/open_drawer_reward.py").read_text()
    rules = [
        {"match": "Propose how to measure success", "response": "FITNESS: succeeded - mean_tcp_to_object\nTHRESHOLD: 0.9\nDESCRIPTION: 1 if the drawer was opened, minus the mean gripper-handle distance in m"},
        {"match": "Does this number rise when the task is done better?", "response": "VERDICT: ACCEPT\nREASON: it is the env's success."},
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards pulling the handle open."},
        {"match": "Measured numbers:", "response": "The policy never reached the handle; weight the reach term more."},
        f"Here is my reward.\n```python\n{reward}```",
    ]
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(rules))
    return f"scripted:{path}"


@pytest.mark.slow
def test_run_open_the_drawer_end_to_end(tmp_path):
    """`autoreward run "open the drawer"` on the drawer card: fitness proposed from a named measure,
    the reward checked and trained with SAC (the card's zoo algorithm, --algo sac) in the sandbox, the analyzer's Meta-World numbers."""
    r = subprocess.run(
        [sys.executable, "-m", "autoreward.cli", "run", "open the drawer", "--env", "MetaWorld-drawer-open-v3",
         "--model", _script(tmp_path), "--iterations", "1", "--samples", "1", "--steps", "300", "--max-episode-steps", "100",
         "--eval-episodes", "2", "--algo", "sac", "--set", "learning_starts=100", "--set", "batch_size=64", "--out", "runs"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "fitness.json").read_text())["fitness"] == "succeeded - mean_tcp_to_object"
    metrics = json.loads((run / "iter0/cand0/metrics.json").read_text())
    assert metrics["ok"], metrics.get("error")
    env = metrics["env_analysis"]
    assert env["n_episodes"] == 2 and {"success_rate", "grasp_rate", "lift_rate", "mean_steps_to_success"} <= set(env)
    assert env["lift_rate"] == 0.0 and "grasped in" in env["text"]
    assert (run / "result.json").is_file()


@pytest.mark.slow
def test_the_report_films_the_arm(tmp_path):
    """Issue 14 part 4: a Meta-World candidate's report video shows the (red) Sawyer arm, rendered
    offscreen by the sandboxed replay (MUJOCO_GL=osmesa on a machine without a GPU)."""
    import imageio.v3 as iio

    example = Path(__file__).parents[1] / "examples" / "metaworld" / "reach_reward.py"
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "eval", str(example), "--env", "MetaWorld-reach-v3", "--task", "reach",
                        "--steps", "300", "--max-episode-steps", "100", "--eval-episodes", "1", "--algo", "sac", "--set", "learning_starts=100",
                        "--out", "runs"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode in (0, 1), r.stdout + r.stderr  # trained (1: not solved is fine here)
    run = next((tmp_path / "runs").iterdir())
    r = subprocess.run([sys.executable, "-m", "autoreward.cli", "report", str(run), "--video-seconds", "2"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    frame = iio.imread(run / "candidate" / "video" / "best.mp4", index=10).astype(int)
    red = (frame[..., 0] > 120) & (frame[..., 0] > frame[..., 1] + 60) & (frame[..., 0] > frame[..., 2] + 60)
    assert red.mean() > 0.02, f"no arm in the frame: {red.mean():.4f} of its pixels are the arm's red"
    assert (run / "report.html").read_text().count("best.mp4") >= 1
