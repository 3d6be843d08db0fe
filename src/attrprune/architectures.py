"""Architecture knowledge as data: one entry per supported model family.

Algorithms never hard-code module paths such as ``model.model.layers``; they ask the entry of
the model's family which linear layers are prunable, what role each plays (q, k, v, o, gate,
up, down / fc1, fc2 / GPT-2's fused qkv), which ones carry MLP neurons, through which projection
the attention heads leave the block, how the weights are stored, and which LRP patch maps
explain the family. An entry is keyed by the transformers *modeling module* that defines the
model's classes, as lxt keys its ``DEFAULT_MAP``: a model is recognised by where its class comes
from, never by a look-alike ``model_type``. A family without an entry is refused with the list of
supported ones; mapping it onto a look-alike would run the look-alike's LRP patch on classes it
never touches, i.e. compute plain gradient × input and call it LRP.

The LRP maps are named here (a module exposing ``attnLRP`` and ``cp_LRP``) and imported only by
`attrprune.relevance.lrp`, so this module imports neither lxt nor torch.

Add a family: one `Architecture` in ``FAMILIES`` (and, where lxt ships no map, a module in
`attrprune.relevance.lrp_maps`), plus its tiny config in ``tests/tiny_models.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Architecture:
    family: str
    modeling_module: str  # transformers module of the family's classes: the registry key
    model_types: tuple[str, ...]  # config.model_type values of that module's causal LMs
    backbone: str  # dotted path from the CausalLM to the model without its LM head (last_hidden_state)
    blocks: str  # dotted path from the CausalLM to the list of decoder blocks
    linears: dict[str, str]  # role -> module path inside a block
    mlp_in: tuple[str, ...]  # roles whose output units are the MLP neurons
    mlp_out: str  # role that reads the MLP neurons (its input columns)
    # The mlp_in role whose output unit stands for the MLP neuron in scores and neuron masks.
    # Gated MLPs: up (z_up * dL/dz_up = h * dL/dh for h = act(gate) * up, the neuron's own x * grad).
    neuron_role: str
    head_out: str  # role whose input columns, grouped per query head, carry each head's output
    # Module exposing the lxt patch maps `attnLRP` and `cp_LRP` for this family.
    lrp_maps: str
    # How the prunable linears store their weight: "out_in" (nn.Linear) or "in_out" (GPT-2's
    # Conv1D). Scores and masks are always [out, in]; `weight` gives that view of any layout.
    weight_layout: str = "out_in"
    notes: str = ""  # what a user should know about LRP on this family
    # Structured pruning (attrprune.pruning.structured): the config key of the MLP width, whether a
    # standard config can hold fewer heads (only where head_dim is a key of its own; OPT and GPT-2
    # derive it as hidden / heads), and which config keys give which roles a bias (FLAP's
    # compensation adds one to the output projections; a role with neither keeps no compensation).
    mlp_width_key: str = "intermediate_size"
    heads_removable: bool = True
    bias_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()

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

    def as_out_in(self, t: torch.Tensor) -> torch.Tensor:
        """A prunable linear's weight-shaped tensor (the weight, its gradient) as an [out, in] view."""
        return t.T if self.weight_layout == "in_out" else t

    def weight(self, module: torch.nn.Module) -> torch.Tensor:
        """The weight of a prunable linear as [out, in] (a view: in-place edits reach the model)."""
        return self.as_out_in(module.weight)

    def n_heads(self, model: torch.nn.Module) -> int:
        """Query heads: the groups of the head-output projection's input columns."""
        return model.config.num_attention_heads

    def n_kv_heads(self, model: torch.nn.Module) -> int:
        """Key/value heads (fewer than query heads under grouped-query attention)."""
        return getattr(model.config, "num_key_value_heads", None) or self.n_heads(model)


_GATED = dict(
    linears={
        "q": "self_attn.q_proj",
        "k": "self_attn.k_proj",
        "v": "self_attn.v_proj",
        "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj",
        "up": "mlp.up_proj",
        "down": "mlp.down_proj",
    },
    backbone="model",
    blocks="model.layers",
    mlp_in=("gate", "up"),
    mlp_out="down",
    neuron_role="up",
    head_out="o",
)
_TRANSFORMERS = "transformers.models"

