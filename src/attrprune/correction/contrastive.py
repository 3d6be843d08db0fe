"""Contrastive relevance (paper §3.4, Eq. 7): R_diff = R_general − R_unwanted per component.

Components with a low R_diff matter for the unwanted behaviour and little for general text;
targeted correction prunes the k lowest (`attrprune.pruning.lowest_k`).

The two score sets come from different reference sets (different lengths, numbers of explained
tokens, target sizes), so their raw scales differ, often by orders of magnitude: a plain
difference would be decided by whichever set happens to be larger. Each side is therefore
divided by one scale of its own, over all the given components together (the per-component
order within a side is untouched):

* ``"sum"`` (default): the sum of absolute scores, so each side is a distribution of relevance
  over the components (for the non-negative scores of ``aggregation="abs"`` it sums to 1);
* ``"max"``: the largest absolute score;
* ``"none"``: raw scores (the paper's Eq. 7 as written).

Use::

    diff, scales = contrastive_scores(general.neurons, unwanted.neurons, "sum", return_scales=True)
    keep = lowest_k(diff, k=100)
"""

from __future__ import annotations

import math

import torch

NORMALIZATIONS = ("sum", "max", "none")


def side_scale(scores: dict[str, torch.Tensor], normalization: str) -> float:
    """The number one side's scores are divided by (1.0 for ``"none"``)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; valid: {list(NORMALIZATIONS)}")
    if normalization == "none":
        return 1.0
    values = [t.detach().double().abs() for t in scores.values()]
    scale = (
        math.fsum(v.sum().item() for v in values)
        if normalization == "sum"
        else max(v.max().item() for v in values if v.numel())
    )
    if not scale > 0:  # also NaN
        raise ValueError(
            f"cannot normalise by the {normalization} of |scores|: it is {scale}; the scores are all zero "
            "(an empty or degenerate reference set?); rebuild them, or use normalization='none'"
        )
    return scale


def contrastive_scores(
    general: dict[str, torch.Tensor],
    unwanted: dict[str, torch.Tensor],
    normalization: str = "sum",
    return_scales: bool = False,
):
    """R_diff = general / scale(general) − unwanted / scale(unwanted), per component.

    `general` and `unwanted` map the same module names to score tensors of the same shapes
    (neurons [out], weights [out, in], ...). Returns {name: float32 tensor} in `general`'s order,
    and with `return_scales` also ``{"general": scale, "unwanted": scale}``.
    """
    if not general:
        raise ValueError("no components given: the general scores are empty")
    if set(general) != set(unwanted):
        only_g, only_u = sorted(set(general) - set(unwanted)), sorted(set(unwanted) - set(general))
        raise ValueError(
            f"the two score sets cover different modules (general only: {only_g[:3]}, unwanted only: "
            f"{only_u[:3]}); score both reference sets of the same model with the same method"
        )
    for name, g in general.items():
        if tuple(g.shape) != tuple(unwanted[name].shape):
            raise ValueError(
                f"{name}: general scores have shape {tuple(g.shape)}, unwanted {tuple(unwanted[name].shape)}; "
                "were they computed on the same model?"
            )
    for side, table in (("general", general), ("unwanted", unwanted)):
        bad = [n for n, t in table.items() if not torch.isfinite(t).all()]
        if bad:
            raise ValueError(f"{side} scores of {bad[:3]} are not finite; recompute them (fp32)")
    scales = {"general": side_scale(general, normalization), "unwanted": side_scale(unwanted, normalization)}
    diff = {
        name: (g.double() / scales["general"] - unwanted[name].double() / scales["unwanted"]).float()
        for name, g in general.items()
    }
    return (diff, scales) if return_scales else diff
