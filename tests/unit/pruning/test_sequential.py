"""Calibration pruners as their authors run them, on tiny random-init models (CPU, seconds each):

* the sequential engine sees each family's blocks as the full model does, ignores padding and
  leaves no hooks or recorders behind;
* sequential Wanda equals a plain block-by-block reference and differs from one-pass Wanda;
* SparseGPT keeps every weight at sparsity 0, beats masking alone on the layer's output error,
  and its 2:4 result has exactly two zeros per group of four;
* every pruner prunes exactly the requested count per comparison group;
* OWL's block sparsities average to the request within [s - λ, s + λ].

Run: ``python -m pytest -q tests/unit/pruning/test_sequential.py``
"""

import pytest
import torch
from tiny_models import FAMILIES, calibration, prunable_weights, tiny_family

from attrprune.architectures import architecture_of
from attrprune.pruning import MaskBuilder
from attrprune.pruning.owl import masks_by_block, owl_allocation, owl_sparsities
from attrprune.pruning.pruners import RiaOptions, SparseGPTOptions, WandaOptions, prune, weights_restored
from attrprune.pruning.reconstruct import sparsegpt_layer
from attrprune.pruning.sequential import InputNorms, run_sequential
from attrprune.refsets import RefSet
from attrprune.registry import PRUNERS, count_rule, pruner_function
from attrprune.relevance import ScoreOptions, compute_scores

THREE = ["llama", "opt", "gpt2"]


def input_norms(model, refset: RefSet) -> dict[str, torch.Tensor]:
    """Σ x² per input feature of every linear, from the engine's dense pass (nothing pruned)."""
    arch, out = architecture_of(model), {}

    def stat(name, module):
        return InputNorms(arch.weight(module).shape[1], "cpu")

    run_sequential(model, refset, stat, lambda block, stats: out.update({n: s.sum_sq for n, s in stats.items()}), 4)
    return out