LLAMA = Architecture(
    family="llama",
    modeling_module=f"{_TRANSFORMERS}.llama.modeling_llama",
    model_types=("llama",),
    lrp_maps="lxt.efficient.models.llama",
    bias_keys=(("attention_bias", ("q", "k", "v", "o")), ("mlp_bias", ("gate", "up", "down"))),
    **_GATED,
)
MISTRAL = Architecture(
    family="mistral",
    modeling_module=f"{_TRANSFORMERS}.mistral.modeling_mistral",
    model_types=("mistral",),
    lrp_maps="attrprune.relevance.lrp_maps.mistral",
    notes="lxt ships no map; ours applies lxt's Llama rules to Mistral's classes",
    **_GATED,
)
QWEN2 = Architecture(
    family="qwen2",
    modeling_module=f"{_TRANSFORMERS}.qwen2.modeling_qwen2",
    model_types=("qwen2",),
    lrp_maps="lxt.efficient.models.qwen2",
    notes="q/k/v biases absorb relevance: no rule set is exactly conservative",
    **_GATED,
)
QWEN3 = Architecture(
    family="qwen3",
    modeling_module=f"{_TRANSFORMERS}.qwen3.modeling_qwen3",
    model_types=("qwen3",),
    lrp_maps="lxt.efficient.models.qwen3",
    bias_keys=(("attention_bias", ("q", "k", "v", "o")),),
    **_GATED,
)
GEMMA3 = Architecture(
    family="gemma3",
    modeling_module=f"{_TRANSFORMERS}.gemma3.modeling_gemma3",
    model_types=("gemma3_text",),
    lrp_maps="lxt.efficient.models.gemma3",
    notes="text models only (Gemma3ForCausalLM); logit soft-capping, where a config enables it, is not patched",
    bias_keys=(("attention_bias", ("q", "k", "v", "o")),),
    **_GATED,
)
OPT = Architecture(
    family="opt",
    modeling_module=f"{_TRANSFORMERS}.opt.modeling_opt",
    model_types=("opt",),
    backbone="model",
    blocks="model.decoder.layers",
    linears={
        "q": "self_attn.q_proj",
        "k": "self_attn.k_proj",
        "v": "self_attn.v_proj",
        "o": "self_attn.out_proj",
        "fc1": "fc1",
        "fc2": "fc2",
    },
    mlp_in=("fc1",),
    mlp_out="fc2",
    neuron_role="fc1",
    head_out="o",
    lrp_maps="attrprune.relevance.lrp_maps.opt",
    notes="lxt ships no map; ours follows lxt's GPT-2 rules",
    mlp_width_key="ffn_dim",
    heads_removable=False,
    bias_keys=(("enable_bias", ("q", "k", "v", "o", "fc1", "fc2")),),
)
GPT2 = Architecture(
    family="gpt2",
    modeling_module=f"{_TRANSFORMERS}.gpt2.modeling_gpt2",
    model_types=("gpt2",),
    backbone="transformer",
    blocks="transformer.h",
    # c_attn is one Conv1D computing q, k and v side by side: its output units are [q | k | v].
    linears={"qkv": "attn.c_attn", "o": "attn.c_proj", "fc1": "mlp.c_fc", "fc2": "mlp.c_proj"},
    mlp_in=("fc1",),
    mlp_out="fc2",
    neuron_role="fc1",
    head_out="o",
    lrp_maps="lxt.efficient.models.gpt2",
    weight_layout="in_out",
    notes="Conv1D stores weights as [in, out]; lxt recommends CP-LRP for GPT-2 (negative logits)",
    mlp_width_key="n_inner",
    heads_removable=False,
)

FAMILIES: dict[str, Architecture] = {a.modeling_module: a for a in (LLAMA, MISTRAL, QWEN2, QWEN3, GEMMA3, OPT, GPT2)}


def supported_families() -> list[str]:
    return [f"{a.family} (model_type {'/'.join(a.model_types)})" for a in FAMILIES.values()]


def architecture_of(model: torch.nn.Module) -> Architecture:
    """The entry of `model`'s family (by the module its class is defined in), or an error
    naming the supported families."""
    arch = FAMILIES.get(type(model).__module__)
    if arch is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        raise ValueError(
            f"no architecture entry for {type(model).__name__} (model_type {model_type!r}, from "
            f"{type(model).__module__}); supported families: {', '.join(supported_families())}. "
            "Add an entry to attrprune.architectures.FAMILIES (with its LRP maps) to use it"
        )
    return arch
