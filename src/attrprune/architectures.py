"""Architecture knowledge as data: one table per supported model family (DESIGN.md §4).

Algorithms never hard-code module paths such as ``model.model.layers``; they ask the table of
the model's family which linear layers are prunable, what role each plays (q, k, v, o, gate,
up, down / fc1, fc2), which ones carry MLP neurons, and through which projection the attention
heads leave the block. The lxt patch map of each family lives in `attrprune.relevance.lrp_maps`,
so this module never imports lxt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Architecture:
    family: str
    model_types: tuple[str, ...]  # config.model_type values this table covers
    blocks: str  # dotted path from the CausalLM to the list of decoder blocks
    linears: dict[str, str]  # role -> module path inside a block
    mlp_in: tuple[str, ...]  # roles whose output units are the MLP neurons
    mlp_out: str  # role that reads the MLP neurons (its input columns)
    # The mlp_in role whose output unit stands for the MLP neuron in scores and neuron masks.
    # Llama: up (z_up * dL/dz_up = h * dL/dh for h = act(gate) * up, the neuron's own x * grad).
    neuron_role: str
    head_out: str  # role whose input columns, grouped per head, carry each head's output

    def block_list(self, model: torch.nn.Module) -> torch.nn.ModuleList:
        return model.get_submodule(self.blocks)

    def linear_names(self, model: torch.nn.Module) -> dict[str, tuple[int, str]]:
        """HF module name -> (block index, role) for every prunable linear layer."""
        out = {}
        for i in range(len(self.block_list(model))):
            for role, rel in self.linears.items():
                out[f"{self.blocks}.{i}.{rel}"] = (i, role)
        return out

    def names_with_roles(self, model: torch.nn.Module, roles: tuple[str, ...]) -> list[str]:
        """Module names of the given roles, in block order."""
        return [name for name, (_, role) in self.linear_names(model).items() if role in roles]

    def mlp_roles(self) -> tuple[str, ...]:
        return (*self.mlp_in, self.mlp_out)

    def n_heads(self, model: torch.nn.Module) -> int:
        return model.config.num_attention_heads


LLAMA = Architecture(
    family="llama",
    model_types=("llama", "mistral", "qwen2"),
    blocks="model.layers",
    linears={
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
    },
    mlp_in=("gate", "up"),
    mlp_out="down",
    neuron_role="up",
    head_out="o",
)

OPT = Architecture(
    family="opt",
    model_types=("opt",),
    blocks="model.decoder.layers",
    linears={
        "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.out_proj",
        "fc1": "fc1", "fc2": "fc2",
    },
    mlp_in=("fc1",),
    mlp_out="fc2",
    neuron_role="fc1",
    head_out="o",
)

ARCHITECTURES = {a.family: a for a in (LLAMA, OPT)}


def architecture_of(model: torch.nn.Module) -> Architecture:
    """The table for `model`, or an error naming the supported model types."""
    model_type = getattr(model.config, "model_type", None)
    for arch in ARCHITECTURES.values():
        if model_type in arch.model_types:
            return arch
    supported = sorted(t for a in ARCHITECTURES.values() for t in a.model_types)
    raise ValueError(
        f"no architecture table for model_type {model_type!r}; supported: {supported}. "
        "Add one to attrprune.architectures (and an lxt map to attrprune.relevance.lrp_maps)."
    )
