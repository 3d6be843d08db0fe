"""OWL (Yin et al. 2024, outlier-weighted layerwise sparsity): one sparsity per block, from how
many outliers the block's scores have, usable with any score.

Per block l (a decoder block, OWL's "layer"): the layer outlier distribution D_l = the share of
the block's scores (all its prunable linears together) above M × their mean (`outlier_ratios`).
Blocks with more outliers are pruned less: the ratios are mapped linearly onto a range of width
2λ, centred so that the block sparsities average to the requested s (`owl_allocation`), exactly as
the authors' code does: density offset ``(D − min D) / (max D − min D) · 2λ`` minus its mean, so
block sparsity ``s − offset``. The result spans 2λ but need not lie within [s − λ, s + λ] (its
mean is not its midpoint); it is kept as computed. A sparsity outside [0, 1) for some block
(λ too large for s) is an error naming λ and s.

Defaults: M = 5 and λ = 0.08, the values of the paper and of the README's scripts for
unstructured sparsity (the repository's argparse default for ``--Hyper_m`` is 3). The outlier
ratios come from Wanda scores |W|·‖X‖₂ of the dense model (the authors' first pass runs the
calibration through the unpruned blocks).

Use::

    s = owl_sparsities(model, refset, 0.7)  # {block: sparsity}, mean 0.7
    keep = masks_by_block(model, lrp_scores.weights, s, scope="row")
"""

from __future__ import annotations

import torch

from attrprune.architectures import architecture_of
from attrprune.pruning.masks import MaskBuilder, check_sparsity
from attrprune.pruning.sequential import InputNorms, run_sequential
from attrprune.refsets import RefSet

OWL_M = 5.0
OWL_LAMBDA = 0.08


def outlier_ratios(scores: dict[str, torch.Tensor], block_of: dict[str, int], m: float = OWL_M) -> dict[int, float]:
    """{block: share of the block's |scores| above m × their mean}; `block_of` maps score names to blocks."""
    by_block: dict[int, list[torch.Tensor]] = {}
    for name, s in scores.items():
        by_block.setdefault(block_of[name], []).append(s.detach().float().abs().flatten())
    ratios = {}
    for block, parts in sorted(by_block.items()):
        flat = torch.cat(parts)
        ratios[block] = (flat > m * flat.mean()).float().mean().item()
    return ratios


def check_owl(m: float = OWL_M, lam: float = OWL_LAMBDA) -> None:
    """One line when OWL's M or λ is out of range (M > 0; 0 <= λ <= 1)."""
    if not (isinstance(m, (int, float)) and m > 0):
        raise ValueError(f"OWL's M = {m!r}: it must be > 0 (outliers are scores above M x the block's mean)")
    if not (isinstance(lam, (int, float)) and 0 <= lam <= 1):
        raise ValueError(f"OWL's lambda = {lam!r}: it must be in [0, 1] (the spread of the block sparsities)")


def owl_allocation(ratios: dict[int, float], sparsity: float, lam: float = OWL_LAMBDA) -> dict[int, float]:
    """{block: sparsity}: more outliers, lower sparsity; mean = `sparsity`, spread 2λ (the authors' map)."""
    check_sparsity(sparsity)
    check_owl(lam=lam)
    blocks = sorted(ratios)
    d = torch.tensor([ratios[b] for b in blocks], dtype=torch.float64)
    if d.max() == d.min():
        return {b: sparsity for b in blocks}
    spread = (d - d.min()) / (d.max() - d.min()) * 2 * lam  # the authors' density offsets, [0, 2λ]
    values = sparsity - (spread - spread.mean())
    if values.min() < 0 or values.max() >= 1:
        raise ValueError(
            f"OWL with lambda {lam:g} at sparsity {sparsity:g} gives block sparsities from {values.min().item():.3f} "
            f"to {values.max().item():.3f}, outside [0, 1): use a smaller lambda"
        )
    return {b: float(v) for b, v in zip(blocks, values)}


def dense_wanda_ratios(model, calibration: RefSet, m: float = OWL_M, batch_size: int = 8) -> dict[int, float]:
    """OWL's outlier ratios from Wanda scores of the dense model, block by block (memory: one block)."""
    check_owl(m=m)
    arch = architecture_of(model)
    ratios: dict[int, float] = {}

    def read(block: int, stats: dict[str, InputNorms]) -> None:
        scores = {
            name: arch.weight(model.get_submodule(name)).detach().float().abs() * s.norms()[None, :]  # [out, in]
            for name, s in stats.items()
        }
        ratios.update(outlier_ratios(scores, dict.fromkeys(scores, block), m))

    def stat(name, module):
        w = arch.weight(module)
        return InputNorms(w.shape[1], w.device)

    run_sequential(model, calibration, stat, read, batch_size=batch_size)
    return ratios


def owl_sparsities(
    model, calibration: RefSet, sparsity: float, m: float = OWL_M, lam: float = OWL_LAMBDA, batch_size: int = 8
) -> dict[int, float]:
    """{block index: sparsity} by OWL from the dense model's Wanda outlier ratios; weights untouched."""
    return owl_allocation(dense_wanda_ratios(model, calibration, m, batch_size), sparsity, lam)


def masks_by_block(
    model, scores: dict[str, torch.Tensor], sparsities: dict[int, float], scope: str = "row", count: str = "floor"
) -> dict[str, torch.Tensor]:
    """Keep-masks from any weight scores ({module: [out, in]}), each block pruned at its own sparsity.

    `scope` ranks within each row, each layer, or (``"global"``) all of one block's linears
    together; `count` is the count rule (`attrprune.pruning.masks`; OWL's code: int(s·n) per row).
    """
    if scope not in ("row", "layer", "global"):
        raise ValueError(f"per-block sparsities need scope 'row', 'layer' or 'global' (within a block), got {scope!r}")
    block_of = {name: i for name, (i, _) in architecture_of(model).linear_names(model).items()}
    masks: dict[str, torch.Tensor] = {}
    for block, s in sorted(sparsities.items()):
        group = {name: t for name, t in scores.items() if block_of.get(name) == block}
        if group:
            masks.update(MaskBuilder(group, scope, count=count).masks(s))
    missing = sorted(set(scores) - set(masks))
    if missing:
        raise ValueError(f"no sparsity given for the blocks of {missing[:3]} ({len(missing)} scores)")
    return masks
