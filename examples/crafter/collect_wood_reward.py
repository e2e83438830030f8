"""Hand-written dense reward for the Crafter-v1 preset collect_wood (a baseline for the
dense-vs-sparse benchmark). Reward-program interface; imports only numpy and math."""
import numpy as np

WOOD = 6  # index of collect_wood in state.achievement_counts


def potential(s):
    # closer to a tree is better; facing one is best (shaping, so it sums to zero on a loop)
    near = -0.1 * float(min(s.dist_tree, 10))
    facing = 0.2 if s.facing_block == "tree" else 0.0
    return near + facing


def compute_reward(prev, action, state, memory):
    wood = float(state.achievement_counts[WOOD] - prev.achievement_counts[WOOD])
    shaping = potential(state) - potential(prev)
    hurt = -0.1 * float(state.damage_taken)
    death = -1.0 if state.dead else 0.0
    components = {"wood": 1.0 * wood, "approach_tree": shaping, "damage": hurt, "death": death}
    return float(np.sum(list(components.values()))), components
