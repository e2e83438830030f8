"""Sparse baseline: +1 for each wood collected (the task's own success event), else 0.

env: Crafter-v1
task: collect_wood
"""

WOOD = 6  # index of collect_wood in state.achievement_counts


def compute_reward(prev, action, state, memory):
    wood = float(state.achievement_counts[WOOD] - prev.achievement_counts[WOOD])
    return wood, {"wood": wood}
