"""Hand-written dense reward for the Crafter-v1 preset place_table (a baseline for the
dense-vs-sparse benchmark). Reward-program interface; imports only numpy and math."""
import numpy as np

WOOD = 6  # index of collect_wood in state.achievement_counts / achievements
TABLE = 20  # index of place_table
WOOD_NEEDED = 2  # a table costs this much wood (see the card's notes)
PLACEABLE = ("grass", "sand", "path")  # where a table can go


def potential(s):
    if s.achievements[TABLE]:
        return 0.0
    if s.inv_wood >= WOOD_NEEDED:
        # enough wood: no reason to stay near trees; facing a free cell lets the table go down
        return 0.1 if s.facing_block in PLACEABLE else 0.0
    near = -0.1 * float(min(s.dist_tree, 10))
    facing = 0.2 if s.facing_block == "tree" else 0.0
    return near + facing


def compute_reward(prev, action, state, memory):
    placed = float(state.achievements[TABLE] - prev.achievements[TABLE])
    gathered = float(state.achievement_counts[WOOD] - prev.achievement_counts[WOOD])
    # wood counts until the table is placed and only up to what the table needs
    useful = gathered if (not prev.achievements[TABLE] and prev.inv_wood < WOOD_NEEDED) else 0.0
    shaping = potential(state) - potential(prev)
    hurt = -0.1 * float(state.damage_taken)
    death = -1.0 if state.dead else 0.0
    components = {"table": 2.0 * placed, "wood": 1.0 * useful, "approach_tree": shaping, "damage": hurt, "death": death}
    return float(np.sum(list(components.values()))), components
