"""Env cards: one YAML declaration per environment feeds both the LLM prompt and the runtime.

``schema`` is what a card may say; ``loading`` finds, validates and renders cards; ``state``
builds the read-only state a reward reads from the card's expressions; ``mujoco_helpers`` holds the
name-based MuJoCo helpers those expressions may call.
"""

from autoreward.cards.loading import all_cards, builtin_cards_dir, card_dirs, load_card, load_card_file, render_card
from autoreward.cards.schema import EnvCard, FieldSpec, TaskSpec, TrainingSpec
from autoreward.cards.state import StateExtractor, state_class, termination_cause

__all__ = [
    "EnvCard", "FieldSpec", "StateExtractor", "TaskSpec", "TrainingSpec", "all_cards", "builtin_cards_dir",
    "card_dirs", "load_card", "load_card_file", "render_card", "state_class", "termination_cause",
]
