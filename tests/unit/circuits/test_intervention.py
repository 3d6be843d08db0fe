"""Mean ablation: removed heads / neurons read their reference mean, only inside the block."""

import pytest
import torch
from test_ablation import BLOCKS, HEAD_OUT, MLP, _batch
from tiny_models import TINY

from attrprune.circuits.ablation import _unit_drops
from attrprune.circuits.intervention import ablated, reference_means
from attrprune.circuits.metrics import logit_differences
from attrprune.pruning import pruned


def _reference(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (5, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # right padding: its positions must not enter the mean
    mask[3, 7:] = 0
    return ids, mask


def _inputs_of(model, module, ids, mask=None):
    """What `module` receives in a forward pass, as [b * L, in] (OPT's MLP flattens it)."""
    seen = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
    finally:
        handle.remove()
    return seen[0].reshape(-1, seen[0].shape[-1])


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_mean_ablated_head_reads_its_reference_mean(family):
    model = TINY[family](bias_free=False)
    ids, mask = _reference()
    attn = f"{BLOCKS[family]}.1.self_attn"
    o_proj = model.get_submodule(f"{BLOCKS[family]}.1.{HEAD_OUT[family]}")
    head_dim = o_proj.in_features // 4
    means = reference_means(model, [(ids[:2], mask[:2]), (ids[2:], mask[2:])], "head")
    # the mean over non-padding positions, by hand
    x = _inputs_of(model, o_proj, ids, mask)  # [b * L, heads * head_dim]
    torch.testing.assert_close(means[attn], x[mask.flatten().bool()].mean(0), atol=1e-6, rtol=1e-5)

    test_ids = torch.randint(3, 100, (3, 10))
    dense_in = _inputs_of(model, o_proj, test_ids)
    keep = torch.tensor([True, False, True, True])
    with ablated(model, "head", {attn: keep}, "mean", means):
        got = _inputs_of(model, o_proj, test_ids)  # registered after the ablation hook: sees its output
        mean_logits = model(test_ids).logits
    cols = slice(head_dim, 2 * head_dim)
    torch.testing.assert_close(got[..., cols], means[attn][cols].expand(30, head_dim))
    others = torch.ones(o_proj.in_features, dtype=torch.bool)
    others[cols] = False
    torch.testing.assert_close(got[..., others], dense_in[..., others])
    with pruned(model, head_masks={attn: keep}):
        zero_logits = model(test_ids).logits
    assert not torch.allclose(mean_logits, zero_logits, atol=1e-4)  # zero and mean ablation differ
    # the hooks are gone after the block
    torch.testing.assert_close(_inputs_of(model, o_proj, test_ids), dense_in)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_mean_ablated_neuron_reads_its_reference_mean(family):
    model = TINY[family](bias_free=False)
    ids, mask = _reference()
    up = f"{BLOCKS[family]}.0.{MLP[family][0]}"
    down = model.get_submodule(f"{BLOCKS[family]}.0.{MLP[family][1]}")
    means = reference_means(model, [(ids, mask)], "neuron")
    assert means[up].shape == (128,)
    torch.testing.assert_close(
        means[up], _inputs_of(model, down, ids, mask)[mask.flatten().bool()].mean(0), atol=1e-6, rtol=1e-5
    )
    keep = torch.ones(128, dtype=torch.bool)
    keep[[7, 40]] = False
    test_ids = torch.randint(3, 100, (2, 6))
    dense_in = _inputs_of(model, down, test_ids)
    with ablated(model, "neuron", {up: keep}, "mean", means):
        got = _inputs_of(model, down, test_ids)
    torch.testing.assert_close(got[..., ~keep], means[up][~keep].expand(12, 2))
    torch.testing.assert_close(got[..., keep], dense_in[..., keep])


def test_mean_ablation_refuses_weights_and_missing_means():
    model = TINY["llama"]()
    with pytest.raises(ValueError, match="single weights are zero-ablated"):
        ablated(model, "weight", {}, "mean", {})
    with pytest.raises(ValueError, match="needs reference means"):
        ablated(model, "head", {}, "mean", None)
    with pytest.raises(ValueError, match="unknown ablation value"):
        ablated(model, "head", {}, "resample", {})


def test_mean_ablation_ground_truth_matches_a_direct_hook():
    model = TINY["llama"](bias_free=False)
    batch = _batch()
    ids, mask = _reference()
    means = reference_means(model, [(ids, mask)], "head")
    dense = logit_differences(model, batch).mean().item()
    attn = f"{BLOCKS['llama']}.0.self_attn"
    # the heads of one layer only (the whole ground truth ablates 256 neurons as well)
    drops = _unit_drops(model, batch, "head", {attn: 4}, dense, False, "mean", means)[attn]
    zero = _unit_drops(model, batch, "head", {attn: 4}, dense, False)[attn]
    o_proj = model.get_submodule(f"{BLOCKS['llama']}.0.{HEAD_OUT['llama']}")
    head_dim = o_proj.in_features // 4

    def set_head_2_to_mean(module, args):
        x = args[0].clone()
        x[..., 2 * head_dim : 3 * head_dim] = means[attn][2 * head_dim : 3 * head_dim]
        return (x,)

    handle = o_proj.register_forward_pre_hook(set_head_2_to_mean)
    try:
        expected = dense - logit_differences(model, batch).mean().item()
    finally:
        handle.remove()
    assert drops[2].item() == pytest.approx(expected, abs=1e-5)
    assert not torch.allclose(drops, zero)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_counterfactual_patching_reads_each_prompts_corrupted_run(family):
    from attrprune.circuits.intervention import ablated_logit_differences, counterfactual_activations

    model = TINY[family](bias_free=False)
    batch = _batch(n=5, length=9)
    g = torch.Generator().manual_seed(7)
    corrupted = batch.input_ids.clone()
    corrupted[:, 1:4] = torch.randint(3, 100, (5, 3), generator=g)  # other "names", same length
    batch.corrupted_ids = corrupted
    attn = f"{BLOCKS[family]}.1.self_attn"
    o_proj = model.get_submodule(f"{BLOCKS[family]}.1.{HEAD_OUT[family]}")
    head_dim = o_proj.in_features // 4
    acts = counterfactual_activations(model, "head", corrupted, batch.attention_mask, batch_size=2)
    assert acts[attn].shape == (5, 9, o_proj.in_features)
    keep = torch.tensor([True, False, True, True])
    with ablated(model, "head", {attn: keep}, "counterfactual", acts):
        got = _inputs_of(model, o_proj, batch.input_ids)  # [b * L, in]
    # the removed head carries, at every prompt and position, what it carried on that prompt's corrupted copy
    cols = slice(head_dim, 2 * head_dim)
    torch.testing.assert_close(got[:, cols], _inputs_of(model, o_proj, corrupted)[:, cols])
    others = torch.ones(o_proj.in_features, dtype=torch.bool)
    others[cols] = False
    torch.testing.assert_close(got[:, others], _inputs_of(model, o_proj, batch.input_ids)[:, others])

    neurons = counterfactual_activations(model, "neuron", corrupted, batch.attention_mask)
    up = f"{BLOCKS[family]}.0.{MLP[family][0]}"
    drop = torch.ones(neurons[up].shape[-1], dtype=torch.bool)
    drop[::3] = False
    whole = ablated_logit_differences(model, batch, "neuron", {up: drop}, "counterfactual", neurons, batch_size=5)
    sliced = ablated_logit_differences(model, batch, "neuron", {up: drop}, "counterfactual", neurons, batch_size=2)
    torch.testing.assert_close(whole, sliced)  # each slice patched from its own prompts
    with pruned(model, neuron_masks={up: drop}):
        assert not torch.allclose(whole, logit_differences(model, batch), atol=1e-4)  # not zero ablation
    # clean = corrupted: patching changes nothing
    same = counterfactual_activations(model, "neuron", batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(
        ablated_logit_differences(model, batch, "neuron", {up: drop}, "counterfactual", same),
        logit_differences(model, batch),
    )
    with pytest.raises(ValueError, match="corrupted prompts' activations"):
        ablated_logit_differences(model, batch, "neuron", {up: drop}, "counterfactual", None)
