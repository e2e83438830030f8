"""Rank short texts by relevance to a query: BM25 (rank-bm25) over stemmed words (snowballstemmer).

Used where a prompt shows a small model a list it should choose from (a card's named episode
measures for a fitness proposal; the reward library's examples): the 1.5B model copies what it
sees first, so the most relevant item goes first. Stemming makes "backwards" meet "backward" and
"hopping" meet "hop"; without it most task words miss the measure docs entirely.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+")
# words that say nothing about which item fits (a measure doc and a task both say "the episode")
_STOP = frozenset(
    "a an and as at be by do does for from in is it its of on or the to when while with without "
    "it's that this than then over into per much many".split()
)


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def tokens(text: str) -> list[str]:
    """Lower-cased, stemmed content words; identifiers split on underscores (backward_speed)."""
    words = [w for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOP]
    return list(_stemmer().stemWords(words))


def scores(query: str, docs: Sequence[str]) -> list[float]:
    """BM25 score of each doc for the query (0 for a doc that shares no word with it)."""
    from rank_bm25 import BM25Okapi

    if not docs:
        return []
    corpus = [tokens(d) or ["_"] for d in docs]  # BM25Okapi divides by the mean doc length
    return [float(s) for s in BM25Okapi(corpus).get_scores(tokens(query))]


def rank(query: str, docs: Sequence[str]) -> list[int]:
    """Indices of docs, most relevant first; ties keep the given order (stable)."""
    s = scores(query, docs)
    return sorted(range(len(docs)), key=lambda i: -s[i])
