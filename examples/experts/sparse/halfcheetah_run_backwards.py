"""Sparse baseline: +1 for each step running backwards at the success speed (3 m/s) while not
flipped (|pitch| < 1.5), else 0.

env: HalfCheetah-v5
task: run_backwards
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if (prev.x_position - state.x_position) / state.dt >= 3.0 and abs(state.pitch) < 1.5 else 0.0
    return hit, {"success_step": hit}
