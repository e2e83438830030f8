"""Sparse baseline: +1 for each step with the pole up and the cart within 0.1 m of x = +0.5 m
(where the score 1 - distance reaches the 0.9 success threshold), else 0.

env: InvertedPendulum-v5
task: balance_at_right
"""


def compute_reward(prev, action, state, memory):
    hit = 1.0 if state.is_balanced and abs(state.cart_position - 0.5) <= 0.1 else 0.0
    return hit, {"success_step": hit}
