"""The README's example task, written by hand: reward -x velocity, keep upright, small control cost.

env: HalfCheetah-v5
task: run_backwards
"""
import numpy as np

def compute_reward(prev, action, state, memory):
    """Run backwards: reward -x velocity, keep upright, small control cost."""
    backward = -state.x_velocity
    upright = -0.5 * max(abs(state.pitch) - 0.5, 0.0)
    ctrl = -0.1 * float(np.sum(np.square(action)))
    total = backward + upright + ctrl
    return total, {"backward": backward, "upright": upright, "ctrl": ctrl}
