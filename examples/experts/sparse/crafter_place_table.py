"""Sparse baseline: +1 when the table is placed (the task's own success event), else 0.

env: Crafter-v1
task: place_table
"""

TABLE = 20  # index of place_table in state.achievements


def compute_reward(prev, action, state, memory):
    placed = float(state.achievements[TABLE] - prev.achievements[TABLE])
    return placed, {"table": placed}
