"""TEST-ONLY: run code in the sandboxed child with the AST policy switched off.

The static policy (``program.check_source``) is a deny-list; the OS-level confinement
(``confine``) must hold even where it misses something. Tests show that by running code the
policy would refuse (``open``, ``import os``, sockets, ``ctypes``) through the real worker,
under the real limits and confinement, and asserting that the kernel refuses it.

How this cannot be reached outside tests: the worker runs a ``test:*`` job only when the
parent's environment has ``AUTOREWARD_SANDBOX_TESTING=1`` (``parent.TESTING_ENV``, set by the
tests alone) and the job is named ``test:*`` by the parent; no CLI command or library function
names one, and generated code runs inside the child, where it can neither start jobs nor change
the parent's environment.
"""

from __future__ import annotations

from typing import Any

from autoreward.sandbox.registry import job


@job("test:unchecked")
def run_unchecked(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Execute ``payload['source']`` with full builtins and return what its ``probe()`` returns."""
    ns: dict[str, Any] = {"__name__": "unchecked"}
    exec(compile(payload["source"], "<unchecked>", "exec"), ns)  # noqa: S102 - tests only, see module doc
    return {"ok": True, "value": ns["probe"]()}
