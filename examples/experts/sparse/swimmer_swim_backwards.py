"""Sparse baseline: +1 for each step swimming towards -x at the success speed (0.2 m/s), else 0.

env: Swimmer-v5
task: swim_backwards
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if (prev.x_position - state.x_position) / state.dt >= 0.2 else 0.0
    return hit, {"success_step": hit}
