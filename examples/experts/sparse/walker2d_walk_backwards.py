"""Sparse baseline: +1 for each healthy step walking towards -x at the success speed (1 m/s),
else 0.

env: Walker2d-v5
task: walk_backwards
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if (prev.x_position - state.x_position) / state.dt >= 1.0 and state.is_healthy else 0.0
    return hit, {"success_step": hit}
