"""Keep-masks: exact counts per scope, the lowest scores are the pruned ones, nesting, errors."""

import pytest
import torch

from attrprune.pruning import MaskBuilder, lowest_k, measured_sparsity, unit_masks, weight_masks
from attrprune.pruning.masks import n_pruned

SHAPES = {"a.q_proj": (7, 12), "a.down_proj": (16, 32), "b.fc1": (8, 12)}
SPARSITIES = (0.0, 0.1, 0.5, 0.73, 0.9)
SEEDS = range(5)


def random_scores(seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values, both signs: the tie-breaking path everywhere
        return {n: torch.randint(-3, 4, s, generator=g).float() for n, s in SHAPES.items()}
    return {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}


def reference_drop(values, k):
    """Brute force: a stable sort over `values` (1-D) prunes its first k."""
    drop = torch.zeros(values.numel(), dtype=torch.bool)
    drop[torch.sort(values, stable=True).indices[:k]] = True
    return drop


def reference(scores, sparsity, scope, absolute=True):
    keyed = {n: (s.abs() if absolute else s) for n, s in scores.items()}
    if scope == "global":
        flat = torch.cat([v.flatten() for v in keyed.values()])
        drop = reference_drop(flat, n_pruned(sparsity, flat.numel())).split([v.numel() for v in keyed.values()])
        return {n: ~d.view(v.shape) for (n, v), d in zip(keyed.items(), drop)}
    if scope == "layer":
        return {n: ~reference_drop(v.flatten(), n_pruned(sparsity, v.numel())).view(v.shape) for n, v in keyed.items()}
    if scope == "row":
        return {
            n: ~torch.stack([reference_drop(r, n_pruned(sparsity, r.numel())) for r in v]) for n, v in keyed.items()
        }
    n, m = map(int, scope.split(":"))
    return {
        n_: ~torch.stack([reference_drop(grp, n) for grp in v.reshape(-1, m)]).view(v.shape) for n_, v in keyed.items()
    }


def test_round_half_up():
    assert [n_pruned(0.5, n) for n in (5, 7, 4)] == [3, 4, 2]
    assert n_pruned(0.73, 12) == 9 and n_pruned(0.9, 7) == 6 and n_pruned(0.0, 7) == 0


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("scope", ["row", "layer", "global"])
def test_exact_counts_and_lowest_scores_pruned(scope, absolute, ties):
    for seed in SEEDS:
        scores = random_scores(seed, ties)
        builder = MaskBuilder(scores, scope, absolute)
        for s in SPARSITIES:
            masks = builder.masks(s)
            for name, keep in masks.items():
                assert keep.dtype == torch.bool and keep.shape == scores[name].shape
                if scope == "row":
                    assert ((~keep).sum(1) == n_pruned(s, keep.shape[1])).all()
                elif scope == "layer":
                    assert int((~keep).sum()) == n_pruned(s, keep.numel())
            if scope == "global":
                total = sum(m.numel() for m in masks.values())
                assert sum(int((~m).sum()) for m in masks.values()) == n_pruned(s, total)
            ref = reference(scores, s, scope, absolute)
            assert all(torch.equal(masks[n], ref[n]) for n in scores), (seed, s)
            # a fresh computation equals the builder's
            fresh = weight_masks(scores, s, scope, absolute)
            assert all(torch.equal(masks[n], fresh[n]) for n in scores)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("scope", ["row", "layer", "global"])
def test_masks_are_nested(scope, ties):
    for seed in SEEDS:
        builder = MaskBuilder(random_scores(seed, ties), scope)
        previous = None
        for s in SPARSITIES:
            masks = builder.masks(s)
            if previous is not None:  # a higher sparsity prunes a superset
                assert all((masks[n] <= previous[n]).all() for n in masks)
            previous = masks


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("scope", ["2:4", "4:8", "1:3"])
def test_n_m(scope, ties):
    n, m = map(int, scope.split(":"))
    shapes = {"x": (7, 24), "y": (16, 48)}
    for seed in SEEDS:
        g = torch.Generator().manual_seed(seed)
        scores = {
            k: (torch.randint(0, 3, s, generator=g).float() if ties else torch.randn(s, generator=g))
            for k, s in shapes.items()
        }
        masks = MaskBuilder(scores, scope).masks(n / m)
        for keep in masks.values():
            assert ((~keep).reshape(-1, m).sum(1) == n).all()  # [out * in / M, M] -> N zeros per group
        ref = reference(scores, n / m, scope)
        assert all(torch.equal(masks[k], ref[k]) for k in scores)


def test_global_spans_tensors():
    # everything in "small" scores lower than in "big": global pruning takes "small" first
    scores = {"small": torch.full((4, 4), 0.1), "big": torch.rand(4, 4) + 1}
    masks = MaskBuilder(scores, "global").masks(0.5)
    assert not masks["small"].any() and masks["big"].all()
    assert measured_sparsity(masks) == {"per_layer": {"small": 1.0, "big": 0.0}, "overall": 0.5}


def test_extreme_values_and_signed_ranking():
    x = torch.tensor([[float("-inf"), -2.0, -0.0, 0.0, 1e-30, 3.0, float("inf"), -1e-30]])
    keep = MaskBuilder({"w": x}, "row", absolute=False).lowest(3)["w"]
    assert keep.tolist() == [[False, False, True, True, True, True, True, False]]
    keep = MaskBuilder({"w": x}, "row", absolute=True).lowest(4)["w"]
    assert keep.tolist() == [[True, True, False, False, False, True, True, False]]


def test_lowest_k_and_unit_masks():
    g = torch.Generator().manual_seed(0)
    neurons = {"l0.up": torch.randn(10, generator=g), "l1.up": torch.randn(6, generator=g)}
    flat = torch.cat(list(neurons.values()))
    for k in (0, 1, 5, 16):
        keep = lowest_k(neurons, k)  # signed by default
        assert sum(int((~m).sum()) for m in keep.values()) == k
        assert torch.equal(torch.cat(list(keep.values())), ~reference_drop(flat, k))
    keep = unit_masks(neurons, 3, scope="layer")
    assert all(int((~m).sum()) == 3 for m in keep.values())
    keep = unit_masks(neurons, 0.5, scope="layer")
    assert [int((~m).sum()) for m in keep.values()] == [5, 3]
    keep = unit_masks(neurons, 0.25, scope="global")
    assert sum(int((~m).sum()) for m in keep.values()) == 4


def test_errors():
    scores = random_scores(0)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            MaskBuilder(scores, "row").masks(bad)
    with pytest.raises(ValueError, match="valid: 'row', 'layer', 'global', or 'N:M'"):
        MaskBuilder(scores, "columns")
    for bad_nm in ("4:2", "0:4", "2:2", "2:"):
        with pytest.raises(ValueError, match="unknown pruning scope"):
            MaskBuilder(scores, bad_nm)
    with pytest.raises(ValueError, match="not divisible by M=8"):
        MaskBuilder(scores, "2:8")  # input dims 12 and 32: 12 % 8 != 0
    with pytest.raises(ValueError, match="prunes exactly 0.5"):
        MaskBuilder({"w": torch.randn(4, 8)}, "2:4").masks(0.6)
    with pytest.raises(ValueError, match="2-D"):
        MaskBuilder({"w": torch.randn(8)}, "row")
    with pytest.raises(ValueError, match="k must be in"):
        lowest_k({"w": torch.randn(8)}, 9)
    with pytest.raises(ValueError, match="NaN"):
        MaskBuilder({"w": torch.tensor([[1.0, float("nan")]])}, "row")
    with pytest.raises(ValueError, match="structured scope"):
        unit_masks({"w": torch.randn(8)}, 2, scope="row")
    with pytest.raises(TypeError):
        unit_masks({"w": torch.randn(8)}, True)
