"""Search bench pool: RESCALED copy of good.py. The same reward renamed, reordered, times 3 plus
0.5: it orders transitions exactly as good.py does, so behavioural dedupe must catch it."""
import numpy as np

def compute_reward(prev, action, state, memory):
    effort = -0.3 * float(np.sum(np.square(action)))
    stay_up = -1.5 * max(abs(state.pitch) - 0.5, 0.0)
    go_back = -3.0 * state.x_velocity
    bonus = 0.5
    return go_back + stay_up + effort + bonus, {"go_back": go_back, "stay_up": stay_up, "effort": effort, "bonus": bonus}
