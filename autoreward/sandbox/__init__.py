"""Running untrusted reward code in a limited child process.

``parent`` starts a worker (``python -m autoreward.sandbox.worker``) with a scrubbed
environment and a wall-clock watchdog; ``child`` is what the worker does to itself (limits) and
offers its jobs (call guard, heartbeat, progress events, short tracebacks);
``confine`` is its OS-level confinement (Landlock, network namespace);
``registry`` is how jobs defined elsewhere (the critic's check, the trainer) become reachable
from the worker without the sandbox importing them.
"""

from autoreward.sandbox.parent import JobResult, Limits, probe_confinement, require_confinement, run_job, scrubbed_env

__all__ = ["JobResult", "Limits", "probe_confinement", "require_confinement", "run_job", "scrubbed_env"]
