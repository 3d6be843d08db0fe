"""The components a circuit is made of, per granularity, and how to remove them.

* ``weight``: single weight elements of the MLP projections (fc1/fc2, or gate/up/down), of
  every prunable linear layer (``weight_modules="all"``), or of the neuron-role projection
  only (``weight_modules="neuron_role"``: fc1 / up, the paper's "fc1 weights" in correction);
* ``neuron``: MLP neurons, i.e. output units of the architecture's ``neuron_role`` (up / fc1);
  pruning one zeroes its row there and its column of the down projection;
* ``head``: attention heads, zeroed through their input columns of the output projection.

Module roles come from `attrprune.architectures`; nothing here names a module path.
"""

from __future__ import annotations

import torch

from attrprune.architectures import architecture_of
from attrprune.relevance.methods import Scores

GRANULARITIES = ("weight", "neuron", "head")
WEIGHT_MODULES = ("mlp", "all", "neuron_role")
_MASK_ARGUMENT = {"weight": "weight_masks", "neuron": "neuron_masks", "head": "head_masks"}


def check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown circuit granularity {granularity!r}; valid: {list(GRANULARITIES)}")


def component_names(model, granularity: str, weight_modules: str = "mlp") -> list[str]:
    """Names of the modules whose scores (and masks) make up the granularity, in block order."""
    check_granularity(granularity)
    arch = architecture_of(model)
    if granularity == "weight":
        if weight_modules not in WEIGHT_MODULES:
            raise ValueError(f"unknown weight_modules {weight_modules!r}; valid: {list(WEIGHT_MODULES)}")
        roles = {"mlp": arch.mlp_roles(), "all": tuple(arch.linears), "neuron_role": (arch.neuron_role,)}[
            weight_modules
        ]
        return arch.names_with_roles(model, roles)
    if granularity == "neuron":
        return arch.names_with_roles(model, (arch.neuron_role,))
    return [name.rsplit(".", 1)[0] for name in arch.names_with_roles(model, (arch.head_out,))]


def select(scores: Scores, names: list[str], granularity: str, method: str = "?", path=None) -> dict[str, torch.Tensor]:
    """The score tensors of `names` from the table of `granularity`; a clear error (naming the
    scores file `path`, if given) when the method does not score that granularity (wanda has no
    head scores, activation no weights)."""
    table = {"weight": scores.weights, "neuron": scores.neurons, "head": scores.heads}[granularity]
    missing = [n for n in names if n not in table]
    if missing:
        have = [g for g, t in (("weight", scores.weights), ("neuron", scores.neurons), ("head", scores.heads)) if t]
        where = f" ({path})" if path is not None else ""
        raise ValueError(
            f"{method} scores{where} have no {granularity} scores for {missing[:2]}...; it scores {have}: "
            f"use scores of a method that scores {granularity}s"
        )
    return {n: table[n] for n in names}


def mask_arguments(granularity: str, masks: dict[str, torch.Tensor]) -> dict:
    """Keyword arguments of `attrprune.pruning.pruned` for keep-masks of `granularity`."""
    return {_MASK_ARGUMENT[granularity]: masks}


def all_pruned(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep-masks removing every component (the normalised logit difference's zero point)."""
    return {n: torch.zeros(t.shape, dtype=torch.bool) for n, t in scores.items()}
