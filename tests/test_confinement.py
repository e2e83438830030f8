"""OS-level confinement holds on its own: code the AST policy would refuse runs in the real worker
(through the test-only ``test:unchecked`` job, see ``autoreward/sandbox/testing.py``) and the
kernel refuses what it tries. Each test also shows the allowed counterpart works, so a refusal
is the confinement's doing and not a broken probe."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import autoreward
from autoreward.errors import SandboxError
from autoreward.sandbox import Limits, probe_confinement, require_confinement, run_job
from autoreward.sandbox import testing as _testing  # noqa: F401  (registers test:unchecked)

LIMITS = Limits(wall_seconds=60, cpu_seconds=30, memory_mb=1024, call_seconds=5)
PRELUDE = '''
import errno, os, socket, ctypes, signal
def attempt(fn):
    try:
        return {"ok": True, "value": repr(fn())[:200]}
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": repr(e)}
def read(path):
    with open(path) as f:
        return f.read()
def write(path):
    with open(path, "w") as f:
        return f.write("pwned")
'''

CONFINED = probe_confinement()
needs = pytest.mark.skipif(not (CONFINED.get("landlock") and CONFINED.get("netns")), reason=f"this OS cannot confine the sandbox: {CONFINED}")


@pytest.fixture(autouse=True)
def _testing_switch(monkeypatch):
    monkeypatch.setenv("AUTOREWARD_SANDBOX_TESTING", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-confinement-test-secret")


def unchecked(body: str, job_dir: Path) -> dict:
    """Run ``probe()`` (defined by ``body``) in the sandbox with the AST policy off."""
    job = run_job("test:unchecked", {"source": PRELUDE + textwrap.dedent(body)}, job_dir, LIMITS)
    assert job.ok, job.error
    everything = json.dumps(job.result) + Path(job.log_path).read_text()
    assert "sk-confinement-test-secret" not in everything
    return job.result["value"]


@needs
def test_writes_land_only_in_the_job_dir(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    v = unchecked(
        f"""
        def probe():
            return {{"outside": attempt(lambda: write({str(outside / "x")!r})), "global_tmp": attempt(lambda: write("/tmp/autoreward-escape")),
                     "job_dir": attempt(lambda: write("inside.txt")), "tmpdir": attempt(lambda: write(os.environ["TMPDIR"] + "/t"))}}
        """,
        tmp_path / "job",
    )
    assert v["outside"]["errno"] == errno.EACCES and v["global_tmp"]["errno"] == errno.EACCES
    assert v["job_dir"]["ok"] and v["tmpdir"]["ok"]
    assert not (outside / "x").exists()
    assert (tmp_path / "job" / "inside.txt").read_text() == "pwned"


@needs
def test_secret_files_and_the_checkout_are_unreadable(tmp_path):
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY----- not really")
    readme = Path(autoreward.__file__).resolve().parents[1] / "README.md"  # a checkout's file beside the package
    v = unchecked(
        f"""
        import numpy
        def probe():
            return {{"key": attempt(lambda: read({str(key)!r})), "readme": attempt(lambda: read({str(readme)!r})),
                     "numpy": attempt(lambda: read(numpy.__file__))}}
        """,
        tmp_path / "job",
    )
    assert v["key"]["errno"] == errno.EACCES
    assert not v["readme"]["ok"]  # EACCES in a checkout; ENOENT when installed
    assert v["numpy"]["ok"]  # Python and its packages stay readable


@needs
def test_the_parents_environment_is_unreadable_through_proc(tmp_path):
    v = unchecked(
        """
        def probe():
            return {"parent": attempt(lambda: read(f"/proc/{os.getppid()}/environ")), "self": attempt(lambda: read("/proc/self/environ")),
                    "names": sorted(os.environ)}
        """,
        tmp_path / "job",
    )
    assert v["parent"]["errno"] == errno.EACCES  # Landlock: no ptrace-mode access outside the sandbox
    assert v["self"]["ok"] and "OPENAI_API_KEY" not in v["names"]


@pytest.mark.parametrize("off, expected", [("", errno.EACCES), ("netns", errno.EACCES), ("landlock", errno.ENETUNREACH)])
@needs
def test_tcp_to_a_listener_on_this_machine_fails(off, expected, tmp_path, monkeypatch):
    """Each mechanism alone stops it: Landlock refuses connect/bind (EACCES), the private
    network namespace has no route to the host's loopback."""
    monkeypatch.setenv("AUTOREWARD_CONFINEMENT_OFF", off)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(5)
    accepted: list[object] = []

    def serve() -> None:
        try:
            accepted.append(srv.accept())
        except OSError:  # timed out or closed: nobody came, as it should be
            pass

    threading.Thread(target=serve, daemon=True).start()
    port = srv.getsockname()[1]
    v = unchecked(
        f"""
        def probe():
            return {{"connect": attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
                     "bind": attempt(lambda: socket.socket().bind(("0.0.0.0", 0)))}}
        """,
        tmp_path / "job",
    )
    srv.close()
    assert v["connect"]["errno"] == expected, v
    if off != "landlock":
        assert v["bind"]["errno"] == errno.EACCES
    assert not accepted


