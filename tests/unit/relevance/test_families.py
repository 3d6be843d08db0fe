"""Every supported family gets its own LRP rules, on a tiny random-init model with the features
of its real configs (tests/tiny_models.py::tiny_family):

* lrp differs from gradient (the failure this guards against: a family whose patch misses its
  classes computes plain gradient × input and calls it LRP, with no error);
* CP-LRP is exactly conservative where its rules are exact (every bias zeroed): the relevance
  entering the first block equals the explained logits;
* the patch reaches the model, and is undone on exit.
"""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import FAMILIES, tiny_family  # noqa: E402

from attrprune import architectures  # noqa: E402
from attrprune.architectures import architecture_of  # noqa: E402
from attrprune.refsets import RefSet  # noqa: E402
from attrprune.relevance import ScoreOptions, compute_scores  # noqa: E402
from attrprune.relevance.lrp import block_input_relevance, lrp_patched  # noqa: E402


def next_token_refset(vocab=100, n=4, length=12) -> RefSet:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (n, length), generator=g)  # [n, L]
    plus = torch.full_like(ids, -1)
    plus[:, :-1] = ids[:, 1:]
    return RefSet(ids, torch.ones_like(ids), plus, torch.full_like(ids, -1))


def relative_difference(a: dict, b: dict) -> float:
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in b)


OPTS = ScoreOptions(batch_size=4, progress=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_lrp_is_not_gradient(family):
    # Fails when the lrp method runs without the family's lxt patch (then lrp == gradient exactly).
    model, refset = tiny_family(family), next_token_refset()
    grad = compute_scores("gradient", model, refset, OPTS)
    for variant in ("attnlrp", "cp"):
        lrp = compute_scores("lrp", model, refset, dataclasses.replace(OPTS, lrp_variant=variant))
        assert relative_difference(lrp.weights, grad.weights) > 0.05, variant
        assert relative_difference(lrp.neurons, grad.neurons) > 0.05, variant
        assert relative_difference(lrp.heads, grad.heads) > 0.01, variant


@pytest.mark.parametrize("family", FAMILIES)
def test_cp_lrp_is_conservative_where_its_rules_are_exact(family):
    # With every bias zero, CP-LRP (identity rule on norms and activations, attention and gates
    # held constant) makes the network linear in its input: relevance is conserved exactly.
    target, relevance = block_input_relevance(tiny_family(family, bias_free=True), next_token_refset(), "cp")
    assert abs(target) > 1e-3
    assert relevance == pytest.approx(target, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_patch_reaches_the_model_and_is_undone(family):
    model = tiny_family(family)
    ids = next_token_refset().input_ids
    plain = model(input_ids=ids).logits
    w = model.get_submodule(next(iter(architecture_of(model).linear_names(model)))).weight
    (g_before,) = torch.autograd.grad(model(input_ids=ids).logits.sum(), w)
    with lrp_patched(model, "attnlrp"):
        torch.testing.assert_close(model(input_ids=ids).logits, plain, rtol=1e-5, atol=1e-5)  # same forward
        (g_lrp,) = torch.autograd.grad(model(input_ids=ids).logits.sum(), w)
    (g_after,) = torch.autograd.grad(model(input_ids=ids).logits.sum(), w)
    torch.testing.assert_close(g_after, g_before)
    assert not torch.allclose(g_lrp, g_before)


def test_a_map_that_misses_the_model_is_refused(monkeypatch):
    # Mistral under lxt's Llama map: the map patches LlamaMLP / LlamaRMSNorm / modeling_llama,
    # none of which a Mistral model uses.
    model = tiny_family("mistral")
    key = type(model).__module__
    monkeypatch.setitem(
        architectures.FAMILIES,
        key,
        dataclasses.replace(architectures.FAMILIES[key], lrp_maps="lxt.efficient.models.llama"),
    )
    with pytest.raises(RuntimeError, match="does not patch it"):
        with lrp_patched(model):
            pass


def test_every_family_has_its_own_modeling_module_and_maps():
    entries = list(architectures.FAMILIES.values())
    assert sorted(a.family for a in entries) == sorted(FAMILIES)
    assert len({a.modeling_module for a in entries}) == len({a.lrp_maps for a in entries}) == len(entries)
    for family in FAMILIES:
        model = tiny_family(family)
        arch = architecture_of(model)
        assert arch.family == family and model.config.model_type in arch.model_types
