"""Hop in place, written by hand: height above the settled stance (1.2 m) is the goal; staying
alive keeps the episode (and the fitness) going; distance from the start is penalised because
the fitness fades to 0 at 1 m away; a small control cost keeps the hops smooth.

env: Hopper-v5
task: hop_in_place
"""
import numpy as np


def compute_reward(prev, action, state, memory):
    x0 = memory.setdefault("x0", prev.x_position)
    height = 5.0 * max(state.torso_height - 1.2, 0.0)
    alive = 1.0 if state.is_healthy else 0.0
    drift = -1.0 * abs(state.x_position - x0)
    ctrl = -0.001 * float(np.sum(np.square(action)))
    return height + alive + drift + ctrl, {"height": height, "alive": alive, "drift": drift, "ctrl": ctrl}
