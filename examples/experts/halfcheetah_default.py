"""The env's own reward, restated as a reward program (the expert for the env's objective):
forward velocity (the torso's x displacement over dt, exactly as HalfCheetah-v5 computes it)
minus 0.1 * sum(action**2).

env: HalfCheetah-v5
task: default
"""
import numpy as np


def compute_reward(prev, action, state, memory):
    forward = (state.x_position - prev.x_position) / state.dt
    ctrl = -0.1 * float(np.sum(np.square(action)))
    return forward + ctrl, {"forward": forward, "ctrl": ctrl}
