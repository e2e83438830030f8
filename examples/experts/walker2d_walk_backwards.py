"""Walk backwards, written by hand: the env's own recipe with the direction turned round
(backward velocity, +1 per healthy step so falling is costly, 0.001 * sum(action**2)).

env: Walker2d-v5
task: walk_backwards
"""
import numpy as np


def compute_reward(prev, action, state, memory):
    backward = (prev.x_position - state.x_position) / state.dt
    healthy = 1.0 if state.is_healthy else 0.0
    ctrl = -0.001 * float(np.sum(np.square(action)))
    return backward + healthy + ctrl, {"backward": backward, "healthy": healthy, "ctrl": ctrl}
