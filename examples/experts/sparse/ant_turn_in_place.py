"""Sparse baseline: +1 for each step turning counterclockwise at the success rate (1 rad/s)
while upright, else 0.

env: Ant-v5
task: turn_in_place
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if state.yaw_rate >= 1.0 and state.up_z > 0.5 else 0.0
    return hit, {"success_step": hit}
