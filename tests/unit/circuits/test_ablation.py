"""Head pruning really removes a head; exhaustive ablation equals a direct per-component computation."""

import pytest
import torch
from tiny_models import TINY

from attrprune.circuits.ablation import ablation_importance, importance_and_scores, load_ablation, save_ablation
from attrprune.circuits.metrics import IOIBatch, logit_differences
from attrprune.pruning import pruned

HEAD_OUT = {"llama": "self_attn.o_proj", "opt": "self_attn.out_proj"}
MLP = {"llama": ("mlp.up_proj", "mlp.down_proj"), "opt": ("fc1", "fc2")}
BLOCKS = {"llama": "model.layers", "opt": "model.decoder.layers"}


def _batch(n=6, length=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (n, length), generator=g)
    return IOIBatch(
        ids,
        torch.ones_like(ids),
        torch.full((n,), length - 1),
        torch.randint(3, 100, (n,), generator=g),
        torch.randint(3, 100, (n,), generator=g),
    )


def _zero_head_input(module, head, head_dim):
    """Pre-hook zeroing one head's slice of the output projection's input: its attention output."""

    def hook(mod, args):
        x = args[0].clone()
        x[..., head * head_dim : (head + 1) * head_dim] = 0
        return (x,)

    return module.register_forward_pre_hook(hook)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_head_pruning_removes_exactly_that_heads_output(family):
    model = TINY[family](bias_free=False)
    ids = torch.randint(3, 100, (3, 10))
    o_proj = model.get_submodule(f"{BLOCKS[family]}.1.{HEAD_OUT[family]}")
    head_dim = o_proj.in_features // 4
    attn = f"{BLOCKS[family]}.1.self_attn"
    keep = torch.tensor([True, False, True, True])
    with torch.no_grad():
        dense = model(ids).logits
        handle = _zero_head_input(o_proj, 1, head_dim)
        try:
            zeroed = model(ids).logits
            with pruned(model, head_masks={attn: keep}):
                both = model(ids).logits  # pruning a head whose output is already zero changes nothing
        finally:
            handle.remove()
        with pruned(model, head_masks={attn: keep}):
            masked = model(ids).logits
    torch.testing.assert_close(both, zeroed)
    torch.testing.assert_close(masked, zeroed, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(dense, zeroed)  # the head did contribute


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_ablation_matches_direct_zeroing(family, tmp_path):
    model = TINY[family](bias_free=False)
    batch = _batch()
    result = ablation_importance(model, batch, n_weights=5, seed=3, progress=False)
    dense = logit_differences(model, batch).mean()
    block = f"{BLOCKS[family]}.0"
    up, down = (model.get_submodule(f"{block}.{m}") for m in MLP[family])
    o_proj = model.get_submodule(f"{block}.{HEAD_OUT[family]}")
    head_dim = o_proj.in_features // 4

    def drop_after(edit):
        saved = {p: p.detach().clone() for p in model.parameters()}
        with torch.no_grad():
            edit()
            value = dense - logit_differences(model, batch).mean()
            for p, v in saved.items():
                p.copy_(v)
        return value

    def kill_head(h=2):
        o_proj.weight[:, h * head_dim : (h + 1) * head_dim] = 0

    def kill_neuron(j=7):
        up.weight[j] = 0
        if up.bias is not None:
            up.bias[j] = 0
        down.weight[:, j] = 0

    assert result["head"][f"{block}.self_attn"][2].item() == pytest.approx(drop_after(kill_head).item(), abs=1e-5)
    up_name = f"{block}.{MLP[family][0]}"
    assert result["neuron"][up_name][7].item() == pytest.approx(drop_after(kill_neuron).item(), abs=1e-5)
    assert sum(len(i) for i, _ in result["weight"].values()) == 5
    name, (index, drops) = next((n, t) for n, t in result["weight"].items() if len(t[0]))
    w = model.get_submodule(name).weight

    def kill_weight():
        w.view(-1)[index[0]] = 0

    assert drops[0].item() == pytest.approx(drop_after(kill_weight).item(), abs=1e-5)
    # every head and neuron of the MLP role, each once; the model is left as it was
    assert {k: len(v) for k, v in result["head"].items()} == {f"{BLOCKS[family]}.{i}.self_attn": 4 for i in range(2)}
    assert all(len(v) == 128 for v in result["neuron"].values()) and len(result["neuron"]) == 2
    torch.testing.assert_close(logit_differences(model, batch).mean(), dense)

    save_ablation(result, tmp_path / "a.safetensors", {"model": "tiny"})
    loaded, meta = load_ablation(tmp_path / "a.safetensors")
    assert meta["model"] == "tiny" and loaded["dense_logit_diff"] == pytest.approx(result["dense_logit_diff"])
    scores = {n: torch.arange(t.numel(), dtype=torch.float) for n, t in loaded["head"].items()}
    importance, ranked = importance_and_scores(loaded, "head", scores)
    assert len(importance) == len(ranked) == 8