def full_forward_inputs(model, refset: RefSet, names) -> dict[str, torch.Tensor]:
    """Real-token inputs [tokens, in] of linears `names`, by hooks on one plain model forward."""
    got = {name: [] for name in names}
    keep = refset.attention_mask.reshape(-1).bool()
    hooks = [
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: got[n].append(i[0].reshape(-1, i[0].shape[-1])[keep].float())
        )
        for n in names
    ]
    try:
        with torch.no_grad():
            model(input_ids=refset.input_ids, attention_mask=refset.attention_mask)
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(x) for n, x in got.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_sees_what_the_full_model_sees(family):
    # Dense: every block's recorded arguments (masks, rotary embeddings, sliding windows) replay the
    # full forward, so the engine's statistics equal those of hooks on one model call.
    model, refset = tiny_family(family), calibration()
    engine = input_norms(model, refset)
    full = full_forward_inputs(model, refset, list(engine))
    for name, x in full.items():
        torch.testing.assert_close(engine[name], x.pow(2).sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", THREE)
def test_padding_does_not_change_statistics(family):
    model = tiny_family(family)
    ids = torch.randint(3, 100, (1, 10), generator=torch.Generator().manual_seed(1))
    alone = input_norms(model, RefSet(ids, torch.ones_like(ids), ids, ids))
    pads = torch.ones(1, 5, dtype=torch.long)
    for padded in (torch.cat([ids, pads], 1), torch.cat([pads, ids], 1)):  # right, then left padding
        mask = (padded != 1).long()
        got = input_norms(model, RefSet(padded, mask, padded, padded))
        for name in alone:
            torch.testing.assert_close(got[name], alone[name], rtol=1e-5, atol=1e-6)


def assert_no_hooks(model, blocks_before):
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
    assert list(architecture_of(model).block_list(model)) == blocks_before  # the recorders are gone


@pytest.mark.parametrize("family", THREE)
def test_engine_leaves_no_hooks_behind(family):
    model = tiny_family(family)
    blocks = list(architecture_of(model).block_list(model))
    prune("sparsegpt", model, calibration(), 0.5)
    assert_no_hooks(model, blocks)

    def fail(block, stats):
        raise RuntimeError("boom")

    for stat in (lambda n, m: InputNorms(1, "cpu"), lambda n, m: InputNorms(m.weight.numel(), "cpu")):
        # an error in a hook (a statistic of the wrong size), then an error in the pruning step
        with pytest.raises(RuntimeError):
            run_sequential(model, calibration(), stat, fail)
        assert_no_hooks(model, blocks)


def blockwise_wanda_reference(model, refset: RefSet, sparsity: float) -> None:
    """Wanda as the authors describe it, written plainly: for each block, run the model with the
    blocks before it already pruned, take ‖X_j‖ of the block's linears, prune them per row."""
    arch = architecture_of(model)
    for block in range(len(arch.block_list(model))):
        names = [n for n, (b, _) in arch.linear_names(model).items() if b == block]
        inputs = full_forward_inputs(model, refset, names)
        for name in names:
            w = arch.weight(model.get_submodule(name))
            score = w.detach().abs() * inputs[name].pow(2).sum(0).sqrt()[None, :]
            keep = MaskBuilder({name: score}, "row").masks(sparsity)[name]
            with torch.no_grad():
                w[~keep] = 0


@pytest.mark.parametrize("family", THREE)
def test_sequential_wanda_is_blockwise_not_one_pass(family):
    refset = calibration()
    reference, model = tiny_family(family), tiny_family(family)
    one_pass = MaskBuilder(compute_scores("wanda", model, refset, ScoreOptions(progress=False)).weights, "row")
    one_pass = one_pass.masks(0.5)
    blockwise_wanda_reference(reference, refset, 0.5)
    prune("wanda", model, refset, 0.5, "row", WandaOptions(batch_size=3))
    arch, expected = architecture_of(model), prunable_weights(reference)
    differs = 0
    for name, w in prunable_weights(model).items():
        assert torch.equal(w != 0, expected[name] != 0), name
        torch.testing.assert_close(w, expected[name], rtol=0, atol=0)
        block = arch.linear_names(model)[name][0]
        if block == 0:  # block 0 sees the same inputs either way
            assert torch.equal(w != 0, one_pass[name]), name
        differs += int(((w != 0) != one_pass[name]).sum())
    assert differs > 100  # later blocks see the pruned outputs: one-pass Wanda fails this test


def test_sparsegpt_at_zero_sparsity_changes_nothing():
    for family in THREE:
        model = tiny_family(family)
        before = {n: w.clone() for n, w in prunable_weights(model).items()}
        prune("sparsegpt", model, calibration(), 0.0)
        for name, w in prunable_weights(model).items():
            assert torch.equal(w, before[name]), (family, name)


def output_error(w_new, w, x) -> float:
    return (x @ (w_new - w).T).pow(2).sum().item()  # ‖ŴX − WX‖² over the calibration tokens


@pytest.mark.parametrize("scope", ["layer", "row", "2:4"])
def test_sparsegpt_reconstruction_beats_masking(scope):
    model, refset = tiny_family("llama"), calibration(n=16, length=24, padded=False)
    arch = architecture_of(model)
    names = [n for n, (b, _) in arch.linear_names(model).items() if b == 0]
    inputs = full_forward_inputs(model, refset, names)
    for name in names:
        w, x = arch.weight(model.get_submodule(name)).detach(), inputs[name]  # [out, in], [tokens, in]
        h = 2 * x.T @ x / len(x)
        new, keep = sparsegpt_layer(w, h, 0.5, scope)
        assert torch.equal(new != 0, keep)
        wanda_keep = MaskBuilder({name: w.abs() * x.pow(2).sum(0).sqrt()}, "row" if scope == "layer" else scope)
        wanda_keep = wanda_keep.masks(0.5)[name]
        assert output_error(new, w, x) < output_error(w * keep, w, x), name
        assert output_error(new, w, x) < output_error(w * wanda_keep, w, x), name


@pytest.mark.parametrize("family", THREE)
def test_two_of_four(family):
    for method in ("sparsegpt", "wanda", "ria"):
        model = tiny_family(family)
        prune(method, model, calibration(), 0.5, "2:4")
        for name, w in prunable_weights(model).items():
            zeros = (w == 0).reshape(w.shape[0], -1, 4).sum(-1)  # [out, in] -> [out, in / 4, 4] -> [out, in / 4]
            assert (zeros == 2).all(), (method, name)


@pytest.mark.parametrize("family", THREE)
@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_measured_sparsity_is_the_request(family, sparsity):
    refset = calibration()
    for method in PRUNERS:
        for scope in ("row", "layer"):
            model = tiny_family(family)
            stats = prune(method, model, refset, sparsity, scope)
            assert stats["scope"] == scope and stats["options"] == vars(pruner_function(method)[1]())
            for name, w in prunable_weights(model).items():
                zeros = (w == 0).sum(1) if scope == "row" else (w == 0).sum()
                n = w.shape[1] if scope == "row" else w.numel()
                if count_rule(method, scope) == "floor":
                    assert (zeros == int(sparsity * n)).all(), (method, scope, name)  # Wanda's int(s·n)
                elif method == "sparsegpt":  # <= the threshold at int(s·n) in each block of 128 columns
                    blocks = [min(128, w.shape[1] - i) * w.shape[0] for i in range(0, w.shape[1], 128)]
                    assert zeros == sum(int(sparsity * b) + 1 for b in blocks), (method, scope, name)
                else:  # magnitude, RIA per layer: <= the value at int(s·n), no ties in random weights
                    assert zeros == int(sparsity * n) + 1, (method, scope, name)


def test_true_sequential_order_sees_the_pruned_attention_inputs():
    # SparseGPT's --true-sequential: q/k/v first, then o from the pruned q/k/v, then the MLP.
    refset, arch = calibration(), architecture_of(tiny_family("llama"))
    by_block, by_group = tiny_family("llama"), tiny_family("llama")
    prune("sparsegpt", by_block, refset, 0.5)
    prune("sparsegpt", by_group, refset, 0.5, options=SparseGPTOptions(order="sequential"))
    a, b = prunable_weights(by_block), prunable_weights(by_group)
    for name, (block, role) in arch.linear_names(by_block).items():
        assert (b[name] == 0).sum() == (a[name] == 0).sum()  # the same count rule in both orders
        if block == 0:
            assert torch.equal(a[name], b[name]) == (role in ("q", "k", "v")), name


def test_weights_restored():
    model = tiny_family("gpt2")
    before = {n: w.clone() for n, w in prunable_weights(model).items()}
    with weights_restored(model):
        prune("sparsegpt", model, calibration(), 0.7)
        assert any(not torch.equal(w, before[n]) for n, w in prunable_weights(model).items())
    assert all(torch.equal(w, before[n]) for n, w in prunable_weights(model).items())


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.8])
def test_owl_allocation_is_the_authors_map(sparsity):
    """The authors' code, re-stated: D scaled to [0, 2λ], minus its mean, plus the density 1 - s;
    block sparsity 1 - that. No clip to [s - λ, s + λ], though skewed ratios leave it."""
    import numpy as np

    lam = 0.08
    for ratios in ({0: 0.01, 1: 0.01, 2: 0.01, 3: 0.2}, {i: 0.001 * i**2 for i in range(12)}, {0: 0.3, 1: 0.3}):
        d = np.array([ratios[b] for b in sorted(ratios)]) * 100  # the authors' outlier percentages
        if d.max() > d.min():
            d = (d - d.min()) * (1 / (d.max() - d.min()) * lam * 2)
            d = d - np.mean(d) + (1 - sparsity)
            want = {b: 1 - v for b, v in zip(sorted(ratios), d)}
        else:
            want = dict.fromkeys(ratios, sparsity)
        assert owl_allocation(ratios, sparsity, lam) == pytest.approx(want, abs=1e-12)
    # the skewed case leaves the band [s - λ, s + λ] at one end: kept as the authors compute it
    s = owl_allocation({0: 0.01, 1: 0.01, 2: 0.01, 3: 0.2}, sparsity, lam)
    assert s[0] > sparsity + lam - 0.05 and s[3] < sparsity - lam


