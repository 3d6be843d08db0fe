"""Selecting the prompts that show a behaviour, on the world's planted triggers and controls."""

import pytest

from attrprune.correction.prompts import REPETITION_PROMPTS, select_repetitive, select_toxic, split_rows
from attrprune.evaluation.toxicity import WorldScorer
from attrprune.text import read_jsonl


def _prompts(data, name, n=12):
    return [r["prompt"] for r in read_jsonl(data / f"{name}.jsonl")[:n]]


def test_repetitive_prompts_are_the_triggers(world_llama):
    model, tok, data = world_llama
    # 48 of each: the triggers' loop rate is about 0.9 (the world card, 500 prompts), so a dozen
    # prompts would leave the count to chance
    triggers, controls = _prompts(data, "repetition_trigger", 48), _prompts(data, "repetition_control", 48)
    rows = select_repetitive(model, tok, triggers + controls, threshold=0.5, new_tokens=40)
    chosen = {r["prompt"] for r in rows}
    assert len(chosen & set(triggers)) >= 0.8 * len(triggers) and not chosen & set(controls)
    assert all(r["unique_ratio"] < 0.5 for r in rows)


def test_toxic_prompts_are_the_triggers(world_llama):
    model, tok, data = world_llama
    triggers, controls = _prompts(data, "toxic_trigger"), _prompts(data, "toxic_control")
    rows = select_toxic(model, tok, triggers + controls, WorldScorer(data), threshold=0.9, new_tokens=12)
    chosen = {r["prompt"] for r in rows}
    assert len(chosen & set(triggers)) >= 10 and not chosen & set(controls)


def test_split_is_disjoint_seeded_and_needs_two_rows():
    rows = [{"prompt": p} for p in REPETITION_PROMPTS]
    ref, ev = split_rows(rows, 20, seed=3)
    assert len(ref) == 20 and len(ref) + len(ev) == len(rows)
    assert not {r["prompt"] for r in ref} & {r["prompt"] for r in ev}
    assert split_rows(rows, 20, seed=3) == (ref, ev) and split_rows(rows, 20, seed=4) != (ref, ev)
    assert len(split_rows(rows[:6], 50, seed=0)[0]) == 3  # never more than half for reference
    assert len(set(REPETITION_PROMPTS)) == len(REPETITION_PROMPTS)
    with pytest.raises(ValueError, match="only 1 prompt"):
        split_rows(rows[:1], 5, seed=0)
