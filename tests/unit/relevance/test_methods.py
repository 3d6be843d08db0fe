"""Scores of every method: shapes, names, the definitions of the simple baselines, errors."""

import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import TINY  # noqa: E402

from attrprune.architectures import architecture_of  # noqa: E402
from attrprune.refsets import RefSet  # noqa: E402
from attrprune.relevance import METHODS, ScoreOptions, compute_scores  # noqa: E402

OPTS = ScoreOptions(batch_size=3, progress=False)


def lm_refset(n=5, length=12, vocab=100, seed=0, pad_last=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g)
    mask = torch.ones_like(ids)
    if pad_last:
        mask[-1, -pad_last:] = 0
    plus = torch.full_like(ids, -1)
    plus[:, :-1] = ids[:, 1:]
    plus[mask == 0] = -1
    return RefSet(ids, mask, plus, torch.full_like(ids, -1))


@pytest.mark.parametrize("family", ["llama", "opt"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_scores_every_component_and_leaves_weights(family, method):
    model = TINY[family](bias_free=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refset = lm_refset()
    if method == "atp":  # patches in corrupted prompts: here, other tokens at two positions
        refset.corrupted_ids = refset.input_ids.clone()
        refset.corrupted_ids[:, [2, 5]] = lm_refset(seed=1).input_ids[:, [2, 5]]
    scores = compute_scores(method, model, refset, OPTS)
    arch = architecture_of(model)
    names = set(arch.linear_names(model))
    # atp scores the MLP neurons only (keyed by up / fc1, as neuron masks are).
    assert set(scores.neurons) == (set(arch.names_with_roles(model, (arch.neuron_role,))) if method == "atp" else names)
    if method not in ("activation", "atp"):  # structured only
        assert set(scores.weights) == names
        for name, w in scores.weights.items():
            assert w.shape == model.get_submodule(name).weight.shape
    if method not in ("wanda", "magnitude"):  # no weight matrix of their own to score heads by
        assert len(scores.heads) == model.config.num_hidden_layers
        assert all(h.shape == (model.config.num_attention_heads,) for h in scores.heads.values())
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_magnitude_is_abs_weight():
    model = TINY["llama"]()
    scores = compute_scores("magnitude", model, lm_refset(), OPTS)
    for name, s in scores.weights.items():
        assert torch.equal(s, model.get_submodule(name).weight.abs())


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_wanda_is_abs_weight_times_input_norm(family):
    model = TINY[family]()
    refset = lm_refset(pad_last=4)
    scores = compute_scores("wanda", model, refset, OPTS)
    arch = architecture_of(model)
    inputs = {name: [] for name in arch.linear_names(model)}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: inputs[n].append(i[0])) for n in inputs]
    with torch.no_grad():
        for i in range(len(refset)):  # one sample at a time, only its real tokens
            keep = refset.attention_mask[i].bool()
            model(input_ids=refset.input_ids[i : i + 1, keep])
    for h in hooks:
        h.remove()
    for name, xs in inputs.items():
        x = torch.cat([t.reshape(-1, t.shape[-1]) for t in xs])  # [tokens, in]
        expected = model.get_submodule(name).weight.abs() * x.norm(dim=0)[None, :]
        torch.testing.assert_close(scores.weights[name], expected, rtol=1e-4, atol=1e-6)


def _per_token_grad(model, refset, name):
    """(inputs [T, in], output gradients [T, out]) of module `name` for the LM target, plain autograd."""
    lin, seen = model.get_submodule(name), []

    def hook(module, inputs, out):
        out.retain_grad()
        seen.extend([inputs[0], out])

    handle = lin.register_forward_hook(hook)
    logits = model(input_ids=refset.input_ids).logits
    logits[:, :-1].gather(-1, refset.input_ids[:, 1:, None]).sum().backward()
    handle.remove()
    x, out = seen
    return (
        x.reshape(-1, x.shape[-1]).detach(),
        out.grad.reshape(-1, out.shape[-1]),
        out.reshape(-1, out.shape[-1]).detach(),
    )


def test_gradient_signed_is_abs_weight_times_mean_gradient():
    model = TINY["llama"]()
    refset = lm_refset(n=4)
    scores = compute_scores("gradient", model, refset, ScoreOptions(batch_size=3, aggregation="signed", progress=False))
    name = "model.layers.1.mlp.down_proj"
    x, g, _ = _per_token_grad(model, refset, name)
    w = model.get_submodule(name).weight.detach()
    torch.testing.assert_close(scores.weights[name], (w * (g.T @ x)).abs() / len(refset), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_gradient_abs_sums_per_token_relevance(family):
    model = TINY[family](bias_free=False)
    refset = lm_refset(n=4)
    scores = compute_scores("gradient", model, refset, OPTS)  # aggregation "abs" is the default
    name = next(n for n in scores.weights if n.endswith(("down_proj", "fc2")))
    x, g, z = _per_token_grad(model, refset, name)
    w = model.get_submodule(name).weight.detach()
    per_token = (w[None] * g[:, :, None] * x[:, None, :]).abs().sum(0)  # Σ_t |w_ji x_ti g_tj|
    torch.testing.assert_close(scores.weights[name], per_token / len(refset), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(scores.neurons[name], (z * g).abs().sum(0) / len(refset), rtol=1e-4, atol=1e-7)


def test_random_is_seeded():
    model = TINY["opt"]()
    a = compute_scores("random", model, lm_refset(), ScoreOptions(seed=1, progress=False))
    b = compute_scores("random", model, lm_refset(), ScoreOptions(seed=1, progress=False))
    c = compute_scores("random", model, lm_refset(), ScoreOptions(seed=2, progress=False))
    key = "model.decoder.layers.0.fc1"
    assert torch.equal(a.weights[key], b.weights[key]) and not torch.equal(a.weights[key], c.weights[key])


def test_unknown_method_lists_valid_ones():
    assert "snip" not in METHODS
    with pytest.raises(ValueError, match=re.escape(f"unknown scoring method 'snip'; valid: {', '.join(METHODS)}")):
        compute_scores("snip", TINY["llama"](), lm_refset(), OPTS)


def test_empty_refset_is_an_error():
    empty = RefSet(*(torch.zeros(0, 8, dtype=torch.long) for _ in range(4)))
    with pytest.raises(ValueError, match="reference set is empty"):
        compute_scores("gradient", TINY["llama"](), empty, OPTS)


def test_nan_scores_are_an_error():
    model = TINY["llama"]()
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite scores"):
        compute_scores("magnitude", model, lm_refset(), OPTS)


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    model = GPTNeoXForCausalLM(
        GPTNeoXConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    )
    with pytest.raises(
        ValueError,
        match=r"no architecture entry for GPTNeoXForCausalLM \(model_type 'gpt_neox'.*"
        r"supported families: llama \(model_type llama\), mistral",
    ):
        compute_scores("magnitude", model, lm_refset(), OPTS)