@pytest.mark.parametrize("m, lam, message", [(0, 0.08, "M = 0"), (-1, 0.08, "M = -1"), (5, 1.5, "lambda = 1.5")])
def test_owl_options_out_of_range_are_one_line(m, lam, message):
    model, refset = tiny_family("llama"), calibration()
    with pytest.raises(ValueError, match=message):
        owl_sparsities(model, refset, 0.5, m=m, lam=lam)
    with pytest.raises(ValueError, match="outside \\[0, 1\\): use a smaller lambda"):
        owl_allocation({0: 0.0, 1: 1.0}, 0.95, 0.5)


@pytest.mark.parametrize("family", THREE)
def test_owl_sparsities_and_masks_by_block(family):
    model, refset = tiny_family(family), calibration()
    before = {n: w.clone() for n, w in prunable_weights(model).items()}
    s = owl_sparsities(model, refset, 0.6)
    assert sum(s.values()) / len(s) == pytest.approx(0.6) and max(s.values()) - min(s.values()) <= 0.16 + 1e-9
    assert all(torch.equal(w, before[n]) for n, w in prunable_weights(model).items())  # allocation only reads
    scores = {n: torch.rand(w.shape, generator=torch.Generator().manual_seed(0)) for n, w in before.items()}
    keep = masks_by_block(model, scores, s, "row")
    for name, (block, _) in architecture_of(model).linear_names(model).items():
        assert ((~keep[name]).sum(1) == int(s[block] * keep[name].shape[1])).all()
    stats = prune("ria", model, refset, 0.6, "layer", RiaOptions(allocation="owl"))
    assert stats["block_sparsity"] == pytest.approx(s)
    for name, (block, _) in architecture_of(model).linear_names(model).items():
        w = prunable_weights(model)[name]
        assert (w == 0).sum() == int(s[block] * w.numel()) + 1  # RIA per layer: <= the value at int(s·n)


def test_refusals():
    model, refset = tiny_family("llama"), calibration()
    with pytest.raises(ValueError, match="global"):
        prune("wanda", model, refset, 0.5, "global")
    with pytest.raises(ValueError, match="calibration"):
        prune("sparsegpt", model, None, 0.5)
    with pytest.raises(ValueError, match="owl"):
        prune("wanda", model, refset, 0.5, "2:4", WandaOptions(allocation="owl"))
    with pytest.raises(ValueError, match="exactly"):
        prune("sparsegpt", model, refset, 0.7, "2:4")
