"""Contrastive relevance (paper Eq. 7) on hand-made scores, and pruning exactly k components by it."""

import pytest
import torch
from tiny_models import TINY

from attrprune.circuits.components import component_names
from attrprune.correction.contrastive import contrastive_scores, side_scale
from attrprune.pruning import lowest_k, pruned

GENERAL = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([[2.0, -4.0]])}  # sum |.| = 10, max |.| = 4
UNWANTED = {"a": torch.tensor([10.0, 0.0]), "b": torch.tensor([[30.0, 60.0]])}  # sum = 100, max = 60


def test_sum_normalisation_divides_each_side_by_its_total():
    diff, scales = contrastive_scores(GENERAL, UNWANTED, "sum", return_scales=True)
    assert scales == {"general": 10.0, "unwanted": 100.0}
    assert torch.allclose(diff["a"], torch.tensor([0.1 - 0.1, 0.3 - 0.0]))
    assert torch.allclose(diff["b"], torch.tensor([[0.2 - 0.3, -0.4 - 0.6]]))
    assert list(diff) == ["a", "b"]


def test_max_and_none_normalisations():
    diff = contrastive_scores(GENERAL, UNWANTED, "max")
    assert torch.allclose(diff["a"], torch.tensor([0.25 - 10 / 60, 0.75]))
    assert torch.allclose(diff["b"], torch.tensor([[0.5 - 0.5, -1.0 - 1.0]]))
    raw = contrastive_scores(GENERAL, UNWANTED, "none")
    assert torch.equal(raw["a"], torch.tensor([-9.0, 3.0])) and torch.equal(raw["b"], torch.tensor([[-28.0, -64.0]]))


def test_normalisation_makes_the_ranking_scale_free():
    # Multiplying one side by a constant (a longer reference set, a larger target) changes nothing
    for norm in ("sum", "max"):
        a = contrastive_scores(GENERAL, UNWANTED, norm)
        b = contrastive_scores(
            {n: 7.0 * t for n, t in GENERAL.items()}, {n: 0.01 * t for n, t in UNWANTED.items()}, norm
        )
        assert all(torch.allclose(a[n], b[n]) for n in a)


def test_lowest_contrastive_scores_are_unwanted_only_components():
    diff = contrastive_scores(GENERAL, UNWANTED)
    keep = lowest_k(diff, 2)
    # b[0,1] (-1.0) and b[0,0] (-0.1) go first: high unwanted relevance, little general relevance
    assert keep["b"].tolist() == [[False, False]] and keep["a"].tolist() == [True, True]


@pytest.mark.parametrize(
    "general, unwanted, message",
    [
        ({"a": torch.ones(2)}, {"b": torch.ones(2)}, "different modules"),
        ({"a": torch.ones(2)}, {"a": torch.ones(3)}, "shape"),
        ({"a": torch.tensor([1.0, float("nan")])}, {"a": torch.ones(2)}, "not finite"),
        ({"a": torch.zeros(2)}, {"a": torch.ones(2)}, "all zero"),
        ({}, {}, "empty"),
    ],
)
def test_bad_inputs_are_named(general, unwanted, message):
    with pytest.raises(ValueError, match=message):
        contrastive_scores(general, unwanted)


def test_unknown_normalisation():
    with pytest.raises(ValueError, match="valid"):
        side_scale(GENERAL, "l2")


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_pruning_k_neurons_zeroes_exactly_k_rows_and_restores(family):
    model = TINY[family](bias_free=False)
    names = component_names(model, "neuron")
    gen = torch.Generator().manual_seed(0)
    shapes = {n: model.get_submodule(n).weight.shape[0] for n in names}
    diff = contrastive_scores(
        {n: torch.rand(s, generator=gen) for n, s in shapes.items()},
        {n: torch.rand(s, generator=gen) for n, s in shapes.items()},
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    k = 37
    keep = lowest_k(diff, k)
    with pruned(model, neuron_masks=keep):
        zero_rows = sum(int((model.get_submodule(n).weight == 0).all(1).sum()) for n in names)
        assert zero_rows == k
        for n in names:  # exactly the masked rows, and their biases
            w = model.get_submodule(n).weight
            assert torch.equal((w == 0).all(1), ~keep[n])
            assert bool((model.get_submodule(n).bias[~keep[n]] == 0).all())
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_neuron_role_weights_are_the_up_or_fc1_projections():
    llama, opt = TINY["llama"](), TINY["opt"]()
    assert component_names(llama, "weight", "neuron_role") == [f"model.layers.{i}.mlp.up_proj" for i in range(2)]
    assert component_names(opt, "weight", "neuron_role") == [f"model.decoder.layers.{i}.fc1" for i in range(2)]
    assert component_names(opt, "weight", "neuron_role") == component_names(opt, "neuron")
