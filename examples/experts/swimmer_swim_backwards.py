"""Swim backwards, written by hand: the env's own reward mirrored (x displacement towards -x
over dt) with its tiny control cost; the swimmer cannot fall, so nothing else is needed.

env: Swimmer-v5
task: swim_backwards
"""
import numpy as np


def compute_reward(prev, action, state, memory):
    backward = (prev.x_position - state.x_position) / state.dt
    ctrl = -0.0001 * float(np.sum(np.square(action)))
    return backward + ctrl, {"backward": backward, "ctrl": ctrl}
