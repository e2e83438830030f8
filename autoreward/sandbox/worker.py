"""The sandboxed child's entry point: ``python -m autoreward.sandbox.worker JOB.json``.

It limits and confines itself (``confine``) before touching generated code, imports the module that registered the job,
runs it and writes ``result.json``. Everything a reward program does wrong becomes a precise
error string in that result; nothing it does can take down the parent.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

from autoreward.rundir import write_json
from autoreward.sandbox.child import apply_limits, claim_stdout, die_with_parent, open_heartbeat, short_traceback
from autoreward.sandbox.confine import confine, missing
from autoreward.sandbox.registry import job, lookup


@job("selftest")
def selftest(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """What a job sees of its surroundings: environment names, cwd, limits, network reach."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", int(os.environ.get("AUTOREWARD_SELFTEST_PORT", "9"))), timeout=1).close()
        reach = "connected"
    except OSError as exc:
        reach = f"refused: {exc}"
    return {
        "ok": True,
        "env_names": sorted(os.environ),
        "cwd": os.getcwd(),
        "rlimit_cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
        "rlimit_data": resource.getrlimit(resource.RLIMIT_DATA)[0],
        "loopback": reach,
    }


@job("confinement")
def confinement_probe(payload: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Nothing: the worker adds the ``confinement`` this job got (``parent.probe_confinement``)."""
    return {"ok": True}


def _run(spec: dict[str, Any], absent: list[str]) -> dict[str, Any]:
    """Dispatch the job, unless confinement is required and missing, or it is a test-only job
    (``test:*``, see ``sandbox.testing``) that the parent did not mark as run under tests."""
    if spec.get("require_confinement") and absent:
        return {"ok": False, "error": f"confinement required but not available here: {', '.join(absent)}"}
    if spec["kind"].startswith("test:") and not spec.get("testing"):
        return {"ok": False, "error": f"job {spec['kind']!r} runs only under tests"}
    try:
        fn = lookup(spec["kind"], spec.get("module", ""))
    except KeyError as exc:
        return {"ok": False, "error": str(exc.args[0])}
    return fn(spec["payload"], spec["limits"])


def main(argv: list[str]) -> int:
    job_path = Path(argv[1])
    spec = json.loads(job_path.read_text())
    result_path = Path(spec["result_path"])
    if spec.get("parent_pid"):
        die_with_parent(int(spec["parent_pid"]))
    claim_stdout()
    apply_limits(spec["limits"])
    confinement = confine(str(job_path.parent), spec.get("read_paths", []), spec.get("confinement_off", []))
    if spec.get("heartbeat_path"):
        open_heartbeat(spec["heartbeat_path"])
    try:
        result = _run(spec, missing(confinement))
    except MemoryError:
        result = {"ok": False, "error": f"memory limit of {spec['limits']['memory_mb']} MB exceeded (MemoryError)"}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes data for the Designer
        result = {"ok": False, "error": short_traceback(exc), "traceback": traceback.format_exc()}
    result.update(confinement=confinement, network_isolated=confinement["netns"])
    write_json(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
