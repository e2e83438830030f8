"""Faults a run must survive (issue 15 part 4): an LLM server that limits, hangs, answers
garbage or nothing; Ctrl-C and kill -9 in every phase; a killed training worker; a full disk;
a damaged run directory. Each ends in a retry, a clean stop or a one-line error, and `resume`
then loses nothing finished and asks no answer twice.

The LLM is the scripted HTTP server of ``llm_servers.py``: litellm's real client code talks to
it over a socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autoreward.errors import LLMError
from autoreward.llm import get_client, read_log
from autoreward.llm.client import SpendMeter, read_exchanges

try:  # `python -m pytest` puts the repo root on sys.path; plain `pytest` puts tests/
    from tests.llm_servers import Reply, ScriptedLLMServer, isolated_env, server  # noqa: F401 (fixtures)
except ImportError:
    from llm_servers import Reply, ScriptedLLMServer, isolated_env, server  # type: ignore[no-redef]  # noqa: F401

MESSAGES = [{"role": "user", "content": "Make the cheetah run backwards."}]




def client(server: ScriptedLLMServer, log_dir: Path | None = None, **kw):  # type: ignore[no-untyped-def]
    return get_client("openai/test-model", log_dir, api_base=server.openai_base, api_key="sk-test", retry_wait=0.01, **kw)


# ---------------------------------------------------------------------------------------------
# The LLM server misbehaves


def test_retry_after_is_honoured(server: ScriptedLLMServer) -> None:
    """Bug: a 429 with Retry-After: 10 was retried 1.4 s later (the backoff alone)."""
    server.enqueue(Reply.retry_after(2), "after the wait")
    [c] = client(server).complete(MESSAGES)
    assert c.text == "after the wait" and server.count() == 2
    first, second = server.requests
    assert second.time - first.time >= 2.0


def test_a_200_with_a_body_that_is_not_json_says_so(server: ScriptedLLMServer) -> None:
    """Bug: reported as "answered 500" (litellm wraps the decode error as a 500)."""
    server.enqueue(Reply(raw=b"<html><body>Welcome to the proxy</body></html>"))
    with pytest.raises(LLMError) as err:
        client(server).complete(MESSAGES)
    line = err.value.one_line()
    assert "answered 200 with a body that is not JSON" in line and "500" not in line and "\n" not in line
    assert server.count() == 1  # the same URL will give the same page: not retried
    assert err.value.exit_code == 3


def test_a_truncated_body_and_empty_choices_are_retried(server: ScriptedLLMServer) -> None:
    server.enqueue(Reply(truncate=True), Reply(empty_choices=True), "whole")
    [c] = client(server).complete(MESSAGES)
    assert c.text == "whole" and server.count() == 3


def test_empty_choices_to_the_end_is_a_one_line_error(server: ScriptedLLMServer) -> None:
    server.enqueue(*[Reply(empty_choices=True)] * 3)
    with pytest.raises(LLMError) as err:
        client(server, max_retries=2).complete(MESSAGES)
    assert "answered 200 with no choices" in err.value.one_line() and server.count() == 3


def test_a_hung_server_times_out_with_a_hint_naming_a_real_option(server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug: the hint said "raise the timeout option", which no command has."""
    monkeypatch.setenv("AUTOREWARD_LLM_TIMEOUT", "1")
    server.enqueue(Reply.hang(), Reply.hang())
    t0 = time.monotonic()
    with pytest.raises(LLMError) as err:
        client(server, max_retries=1).complete(MESSAGES)
    assert time.monotonic() - t0 < 60  # the 1 s from the variable was used, not the default 300 s
    line = err.value.one_line()
    assert "did not answer within 1 s" in line and "AUTOREWARD_LLM_TIMEOUT=SECONDS" in line and server.count() == 2
    monkeypatch.setenv("AUTOREWARD_LLM_TIMEOUT", "soon")
    with pytest.raises(LLMError, match="AUTOREWARD_LLM_TIMEOUT='soon' is not a number"):
        client(server)


