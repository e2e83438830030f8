"""Hand-written reward for MetaWorld-reach-v3 (a baseline for the `metaworld` benchmark suite,
standing in for a good designer answer). Reward-program interface; imports only numpy and math.

- approach: a bounded term that grows as the gripper nears the goal (1 at the goal, 0.5 at 5 cm);
- progress: the distance closed this step, in centimetres (dense early signal);
- solved: +1 on every step the env reports success, so the policy stays on the goal.

env: MetaWorld-reach-v3
task: reach
"""
import math


def compute_reward(prev, action, state, memory):
    d = float(state.task_distance)
    components = {
        "approach": 1.0 / (1.0 + (d / 0.05) ** 2),
        "progress": 100.0 * (float(prev.task_distance) - d),
        "solved": 1.0 if state.success else 0.0,
    }
    return float(sum(components.values())), components
