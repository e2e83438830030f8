"""BM25 over stemmed words: the ranking the fitness prompt and the reward library rely on."""

from autoreward.textrank import rank, scores, tokens


def test_tokens_stem_and_split_identifiers() -> None:
    assert tokens("Hopping backwards_speed, while the torso") == ["hop", "backward", "speed", "torso"]


def test_rank_puts_shared_words_first_and_is_stable_on_ties() -> None:
    docs = ["mean forward speed", "collect wood from trees", "mean backward speed", "unrelated"]
    order = rank("run backwards fast", docs)
    assert order[0] == 2
    assert scores("run backwards fast", docs)[1] == 0.0
    assert rank("nothing matches", docs) == [0, 1, 2, 3]
    assert rank("x", []) == []
