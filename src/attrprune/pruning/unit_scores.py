"""Unit scores for structured pruning (`attrprune.pruning.structured`): per decoder block, one
score per MLP neuron and per key/value group, by each structured method (scores-file neuron and
head scores; Wanda-sp; magnitude; FLAP's fluctuation over calibration channel statistics).

The methods and their definitions are documented in `attrprune.pruning.structured`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attrprune.architectures import Architecture, architecture_of
from attrprune.registry import STRUCTURED_METHODS


def mlp_width(model, arch: Architecture) -> int:
    name = arch.names_with_roles(model, (arch.neuron_role,))[0]
    return arch.weight(model.get_submodule(name)).shape[0]


def kv_groups(model, arch: Architecture) -> tuple[int, int]:
    """(key/value groups, query heads per group)."""
    n_heads, n_kv = arch.n_heads(model), arch.n_kv_heads(model)
    return n_kv, n_heads // n_kv


def units_by_role(model, arch: Architecture) -> dict[tuple[int, str], str]:
    return {v: k for k, v in arch.linear_names(model).items()}


def _heads_to_groups(heads: torch.Tensor, n_kv: int) -> torch.Tensor:
    return heads.reshape(n_kv, -1).sum(-1)  # [heads] -> [kv groups, heads per group] -> [kv groups]


def _from_scores_file(model, arch: Architecture, scores) -> tuple[dict, dict]:
    by_role = units_by_role(model, arch)
    n_kv, _ = kv_groups(model, arch)
    neurons, groups = {}, {}
    for i in range(len(arch.block_list(model))):
        name = by_role[(i, arch.neuron_role)]
        if name not in scores.neurons:
            raise ValueError(f"the scores hold no neuron scores of {name}: give scores of this model's method")
        neurons[i] = scores.neurons[name]
        attention = by_role[(i, arch.head_out)].rsplit(".", 1)[0]
        if attention in scores.heads:
            groups[i] = _heads_to_groups(scores.heads[attention], n_kv)
    return neurons, groups


def _wanda_sp(model, arch: Architecture, scores) -> tuple[dict, dict]:
    """Wanda-sp: the output projection's per-weight Wanda scores averaged over its rows."""
    by_role = units_by_role(model, arch)
    n_kv, _ = kv_groups(model, arch)
    neurons, groups = {}, {}
    for i in range(len(arch.block_list(model))):
        down, o = by_role[(i, arch.mlp_out)], by_role[(i, arch.head_out)]
        for name in (down, o):
            if name not in scores.weights:
                raise ValueError(f"Wanda-sp needs per-weight wanda scores of {name}; the scores hold none")
        neurons[i] = scores.weights[down].mean(0)  # [out, neurons] -> [neurons]
        columns = scores.weights[o].mean(0)  # [out, heads * head_dim] -> [heads * head_dim]
        groups[i] = _heads_to_groups(columns.reshape(arch.n_heads(model), -1).sum(-1), n_kv)
    return neurons, groups


@torch.no_grad()
def _magnitude(model, arch: Architecture) -> tuple[dict, dict]:
    """Σ|w| over each unit's weights."""
    by_role = units_by_role(model, arch)
    n_kv, group = kv_groups(model, arch)
    n_heads = arch.n_heads(model)
    neurons, groups = {}, {}
    for i in range(len(arch.block_list(model))):
        w = {role: arch.weight(model.get_submodule(by_role[(i, role)])).float().abs() for role in arch.linears}
        neurons[i] = sum(w[r].sum(1) for r in arch.mlp_in) + w[arch.mlp_out].sum(0)
        if not arch.heads_removable:
            continue
        heads = w["q"].sum(1).reshape(n_heads, -1).sum(-1) + w[arch.head_out].sum(0).reshape(n_heads, -1).sum(-1)
        kv = (w["k"].sum(1) + w["v"].sum(1)).reshape(n_kv, -1).sum(-1)  # [kv groups]
        groups[i] = heads.reshape(n_kv, group).sum(-1) + kv
    return neurons, groups


