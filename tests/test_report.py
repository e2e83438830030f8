"""The HTML report: what it shows, its videos, and the page in a real (headless Debian) Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoreward.errors import AutorewardError
from autoreward.report.video import FrameSink, choose_episodes, read_frames

ROOT = Path(__file__).parents[1]
GOOD = (ROOT / "examples" / "halfcheetah_backwards.py").read_text()
BAD = "def compute_reward(prev, action, state, memory):\n    return state.no_such_field, {}\n"
FAST = ["--steps", "1024", "--max-episode-steps", "100", "--eval-episodes", "2", "--set", "n_steps=256", "--set", "n_epochs=1", "--n-envs", "1"]
CHROMIUM = "/usr/bin/chromium"
#: the flags the brief names: no network, no GPU, no sandbox (root in a container)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOREWARD_NO_REPORT"}  # conftest turns the default off elsewhere
    return subprocess.run([sys.executable, "-m", "autoreward.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=900, env=env)


# ---------------------------------------------------------------------------------------------
# Fast: the parts, and mistakes


def test_the_filmed_episodes_are_the_best_and_a_real_failure():
    eps = [{"fitness": f, "success": f >= 1.0, "cause": c} for f, c in ((0.5, "time_limit"), (2.0, "time_limit"), (-1.0, "flipped"), (1.5, "time_limit"))]
    best, failure = choose_episodes({"final_episodes": eps}, best=True)
    assert (best.name, best.index, best.fitness) == ("best", 1, 2.0)
    assert (failure.name, failure.index, failure.cause, failure.why) == ("failure", 2, "flipped", "failure")
    assert [c.name for c in choose_episodes({"final_episodes": eps}, best=False)] == ["failure"]
    all_good = [{**e, "success": True} for e in eps]
    assert choose_episodes({"final_episodes": all_good}, best=False)[0].why.startswith("worst episode")
    assert choose_episodes({}, best=True) == []


def test_frames_stream_through_a_file_and_a_damaged_record_is_refused(tmp_path):
    frames = [np.full((24, 32, 3), i * 40, np.uint8) for i in range(5)]
    with open(tmp_path / "f.bin", "wb") as f:
        sink = FrameSink(f, max_frames=4)
        for fr in frames:
            sink.write(fr)
    assert sink.n == 4 and sink.shape == (24, 32, 3)
    back = list(read_frames(tmp_path / "f.bin", 24, 32))
    assert len(back) == 4 and all((a == b).all() for a, b in zip(back, frames))
    with pytest.raises(AutorewardError, match="a frame of 2304 bytes, not 2376"):  # a frame of another size: the announced shape is enforced
        list(read_frames(tmp_path / "f.bin", 24, 33))
    blob = zlib.compress(bytes(10))
    (tmp_path / "bad.bin").write_bytes(len(blob).to_bytes(4, "little") + blob)
    with pytest.raises(AutorewardError, match="a frame of 10 bytes"):
        list(read_frames(tmp_path / "bad.bin", 24, 32))


def test_a_replay_that_fails_in_the_sandbox_becomes_a_reason_on_the_page(tmp_path):
    """A damaged policy.zip: the sandboxed render job fails, the index says why, nothing is left
    behind, and the next report tries again (an error entry is not a video)."""
    from autoreward.cards import load_card
    from autoreward.report.video import choose_episodes, film

    card = load_card("HalfCheetah-v5")
    (tmp_path / "policy.zip").write_bytes(b"not a zip file")
    eps = {"final_episodes": [{"fitness": 0.1, "success": False, "cause": "time_limit"}]}
    out = film(card.path, tmp_path, card.task("run_backwards").fitness, choose_episodes(eps, best=True), algo="ppo",
               make_kwargs={}, max_episode_steps=50, seconds=1)
    assert [v["name"] for v in out] == ["best", "failure"] and all("zip" in v["error"].lower() for v in out), out
    assert not list((tmp_path / "video").glob("*.mp4")) and not list((tmp_path / "video").glob("frames-*"))


def test_report_of_a_missing_run_is_one_line(tmp_path):
    r = cli("report", str(tmp_path / "nope"), cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("report", str(tmp_path), "--video-seconds", "0", cwd=tmp_path)  # not a run directory
    assert r.returncode != 0 and "no run.json" in r.stderr and "Traceback" not in r.stderr


def test_report_of_a_check_run_shows_the_code_and_the_verdict(tmp_path):
    (tmp_path / "bad.py").write_text(BAD)
    check = cli("check", "bad.py", "--env", "HalfCheetah-v5", "--task", "run_backwards", "--out", "runs", cwd=tmp_path)
    assert check.returncode == 1, check.stdout + check.stderr
    run = next((tmp_path / "runs").iterdir())
    r = cli("report", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    html = (run / "report.html").read_text()
    assert 'class="code"' in html and "no_such_field" in html  # highlighted by pygments
    assert "FAIL</span> dry_run" in html and "rejected" in html
    assert "No candidate has been trained successfully yet." in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing fetched at view time


def test_a_reward_that_rose_while_fitness_fell_is_flagged_as_hacking_on_the_page(tmp_path):
    """The analyzer's own numbers on a candidate whose reward went up as the task fitness went
    down (the metrics a trainer writes, here built by hand): the page shows the flag and the plot."""
    from autoreward.analyzer import analyze
    from autoreward.report import write_report
    from autoreward.rundir import record_run, write_json

    record_run(tmp_path, "eval", {"reward": "hack.py", "env": "HalfCheetah-v5", "task": "run_backwards", "spec": {}})
    cand = tmp_path / "candidate"
    cand.mkdir()
    (cand / "reward.py").write_text(GOOD)
    write_json(cand / "critic.json", {"accepted": True, "checks": [{"name": "static", "passed": True, "message": "", "warnings": []}]})
    rows = [{"step": k * 200, "task/fitness": 0.5 - 0.1 * k, "eval/reward_return": 10.0 * k} for k in range(6)]
    ep = {"fitness": -0.1, "success": False, "env_return": 1.0, "reward_return": 50.0, "length": 100, "cause": "time_limit"}
    write_json(cand / "metrics.json", {
        "ok": True, "algo": "ppo", "steps": 1000, "fitness": -0.1, "success_rate": 0.0, "solved": False, "progress": rows,
        "untrained": {"fitness_mean": 0.5, "success_rate": 0.0, "env_return_mean": 0.0},
        "final": {"fitness_mean": -0.1, "success_rate": 0.0, "env_return_mean": 1.0, "length_mean": 100.0, "causes": {"time_limit": 1}},
        "final_episodes": [ep], "components": {"backward": {"min": 0.0, "mean": 1.0, "max": 2.0, "series": [[200, 0.5], [400, 1.5]]}},
    })
    flags = analyze(cand, "run backwards")["numbers"]["flags"]
    assert any(f.startswith("reward hacking") for f in flags)
    html = write_report(tmp_path, videos=False).read_text()
    assert "⚠ reward hacking" in html and 'class="flag hack"' in html and "moved apart over training (Spearman -1.0)" in html
    assert "≤ 0: flagged as reward hacking" in html  # the correlation plot's caption
    assert 'href="candidate/metrics.json"' in html and 'href="candidate/analysis.json"' in html


def test_a_halved_candidates_components_span_its_rungs(tmp_path):
    """Successive halving leaves one metrics.json per rung; the page's component plot joins them
    in order (the candidate's own metrics.json holds the last rung's part only)."""
    from autoreward.report import _components
    from autoreward.rundir import Candidate, write_json

    cand = tmp_path / "iter0" / "cand0"
    write_json(cand / "candidate.json", {"accepted": True, "repairs": 0})
    for k, steps in enumerate(([100, 200], [300, 400], [500])):
        write_json(cand / f"rung{k}" / "metrics.json", {"ok": True, "components": {"speed": {"series": [[x, x / 100] for x in steps]}}})
    write_json(cand / "metrics.json", {"ok": True, "fitness": 1.0, "halving": {"rung": 1, "cut": "ranked 2 of 2 at rung 1"},
                                       "components": {"speed": {"series": [[300, 3.0], [400, 4.0]]}}})
    c = Candidate.read(tmp_path, cand)
    assert _components(c)["speed"]["series"] == [[100, 1.0], [200, 2.0], [300, 3.0], [400, 4.0]]  # rung 2 was never reached by it


# ---------------------------------------------------------------------------------------------
# Slow: a real run (scripted LLM), refined once with feedback, then its report in Chromium


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory) -> Path:
    """One iteration of 2 samples (one repaired), refined with words: 3 trained candidates."""
    tmp = tmp_path_factory.mktemp("report")
    rules = [
        {"match": "This reward function was rejected", "response": f"Fixed.\n```python\n{GOOD.replace('-0.1 *', '-0.2 *')}```"},
        {"match": "Does this code reward the task as written?", "response": "VERDICT: ACCEPT\nREASON: it rewards moving towards -x."},
        {"match": "Measured numbers:", "response": "It moves backwards slowly; raise the speed term."},
        {"match": "was the best so far", "response": f"Scaled up.\n```python\n{GOOD.replace('-0.1 *', '-0.05 *')}```"},
    ]
    (tmp / "s.yaml").write_text(yaml.safe_dump(rules + [f"```python\n{GOOD}```", f"```python\n{BAD}```"]))
    base = ["--model", f"scripted:{tmp / 's.yaml'}", "--out", "runs", "--no-library"]
    r = cli("run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--iterations", "1", "--samples", "2",
            *FAST, *base, cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    run = next((tmp / "runs").iterdir())
    assert "report: runs/" in r.stdout and (run / "report.html").exists()  # written at the end by default (--no-report: test_live_view)
    r = cli("refine", str(run), "--feedback", "keep the torso level while running", cwd=tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "filming iter1/cand0" in r.stdout
    return run


@pytest.mark.slow
def test_the_report_shows_every_candidate_with_traceable_numbers_and_videos(reported_run):
    run = reported_run
    html = (run / "report.html").read_text()
    best = json.loads((run / "result.json").read_text())["best"]
    metrics = json.loads((run / best["path"] / "metrics.json").read_text())
    assert f"{metrics['fitness']:.4g}" in html and f"{metrics['untrained']['fitness_mean']:.4g}" in html
    assert "(ep.first.x_position - ep.last.x_position)" in html  # the preset's fitness definition
    for rel in ("iter0/cand0", "iter0/cand1", "iter1/cand0"):
        assert f'id="{rel.replace("/", "-")}"' in html and f'href="{rel}/metrics.json"' in html
    assert "keep the torso level while running" in html  # the human feedback
    assert "no_such_field" in html and "was sent back (exception)" in html  # the repair history
    assert "It moves backwards slowly" in html  # the analyzer's text
    assert "Spearman" in html and html.count("data:image/png;base64,") >= 2 + 2 * 3
    for rel in ("iter0/cand0", "iter0/cand1", "iter1/cand0"):
        index = json.loads((run / rel / "video" / "videos.json").read_text())
        assert (run / rel / "video" / "failure.mp4").stat().st_size > 1000
        assert abs(index["failure"]["fitness_replayed"] - index["failure"]["fitness"]) < 1e-6  # the very episode metrics.json recorded
        assert not list((run / rel / "video").glob("frames-*.bin"))
    assert f'src="{best["path"]}/video/best.mp4"' in html


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/setup.sh installs it)")
def test_the_report_in_headless_chromium_has_plots_and_the_best_video_plays(reported_run, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1500})  # as docs/report.png
            problems: list[str] = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto((reported_run / "report.html").as_uri())
            page.wait_for_load_state("load")
            plots = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(plots) >= 2 + 2 * 3 and all(ok and w > 100 for ok, w in plots), plots
            played = page.evaluate("""async () => {
                const v = document.getElementById('best-video');
                await v.play();
                const t0 = v.currentTime;
                await new Promise(r => setTimeout(r, 1500));
                return [t0, v.currentTime, v.videoWidth, v.error ? v.error.code : 0];
            }""")
            assert played[1] > played[0] + 0.3 and played[2] > 0 and played[3] == 0, played
            page.screenshot(path=str(tmp_path / "report.png"))
            assert not problems, problems
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
    if os.environ.get("AUTOREWARD_SCREENSHOT"):  # how docs/report.png is refreshed
        shutil.copy(tmp_path / "report.png", os.environ["AUTOREWARD_SCREENSHOT"])


# ---------------------------------------------------------------------------------------------
# --tensorboard


def test_tensorboard_without_the_package_is_one_line_before_any_work(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    hide = "import sys; sys.modules['tensorboard'] = None; from autoreward.cli import main; main()"  # as if not installed
    for cmd in (["eval", "good.py", "--env", "HalfCheetah-v5", "--task", "run_backwards"],
                ["run", "run backwards", "--env", "HalfCheetah-v5", "--preset", "run_backwards", "--model", "scripted:none.yaml"]):
        r = subprocess.run([sys.executable, "-c", hide, *cmd, "--tensorboard", "--out", "runs"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip() == "error: --tensorboard needs the tensorboard package, which is not installed (pip install 'autoreward[tb]')"
        assert not (tmp_path / "runs").exists()  # nothing started


@pytest.mark.slow
def test_eval_with_tensorboard_writes_sb3_event_files_in_the_candidate(tmp_path):
    (tmp_path / "good.py").write_text(GOOD)
    r = cli("eval", "good.py", "--env", "HalfCheetah-v5", "--task", "run_backwards", "--steps", "512", "--max-episode-steps", "50",
            "--eval-episodes", "1", "--set", "n_steps=256", "--set", "n_epochs=1", "--n-envs", "1", "--tensorboard", "--out", "runs", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    cand = next((tmp_path / "runs").iterdir()) / "candidate"
    events = list((cand / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
