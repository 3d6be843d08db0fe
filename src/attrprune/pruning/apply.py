"""Applying keep-masks to a model in memory (paper Eq. 3: ψ ↦ (1 − 1[ψ pruned]) · ψ).

`pruned` zeroes weights, neurons and heads in place for the duration of a ``with`` block and
restores the exact original values on exit, also after an exception, so one loaded model serves
every sparsity of a sweep. `apply_masks_` does the same without restoring (for export).

* weight masks: {linear module name: BoolTensor[out, in]} zero single weight elements;
* neuron masks: {linear module name: BoolTensor[out]} zero output rows (weight and bias). For a
  module whose role is one of the architecture's ``mlp_in`` (up/gate/fc1), the matching input
  column of the block's ``mlp_out`` (down/fc2) is zeroed too, so the neuron contributes nothing
  whatever the activation function makes of a zero pre-activation;
* head masks: {attention module name: BoolTensor[heads]} zero the head's input columns
  ``h*head_dim:(h+1)*head_dim`` of the block's ``head_out`` projection (o_proj/out_proj).

Module roles come from `attrprune.architectures`; parameters are edited in place and never
replaced, so tied parameters stay tied and optimiser/device placement is untouched.

Use::

    with pruned(model, weight_masks=MaskBuilder(scores.weights, "row").masks(0.5)):
        evaluate(model)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch

from attrprune.architectures import architecture_of


def _drops(
    model: torch.nn.Module,
    weight_masks: dict[str, torch.Tensor] | None,
    neuron_masks: dict[str, torch.Tensor] | None,
    head_masks: dict[str, torch.Tensor] | None,
) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(parameter, BoolTensor of elements to zero) per touched parameter, each parameter once."""
    drops: dict[int, tuple[torch.nn.Parameter, torch.Tensor]] = {}  # keyed by id: tied params merge

    def drop(param: torch.nn.Parameter | None, out_in: bool = False) -> torch.Tensor | None:
        """The parameter's drop mask; with `out_in`, as the [out, in] view of a prunable weight."""
        if param is None:
            return None
        if id(param) not in drops:
            drops[id(param)] = (param, torch.zeros_like(param, dtype=torch.bool))
        gone = drops[id(param)][1]
        return arch.as_out_in(gone) if out_in else gone

    def linear(name: str) -> torch.nn.Module:
        try:
            return model.get_submodule(name)
        except AttributeError as err:
            raise ValueError(f"mask names unknown module {name!r}") from err

    def check(mask: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
        if tuple(mask.shape) != tuple(shape):
            raise ValueError(f"{what}: mask shape {tuple(mask.shape)} != expected {tuple(shape)}")
        return mask.to(dtype=torch.bool)

    arch = architecture_of(model)
    roles = arch.linear_names(model)  # name -> (block, role)
    by_role = {v: k for k, v in roles.items()}  # (block, role) -> name

    # Masks are [out, in]; a prunable weight stored [in, out] (GPT-2's Conv1D) is masked through
    # its transposed view. Any other module (e.g. the LM head) is masked as it is stored.
    for name, keep in (weight_masks or {}).items():
        module = linear(name)
        out_in = name in roles
        w = arch.weight(module) if out_in else module.weight
        drop(module.weight, out_in).logical_or_(~check(keep, w.shape, name).to(w.device))

    for name, keep in (neuron_masks or {}).items():
        module = linear(name)
        w = arch.weight(module)  # [out, in]
        gone = ~check(keep, w.shape[:1], f"neurons of {name}").to(w.device)  # [out]
        drop(module.weight, out_in=True)[gone] = True
        if getattr(module, "bias", None) is not None:
            drop(module.bias)[gone] = True
        block, role = roles.get(name, (None, None))
        if role in arch.mlp_in:
            down = linear(by_role[(block, arch.mlp_out)])
            drop(down.weight, out_in=True)[:, gone.to(down.weight.device)] = True  # [hidden, neurons]

    if head_masks:
        head_out = {n.rsplit(".", 1)[0]: n for n, (_, role) in roles.items() if role == arch.head_out}
        n_heads = arch.n_heads(model)
    for name, keep in (head_masks or {}).items():
        if name not in head_out:
            raise ValueError(f"head mask names {name!r}, not an attention module; valid e.g. {sorted(head_out)[:3]}")
        module = linear(head_out[name])
        w = arch.weight(module)  # [hidden, heads * head_dim]
        gone = ~check(keep, (n_heads,), f"heads of {name}").to(w.device)  # [heads]
        cols = gone.repeat_interleave(w.shape[1] // n_heads)  # [heads] -> [heads * head_dim]
        drop(module.weight, out_in=True)[:, cols] = True

    return list(drops.values())


@torch.no_grad()
def apply_masks_(
    model: torch.nn.Module,
    weight_masks: dict[str, torch.Tensor] | None = None,
    neuron_masks: dict[str, torch.Tensor] | None = None,
    head_masks: dict[str, torch.Tensor] | None = None,
) -> torch.nn.Module:
    """Zero the masked components of `model` in place, for good (export); returns `model`."""
    for param, gone in _drops(model, weight_masks, neuron_masks, head_masks):
        param.masked_fill_(gone, 0)
    return model


@contextlib.contextmanager
def pruned(
    model: torch.nn.Module,
    weight_masks: dict[str, torch.Tensor] | None = None,
    neuron_masks: dict[str, torch.Tensor] | None = None,
    head_masks: dict[str, torch.Tensor] | None = None,
) -> Iterator[torch.nn.Module]:
    """Context manager: `model` with the masked components zeroed; original values restored on exit.

    Only the zeroed values are saved (not whole copies), so the extra memory is one bool per
    element of each touched parameter plus the pruned values themselves.
    """
    saved = []
    try:
        with torch.no_grad():
            for param, gone in _drops(model, weight_masks, neuron_masks, head_masks):
                saved.append((param, gone, param[gone].clone()))  # [n_gone]
                param.masked_fill_(gone, 0)
        yield model
    finally:
        with torch.no_grad():
            for param, gone, values in saved:
                param[gone] = values


def model_sparsity(model: torch.nn.Module, names: Iterable[str] | None = None) -> dict:
    """Exact zeros of the weights of linear modules `names` (default: every prunable linear).

    Returns ``{"per_layer": {name: fraction zero}, "overall": fraction zero}``, the measured
    counterpart of `masks.measured_sparsity` (it also counts weights that were zero before).
    """
    if names is None:
        names = architecture_of(model).linear_names(model)
    per_layer, zeros, total = {}, 0, 0
    for name in names:
        w = model.get_submodule(name).weight
        z = int((w == 0).sum())
        per_layer[name] = z / w.numel()
        zeros, total = zeros + z, total + w.numel()
    return {"per_layer": per_layer, "overall": zeros / total if total else 0.0}