def test_hints_name_only_options_that_exist() -> None:
    """Bug: an unreachable server's hint named --api-base, which no command has."""
    from autoreward.cli import app

    c = get_client("openai/test-model", None, api_base="http://127.0.0.1:9/v1", api_key="k", retry_wait=0.01)
    with pytest.raises(LLMError) as err:
        c.complete(MESSAGES)
    line = err.value.one_line()
    assert "AUTOREWARD_API_BASE" in line and "--api-base" not in line
    options = {o for cmd in app.registered_commands for p in getattr(cmd.callback, "__defaults__", ()) or ()
               for o in getattr(p, "param_decls", ()) or ()}
    for flag in ("--api-base", "--timeout"):
        assert flag not in options  # if one is ever added, the hints may name it


def test_interrupting_a_call_stops_at_once_and_sends_nothing_more(server: ScriptedLLMServer, tmp_path: Path) -> None:
    """Bug: Ctrl-C waited for the in-flight requests (120 s on a hung server) and more were sent
    after it. Two may be out at once (max_parallel): the first answers, the next two hang, so
    the fourth waits its turn and must never be sent. The answered sample's tokens are in the log
    at once, not lost with the interrupted call."""
    server.enqueue("answered", Reply.hang(), Reply.hang(), "never")
    c = client(server, tmp_path / "run")
    c.max_parallel = 2

    def interrupt_when_all_are_out() -> None:
        while server.count() < 3:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_all_are_out, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        c.complete(MESSAGES, n=4)
    assert time.monotonic() - t0 < 10
    time.sleep(1.0)
    assert server.count() == 3
    [line] = read_exchanges(tmp_path / "run")
    assert line["responses"][0]["text"] == "answered" and line["completion_tokens"] == 1
    assert SpendMeter(tmp_path / "run").read()[0] == line["prompt_tokens"] + 1


def test_the_log_has_a_line_per_request_and_read_log_joins_a_call(server: ScriptedLLMServer, tmp_path: Path) -> None:
    server.enqueue("a", "b c")
    client(server, tmp_path).complete(MESSAGES, n=2, template="t.j2", variables={"x": 1})
    lines = read_exchanges(tmp_path)
    assert len(lines) == 2 and sum("messages" in x for x in lines) == 1  # the prompt is written once
    [call] = read_log(tmp_path)
    assert call["messages"] == MESSAGES and call["variables"] == {"x": 1} and call["n"] == 2
    assert sorted(r["text"] for r in call["responses"]) == ["a", "b c"] and call["completion_tokens"] == 3
    meter = SpendMeter(tmp_path)
    assert meter.read() == (call["prompt_tokens"] + 3, 0.0)
    with open(tmp_path / "llm_exchanges.jsonl", "a") as f:
        f.write('{"prompt_tokens": 5, "compl')  # a line being written: not counted yet
    assert meter.read() == (call["prompt_tokens"] + 3, 0.0)


# ---------------------------------------------------------------------------------------------
# Ctrl-C and kill -9 in every phase of `autoreward run`, then `resume`

GOOD = (Path(__file__).parents[1] / "examples" / "halfcheetah_backwards.py").read_text()
ANSWER = f"Here is my reward.\n```python\n{GOOD}```"
REVIEW = "Does this code reward the task as written?"
ANALYZER = "Measured numbers:"
FAST = ["--steps", "2048", "--max-episode-steps", "100", "--eval-episodes", "1", "--set", "n_steps=512", "--set", "n_epochs=1", "--n-envs", "1"]


def _loop_server(s: ScriptedLLMServer) -> ScriptedLLMServer:
    """Answers for every prompt of a run: designs by default, rules for the review and analyzer."""
    s.default = ANSWER
    s.rule(REVIEW, "VERDICT: ACCEPT\nREASON: it rewards moving towards -x.")
    s.rule(ANALYZER, "The policy learned to move backwards.")
    return s


def _env(server: ScriptedLLMServer, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": "sk-test", "AUTOREWARD_API_BASE": server.openai_base,
            "AUTOREWARD_CACHE_DIR": str(tmp_path / "cache"), "AUTOREWARD_LLM_TIMEOUT": "600"}


