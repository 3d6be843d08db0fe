"""LRP through lxt's efficient mode (LRP as a modified gradient), with reversible patching.

lxt patches classes and module globals process-wide and irreversibly; `lrp_patched` records
what it replaces and puts everything back on exit, so a process (or a test session) can compute
plain gradients after LRP. This is the only module of the package that imports lxt.

lxt ships maps for Llama and others but none for OPT. The OPT map below follows the same rules
as lxt's GPT-2 map: the identity rule on LayerNorm (gradient stopped through the std), the
uniform rule on the attention matmuls (q, k, v gradients divided), dropout off. OPT's ReLU
needs no patch: the identity rule, ∂/∂x scaled by f(x)/x, is 1[x>0], which is ReLU's gradient.
"""

from __future__ import annotations

import contextlib
from functools import partial

import lxt.efficient.models.llama as lxt_llama
from lxt.efficient import monkey_patch
from lxt.efficient.patches import dropout_forward, layer_norm_forward, patch_attention, patch_cp_attention, patch_method
from torch import nn
from transformers.models.llama import modeling_llama
from transformers.models.opt import modeling_opt

OPT_ATTNLRP = {
    nn.LayerNorm: partial(patch_method, layer_norm_forward),
    nn.Dropout: partial(patch_method, dropout_forward),
    modeling_opt: patch_attention,
}
OPT_CP = {**OPT_ATTNLRP, modeling_opt: patch_cp_attention}

# family -> (transformers module to patch, {variant: patch map})
LRP_MAPS = {
    "llama": (modeling_llama, {"attnlrp": lxt_llama.attnLRP, "cp": lxt_llama.cp_LRP}),
    "opt": (modeling_opt, {"attnlrp": OPT_ATTNLRP, "cp": OPT_CP}),
}


def _snapshot(patch_map: dict) -> list[tuple[object, str, object]]:
    saved = []
    for target in patch_map:
        if isinstance(target, type):
            saved.append((target, "forward", target.__dict__.get("forward")))
        else:  # a transformers modeling module: its attention functions
            saved.append((target, "eager_attention_forward", target.eager_attention_forward))
            saved.append((target, "ALL_ATTENTION_FUNCTIONS", target.ALL_ATTENTION_FUNCTIONS))
            saved.append((target.ALL_ATTENTION_FUNCTIONS, "__items__", dict(target.ALL_ATTENTION_FUNCTIONS.items())))
    return saved


def _restore(saved) -> None:
    for obj, attr, value in reversed(saved):
        if attr == "__items__":  # CP-LRP edits the shared attention registry in place
            for key, fn in value.items():
                obj[key] = fn
        elif value is None:
            delattr(obj, attr)
        else:
            setattr(obj, attr, value)


@contextlib.contextmanager
def lrp_patched(model, variant: str = "attnlrp"):
    """Patch the model's family for LRP (`attnlrp` or `cp`) and undo it on exit."""
    from attrprune.architectures import architecture_of

    family = architecture_of(model).family
    if family not in LRP_MAPS:
        raise ValueError(f"no lxt map for family {family!r}; supported: {sorted(LRP_MAPS)}")
    module, maps = LRP_MAPS[family]
    if variant not in maps:
        raise ValueError(f"unknown LRP variant {variant!r}; valid: {sorted(maps)}")
    patch_map = maps[variant]
    saved = _snapshot(patch_map)
    try:
        monkey_patch(module, patch_map)
        yield
    finally:
        _restore(saved)
