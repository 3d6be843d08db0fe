"""Pruning: keep-masks from scores (`masks`) and applying them to a model in memory (`apply`).

Paper Sec. 3.1 (Eqs. 2-3) and App. C: rank components by score within a scope (row, layer,
global, N:M; neurons and heads globally or per layer) and zero the lowest. Masks are computed
from a `attrprune.relevance.Scores` file on the fly, so no mask is ever stored.

Use::

    from attrprune.pruning import MaskBuilder, pruned, model_sparsity
    builder = MaskBuilder(scores.weights, scope="row")
    with pruned(model, weight_masks=builder.masks(0.5)):
        print(model_sparsity(model)["overall"])  # 0.5
"""

from attrprune.pruning.apply import apply_masks_, model_sparsity, pruned
from attrprune.pruning.masks import (
    MaskBuilder,
    head_masks,
    lowest_k,
    measured_sparsity,
    neuron_masks,
    parse_scope,
    unit_masks,
    weight_masks,
)
from attrprune.registry import RANKED_SCOPES as SCOPES

__all__ = [
    "SCOPES",
    "MaskBuilder",
    "apply_masks_",
    "head_masks",
    "lowest_k",
    "measured_sparsity",
    "model_sparsity",
    "neuron_masks",
    "parse_scope",
    "pruned",
    "unit_masks",
    "weight_masks",
]
