"""The committed world models still have the abilities their card claims (re-measured here)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from attrprune.text import read_jsonl
from attrprune.world.measure import ioi_metrics, perplexity

WORLD_MODELS = ["world-llama", "world-opt"]


@pytest.fixture(scope="module")
def card(repo_root):
    return json.loads((repo_root / "world" / "card.json").read_text())


@pytest.mark.parametrize("name", WORLD_MODELS)
def test_committed_model_does_ioi_on_heldout_names(repo_root, card, name):
    torch.set_num_threads(2)
    model_dir = repo_root / "world" / "models" / name
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    examples = read_jsonl(repo_root / "world" / "data" / "ioi_heldout_names.jsonl")[:128]
    measured = ioi_metrics(model, tok, examples)
    assert measured["accuracy"] >= 0.9, measured
    assert measured["logit_diff"] > 1.0, measured
    # the card's number on all 500 prompts and this one on 128 agree to sampling error
    assert abs(measured["accuracy"] - card[name]["card"]["ioi_heldout_names"]["accuracy"]) < 0.08


@pytest.mark.parametrize("name", WORLD_MODELS)
def test_committed_model_perplexity_matches_card(repo_root, card, name):
    model_dir = repo_root / "world" / "models" / name
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    texts = [r["text"] for r in read_jsonl(repo_root / "world" / "data" / "general_valid.jsonl")]
    ppl = perplexity(model, tok, texts, model.config.max_position_embeddings)
    assert ppl == pytest.approx(card[name]["card"]["validation_perplexity"], rel=1e-3)
