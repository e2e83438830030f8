"""Search bench pool (HalfCheetah-v5, run_backwards): GOOD. Backward velocity, a penalty for tipping
past 0.5 rad, a small control cost (the README example's hand-written reward)."""
import numpy as np

def compute_reward(prev, action, state, memory):
    """Run backwards: reward -x velocity, keep upright, small control cost."""
    backward = -state.x_velocity
    upright = -0.5 * max(abs(state.pitch) - 0.5, 0.0)
    ctrl = -0.1 * float(np.sum(np.square(action)))
    total = backward + upright + ctrl
    return total, {"backward": backward, "upright": upright, "ctrl": ctrl}
