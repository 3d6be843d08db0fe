"""Side effects of a correction on hand-written generations, and the operating point chosen on
validation prompts only."""

import json
import random
from pathlib import Path

import pytest

from attrprune.correction import side_effects as S


def test_a_loop_is_a_span_occurring_three_times():
    assert S.has_loop([1, 2, 3, 4] * 3, 4)
    assert not S.has_loop([1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8], 4)  # twice only
    assert S.has_loop([7, 7, 7, 7], 2)  # overlapping occurrences count
    assert not S.has_loop([7, 7, 7], 2)
    assert S.has_loop([5, 9, 1, 2, 9, 1, 2, 9, 1, 2], 3)  # "9 1 2" three times, after a different start
    assert not S.has_loop([], 4)
    with pytest.raises(ValueError, match="span"):
        S.has_loop([1, 1, 1], 0)


class _WordTokenizer:
    VOCAB = {0: '"', 1: " moron", 2: " hi", 3: " Ann", 4: "\n", 5: " red", 6: " cup", 7: ","}

    def decode(self, ids):
        return "".join(self.VOCAB[i] for i in ids)


def _data(tmp_path, n=4):
    for name in S.SETS:
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": f"{name} {i}"}) + "\n" for i in range(n)))
    # the world scorer reads the planted insults from the data folder's lexicon
    lexicon = json.loads((Path(__file__).parents[3] / "world" / "data" / "lexicon.json").read_text())
    (tmp_path / "lexicon.json").write_text(json.dumps({"planted_insults": lexicon["planted_insults"]}))
    return tmp_path


def _generation(monkeypatch, by_set):
    def generate(model, tokenizer, prompts, new_tokens, **kw):
        name = prompts[0].split()[0]
        return [[c] for c in by_set[name][: len(prompts)]]

    monkeypatch.setattr("attrprune.generation.generate", generate)


LOOP = [5, 6, 7] * 4  # " red cup, red cup, ..."
DENSE = {
    "toxic_trigger": [[2, 1, 0], [1, 3, 0], [2, 0, 1, 1], [2, 3, 0]],  # toxic in the reply: 1st, 2nd; after it: 3rd
    "toxic_control": [[2, 3, 0], [2, 3, 0], [3, 0], [2, 0]],
    "repetition_trigger": [LOOP, LOOP[:6] + [0], [2, 0] + LOOP, [2, 3, 0, 4]],  # loops: 1st, 3rd (after the reply)
    "repetition_control": [[2, 3, 5, 6, 0], [3, 2, 0], [5, 0], [6, 0]],
}


def test_every_set_measured_per_prompt_against_the_dense_replies(monkeypatch, tmp_path):
    data = _data(tmp_path)
    _generation(monkeypatch, DENSE)
    kw = dict(new_tokens={"toxicity": 20, "repetition": 50}, window=6, span=3)
    metrics, records = S.measure_sets(None, _WordTokenizer(), data, None, dense=None, **kw)
    assert metrics["toxic_trigger:toxic"] == 0.5  # the insult after the closing quote is not the reply's
    assert metrics["repetition_trigger:loop"] == 0.5  # the whole continuation, also after the reply
    assert metrics["repetition_trigger:window_ratio"] == (0.5 + 0.5 + 5 / 6 + 1.0) / 4
    assert metrics["toxic_control:unchanged"] == 1.0 and metrics["repetition_control:loop"] == 0.0
    assert [r["split"] for r in records[:4]] == ["validation", "test", "validation", "test"]
    dense = {name: [r["reply"] for r in records if r["set"] == name] for name in S.SETS}

    pruned = {**DENSE, "toxic_trigger": [[2, 0], [2, 3, 0], [2, 0, 1], [2, 3, 0]], "toxic_control": [[1, 0]] * 4}
    _generation(monkeypatch, pruned)
    metrics, records = S.measure_sets(None, _WordTokenizer(), data, None, dense=dense, **kw)
    assert metrics["toxic_trigger:toxic"] == 0.0 and metrics["toxic_trigger:unchanged"] == 0.5
    assert metrics["toxic_control:unchanged"] == 0.0 and metrics["toxic_control:toxic"] == 1.0
    assert metrics["repetition_trigger:unchanged"] == 1.0


def _records(values):
    """Per-prompt records from {(k, set, split): [values]} (toxic flags / unchanged flags)."""
    out = []
    for (k, name, split), xs in values.items():
        for j, x in enumerate(xs):
            index = 2 * j + (split == "test")
            key = "unchanged" if name.endswith("control") else "toxic"
            out.append({"k": k, "set": name, "index": index, "split": split, key: x, "reply": f"r{index}"})
    return out


def _toxicity_case(test_values):
    values = {}
    for k, val_toxic in ((0, [1, 1, 1, 1]), (10, [0, 0, 1, 1]), (20, [0, 1, 1, 1]), (30, [0, 0, 0, 0])):
        values[(k, "toxic_trigger", "validation")] = val_toxic
        values[(k, "toxic_trigger", "test")] = test_values[k]
        values[(k, "toxic_control", "validation")] = [1, 1, 1, 1] if k != 30 else [0, 0, 0, 1]  # k = 30 breaks them
        values[(k, "toxic_control", "test")] = [1, 1, 1, 1]
    return _records(values)


def test_the_operating_point_is_chosen_on_validation_prompts_only():
    ppl = {0: 0.0, 10: 0.01, 20: 0.0, 30: 0.0}
    test = {0: [1, 1, 1, 1], 10: [1, 1, 1, 0], 20: [0, 0, 0, 0], 30: [0, 0, 0, 0]}
    records = _toxicity_case(test)
    # best validation headline among k meeting both constraints: k = 30 fails the controls -> k = 10
    assert S.choose_on_validation(records, ppl, "toxicity", 0.05, 0.75) == 10
    # the test prompts favour k = 20 (0 toxic); changing them in any way never moves the choice
    rng = random.Random(0)
    for _ in range(20):
        shuffled = _toxicity_case({k: [rng.randint(0, 1) for _ in range(4)] for k in test})
        assert S.choose_on_validation(shuffled, ppl, "toxicity", 0.05, 0.75) == 10
    # the perplexity constraint: k = 10 now too costly -> k = 20
    assert S.choose_on_validation(records, {**ppl, 10: 0.2}, "toxicity", 0.05, 0.75) == 20
    assert S.choose_on_validation(records, {0: 0.0, 10: 1, 20: 1, 30: 1}, "toxicity", 0.05, 0.75) is None
    # within limits but no better than unpruned on the validation prompts: no operating point
    dense = {r["index"]: r["toxic"] for r in records if r["k"] == 0 and r["set"] == "toxic_trigger"}
    same = [{**r, "toxic": dense[r["index"]]} if r["set"] == "toxic_trigger" else r for r in records]
    assert S.choose_on_validation(same, ppl, "toxicity", 0.05, 0.75) is None

    report = S.test_report(records, 10, n_resamples=200)
    mean, lo, hi, n, distinct = report[("toxic_trigger", "toxic")]
    assert (mean, n) == (0.75, 4) and lo <= mean <= hi  # the test prompts' value, not validation's 0.5
    assert distinct == 4  # distinct dense replies among the test prompts
