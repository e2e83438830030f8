"""Search bench pool: WRONG WAY BUT PASSING. A large effort penalty hides a term that pays for
moving forward: over the critic's recorded rollouts the returns follow the effort (which says
nothing about direction), so the behaviour probe passes it; once training has cut the effort,
the forward term is all that is left and the cheetah runs the wrong way."""
import numpy as np

def compute_reward(prev, action, state, memory):
    effort = -2.0 * float(np.sum(np.square(action)))
    forward = 0.3 * state.x_velocity
    return effort + forward, {"effort": effort, "forward": forward}
