"""The Reward Critic: static policy, dry run, behaviour probe, LLM review.

Each check is a plain function over a program or over recorded transitions (``static``,
``dry_run``, ``probe``, ``review``), testable in-process; ``check`` composes them across the
sandbox boundary; ``recording`` records the rollouts they replay; ``verdict`` holds the
findings as data.
"""

from autoreward.critic.check import check_program
from autoreward.critic.recording import record_rollouts
from autoreward.critic.verdict import CheckResult, Verdict, load_verdict

__all__ = ["CheckResult", "Verdict", "check_program", "load_verdict", "record_rollouts"]
