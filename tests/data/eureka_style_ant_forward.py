"""Ant, run forward: a reward in the style GPT-4o writes in Eureka (Ma et al. 2023, "Eureka:
Human-Level Reward Design via Coding Large Language Models", arXiv:2310.12931) and in
independent reproductions of it on gymnasium's Ant: temperature-scaled terms, and a total that
is ``exp(0.15 * (sum of the terms))``, not the sum of its components. Written for this test in
that style, with autoreward's Ant-v5 field names; not a verbatim copy of any published reward."""

import numpy as np


def compute_reward(prev, action, state, memory):
    # temperature parameters for the transformed terms
    velocity_temperature = 0.5
    upright_temperature = 2.0

    forward_velocity_reward = 2.0 * np.tanh(velocity_temperature * state.x_velocity)
    upright_reward = float(np.exp(-upright_temperature * (1.0 - state.up_z)))
    height_reward = -abs(state.torso_height - 0.55)
    sideways_penalty = -0.5 * abs(state.y_velocity)
    action_penalty = -0.05 * float(np.sum(np.square(action)))

    components = {
        "forward_velocity_reward": float(forward_velocity_reward),
        "upright_reward": upright_reward,
        "height_reward": float(height_reward),
        "sideways_penalty": float(sideways_penalty),
        "action_penalty": action_penalty,
    }
    total_reward = float(np.exp(0.15 * sum(components.values())))
    return total_reward, components
