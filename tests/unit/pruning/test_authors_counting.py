"""The baselines remove as many weights as their authors' code does, and the same ones.

Each author's selection is re-stated here from their published procedure (Wanda: stable sort per
row, the first int(n·s) indices; the Wanda repository's magnitude and RIA per layer, SparseGPT
per block of columns: everything <= the sorted value at index int(n·s)). The pruners' masks on
block 0 of a tiny Llama (whose inputs are the dense embeddings for every procedure) must equal
them exactly; a half-up rounding, or a threshold where the authors take a count, fails.
"""

import pytest
import torch
from tiny_models import calibration, prunable_weights, tiny_family

from attrprune.architectures import architecture_of
from attrprune.pruning.masks import MaskBuilder
from attrprune.pruning.pruners import RiaOptions, SparseGPTOptions, prune


def wanda_rows(metric: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Wanda's code: sort each row (stable), prune the first int(W.shape[1] * s) indices."""
    pruned = torch.zeros_like(metric, dtype=torch.bool)
    order = torch.sort(metric, dim=-1, stable=True)[1][:, : int(metric.shape[1] * sparsity)]
    return pruned.scatter_(1, order, True)


def at_or_below(metric: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The Wanda repository's magnitude / RIA per layer, SparseGPT per block: <= the value at int(n·s)."""
    thresh = torch.sort(metric.flatten())[0][int(metric.numel() * sparsity)]
    return metric <= thresh


@pytest.mark.parametrize("sparsity", [0.5, 0.57, 0.7, 0.9])
def test_mask_builder_counts_as_the_authors_including_ties(sparsity):
    scores = torch.randint(0, 7, (12, 128)).float()  # many ties
    floor = ~MaskBuilder({"w": scores}, "row", count="floor").masks(sparsity)["w"]
    assert torch.equal(floor, wanda_rows(scores, sparsity))
    below = ~MaskBuilder({"w": scores}, "layer", count="at_or_below").masks(sparsity)["w"]
    assert torch.equal(below, at_or_below(scores, sparsity))
    # 70 % of a 128-wide row: 89 weights (int), where rounding half up took 90
    assert (
        int(0.7 * 128) == 89
        and MaskBuilder({"w": torch.rand(1, 128)}, "row", count="floor").masks(0.7)["w"].logical_not().sum() == 89
    )


def _block0_inputs(model, refset) -> dict[str, torch.Tensor]:
    """{name: [tokens, in] inputs} of block 0's linears in the dense model (real tokens only)."""
    arch = architecture_of(model)
    names = [n for n, (block, _) in arch.linear_names(model).items() if block == 0]
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    real = refset.attention_mask.bool()
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen[n].append(i[0][real].detach()))
        for n in names
    ]
    try:
        with torch.no_grad():
            model(input_ids=refset.input_ids, attention_mask=refset.attention_mask)
    finally:
        for h in hooks:
            h.remove()
    return {n: torch.cat(x) for n, x in seen.items()}


def _dense_and_pruned(method, sparsity, scope, options=None):
    refset = calibration(padded=False)
    dense, model = tiny_family("llama"), tiny_family("llama")
    inputs = _block0_inputs(dense, refset)
    prune(method, model, refset, sparsity, scope, options)
    return prunable_weights(dense), prunable_weights(model), inputs


@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_wanda_per_row_is_the_authors_selection(sparsity):
    dense, pruned, inputs = _dense_and_pruned("wanda", sparsity, "row")
    for name, x in inputs.items():
        metric = dense[name].abs() * x.pow(2).sum(0).sqrt()[None, :]  # |W| · ‖X_j‖₂
        assert torch.equal(pruned[name] == 0, wanda_rows(metric, sparsity)), name


@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_ria_per_layer_is_the_authors_selection(sparsity):
    dense, pruned, inputs = _dense_and_pruned("ria", sparsity, "layer", RiaOptions())
    for name, x in inputs.items():
        w = dense[name].abs()
        metric = (w / w.sum(0) + w / w.sum(1).reshape(-1, 1)) * x.pow(2).sum(0).sqrt()[None, :] ** 0.5
        assert torch.equal(pruned[name] == 0, at_or_below(metric, sparsity)), name


def test_magnitude_per_layer_is_the_authors_selection():
    dense, model = tiny_family("llama"), tiny_family("llama")
    prune("magnitude", model, None, 0.7, "layer")
    for name, w in prunable_weights(model).items():
        assert torch.equal(w == 0, at_or_below(prunable_weights(dense)[name].abs(), 0.7)), name


def sparsegpt_reference(w: torch.Tensor, xs: torch.Tensor, sparsity: float, blocksize: int, percdamp: float):
    """SparseGPT's published procedure (unstructured), re-stated: H = 2XᵀX / n, dead inputs zeroed,
    damped, upper Cholesky of H⁻¹; per block the mask is everything <= the OBS error at int(n·s),
    then column by column the error is spread over the block and, lazily, the later columns."""
    w = w.clone().float()
    h = 2 * xs.T.float() @ xs.float() / len(xs)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += torch.eye(len(h)) * percdamp * torch.mean(torch.diag(h))
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    mask = torch.zeros_like(w, dtype=torch.bool)
    for i1 in range(0, w.shape[1], blocksize):
        i2 = min(i1 + blocksize, w.shape[1])
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        tmp = w1**2 / torch.diag(hinv1).reshape(1, -1) ** 2
        mask1 = at_or_below(tmp, sparsity)
        for i in range(i2 - i1):
            q = w1[:, i].clone()
            q[mask1[:, i]] = 0
            err = (w1[:, i] - q) / hinv1[i, i]
            w1[:, i:] -= err.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
        mask[:, i1:i2] = mask1
    return w, mask


def test_sparsegpt_is_the_authors_procedure():
    options = SparseGPTOptions(blocksize=16)  # several blocks of columns in a 64-wide layer
    dense, pruned, inputs = _dense_and_pruned("sparsegpt", 0.7, "layer", options)
    for name, x in inputs.items():
        want, mask = sparsegpt_reference(dense[name].detach(), x, 0.7, 16, 0.01)
        assert torch.equal(pruned[name] == 0, mask), name
        assert torch.allclose(pruned[name], want, atol=1e-5), name
