"""Structured pruning into a smaller dense model: remove the same fraction of MLP neurons and of
attention heads in every decoder block, so that the result is a standard Hugging Face config
(smaller MLP width, fewer heads with ``head_dim`` kept explicitly) that loads with
``AutoModelForCausalLM.from_pretrained`` anywhere.

Units and their rankings:

* an **MLP neuron** j of a block is row j of every ``mlp_in`` projection (gate and up, or fc1,
  with its bias) and column j of ``mlp_out`` (down / fc2);
* an **attention unit** is a key/value group: under grouped-query attention its key and value
  heads serve ``heads / kv_heads`` query heads, and they go together (a unit without grouping
  is one head). A group's score is the sum of its query heads' scores.

Each block removes ``⌊r · n⌋`` of its n neurons and of its groups (never more than r; at least
one of each stays), those of lowest score, ties by index. Scores (`unit_scores`):

* ``lrp``, ``gradient``, ``activation``, ``random``: the scores file's neuron scores of the
  neuron role (up / fc1) and its head scores (`attrprune.relevance.methods`);
* ``wanda``: Wanda-sp, Wanda's structured form as FLAP (An et al., AAAI 2024) defines it: the
  per-weight Wanda scores |W_ij| · ‖X_j‖₂ of the output projection (down / o), averaged over its
  rows per input channel; a head sums its channels;
* ``magnitude``: Σ|w| over all of the unit's weights (a neuron's rows of gate / up or fc1 and
  its column of down / fc2; a head's query rows and output-projection columns, a group adding
  its key and value rows);
* ``flap``: FLAP's fluctuation metric. Per input channel j of the output projection,
  Var_t(X_tj) · ‖W_:j‖² over the calibration tokens (sample variance, padding excluded), summed
  per head; uniform in every block and module (FLAP's "UL-UM" structure). FLAP's bias
  compensation adds the removed channels' mean input times their weight columns,
  W_:,removed · mean(X_removed), to the output projection's bias, so that the block's output
  stays right on average. A family whose standard config cannot give that projection a bias
  (Mistral, Qwen2: none on o and down; Qwen3, Gemma 3: none on down) keeps the ranking and
  goes without the compensation there, which the plan records (`compensation_note`).

`zeroed` zeroes the removed units in place instead (same logits as the shrunk model without
compensation); `shrink` builds the smaller model. Architecture knowledge comes from
`attrprune.architectures`: families whose head_dim is hidden / heads (OPT, GPT-2) keep every
head and lose neurons only.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import torch

from attrprune.architectures import Architecture, architecture_of
from attrprune.pruning.unit_scores import (
    ChannelStats,
    kv_groups,
    mlp_width,
    unit_scores,
    units_by_role,
)
from attrprune.registry import STRUCTURED_CALIBRATED as CALIBRATED


@dataclass
class StructuredPlan:
    """What to remove: per block the kept neurons and kept key/value groups (sorted indices), and
    per output projection the bias to add (FLAP's compensation)."""

    ratio: float
    neurons: dict[int, torch.Tensor]  # block -> kept neuron indices
    groups: dict[int, torch.Tensor] | None  # block -> kept kv-group indices; None: every head stays
    bias: dict[str, torch.Tensor] = field(default_factory=dict)  # module name -> [out] added bias
    heads_note: str | None = None  # why heads stay, when they do
    compensation_note: str | None = None  # where FLAP's compensation could not be stored, and why

    def summary(self, model) -> dict:
        """Counts per block, and the kept indices, as JSON-ready values."""
        arch = architecture_of(model)
        n_neurons = mlp_width(model, arch)
        n_groups, group = kv_groups(model, arch)
        blocks = []
        for i, kept in sorted(self.neurons.items()):
            row = {"block": i, "neurons_kept": kept.tolist(), "neurons_removed": n_neurons - len(kept)}
            if self.groups is not None:
                kept_groups = self.groups[i].tolist()
                row["kv_groups_kept"] = kept_groups
                row["heads_kept"] = [g * group + h for g in kept_groups for h in range(group)]
                row["heads_removed"] = (n_groups - len(kept_groups)) * group
            blocks.append(row)
        return {
            "ratio": self.ratio,
            "neurons_per_block": n_neurons,
            "heads_per_block": n_groups * group,
            "kv_heads_per_block": n_groups,
            "heads_removable": self.groups is not None,
            "heads_note": self.heads_note,
            "compensation_note": self.compensation_note,
            "bias_compensation": sorted(self.bias),
            "blocks": blocks,
        }


def heads_note(arch: Architecture) -> str | None:
    if arch.heads_removable:
        return None
    return f"{arch.family}: heads kept (its config derives head_dim as hidden / heads), MLP neurons only"


def n_removed(ratio: float, n: int) -> int:
    """Units removed of n at ratio r: ⌊r · n⌋ (float error aside), at most n − 1."""
    if not 0 <= ratio < 1:
        raise ValueError(f"structured ratio {ratio} outside [0, 1)")
    return min(int(ratio * n + 1e-9), n - 1)


def _keep(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Sorted indices of the units kept: all but the ⌊r · n⌋ of lowest score (ties by index)."""
    order = torch.sort(scores.float().cpu(), stable=True).indices
    return torch.sort(order[n_removed(ratio, len(scores)) :]).values


def plan_structured(
    model, method: str, ratio: float, scores=None, stats: dict[str, ChannelStats] | None = None, compensate=None
) -> StructuredPlan:
    """The `StructuredPlan` removing ⌊r · n⌋ neurons and kv groups per block by `method`.
    `compensate` (default: for flap only) adds FLAP's bias compensation, which needs `stats`."""
    arch = architecture_of(model)
    neurons, groups = unit_scores(model, method, scores, stats)
    if arch.heads_removable and len(groups) < len(neurons):
        raise ValueError(f"{method} scores hold no head scores: structured pruning needs them for heads")
    kept_neurons = {i: _keep(s, ratio) for i, s in neurons.items()}
    kept_groups = {i: _keep(s, ratio) for i, s in groups.items()} if arch.heads_removable else None
    plan = StructuredPlan(ratio, kept_neurons, kept_groups, heads_note=heads_note(arch))
    if compensate is None:
        compensate = method in CALIBRATED
    if compensate:
        if stats is None:
            raise ValueError("bias compensation needs the calibration set's channel statistics")
        bias = compensation(model, plan, stats)
        arch_roles = arch.linear_names(model)
        storable = {n: b for n, b in bias.items() if _can_carry_bias(arch, model, n)}
        left_out = sorted({arch_roles[n][1] for n in bias if n not in storable})
        if left_out:
            plan.compensation_note = (
                f"{arch.family}: no bias on its {' and '.join(left_out)} projection in a standard config, "
                "so FLAP's bias compensation is left out there"
            )
        plan.bias = storable
    return plan


def _removed_columns(model, arch: Architecture, plan: StructuredPlan) -> dict[str, torch.Tensor]:
    """{output projection: BoolTensor[in] of the input channels removed}."""
    by_role = units_by_role(model, arch)
    width = mlp_width(model, arch)
    n_kv, group = kv_groups(model, arch)
    out = {}
    for i, kept in plan.neurons.items():
        gone = torch.ones(width, dtype=torch.bool)
        gone[kept] = False
        out[by_role[(i, arch.mlp_out)]] = gone
        if plan.groups is not None:
            o = by_role[(i, arch.head_out)]
            head_dim = arch.weight(model.get_submodule(o)).shape[1] // (n_kv * group)
            gone_groups = torch.ones(n_kv, dtype=torch.bool)
            gone_groups[plan.groups[i]] = False
            out[o] = gone_groups.repeat_interleave(group * head_dim)
    return out


@torch.no_grad()
def compensation(model, plan: StructuredPlan, stats: dict[str, ChannelStats]) -> dict[str, torch.Tensor]:
    """FLAP's bias compensation per output projection: W_:,removed · mean(X_removed)."""
    arch = architecture_of(model)
    out = {}
    for name, gone in _removed_columns(model, arch, plan).items():
        w = arch.weight(model.get_submodule(name)).double().cpu()  # [out, in]
        out[name] = (w[:, gone] @ stats[name].mean[gone]).float()  # [out]
    return out


# --------------------------------------------------------------------------- applying a plan


def _masks(model, plan: StructuredPlan) -> tuple[dict, dict]:
    """Neuron and head keep-masks (`attrprune.pruning.apply`) equivalent to the plan."""
    arch = architecture_of(model)
    by_role = units_by_role(model, arch)
    width = mlp_width(model, arch)
    n_kv, group = kv_groups(model, arch)
    neuron_masks, head_masks = {}, {}
    for i, kept in plan.neurons.items():
        keep = torch.zeros(width, dtype=torch.bool)
        keep[kept] = True
        for role in arch.mlp_in:
            neuron_masks[by_role[(i, role)]] = keep
        if plan.groups is not None:
            keep_groups = torch.zeros(n_kv, dtype=torch.bool)
            keep_groups[plan.groups[i]] = True
            head_masks[by_role[(i, arch.head_out)].rsplit(".", 1)[0]] = keep_groups.repeat_interleave(group)
    return neuron_masks, head_masks


@contextlib.contextmanager
def zeroed(model, plan: StructuredPlan):
    """`model` with the plan's units zeroed in place (no compensation), restored on exit."""
    from attrprune.pruning.apply import pruned

    neuron_masks, head_masks = _masks(model, plan)
    with pruned(model, neuron_masks=neuron_masks, head_masks=head_masks or None):
        yield model


def _can_carry_bias(arch: Architecture, model, name: str) -> bool:
    """Whether module `name` has a bias, or a config key of its family adds one to its role."""
    if getattr(model.get_submodule(name), "bias", None) is not None:
        return True
    role = arch.linear_names(model)[name][1]
    return any(role in roles for _, roles in arch.bias_keys)


def _bias_roles(arch: Architecture, model, names: list[str]) -> tuple[dict, set[str]]:
    """(config keys to switch on, roles that get a bias) so that every module of `names` has one."""
    roles = arch.linear_names(model)
    keys, given = {}, set()
    for name in names:
        if getattr(model.get_submodule(name), "bias", None) is not None:
            continue
        role = roles[name][1]
        key = next((k for k, rs in arch.bias_keys if role in rs), None)
        if key is None:
            raise ValueError(
                f"{arch.family} has no bias on its {role} projection and no config key that adds one: "
                "FLAP's bias compensation cannot be stored in a standard config of this family"
            )
        keys[key] = True
        given |= set(dict(arch.bias_keys)[key])
    return keys, given


@torch.no_grad()
def shrink(model, plan: StructuredPlan):
    """A new model of `model`'s class with the plan's units removed and its compensation added,
    in `model`'s dtype, on the CPU: a standard config (MLP width, heads, key/value heads,
    head_dim) and a state dict sliced from `model` (which is left as it was)."""
    from transformers.modeling_utils import no_init_weights

    arch = architecture_of(model)
    by_role = units_by_role(model, arch)
    dtype = next(model.parameters()).dtype
    n_kv, group = kv_groups(model, arch)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    cfg = copy.deepcopy(model.config)
    widths = {len(k) for k in plan.neurons.values()}
    if len(widths) != 1:
        raise ValueError("a structured plan must keep the same number of neurons in every block")
    setattr(cfg, arch.mlp_width_key, widths.pop())
    head_dim = None
    if plan.groups is not None:
        kept_groups = {len(g) for g in plan.groups.values()}
        if len(kept_groups) != 1:
            raise ValueError("a structured plan must keep the same number of heads in every block")
        o = by_role[(0, arch.head_out)]
        head_dim = arch.weight(model.get_submodule(o)).shape[1] // (n_kv * group)
        n_groups = kept_groups.pop()
        cfg.num_attention_heads = n_groups * group
        if hasattr(cfg, "num_key_value_heads"):
            cfg.num_key_value_heads = n_groups
        cfg.head_dim = head_dim
    keys, bias_roles = _bias_roles(arch, model, sorted(plan.bias))
    for key in keys:
        setattr(cfg, key, True)

    def weight(name):  # [out, in] view of the stored weight
        return arch.as_out_in(state[f"{name}.weight"])

    def put(name, w_out_in, bias):
        state[f"{name}.weight"] = arch.as_out_in(w_out_in).contiguous()
        if bias is not None:
            state[f"{name}.bias"] = bias.contiguous()

    for i, kept in plan.neurons.items():
        for role in arch.mlp_in:
            name = by_role[(i, role)]
            put(name, weight(name)[kept], state[f"{name}.bias"][kept] if f"{name}.bias" in state else None)
        name = by_role[(i, arch.mlp_out)]
        put(name, weight(name)[:, kept], state.get(f"{name}.bias"))
        if plan.groups is not None:
            g = plan.groups[i]
            kv_rows = (g[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
            heads = (g[:, None] * group + torch.arange(group)).reshape(-1)
            q_rows = (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
            for role, rows in (("q", q_rows), ("k", kv_rows), ("v", kv_rows)):
                name = by_role[(i, role)]
                b = state.get(f"{name}.bias")
                put(name, weight(name)[rows], None if b is None else b[rows])
            name = by_role[(i, arch.head_out)]
            put(name, weight(name)[:, q_rows], state.get(f"{name}.bias"))
    # Biases: zeros where a config key switched them on, then the compensation.
    for name, (_, role) in arch.linear_names(model).items():
        if role in bias_roles and f"{name}.bias" not in state:
            state[f"{name}.bias"] = torch.zeros(weight(name).shape[0], dtype=dtype)
    for name, b in plan.bias.items():
        state[f"{name}.bias"] = (state[f"{name}.bias"].float() + b.float()).to(dtype)
    with no_init_weights():
        new = type(model)._from_config(cfg, dtype=dtype)
    missing, unexpected = new.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if getattr(cfg, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"structured state dict does not fit the new config: missing {missing}, unexpected {unexpected}"
        )
    new.tie_weights()
    new.generation_config = copy.deepcopy(model.generation_config)
    return new.eval()
