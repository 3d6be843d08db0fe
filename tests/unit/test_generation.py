"""Greedy and seeded sampled continuations on the committed world model; the paper's RUR."""

import math

import pytest
import torch

from attrprune.generation import _SeededGumbelSampler, generate, response_uniqueness_ratio
from attrprune.models import load_model

PROMPTS = [
    'William was furious with Gregory and shouted: "',
    'Susan glared at Ellen and snapped: "',
    "Paris is a city where",
    'Kim thanked Bob and said: "',
    "Yesterday Patrick and Kevin went to the",
]


@pytest.fixture(scope="module")
def world(repo_root):
    return load_model(repo_root / "world" / "models" / "world-llama", dtype="float32", device_map="cpu")


def test_greedy_is_the_models_own_greedy_decoding_cut_at_eos(world):
    model, tok = world
    ours = generate(model, tok, PROMPTS, 10, batch_size=2)
    assert all(len(c) == 1 for c in ours)
    assert ours == generate(model, tok, PROMPTS, 10, batch_size=100)  # the world card's batches
    eos = tok.eos_token_id
    for prompt, (cont,) in zip(PROMPTS, ours):  # one prompt at a time: no padding at all
        ids = torch.tensor([[tok.bos_token_id] + tok(prompt, add_special_tokens=False)["input_ids"]])
        row = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=eos,
            eos_token_id=eos,
        )[0, ids.shape[1] :].tolist()
        assert cont == (row[: row.index(eos)] if eos in row else row)


def test_sampling_is_seeded_shaped_and_cut_at_eos(world):
    model, tok = world
    rng = torch.get_rng_state()
    a = generate(model, tok, PROMPTS, 12, do_sample=True, n=3, seed=7, batch_size=4)
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is neither used nor moved
    assert a == generate(model, tok, PROMPTS, 12, do_sample=True, n=3, seed=7, batch_size=4)
    assert a == generate(model, tok, PROMPTS, 12, do_sample=True, n=3, seed=7, batch_size=15)  # batch-size independent
    assert a != generate(model, tok, PROMPTS, 12, do_sample=True, n=3, seed=8, batch_size=4)
    assert len(a) == len(PROMPTS) and all(len(per_prompt) == 3 for per_prompt in a)
    conts = [c for per_prompt in a for c in per_prompt]
    assert all(len(c) <= 12 and tok.eos_token_id not in c for c in conts)
    assert len({tuple(c) for c in conts}) > len(PROMPTS)  # samples of one prompt differ from each other


def test_sharp_warping_reduces_sampling_to_greedy(world):
    model, tok = world
    greedy = generate(model, tok, PROMPTS, 10)
    assert generate(model, tok, PROMPTS, 10, do_sample=True, top_p=1e-9, seed=3) == greedy  # nucleus = top token
    assert generate(model, tok, PROMPTS, 10, do_sample=True, temperature=1e-4, seed=3) == greedy


def test_sampler_draws_from_the_warped_softmax():
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    sampler = _SeededGumbelSampler([123], temperature=2.0, top_p=1.0)
    draws = [sampler(None, scores).argmax().item() for _ in range(4000)]
    want = torch.softmax(scores[0] / 2.0, dim=0)
    freq = torch.bincount(torch.tensor(draws), minlength=4) / len(draws)
    assert torch.allclose(freq, want, atol=0.03), (freq, want)
    # p = [0.64, 0.24, 0.09, 0.03]: token 0 alone falls short of top_p=0.7, tokens 0 and 1 cover it
    nucleus = _SeededGumbelSampler([5], temperature=1.0, top_p=0.7)
    draws = torch.tensor([nucleus(None, scores).argmax().item() for _ in range(4000)])
    p = torch.softmax(scores[0], dim=0)
    assert set(draws.tolist()) == {0, 1}
    assert (draws == 0).float().mean().item() == pytest.approx((p[0] / (p[0] + p[1])).item(), abs=0.03)


def test_prompts_start_with_the_tokenizers_bos(world):
    # The world tokenizer's BOS is <|endoftext|> (its models were trained on it + text).
    model, tok = world
    ids = torch.tensor([[tok.bos_token_id] + tok.encode(PROMPTS[0], add_special_tokens=False)])  # [1, prompt]
    ref = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=8,
        do_sample=False,
        pad_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )[0, ids.shape[1] :].tolist()
    ref = ref[: ref.index(tok.eos_token_id)] if tok.eos_token_id in ref else ref
    assert generate(model, tok, PROMPTS[:1], 8) == [[ref]]


def test_bad_arguments(world):
    model, tok = world
    with pytest.raises(ValueError, match="greedy decoding gives one continuation.*n=2"):
        generate(model, tok, PROMPTS, 5, n=2)
    with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
        generate(model, tok, PROMPTS, 60)
    with pytest.raises(ValueError, match="non-empty list"):
        generate(model, tok, [], 5)
    with pytest.raises(ValueError, match="non-empty list"):
        generate(model, tok, "a bare string", 5)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tok, PROMPTS, 5, do_sample=True, top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tok, PROMPTS, 5, do_sample=True, temperature=0.0)


def test_response_uniqueness_ratio_paper_definition():
    assert response_uniqueness_ratio([1, 2, 3, 4]) == 1.0
    assert response_uniqueness_ratio([5, 5, 5, 5]) == 0.25
    assert math.isclose(response_uniqueness_ratio([1, 2, 1, 2, 1, 2]), 2 / 6)
    assert response_uniqueness_ratio([]) == 0.0  # the paper's |unique| / |T| with nothing generated
