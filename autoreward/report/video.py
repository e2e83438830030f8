"""Videos of trained policies: the rollout in the sandbox, the encoding in the parent.

Replaying a policy means loading ``policy.zip`` and ``vecnormalize.pkl``: pickles written by
a worker that ran generated code. The main process never unpickles them, so the rollout runs
as the sandboxed ``render`` job, although a video needs only the policy and the env (the
reward is never called). Landlock lets that child execute nothing but Python, so it cannot
start ffmpeg: it writes each frame, zlib-compressed and length-prefixed, to
``frames-<name>.bin``; the parent reads them back one at a time (plain bytes, checked against
the announced size) and streams them into imageio's ffmpeg writer. Neither side ever holds
more than one frame, and the frame file is deleted once encoded.

An episode is replayed with the evaluation protocol's seed (``EVAL_SEED + i`` for the final
evaluation's episode ``i``) and deterministic actions, so the video shows the very episode whose
fitness ``metrics.json`` recorded; the job recomputes that fitness from the replay, and the
report prints both.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from autoreward.errors import AutorewardError
from autoreward.rundir import read_json, write_json
from autoreward.sandbox.registry import job

VIDEO_DIR = "video"  # inside a candidate folder
INDEX = "videos.json"
#: MuJoCo frame size; Crafter draws its own (256 px square)
WIDTH, HEIGHT = 320, 240
_HEADER = struct.Struct("<I")


# ---------------------------------------------------------------------------------------------
# Child side: replay and write frames


class FrameSink:
    """Appends frames to a file as (4-byte length, zlib bytes); all frames of one shape."""

    def __init__(self, f: BinaryIO, max_frames: int) -> None:
        self.f, self.max_frames = f, max_frames
        self.n, self.shape = 0, None

    def write(self, frame: Any) -> None:
        if frame is None or self.n >= self.max_frames:
            return
        a = np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)[..., :3])
        if self.shape is None:
            self.shape = a.shape
        if a.shape != self.shape:
            raise ValueError(f"frame {self.n} has shape {a.shape}, the first had {self.shape}")
        blob = zlib.compress(a.tobytes(), 1)
        self.f.write(_HEADER.pack(len(blob)))
        self.f.write(blob)
        self.n += 1


@job("render")
def render_job(p: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """Replay the saved policy on each requested seed, writing its frames (sandboxed child)."""
    import pickle

    import torch

    from autoreward.cards import StateExtractor, load_card_file
    from autoreward.episode import fitness_function, rollout
    from autoreward.train.algos import algorithm

    if os.environ.get("MUJOCO_GL", "disable") == "disable":  # the parent's default for jobs that never render
        os.environ["MUJOCO_GL"] = "osmesa"
    torch.set_num_threads(1)
    card = load_card_file(Path(p["card_path"]))
    policy_dir, out_dir = Path(p["policy_dir"]), Path(p["out_dir"])
    metrics = policy_dir / "metrics.json"  # a policy trained by SBX (--trainer sbx) loads with SBX
    trainer = read_json(metrics).get("trainer", "sb3") if metrics.exists() else "sb3"
    model = algorithm(p["algo"]).load(trainer).load(policy_dir / "policy.zip", device="cpu")
    norm = None
    if card.training.normalize_obs and (policy_dir / "vecnormalize.pkl").exists():
        with open(policy_dir / "vecnormalize.pkl", "rb") as f:
            norm = pickle.load(f)  # a VecNormalize without its venv: normalize_obs needs only the statistics
    fitness = fitness_function(p["fitness"], card.measure_exprs, card.field_names)
    max_steps = p.get("max_episode_steps") or card.training.max_episode_steps or 1000
    kwargs = {**(p.get("make_kwargs") or {}), **({"max_episode_steps": max_steps} if p.get("max_episode_steps") else {})}
    try:
        env = card.make_env(render_mode="rgb_array", width=WIDTH, height=HEIGHT, **kwargs)
    except TypeError:  # not a MuJoCo env (Crafter): its own frame size
        env = card.make_env(render_mode="rgb_array", **kwargs)
    fps = int(env.metadata.get("render_fps") or 30)
    out: list[dict[str, Any]] = []
    try:
        extractor = StateExtractor(card, env)
        for ep in p["episodes"]:
            path = out_dir / f"frames-{ep['name']}.bin"
            with open(path, "wb") as f:
                sink = FrameSink(f, int(p["seconds"] * fps))

                def act(t: int, obs: Any, sink: FrameSink = sink) -> Any:  # this episode's sink
                    sink.write(env.render())
                    o = norm.normalize_obs(obs) if norm is not None else obs
                    return model.predict(o, deterministic=True)[0]

                episode = rollout(card, env, extractor, act, seed=int(ep["seed"]), max_steps=max_steps)
                sink.write(env.render())
            h, w = sink.shape[:2] if sink.shape else (0, 0)
            out.append({**ep, "frames": sink.n, "height": h, "width": w, "fps": fps, "length": episode.length,
                        "cause": episode.cause, "fitness_replayed": float(fitness(episode)), "frames_file": path.name})
    finally:
        env.close()
    return {"ok": True, "episodes": out}


# ---------------------------------------------------------------------------------------------
# Parent side: choose episodes, run the job, encode


@dataclass
class EpisodeChoice:
    """One episode of a candidate's final evaluation to film: ``name`` is the video's stem."""

    name: str
    index: int  # in ``final_episodes``; its seed is EVAL_SEED + index
    fitness: float
    success: bool
    cause: str
    why: str  # "best episode" / "failure" / "worst episode (every episode succeeded)"


def choose_episodes(metrics: dict[str, Any], best: bool) -> list[EpisodeChoice]:
    """The episodes to film: the highest-fitness one if this is the run's best candidate, and
    one failure (the lowest-fitness episode that missed the threshold; the lowest-fitness one
    when every episode succeeded)."""
    eps = metrics.get("final_episodes") or []
    if not eps:
        return []
    order = sorted(range(len(eps)), key=lambda i: eps[i]["fitness"])

    def pick(name: str, i: int, why: str) -> EpisodeChoice:
        return EpisodeChoice(name, i, float(eps[i]["fitness"]), bool(eps[i]["success"]), str(eps[i]["cause"]), why)

    out = [pick("best", order[-1], "best episode")] if best else []
    failed = [i for i in order if not eps[i]["success"]]
    out.append(pick("failure", failed[0], "failure") if failed else pick("failure", order[0], "worst episode (every episode succeeded)"))
    return out


def read_frames(path: Path, height: int, width: int) -> Iterator[np.ndarray]:
    """The frames of a ``frames-*.bin`` file, one at a time; a frame of the wrong size is an error."""
    size = height * width * 3
    with open(path, "rb") as f:
        while head := f.read(_HEADER.size):
            (n,) = _HEADER.unpack(head)
            if n > size + 1024:
                raise AutorewardError(f"{path}: a frame record of {n} bytes is larger than a {width}x{height} frame")
            d = zlib.decompressobj()
            raw = d.decompress(f.read(n), size + 1)
            if len(raw) != size:
                raise AutorewardError(f"{path}: a frame of {len(raw)} bytes, not {size}")
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def encode(frames: Iterator[np.ndarray], out: Path, fps: int) -> None:
    """H.264 in MP4 (yuv420p, which browsers play), frames appended as they arrive."""
    import imageio.v2 as imageio

    tmp = out.with_name(out.stem + ".tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error") as w:
        for frame in frames:
            w.append_data(frame)
    os.replace(tmp, out)


def film(card_path: str, cand_dir: Path, fitness: str, choices: list[EpisodeChoice], *, algo: str,
         make_kwargs: dict[str, Any], max_episode_steps: int | None, seconds: float = 20.0) -> list[dict[str, Any]]:
    """Videos of ``choices`` for the candidate in ``cand_dir``: ``video/<name>.mp4`` and an
    index ``video/videos.json``; episodes already filmed are kept. Returns the index entries
    (an ``error`` entry when the sandboxed replay failed, so the report says why)."""
    from autoreward.sandbox import Limits, run_job
    from autoreward.train.evaluate import EVAL_SEED

    vdir = cand_dir / VIDEO_DIR
    index: dict[str, Any] = read_json(vdir / INDEX) if (vdir / INDEX).exists() else {}
    todo = [c for c in choices if c.name not in index or not (vdir / index[c.name].get("file", "-")).exists()]
    if todo:
        payload = {
            "card_path": card_path, "policy_dir": str(cand_dir), "out_dir": str(vdir), "algo": algo, "fitness": fitness,
            "make_kwargs": make_kwargs, "max_episode_steps": max_episode_steps, "seconds": seconds,
            "episodes": [{"name": c.name, "seed": EVAL_SEED + c.index} for c in todo],
        }
        # a safety net for a stuck replay, generous for slow renderers (Meta-World: 480 px, 80 fps) on a loaded machine
        res = run_job("render", payload, vdir, Limits(wall_seconds=180 + 300 * len(todo), cpu_seconds=300 + 300 * len(todo), memory_mb=4096))
        if not res.ok:
            for c in todo:
                index[c.name] = {"error": res.error or "the render job failed", **c.__dict__}
        for ep in res.result.get("episodes", []) if res.ok else []:
            c = next(x for x in todo if x.name == ep["name"])
            frames = vdir / ep.pop("frames_file")
            if ep["frames"]:
                encode(read_frames(frames, ep["height"], ep["width"]), vdir / f"{c.name}.mp4", ep["fps"])
                ep["file"] = f"{c.name}.mp4"
            frames.unlink(missing_ok=True)
            index[c.name] = {**c.__dict__, **ep}
        for left in vdir.glob("frames-*.bin"):  # a replay that died half-way
            left.unlink()
        write_json(vdir / INDEX, index)
    return [index[c.name] for c in choices if c.name in index]
