"""Hand-written reward for MetaWorld-drawer-open-v3 (a baseline for the `metaworld` benchmark
suite). Reward-program interface; imports only numpy and math.

- reach: bring the gripper to the handle, bounded to 0..1;
- open: once at the handle, the fraction of the 0.2 m opening covered (0..1); the drawer only
  moves when pulled from the handle, so this pays only near it;
- solved: +2 on every step the env reports success.

env: MetaWorld-drawer-open-v3
task: open_drawer
"""
import numpy as np

OPENING = 0.2  # m the handle travels from closed to open


def compute_reward(prev, action, state, memory):
    reach = 1.0 / (1.0 + (float(state.tcp_to_object) / 0.03) ** 2)
    opened = min(max(1.0 - float(state.task_distance) / OPENING, 0.0), 1.0)
    components = {
        "reach": reach,
        "open": 2.0 * opened * max(reach, 0.2),
        "solved": 2.0 if state.success else 0.0,
    }
    return float(sum(components.values())), components
