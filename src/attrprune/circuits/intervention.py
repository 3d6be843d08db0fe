"""How a removed circuit component is ablated: zero (pruning), mean ablation or counterfactual patching.

* ``zero``: `attrprune.pruning.pruned`, the paper's pruning: a head's input columns of the output
  projection, or a neuron's row of the up projection and column of the down projection, zeroed;
* ``mean``: the removed unit's *activation* replaced by its mean over a reference set, with
  forward pre-hooks that exist only inside the ``with`` block: a head's output (its slice
  ``h*head_dim:(h+1)*head_dim`` of the head-output projection's input) and a neuron's activation
  (its input column of the down projection ``mlp_out``) become their reference means. The
  means are taken over every non-padding position of the reference prompts (one vector per unit,
  not per position: MIB's "mean" rather than "mean-positional", since IOI prompts differ in
  length and template). Mean ablation keeps the unit's typical contribution (e.g. a bias-like
  constant), so it removes the information the unit carries rather than the unit itself.

* ``counterfactual``: MIB's counterfactual patching: the removed unit's activation on each prompt
  replaced by its activation, at the same position, on that prompt's corrupted copy (the
  refsets' ABC corruption: IO and both S names replaced by three other names, same token count),
  taken from the full model (`counterfactual_activations`); the same forward pre-hooks as mean
  ablation, with one value per prompt and position instead of one per unit.
  `ablated_logit_differences` runs the prompts slice by slice so that each slice gets its own.

Single weights have no activation of their own to average or patch: `ablated` refuses mean and
counterfactual ablation of weights, and the circuit stage keeps zero for them.

Module roles come from `attrprune.architectures`; nothing here names a module path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch

from attrprune.architectures import architecture_of

ABLATION_VALUES = ("zero", "mean", "counterfactual")


def _targets(model, granularity: str) -> dict[str, tuple[torch.nn.Module, int]]:
    """Component module name -> (the module whose input carries its units, units per component
    row): the head-output projection per attention module, the down projection per neuron-role
    module."""
    arch = architecture_of(model)
    roles = arch.linear_names(model)  # name -> (block, role)
    by_role = {v: k for k, v in roles.items()}
    if granularity == "head":
        return {
            name.rsplit(".", 1)[0]: model.get_submodule(name)
            for name, (_, role) in roles.items()
            if role == arch.head_out
        }
    if granularity == "neuron":
        return {
            name: model.get_submodule(by_role[(block, arch.mlp_out)])
            for name, (block, role) in roles.items()
            if role == arch.neuron_role
        }
    raise ValueError(
        f"mean ablation applies to heads and neurons, not {granularity!r}: a single weight has no activation"
    )


@torch.no_grad()
def reference_means(
    model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], granularity: str
) -> dict[str, torch.Tensor]:
    """Mean input of each component's reading module over the non-padding positions of
    `batches` ((input_ids [b, L], attention_mask [b, L]) pairs): {attention module: [heads *
    head_dim]} for heads, {neuron-role module: [neurons]} for neurons; float32 on CPU."""
    from attrprune.models import input_device

    targets = _targets(model, granularity)
    sums: dict[str, torch.Tensor] = {}
    count = 0
    current: dict[str, torch.Tensor] = {}

    def collect(name):
        def hook(module, args):
            x = args[0]  # [b, L, in]; OPT's MLP sees [b * L, in]
            keep = current["mask"].to(x.device).bool().reshape(x.shape[:-1])  # [b, L] or [b * L]
            total = x[keep].float().sum(0).cpu()  # [in]
            sums[name] = sums[name] + total if name in sums else total

        return hook

    backbone = model.get_submodule(architecture_of(model).backbone)
    handles = [m.register_forward_pre_hook(collect(n)) for n, m in targets.items()]
    try:
        for ids, mask in batches:
            current["mask"] = mask
            device = input_device(model)
            backbone(input_ids=ids.to(device), attention_mask=mask.to(device))
            count += int(mask.sum())
    finally:
        for h in handles:
            h.remove()
    if not count:
        raise ValueError("the mean-ablation reference set has no tokens")
    return {n: s / count for n, s in sums.items()}


def _columns(model, granularity: str, keep: torch.Tensor, width: int) -> torch.Tensor:
    """Removed input columns [width] of the reading module for keep-mask `keep` [units]."""
    gone = ~keep.bool().flatten()
    if granularity == "head":
        n_heads = architecture_of(model).n_heads(model)
        if len(gone) != n_heads:
            raise ValueError(f"head mask has {len(gone)} entries for {n_heads} heads")
        return gone.repeat_interleave(width // n_heads)  # [heads] -> [heads * head_dim]
    if len(gone) != width:
        raise ValueError(f"neuron mask has {len(gone)} entries for {width} neurons")
    return gone


@contextlib.contextmanager
def mean_ablated(
    model, granularity: str, masks: dict[str, torch.Tensor], means: dict[str, torch.Tensor]
) -> Iterator[torch.nn.Module]:
    """`model` with the removed heads' outputs / neurons' activations replaced by `means`
    (`reference_means`) inside the block; the hooks are removed on exit, also after an error."""
    targets = _targets(model, granularity)
    handles = []
    try:
        for name, keep in masks.items():
            if name not in targets:
                raise ValueError(f"{granularity} mask names {name!r}; valid e.g. {sorted(targets)[:3]}")
            if name not in means:
                raise ValueError(f"no reference mean for {name!r}: the means were taken for other modules")
            mean = means[name]  # [in], or [b, L, in] per prompt and position (counterfactual)
            cols = _columns(model, granularity, keep, mean.shape[-1])  # [in]
            if not cols.any():
                continue

            def hook(module, args, cols=cols, mean=mean):
                x = args[0]  # [..., in]; OPT's MLP sees [b * L, in]
                value = mean if mean.dim() == 1 else mean.reshape(x.shape)
                replaced = torch.where(cols.to(x.device), value.to(device=x.device, dtype=x.dtype), x)
                return (replaced, *args[1:])

            handles.append(targets[name].register_forward_pre_hook(hook))
        yield model
    finally:
        for h in handles:
            h.remove()


def ablated(
    model,
    granularity: str,
    masks: dict[str, torch.Tensor],
    value: str = "zero",
    means: dict[str, torch.Tensor] | None = None,
):
    """Context manager removing the components that `masks` (keep-masks) drop, by `value`."""
    from attrprune.circuits.components import mask_arguments
    from attrprune.pruning import pruned

    if value == "zero":
        return pruned(model, **mask_arguments(granularity, masks))
    if value not in ABLATION_VALUES:
        raise ValueError(f"unknown ablation value {value!r}; valid: {list(ABLATION_VALUES)}")
    if granularity == "weight":
        raise ValueError(f"{value} ablation applies to heads and neurons; single weights are zero-ablated (pruned)")
    if means is None:
        raise ValueError(
            "mean ablation needs reference means (`reference_means` of the IOI reference prompts)"
            if value == "mean"
            else "counterfactual patching needs the corrupted prompts' activations (`counterfactual_activations`)"
        )
    return mean_ablated(model, granularity, masks, means)


@torch.no_grad()
def counterfactual_activations(
    model, granularity: str, corrupted_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Input of each component's reading module on the corrupted prompts, per prompt and position,
    from the full model: {module: [n, L, in]} float32 on CPU."""
    from attrprune.models import input_device

    targets = _targets(model, granularity)
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in targets}
    shape: dict[str, tuple[int, int]] = {}

    def record(name):
        def hook(module, args):
            chunks[name].append(args[0].detach().float().cpu().reshape(*shape["b_l"], -1))

        return hook

    backbone = model.get_submodule(architecture_of(model).backbone)
    handles = [m.register_forward_pre_hook(record(n)) for n, m in targets.items()]
    try:
        device = input_device(model)
        for i in range(0, len(corrupted_ids), batch_size):
            ids, mask = corrupted_ids[i : i + batch_size], attention_mask[i : i + batch_size]
            shape["b_l"] = tuple(ids.shape)
            backbone(input_ids=ids.to(device), attention_mask=mask.to(device))
    finally:
        for h in handles:
            h.remove()
    return {n: torch.cat(c) for n, c in chunks.items()}


def ablated_logit_differences(
    model,
    batch,
    granularity: str,
    masks: dict[str, torch.Tensor],
    value: str = "zero",
    means: dict[str, torch.Tensor] | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Per-prompt logit differences [n] with the components `masks` drops removed by `value`;
    counterfactual patching runs slice by slice, each slice with its prompts' activations."""
    from attrprune.circuits.metrics import logit_differences

    if value != "counterfactual":
        with ablated(model, granularity, masks, value, means):
            return logit_differences(model, batch, batch_size)
    if means is None:
        ablated(model, granularity, masks, value, None)  # the clear error
    out = []
    for i in range(0, len(batch), batch_size):
        sl = slice(i, i + batch_size)
        with ablated(model, granularity, masks, value, {n: a[sl] for n, a in means.items()}):
            out.append(logit_differences(model, batch[sl], batch_size))
    return torch.cat(out)
