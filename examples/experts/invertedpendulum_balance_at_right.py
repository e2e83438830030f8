"""Balance with the cart at x = +0.5 m, written by hand: +1 per step the pole is up (the env's
own reward: falling ends the episode and the fitness with it) minus the cart's distance from
the target, plus a small penalty on cart speed so it settles there instead of oscillating.

env: InvertedPendulum-v5
task: balance_at_right
fitness: 0.774
untrained: 0.0135
Measured by `autoreward bench --suite quality-quick` (2026-11-24): mean over 3 seeds
(0.853, 0.809, 0.659) after 15,000 PPO steps with the card's hyperparameters; the untrained policy's beside it.
"""


def compute_reward(prev, action, state, memory):
    balanced = 1.0 if state.is_balanced else 0.0
    target = -1.0 * abs(state.cart_position - 0.5)
    settle = -0.05 * state.cart_velocity ** 2
    return balanced + target + settle, {"balanced": balanced, "target": target, "settle": settle}
