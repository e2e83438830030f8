"""Running untrusted reward code in a limited child process.

``parent`` starts a worker (``python -m autoreward.sandbox.worker``) with a scrubbed
environment and a wall-clock watchdog; ``child`` is what the worker does to itself (limits,
network isolation) and offers its jobs (call guard, progress events, short tracebacks);
``registry`` is how jobs defined elsewhere (the critic's check, the trainer) become reachable
from the worker without the sandbox importing them.
"""

from autoreward.sandbox.parent import JobResult, Limits, run_job, scrubbed_env

__all__ = ["JobResult", "Limits", "run_job", "scrubbed_env"]
