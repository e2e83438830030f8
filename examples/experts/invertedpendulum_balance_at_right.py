"""Balance with the cart at x = +0.5 m, written by hand: each step the pole is up pays 0.2, plus up
to 0.8 more the closer the cart is to the target (a Gaussian of width 0.2 m), minus a small
penalty on cart speed so it settles there instead of oscillating. Every step alive pays, so the
policy never prefers ending the episode (falling ends it and the fitness with it).

env: InvertedPendulum-v5
task: balance_at_right
fitness: 0.930
untrained: 0.0135
Measured by `autoreward bench --suite behaviour` (2026-12-08, one core, the card's 16-env PPO
settings): the deterministic evaluation first reached 0.9 at 90,000, 70,000 and 55,008 steps (16,
15 and 11 s) on seeds 0, 1, 2; fitness there 0.948, 0.931, 0.910 (judged), mean 0.930. The
reward before (1 per step up, minus the distance, linearly) reached 0.9 on one seed of three and
fell back on the others (benchmarks/behaviour-2026-12-07.md); with that distance term tripled the
policy learned to fall at once (0.013 on every seed), since a step then often paid less than 0.
"""
import math


def compute_reward(prev, action, state, memory):
    balanced = 1.0 if state.is_balanced else 0.0
    near = math.exp(-((state.cart_position - 0.5) / 0.2) ** 2)
    settle = -0.05 * state.cart_velocity ** 2
    return balanced * (0.2 + 0.8 * near) + settle, {"alive": 0.2 * balanced, "near": 0.8 * balanced * near, "settle": settle}
