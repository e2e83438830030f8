"""Hand-written reward for MetaWorld-button-press-topdown-v3 (a baseline for the `metaworld`
benchmark suite). Reward-program interface; imports only numpy and math.

- above: bring the gripper over the button (horizontal distance), bounded to 0..1;
- press: once over it, the fraction of the button's travel pressed down (0..1), so pushing down
  pays only from above;
- close: keep the fingers closed, a fist presses better than open fingers (small);
- solved: +2 on every step the env reports success.

env: MetaWorld-button-press-topdown-v3
task: press_button
"""
import numpy as np

TRAVEL = 0.09  # m from the button's rest height to fully pressed


def compute_reward(prev, action, state, memory):
    horizontal = float(np.linalg.norm(state.object_position[:2] - state.tcp_position[:2]))
    above = 1.0 / (1.0 + (horizontal / 0.02) ** 2)
    pressed = min(max(1.0 - float(state.task_distance) / TRAVEL, 0.0), 1.0)
    height = max(float(state.tcp_position[2] - state.object_position[2]), 0.0)
    components = {
        "above": above,
        "descend": above * (1.0 / (1.0 + (height / 0.03) ** 2)),
        "press": 2.0 * above * pressed,
        "close": 0.1 * (1.0 - float(state.gripper_opening)),
        "solved": 2.0 if state.success else 0.0,
    }
    return float(sum(components.values())), components
