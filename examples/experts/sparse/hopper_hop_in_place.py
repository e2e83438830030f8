"""Sparse baseline: +1 for each step with the torso at least 0.1 m above the settled stance
(the success threshold) and within 1 m of the start, else 0.

env: Hopper-v5
task: hop_in_place
"""


def compute_reward(prev, action, state, memory):
    x0 = memory.setdefault("x0", prev.x_position)
    hit = 1.0 if state.torso_height >= 1.3 and abs(state.x_position - x0) < 1.0 else 0.0
    return hit, {"success_step": hit}
