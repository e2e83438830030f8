"""Sparse baseline: +1 for each healthy step at the pace the task's success needs (a return of
2500 in 1000 steps is about 1.5 m/s forward), else 0.

env: Hopper-v5
task: default
"""


def compute_reward(prev, action, state, memory):
    fast = (state.x_position - prev.x_position) / state.dt >= 1.5
    hit = 1.0 if fast and state.is_healthy else 0.0
    return hit, {"success_step": hit}
