"""The README's example task, written by hand: reward -x velocity, keep upright, small control cost.

env: HalfCheetah-v5
task: run_backwards
fitness: 0.326
untrained: 0.0003
Measured by `autoreward bench --suite quality-quick` (2026-11-24): mean over 3 seeds
(0.621, 0.025, 0.331 m/s) after 15,000 PPO steps with the card's hyperparameters; the untrained policy's beside it.
"""
import numpy as np

def compute_reward(prev, action, state, memory):
    """Run backwards: reward -x velocity, keep upright, small control cost."""
    backward = -state.x_velocity
    upright = -0.5 * max(abs(state.pitch) - 0.5, 0.0)
    ctrl = -0.1 * float(np.sum(np.square(action)))
    total = backward + upright + ctrl
    return total, {"backward": backward, "upright": upright, "ctrl": ctrl}