@dataclass
class ChannelStats:
    """Per input channel of an output projection, over the calibration tokens: n, mean, variance."""

    n: int
    mean: torch.Tensor  # [in], float64
    var: torch.Tensor  # [in], float64, sample variance (n − 1)


@torch.no_grad()
def channel_stats(model, calibration, batch_size: int = 16) -> dict[str, ChannelStats]:
    """Mean and sample variance of every output projection's input channels (o / down, or
    out_proj / fc2) over the real (unpadded) tokens of `calibration` (a `RefSet`), one pass of
    the dense model, accumulated in float64."""
    from attrprune.models import input_device

    arch = architecture_of(model)
    names = arch.names_with_roles(model, (arch.head_out, arch.mlp_out))
    sums: dict[str, list] = {}
    mask_now: list[torch.Tensor] = []

    def hook(name):
        def record(module, inputs, output):
            x = inputs[0]
            keep = mask_now[0].to(x.device).bool().reshape(-1)  # [b*L]
            x = x.reshape(-1, x.shape[-1])[keep].double()  # [tokens, in]
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += x.shape[0]
            s[1] = s[1] + x.sum(0)
            s[2] = s[2] + (x * x).sum(0)

        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    device = input_device(model)
    try:
        for ids, mask, _, _ in calibration.batches(batch_size):
            mask_now[:] = [mask.to(device)]
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, (n, s1, s2) in sums.items():
        if n < 2:
            raise ValueError("the calibration set has fewer than 2 real tokens: FLAP needs a variance")
        mean = s1 / n
        var = ((s2 - n * mean * mean) / (n - 1)).clamp_min(0)
        out[name] = ChannelStats(n, mean.cpu(), var.cpu())
    return out


@torch.no_grad()
def _flap(model, arch: Architecture, stats: dict[str, ChannelStats]) -> tuple[dict, dict]:
    """FLAP's fluctuation Var(X_j) · ‖W_:j‖² per input channel, summed per head and group."""
    by_role = units_by_role(model, arch)
    n_kv, _ = kv_groups(model, arch)
    neurons, groups = {}, {}
    for i in range(len(arch.block_list(model))):
        for role in (arch.mlp_out, arch.head_out):
            name = by_role[(i, role)]
            w = arch.weight(model.get_submodule(name)).double().cpu()  # [out, in]
            fluct = stats[name].var * w.pow(2).sum(0)  # [in]
            if role == arch.mlp_out:
                neurons[i] = fluct.float()
            elif arch.heads_removable:
                groups[i] = _heads_to_groups(fluct.reshape(arch.n_heads(model), -1).sum(-1), n_kv).float()
    return neurons, groups


def unit_scores(model, method: str, scores=None, stats: dict[str, ChannelStats] | None = None) -> tuple[dict, dict]:
    """({block: neuron scores [width]}, {block: kv-group scores [kv heads]}) of structured
    method `method`: from `scores` (a `Scores`, for the methods of a scores file), the model's
    weights (magnitude) or `stats` (flap, `channel_stats` of the calibration set)."""
    if method not in STRUCTURED_METHODS:
        raise ValueError(f"unknown structured method {method!r}; valid: {', '.join(STRUCTURED_METHODS)}")
    arch = architecture_of(model)
    if method == "magnitude":
        return _magnitude(model, arch)
    if method == "flap":
        if stats is None:
            raise ValueError("flap needs the calibration set's channel statistics (a general reference set)")
        return _flap(model, arch, stats)
    if scores is None:
        raise ValueError(f"structured {method} ranks by {STRUCTURED_METHODS[method]} scores: give a scores file")
    if method == "wanda":
        return _wanda_sp(model, arch, scores)
    return _from_scores_file(model, arch, scores)
