"""Search bench pool: BREAKS AT RUN TIME. Like good.py (a stronger upright term, a lighter control
cost, so it is no copy of it) plus a 250-step history buffer that overflows at step 251 of an
episode: the critic's recorded episodes are at most 200 steps, so it passes the dry run, and
training fails with an IndexError (successive halving cuts it at once)."""
import numpy as np

def compute_reward(prev, action, state, memory):
    if "xs" not in memory:
        memory["xs"] = np.zeros(250)
        memory["t"] = 0
    memory["xs"][memory["t"]] = state.x_position
    memory["t"] += 1
    backward = -state.x_velocity
    upright = -1.0 * max(abs(state.pitch) - 0.5, 0.0)
    ctrl = -0.05 * float(np.sum(np.square(action)))
    return backward + upright + ctrl, {"backward": backward, "upright": upright, "ctrl": ctrl}
