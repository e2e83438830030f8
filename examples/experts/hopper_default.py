"""The env's own reward, restated as a reward program (the expert for the env's objective):
+1 per healthy step, forward velocity (x displacement over dt), minus 0.001 * sum(action**2).

env: Hopper-v5
task: default
fitness: 560.6
untrained: 18.26
Measured by `autoreward bench --suite quality-quick` (2026-11-24): mean over 3 seeds
(1020, 244, 417) after 15,000 PPO steps with the card's hyperparameters; the untrained policy's beside it.
"""
import numpy as np


def compute_reward(prev, action, state, memory):
    healthy = 1.0 if state.is_healthy else 0.0
    forward = (state.x_position - prev.x_position) / state.dt
    ctrl = -0.001 * float(np.sum(np.square(action)))
    return healthy + forward + ctrl, {"healthy": healthy, "forward": forward, "ctrl": ctrl}
