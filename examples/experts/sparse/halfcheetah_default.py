"""Sparse baseline: +1 for each step at the pace the task's success needs (a return of 4000 in
1000 steps is about 4 m/s forward), else 0.

env: HalfCheetah-v5
task: default
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if (state.x_position - prev.x_position) / state.dt >= 4.0 else 0.0
    return hit, {"success_step": hit}