def _start(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autoreward.cli", *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(cond, what: str, timeout: float = 240.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _training(runs: Path, since: float) -> bool:
    """A training job was started after ``since`` (time.time())."""
    return any(p.stat().st_mtime > since and '"kind": "train"' in p.read_text() for p in runs.glob("*/iter0/cand*/job.json"))


def _workers_alive(run: Path) -> list[int]:
    """Sandbox workers still running a job of ``run``."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "autoreward.sandbox.worker" in cmd and str(run) in cmd:
            out.append(p.pid)
    return out


PHASES = {
    # phase: (what to hold with a hung server, or None for training; whether the phase is under
    # way given the requests of this attempt and the time it started)
    "designing": ("design", lambda new, runs, since: len(new) >= 1),
    "checking": (REVIEW, lambda new, runs, since: any(REVIEW in r.prompt for r in new)),
    "training": (None, lambda new, runs, since: _training(runs, since)),
    "analysing": (ANALYZER, lambda new, runs, since: any(ANALYZER in r.prompt for r in new)),
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", list(PHASES))
def test_ctrl_c_then_kill_9_in_each_phase_then_resume(phase: str, tmp_path: Path) -> None:
    """Ctrl-C in each phase stops within seconds with ONE line saying what is saved (exit 130),
    sends nothing more and leaves no worker behind; kill -9 at the same point, then `resume`,
    finishes the run without asking any answered prompt again, and the token count in
    state.json is what the exchange log says was spent (the killed processes' included)."""
    hold, under_way = PHASES[phase]
    runs = tmp_path / "runs"
    args = ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", "openai/test-model",
            "--iterations", "1", "--samples", "2", *FAST, "--out", str(runs)]
    with _loop_server(ScriptedLLMServer()) as server:
        env = _env(server, tmp_path)
        for attempt, sig in enumerate((signal.SIGINT, signal.SIGKILL)):
            if hold == "design":  # one design answered, the other hangs
                server.enqueue(ANSWER, Reply.hang()) if attempt == 0 else server.enqueue(Reply.hang())
            elif hold:
                server.rule(hold, Reply.hang())
            base, since = server.count(), time.time()
            p = _start(tmp_path, env, *(args if attempt == 0 else ["resume", str(next(runs.iterdir()))]))
            _wait_for(lambda: under_way(server.requests[base + (attempt == 0 and hold == "design"):], runs, since) or p.poll() is not None,
                      f"{phase} under way")
            assert p.poll() is None, p.communicate()
            time.sleep(0.5)
            sent = server.count()
            t0 = time.monotonic()
            if sig == signal.SIGINT:
                p.send_signal(signal.SIGINT)
            else:
                os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate(timeout=60)
            stopped_in = time.monotonic() - t0
            run = next(runs.iterdir())
            if sig == signal.SIGINT:
                assert p.returncode == 130, out + err
                assert stopped_in < 15, stopped_in  # not the hung request's 600 s, nor a whole training
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0] == (
                    f"interrupted: finished steps are saved in {run} (continue with `autoreward resume {run}`)"), err
                assert "Traceback" not in err
            time.sleep(1.0)
            assert server.count() == sent  # nothing sent after the signal
            _wait_for(lambda: not _workers_alive(run), "no sandbox worker left", timeout=30)
            if phase == "training":
                assert not list(run.glob("iter0/cand*/metrics.json"))  # interrupted is not failed
            if hold and hold != "design":
                server.rule(hold, REVIEW_OK if hold == REVIEW else "The policy learned to move backwards.")
        server.default = ANSWER
        r = subprocess.run([sys.executable, "-m", "autoreward.cli", "resume", str(run)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"]
        assert (run / "iter0/cand0/analysis.json").exists()
        answered = [(r.prompt, r.body.get("seed")) for r in server.requests if r.answered]
        assert len(answered) == len(set(answered)), "an answered prompt was asked again"
        log = read_exchanges(run)
        state = json.loads((run / "state.json").read_text())
        assert state["tokens"] == sum(e["prompt_tokens"] + e["completion_tokens"] for e in log) > 0


REVIEW_OK = "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."


# ---------------------------------------------------------------------------------------------
# No server, a full disk, a damaged run directory, a killed training worker


def _script_model(tmp_path: Path, designs: list[str]) -> str:
    import yaml

    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump([{"match": ANALYZER, "response": "The policy learned to move backwards."}]
                                   + [f"```python\n{d}```" for d in designs]))
    return f"scripted:{path}"


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600, env=env)


