"""Applying masks in memory: zeros where masked, bit-identical elsewhere and after exit, and
neuron/head pruning removes exactly that component's contribution (tiny random Llama and OPT)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import TINY  # noqa: E402

from attrprune.architectures import architecture_of  # noqa: E402
from attrprune.pruning import (  # noqa: E402
    MaskBuilder,
    apply_masks_,
    measured_sparsity,
    model_sparsity,
    pruned,
)

FAMILIES = ["llama", "opt"]
IDS = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(0))


def make(family):
    return TINY[family](bias_free=False)  # biases present, so neuron pruning must zero them too


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


def snapshot(model):
    return {n: (p, p.detach().clone()) for n, p in model.named_parameters(remove_duplicate=False)}


def assert_unchanged(model, snap):
    params = dict(model.named_parameters(remove_duplicate=False))
    assert params.keys() == snap.keys()
    for name, (obj, value) in snap.items():
        assert params[name] is obj, name  # never replaced
        assert torch.equal(obj, value), name


def row_masks(model, sparsity, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = {
        n: torch.randn(model.get_submodule(n).weight.shape, generator=g)
        for n in architecture_of(model).linear_names(model)
    }
    return MaskBuilder(scores, "row").masks(sparsity)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_masks_zero_inside_and_restore_on_exit(family):
    model = make(family)
    snap = snapshot(model)
    masks = row_masks(model, 0.5)
    with pruned(model, weight_masks=masks) as m:
        assert m is model
        for name, keep in masks.items():
            w, before = model.get_submodule(name).weight, snap[f"{name}.weight"][1]
            assert (w[~keep] == 0).all()
            assert torch.equal(w[keep], before[keep])  # bit-identical
        masked = {f"{n}.weight" for n in masks}
        assert all(torch.equal(p, v) for n, (p, v) in snap.items() if n not in masked)
        assert model_sparsity(model) == measured_sparsity(masks)
        assert model_sparsity(model)["overall"] == 0.5
    assert_unchanged(model, snap)


@pytest.mark.parametrize("family", FAMILIES)
def test_restores_after_exception(family):
    model = make(family)
    snap = snapshot(model)
    arch = architecture_of(model)
    attn = next(n.rsplit(".", 1)[0] for n, (_, r) in arch.linear_names(model).items() if r == arch.head_out)
    mlp_in = next(n for n, (_, r) in arch.linear_names(model).items() if r in arch.mlp_in)
    with pytest.raises(RuntimeError, match="boom"):
        with pruned(
            model,
            weight_masks=row_masks(model, 0.7),
            neuron_masks={mlp_in: torch.arange(128) % 3 != 0},
            head_masks={attn: torch.tensor([True, False, True, False])},
        ):
            assert model_sparsity(model)["overall"] > 0.6
            raise RuntimeError("boom")
    assert_unchanged(model, snap)


@pytest.mark.parametrize("family", FAMILIES)
def test_sparsity_zero_leaves_logits_identical(family):
    model = make(family)
    before = logits(model)
    with pruned(model, weight_masks=row_masks(model, 0.0)):
        assert torch.equal(logits(model), before)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_neuron_contributes_nothing(family):
    model = make(family)
    arch = architecture_of(model)
    roles = arch.linear_names(model)
    by_role = {v: k for k, v in roles.items()}
    block, neuron = 1, 37
    keep = torch.ones(128, dtype=torch.bool)
    keep[neuron] = False
    down = model.get_submodule(by_role[(block, arch.mlp_out)]).weight
    for role in arch.mlp_in:
        name = by_role[(block, role)]
        module = model.get_submodule(name)
        with pruned(model, neuron_masks={name: keep}):
            assert (module.weight[neuron] == 0).all() and (down[:, neuron] == 0).all()
            if module.bias is not None:
                assert module.bias[neuron] == 0
            out = logits(model)

            # the output no longer depends on the neuron's pre-activation, in any mlp_in module
            def scramble(mod, args, output):
                output = output.clone()
                output[..., neuron] = 1e3 * torch.randn(output.shape[:-1])
                return output

            hooks = [model.get_submodule(by_role[(block, r)]).register_forward_hook(scramble) for r in arch.mlp_in]
            try:
                assert torch.equal(logits(model), out)
            finally:
                for h in hooks:
                    h.remove()
        assert not torch.equal(out, logits(model))  # the neuron mattered before

        # same as zeroing only the neuron's outgoing column by hand
        with torch.no_grad():
            saved = down[:, neuron].clone()
            down[:, neuron] = 0
            try:
                assert torch.equal(logits(model), out)
            finally:
                down[:, neuron] = saved


@pytest.mark.parametrize("family", FAMILIES)
def test_neuron_mask_on_other_linear_zeroes_its_rows_only(family):
    model = make(family)
    snap = snapshot(model)
    arch = architecture_of(model)
    name = next(n for n, (_, r) in arch.linear_names(model).items() if r == "q")
    keep = torch.ones(64, dtype=torch.bool)
    keep[[3, 9]] = False
    with pruned(model, neuron_masks={name: keep}):
        q = model.get_submodule(name)
        assert (q.weight[[3, 9]] == 0).all() and (q.bias[[3, 9]] == 0).all()
        touched = {f"{name}.weight", f"{name}.bias"}
        assert all(torch.equal(p, v) for n, (p, v) in snap.items() if n not in touched)
    assert_unchanged(model, snap)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_head_equals_zeroing_its_attention_output(family):
    model = make(family)
    arch = architecture_of(model)
    heads_out = {n.rsplit(".", 1)[0]: n for n, (_, r) in arch.linear_names(model).items() if r == arch.head_out}
    attn = sorted(heads_out)[1]
    o_proj = model.get_submodule(heads_out[attn])
    head, head_dim = 2, 64 // 4
    keep = torch.tensor([True, True, False, True])
    before = logits(model)
    with pruned(model, head_masks={attn: keep}):
        out = logits(model)
        assert (o_proj.weight[:, head * head_dim : (head + 1) * head_dim] == 0).all()
        assert int((o_proj.weight == 0).sum()) == 64 * head_dim  # nothing else in o_proj
    assert not torch.equal(out, before)

    def zero_head(module, args):
        (x,) = args
        x = x.clone()
        x[..., head * head_dim : (head + 1) * head_dim] = 0  # [batch, seq, heads * head_dim]
        return (x,)

    hook = o_proj.register_forward_pre_hook(zero_head)
    try:
        assert torch.equal(logits(model), out)
    finally:
        hook.remove()


def test_tied_embeddings_stay_tied_and_restore():
    model = make("opt")
    assert model.lm_head.weight is model.get_input_embeddings().weight
    snap = snapshot(model)
    keep = torch.rand(model.lm_head.weight.shape, generator=torch.Generator().manual_seed(1)) > 0.3
    with pruned(model, weight_masks={"lm_head": keep, **row_masks(model, 0.5)}):
        assert model.lm_head.weight is model.get_input_embeddings().weight
        assert (model.get_input_embeddings().weight[~keep] == 0).all()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert_unchanged(model, snap)


def test_apply_masks_is_permanent():
    model = make("llama")
    masks = row_masks(model, 0.6)
    with pruned(model, weight_masks=masks):
        expected = logits(model)
    assert apply_masks_(model, weight_masks=masks) is model
    assert model_sparsity(model)["overall"] == pytest.approx(0.6, abs=1 / 64)
    assert model_sparsity(model) == measured_sparsity(masks)
    assert torch.equal(logits(model), expected)


def test_errors():
    model = make("llama")
    with pytest.raises(ValueError, match="mask shape"):
        with pruned(model, weight_masks={"model.layers.0.mlp.up_proj": torch.ones(3, 3, dtype=torch.bool)}):
            pass
    with pytest.raises(ValueError, match="unknown module"):
        with pruned(model, weight_masks={"model.layers.9.mlp.up_proj": torch.ones(3, 3, dtype=torch.bool)}):
            pass
    with pytest.raises(ValueError, match="not an attention module"):
        with pruned(model, head_masks={"model.layers.0.mlp": torch.ones(4, dtype=torch.bool)}):
            pass