@needs
def test_no_signal_and_no_ptrace_to_the_parent(tmp_path):
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        v = unchecked(
            """
            def probe():
                libc = ctypes.CDLL(None, use_errno=True)
                def ptrace():
                    if libc.ptrace(16, os.getppid(), 0, 0) != 0:  # PTRACE_ATTACH
                        raise OSError(ctypes.get_errno(), "ptrace")
                return {"kill": attempt(lambda: os.kill(os.getppid(), signal.SIGUSR1)), "ptrace": attempt(ptrace),
                        "self": attempt(lambda: os.kill(os.getpid(), 0))}
            """,
            tmp_path / "job",
        )
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert v["kill"]["errno"] == errno.EPERM and v["ptrace"]["errno"] == errno.EPERM
    assert v["self"]["ok"] and not got


@needs
def test_every_result_records_its_confinement(tmp_path):
    job = run_job("confinement", {}, tmp_path, LIMITS)
    c = job.result["confinement"]
    assert c["landlock"] and c["landlock_abi"] >= 1 and c["netns"] and job.result["network_isolated"]
    assert c["landlock_tcp"] == (c["landlock_abi"] >= 4) and c["landlock_signals"] == (c["landlock_abi"] >= 6)


def test_required_confinement_refuses_to_run_without_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOREWARD_CONFINEMENT_OFF", "netns")
    monkeypatch.setenv("AUTOREWARD_REQUIRE_CONFINEMENT", "1")
    job = run_job("test:unchecked", {"source": "def probe():\n    open('ran', 'w')\n"}, tmp_path, LIMITS)
    assert not job.ok and "confinement required but not available here: netns" in job.error
    assert not (tmp_path / "ran").exists()
    with pytest.raises(SandboxError, match="--require-confinement: netns not available"):
        require_confinement()


def test_cli_require_confinement_is_one_line(tmp_path, backwards_source):
    reward = tmp_path / "r.py"
    reward.write_text(backwards_source)
    env = {k: v for k, v in os.environ.items() if k != "AUTOREWARD_SANDBOX_TESTING"}
    cmd = [sys.executable, "-m", "autoreward.cli", "check", str(reward), "--env", "HalfCheetah-v5", "--out", str(tmp_path / "runs"), "--require-confinement"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**env, "AUTOREWARD_CONFINEMENT_OFF": "landlock"})
    assert r.returncode == 2 and r.stderr.startswith("error: --require-confinement: landlock") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before anything ran


@needs
def test_check_prints_the_confinement_and_saves_it(tmp_path, backwards_source):
    reward = tmp_path / "r.py"
    reward.write_text(backwards_source)
    cmd = [sys.executable, "-m", "autoreward.cli", "check", str(reward), "--env", "HalfCheetah-v5", "--task", "run_backwards", "--out", str(tmp_path / "runs"), "--require-confinement"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stdout + r.stderr  # accepted or not (a loaded machine), it ran confined
    assert f"confinement: landlock (ABI {CONFINED['landlock_abi']})" in r.stdout and "netns" in r.stdout
    saved = json.loads(next((tmp_path / "runs").glob("*/candidate/critic.json")).read_text())
    assert saved["confinement"] == CONFINED and saved["network_isolated"] is True


def test_test_only_jobs_need_the_test_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOREWARD_SANDBOX_TESTING")
    job = run_job("test:unchecked", {"source": "def probe():\n    open('ran', 'w')\n"}, tmp_path, LIMITS)
    assert not job.ok and "runs only under tests" in job.error
    assert not (tmp_path / "ran").exists()


@needs
def test_a_user_card_with_a_template_beside_it_is_readable(tmp_path):
    """The child reads the card it is given and the templates beside it, nothing else there."""
    import yaml

    from autoreward.cards import load_card_file
    from autoreward.critic import check_program, record_rollouts
    from autoreward.program import RewardProgram

    raw = yaml.safe_load((Path(__file__).parents[1] / "examples" / "cards" / "Pendulum-v1.yaml").read_text())
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "_pendulum.yaml").write_text(yaml.safe_dump({"training": raw.pop("training")}))
    (cards / "Pendulum-v1.yaml").write_text(yaml.safe_dump({**raw, "template": "_pendulum.yaml"}))
    (cards / "notes.txt").write_text("not for the child")
    card = load_card_file(cards / "Pendulum-v1.yaml")
    rec = record_rollouts(card, tmp_path / "rec.npz")
    src = "def compute_reward(prev, action, state, memory):\n    return state.angular_velocity, {}\n"
    v = check_program(RewardProgram(src), card, "spin", tmp_path / "job", rec)
    assert v.check("dry_run") is not None and v.check("dry_run").passed, v.message


def test_a_worker_dies_with_its_parent(tmp_path):
    """kill -9 of the process that started a worker must not leave the worker running: it sits in
    its own session, so a signal to the parent's group never reached it (PR_SET_PDEATHSIG does)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    job_dir = tmp_path / "job"
    parent = textwrap.dedent(f'''
        from pathlib import Path
        from autoreward.sandbox import Limits, run_job
        from autoreward.sandbox import testing
        src = "import os, time\\ndef probe():\\n    open('pid', 'w').write(str(os.getpid()))\\n    time.sleep(120)\\n"
        run_job("test:unchecked", {{"source": src}}, Path({str(job_dir)!r}), Limits(wall_seconds=300, cpu_seconds=60, memory_mb=1024, call_seconds=5))
    ''')
    proc = subprocess.Popen([sys.executable, "-c", parent])
    pid_file = job_dir / "pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the worker never started"
        time.sleep(0.2)
    worker = int(pid_file.read_text())
    os.kill(worker, 0)  # alive
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{worker}/stat").exists() and Path(f"/proc/{worker}/stat").read_text().split()[2] == "Z":
            return  # dead, waiting to be reaped by init
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the sandbox worker outlived its parent's kill -9")