def test_a_run_that_never_reaches_its_server_leaves_no_run_dir(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "AUTOREWARD_API_BASE": "http://127.0.0.1:9/v1",
           "AUTOREWARD_CACHE_DIR": str(tmp_path / "cache")}
    r = _cli(tmp_path, "run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", "openai/test-model",
             "--out", str(tmp_path / "runs"), env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach http://127.0.0.1:9/v1") and "no run directory was kept" in last
    assert not list((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_full_disk_then_resume_then_damaged_files(tmp_path: Path) -> None:
    """The disk fills while the designs are saved: one line naming the file, exit 1, what was
    written before intact; resume finishes. Then damaged JSON files: resume and show say which
    file and what to do, or show skips the broken candidate with a warning."""
    args = ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", _script_model(tmp_path, [GOOD]),
            "--iterations", "1", "--samples", "1", "--no-review", *FAST, "--out", str(tmp_path / "runs")]
    r = _cli(tmp_path, *args, env={**os.environ, "AUTOREWARD_TEST_ENOSPC": "designs.json"})
    run = next((tmp_path / "runs").iterdir())
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: cannot write {run}/iter0/designs.json: no space left on device")
    assert json.loads((run / "run.json").read_text())["command"] == "run" and not list(run.glob("iter0/.*tmp"))
    r = _cli(tmp_path, "resume", str(run))
    assert r.returncode == 0 and json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"], r.stdout + r.stderr

    metrics = run / "iter0/cand0/metrics.json"
    whole = metrics.read_text()
    metrics.write_text(whole[: len(whole) // 2])  # truncated JSON
    s = _cli(tmp_path, "show", str(run))
    assert s.returncode == 0 and f"warning: skipped iter0/cand0: {metrics} is not valid JSON" in s.stderr
    assert "delete it, and `autoreward resume` redoes the step that wrote it" in s.stderr
    metrics.write_text(whole)
    for name in ("state.json", "run.json"):
        f = run / name
        good = f.read_text()
        f.write_text(good[:20])
        for cmd in ("resume", "show"):
            r = _cli(tmp_path, cmd, str(run))
            if cmd == "show" and name == "state.json":
                continue  # show does not need the loop's state
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {f} is not valid JSON"), r.stderr
            assert ("restore it, or start a new run" if name == "run.json" else "delete it") in lines[0]
        f.write_text(good)


@pytest.mark.slow
def test_a_killed_training_worker_fails_its_candidate_and_the_run_goes_on(tmp_path: Path) -> None:
    import psutil

    other = GOOD.replace("0.5 * max", "0.4 * max")
    args = ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", _script_model(tmp_path, [GOOD, other]),
            "--iterations", "1", "--samples", "2", "--no-review", "--workers", "2", *FAST[:1], "8192", *FAST[2:], "--out", str(tmp_path / "runs")]
    p = _start(tmp_path, dict(os.environ), *args)
    runs = tmp_path / "runs"
    _wait_for(lambda: any('"kind": "train"' in x.read_text() for x in runs.glob("*/iter0/cand1/job.json")) or p.poll() is not None, "training")
    victim: list[int] = []

    def find() -> bool:
        victim[:] = [q.pid for q in psutil.process_iter(["cmdline"]) if "autoreward.sandbox.worker" in " ".join(q.info["cmdline"] or [])
                     and "cand1" in " ".join(q.info["cmdline"] or [])]
        return bool(victim) or p.poll() is not None

    _wait_for(find, "the worker of cand1")
    os.kill(victim[0], signal.SIGKILL)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, out + err
    run = next(runs.iterdir())
    m = json.loads((run / "iter0/cand1/metrics.json").read_text())
    assert not m["ok"] and "killed by signal SIGKILL" in m["error"] and "\n" not in m["error"].strip()
    assert json.loads((run / "iter0/cand0/metrics.json").read_text())["ok"]
    assert "cand1" in out and "training failed" in out
