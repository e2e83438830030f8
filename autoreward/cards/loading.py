"""Finding, loading and rendering env cards.

The packaged cards live in ``envs/``; a user adds an environment by writing a card in a
directory named by ``--cards DIR`` or the ``AUTOREWARD_CARDS`` environment variable
(``:``-separated), without editing the package. The text the LLM sees (:func:`render_card`)
and the state the reward receives (``state.py``) are built from the same card, so they cannot
drift apart.

A card may name a **template** (``template: _family.yaml``, a path relative to the card's own
folder, else to the built-in ``envs/``): a partial card that several cards share, so a family of
envs (the Meta-World tasks) is one state list with per-task data rather than copies. Files whose
name starts with ``_`` are templates, never cards. See :func:`merge_template` for the rules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from autoreward.cards.schema import EnvCard
from autoreward.errors import CardError, UnknownEnvError
from autoreward.program import check_source
from autoreward.prompts_io import data_dir, render


def builtin_cards_dir() -> Path:
    """The packaged cards: ``envs/`` in a checkout, ``autoreward/envs`` after ``pip install .``."""
    return data_dir("envs", "*.yaml")


def card_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Directories searched for cards: user ones first, so a user card can override a built-in."""
    dirs = [Path(p) for p in (extra or [])]
    env = os.environ.get("AUTOREWARD_CARDS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(builtin_cards_dir())
    return dirs


def load_card_file(path: Path) -> EnvCard:
    """Parse and validate one card; a broken card is a one-line error naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(f"cannot read env card {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(raw, dict):
        raise CardError(f"env card {path} is not a YAML mapping")
    if "template" in raw:
        raw = merge_template(_read_template(Path(path), raw.pop("template")), raw)
    raw["path"] = str(Path(path).resolve())
    try:
        card = EnvCard.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise CardError(f"env card {path}: {loc}: {first['msg']}") from exc
    if card.reward_example:  # the designer copies it, so it must itself be a valid program
        findings = check_source(card.reward_example)
        if findings:
            raise CardError(f"env card {path}: reward_example: {findings[0]}", "it must pass the same policy as generated rewards")
    return card


def _read_template(card_path: Path, name: Any) -> dict[str, Any]:
    """The template a card names: beside the card first, then among the built-in cards."""
    if not isinstance(name, str) or not name:
        raise CardError(f"env card {card_path}: template: must be a file name such as _family.yaml")
    for base in (card_path.parent, builtin_cards_dir()):
        candidate = base / name
        if candidate.is_file():
            try:
                raw = yaml.safe_load(candidate.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise CardError(f"cannot read card template {candidate}: {exc}".splitlines()[0]) from exc
            if not isinstance(raw, dict) or "template" in raw:
                raise CardError(f"card template {candidate} must be a YAML mapping without a template of its own")
            return raw
    raise CardError(f"env card {card_path}: template {name!r} not found", f"put it beside the card or in {builtin_cards_dir()}")


def merge_template(template: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
    """The card over its template. Mappings merge key by key (recursively: a card adds or
    overrides one preset, measure or hyperparameter); ``state`` merges by field name (an entry
    whose name the template has updates that field's keys, e.g. only its ``expr`` or ``doc``; a new
    name is appended); ``notes`` are the template's followed by the card's; anything else the
    card sets replaces the template's value."""
    out = dict(template)
    for key, value in card.items():
        old = out.get(key)
        if key == "state" and isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_fields(old, value)
        elif key == "notes" and isinstance(old, list) and isinstance(value, list):
            out[key] = [*old, *value]
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_template(old, value)
        else:
            out[key] = value
    return out


def _merge_fields(base: list[Any], extra: list[Any]) -> list[Any]:
    fields = [dict(f) if isinstance(f, dict) else f for f in base]
    index = {f.get("name"): i for i, f in enumerate(fields) if isinstance(f, dict)}
    for f in extra:
        name = f.get("name") if isinstance(f, dict) else None
        if name in index:
            fields[index[name]] = {**fields[index[name]], **f}
        else:
            fields.append(f)
    return fields


def all_cards(extra: list[Path] | None = None) -> dict[str, EnvCard]:
    """Every card found, keyed by env id (user directories win over the built-in ones)."""
    cards: dict[str, EnvCard] = {}
    for d in reversed(card_dirs(extra)):
        if not d.is_dir():
            raise CardError(f"card directory {d} does not exist", "check --cards / AUTOREWARD_CARDS")
        for path in sorted(d.glob("*.yaml")):
            if path.name.startswith("_"):  # a template, see merge_template
                continue
            card = load_card_file(path)
            cards[card.id] = card
    return cards


def load_card(env_id: str, extra: list[Path] | None = None) -> EnvCard:
    """The card for ``env_id``; accepts a path to a card file too."""
    p = Path(env_id)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return load_card_file(p)
    cards = all_cards(extra)
    if env_id in cards:
        return cards[env_id]
    lowered = {k.lower(): k for k in cards}
    if env_id.lower() in lowered:
        return cards[lowered[env_id.lower()]]
    close = [k for k in cards if k.split("-")[0].lower() == env_id.split("-")[0].lower()]
    hint = f"did you mean {close[0]}?" if close else f"known envs: {', '.join(sorted(cards))}"
    raise UnknownEnvError(f"no env card for {env_id!r}", hint)


def render_card(card: EnvCard) -> str:
    """The exact text the LLM gets about this env (``prompts/env_card.j2``)."""
    return render("env_card.j2", card=card).strip() + "\n"
