"""Turn in place (counterclockwise), written by hand: the yaw rate is the goal (clipped so that
a single violent spin is not worth falling for); an alive bonus keeps the episode going; lying
on the side or back is penalised; drifting from the start is penalised because the fitness
fades to 0 at 2 m; a small control cost as in the env's own reward.

env: Ant-v5
task: turn_in_place
"""
import math

import numpy as np


def compute_reward(prev, action, state, memory):
    x0 = memory.setdefault("x0", prev.x_position)
    y0 = memory.setdefault("y0", prev.y_position)
    turn = float(np.clip(state.yaw_rate, -3.0, 3.0))
    alive = 0.5 if state.is_healthy else 0.0
    upright = 0.0 if state.up_z > 0.5 else -1.0
    drift = -0.5 * math.hypot(state.x_position - x0, state.y_position - y0)
    ctrl = -0.05 * float(np.sum(np.square(action)))
    total = turn + alive + upright + drift + ctrl
    return total, {"turn": turn, "alive": alive, "upright": upright, "drift": drift, "ctrl": ctrl}
