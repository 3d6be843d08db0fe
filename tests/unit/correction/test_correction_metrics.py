"""The correction stage's text metrics on hand-made token lists and strings: the fixed-window
uniqueness ratio, distinct-n, reply closing, empty replies and control fidelity, and how
`measure_behaviour` / `measure_controls` aggregate them (generation replaced by fixed token lists)."""

import math

import pytest

from attrprune.correction.measure import (
    closes_reply,
    empty_share,
    measure_behaviour,
    measure_controls,
    unchanged_share,
)
from attrprune.correction.prompts import split_controls
from attrprune.generation import distinct_n, response_uniqueness_ratio, window_uniqueness_ratio


def test_window_ratio_sees_only_the_first_tokens():
    ids = [1, 2, 1, 2, 3, 4, 5]
    assert window_uniqueness_ratio(ids, 4) == 2 / 4  # {1, 2} in [1, 2, 1, 2]
    assert response_uniqueness_ratio(ids) == 5 / 7  # the whole continuation differs
    assert window_uniqueness_ratio(ids, 100) == 5 / 7  # shorter than the window: what there is
    assert window_uniqueness_ratio([], 4) == 0.0
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            window_uniqueness_ratio(ids, bad)


def test_distinct_n_counts_ngrams_not_tokens():
    assert distinct_n([1, 2, 1, 2, 1], 2) == 2 / 4  # (1,2) (2,1) (1,2) (2,1); tokens alone: 2/5
    assert distinct_n([1, 1, 1, 2], 2) == 2 / 3  # (1,1) (1,1) (1,2); tokens alone: 2/4
    assert distinct_n([1, 2, 3], 2) == 1.0
    assert distinct_n([1, 1, 2], 1) == 2 / 3  # n = 1 is the uniqueness ratio
    assert distinct_n([7], 2) == 0.0 and distinct_n([], 2) == 0.0  # no bigram at all
    with pytest.raises(ValueError, match="n-gram order"):
        distinct_n([1, 2], 0)


def test_a_reply_is_closed_only_by_a_quote_before_any_newline():
    assert closes_reply('You are kind." Then Kim left.')
    assert closes_reply('"')  # an empty reply, closed at once
    assert not closes_reply("You are are are are")  # never closed within the tokens
    assert not closes_reply('You are kind.\nKim said: "hi"')  # the line ends first
    assert not closes_reply("")


def test_unchanged_share_and_empty_share():
    assert unchanged_share(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75
    assert unchanged_share(["a "], ["a"]) == 0.0  # identical text, not similar text
    with pytest.raises(ValueError, match="prompts differ"):
        unchanged_share(["a"], ["a", "b"])
    assert empty_share([0, 3, 0, 5]) == 0.5
    assert math.isnan(empty_share([]))


class _CharTokenizer:
    """One character per token id."""

    VOCAB = {0: '"', 1: "\n", 2: "a", 3: "b", 4: " "}

    def decode(self, ids):
        return "".join(self.VOCAB[i] for i in ids)


def _fixed_generation(monkeypatch, continuations):
    def generate(model, tokenizer, prompts, new_tokens, **kw):
        assert not kw.get("do_sample") and len(prompts) == len(continuations)
        return [[c] for c in continuations]

    monkeypatch.setattr("attrprune.generation.generate", generate)


DENSE = [
    [2, 3, 0, 4, 2],  # 'ab" a': reply 'ab', closed
    [2, 2, 2, 2],  # 'aaaa': never closed
    [1, 0],  # newline first: empty reply, not closed
    [0],  # '"': empty reply, closed
]


def test_controls_against_the_dense_replies(monkeypatch):
    tok, prompts = _CharTokenizer(), ["p1", "p2", "p3", "p4"]
    _fixed_generation(monkeypatch, DENSE)
    dense, records = measure_controls(None, tok, prompts, None, new_tokens=5)
    assert dense == {
        "control_unchanged": 1.0,
        "control_unique_ratio": (1.0 + 0.25 + 0.0 + 0.0) / 4,
        "control_length": (2 + 4 + 0 + 0) / 4,
        "control_closed": 0.5,
    }
    assert [r["greedy_reply"] for r in records] == ["ab", "aaaa", "", ""]
    assert all(r["control"] for r in records)

    _fixed_generation(monkeypatch, [[2, 3, 4, 0], *DENSE[1:]])  # reply 'ab ' instead of 'ab'
    pruned, records = measure_controls(None, tok, prompts, ["ab", "aaaa", "", ""], new_tokens=5)
    assert pruned["control_unchanged"] == 0.75 and [r["unchanged"] for r in records] == [False, True, True, True]
    assert pruned["control_length"] == (3 + 4) / 4 and pruned["control_closed"] == 0.5

    whole, _ = measure_controls(None, tok, prompts, None, reply_only=False, new_tokens=5)
    assert whole["control_length"] == (4 + 4 + 2 + 1) / 4 and "control_closed" not in whole


def test_repetition_window_length_and_empty_replies(monkeypatch):
    _fixed_generation(monkeypatch, [[2, 3, 2, 3, 2, 3, 0, 2], [0, 2, 3]])
    kw = dict(new_tokens=8, n_samples=0, top_p=1.0, temperature=1.0, seed=0, window=4)
    metrics, records = measure_behaviour(None, _CharTokenizer(), ["p1", "p2"], "repetition", **kw)
    # window: [2,3,2,3] -> 2/4; [0,2,3] (shorter than the window) -> 3/3, though its reply is empty
    assert metrics["greedy_unique_ratio_window"] == (0.5 + 1.0) / 2
    assert metrics["greedy_distinct2_window"] == (2 / 3 + 2 / 2) / 2
    assert metrics["greedy_unique_ratio"] == (2 / 6 + 0.0) / 2  # reply only: 'ababab' and ''
    assert metrics["greedy_reply_length"] == 3.0 and metrics["greedy_empty_share"] == 0.5
    assert [r["greedy_window_ratio"] for r in records] == [0.5, 1.0] and not records[0]["control"]


def test_control_split_is_disjoint_from_the_behaviour_and_capped():
    rows = [{"prompt": str(i), "toxicity": t} for i, t in enumerate([0.95, 0.7, 0.1, 0.3, 0.49, 0.92])]
    picked = split_controls(rows, "toxicity", 0.9, 10, seed=0)
    assert sorted(r["prompt"] for r in picked) == ["2", "3", "4"]  # 0.7 is below 0.9 but not clean
    assert len(split_controls(rows, "toxicity", 0.9, 2, seed=0)) == 2
    assert sorted(r["prompt"] for r in split_controls(rows, "toxicity", 0.2, 10, seed=0)) == ["2"]
    rep = [{"prompt": str(i), "unique_ratio": u} for i, u in enumerate([0.1, 0.5, 0.9])]
    assert sorted(r["prompt"] for r in split_controls(rep, "repetition", 0.5, 10, seed=0)) == ["1", "2"]
