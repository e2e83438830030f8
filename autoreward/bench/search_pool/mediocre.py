"""Search bench pool: MEDIOCRE. Points the right way but stops paying above 0.3 m/s backwards, so
the policy has no reason to run faster than a slow shuffle."""
import numpy as np

def compute_reward(prev, action, state, memory):
    backward = min(-state.x_velocity, 0.3)
    ctrl = -0.1 * float(np.sum(np.square(action)))
    return backward + ctrl, {"backward": backward, "ctrl": ctrl}
