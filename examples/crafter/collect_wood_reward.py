"""Hand-written dense reward for the Crafter-v1 preset collect_wood (a baseline for the
dense-vs-sparse benchmark). Reward-program interface; imports only numpy and math.

What each term is for (each was added after watching trained policies fail):
- wood: the goal itself, +1 per wood gathered.
- approach_tree: potential-based shaping towards the nearest visible tree (sums to zero on a loop).
- explore: +0.05 per cell visited for the first time while no tree is in view, so a policy that
  spawns away from trees walks until one appears instead of pacing on the spot.
- idle: -0.01 for a step that changed nothing (same cell, same facing, no wood); trained
  policies otherwise get stuck pushing into water or stone with deterministic actions.
- damage / death: stay alive long enough to reach a tree (zombies kill most agents by step 200).

env: Crafter-v1
task: collect_wood
fitness: 0.858
Measured by `autoreward bench --suite crafter` (2026-11-22): mean over 3 seeds after 61,440 PPO steps
(20 greedy evaluation episodes each; the env's sparse reward reached 0.367 at the same budget).
"""
import numpy as np

WOOD = 6  # index of collect_wood in state.achievement_counts


def potential(s):
    # closer to a tree is better; facing one is best
    near = -0.1 * float(min(s.dist_tree, 10))
    facing = 0.2 if s.facing_block == "tree" else 0.0
    return near + facing


def compute_reward(prev, action, state, memory):
    wood = float(state.achievement_counts[WOOD] - prev.achievement_counts[WOOD])
    shaping = potential(state) - potential(prev)
    seen = memory.setdefault("seen", set())
    cell = (int(state.pos[0]), int(state.pos[1]))
    explore = 0.0
    if cell not in seen:
        seen.add(cell)
        if state.dist_tree >= 10:  # 10 = no tree in view
            explore = 0.05
    same_place = cell == (int(prev.pos[0]), int(prev.pos[1])) and np.array_equal(state.facing, prev.facing)
    idle = -0.01 if (same_place and wood == 0) else 0.0
    hurt = -0.1 * float(state.damage_taken)
    death = -1.0 if state.dead else 0.0
    components = {"wood": 1.0 * wood, "approach_tree": shaping, "explore": explore, "idle": idle,
                  "damage": hurt, "death": death}
    return float(np.sum(list(components.values()))), components
