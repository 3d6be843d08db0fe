"""LRP maps for Mistral: lxt's Llama rules on Mistral's own classes.

Mistral's decoder is Llama's with sliding-window attention (a mask, no new operation): RMSNorm
with the identity rule (gradient stopped through the rsqrt), the gated MLP with the identity rule
on the activation and the uniform rule on the gate × up product (CP-LRP: gradient stopped
through the gate), attention with the uniform rule (CP-LRP: no relevance through the softmax).
lxt's Llama map patches `LlamaMLP` / `LlamaRMSNorm` / `modeling_llama` only; applied to a Mistral
model it would change nothing and leave plain gradient × input.
"""

from functools import partial

from lxt.efficient.patches import (
    cp_gated_mlp_forward,
    dropout_forward,
    gated_mlp_forward,
    patch_attention,
    patch_cp_attention,
    patch_method,
    rms_norm_forward,
)
from torch.nn import Dropout
from transformers.models.mistral import modeling_mistral
from transformers.models.mistral.modeling_mistral import MistralMLP, MistralRMSNorm

attnLRP = {
    MistralMLP: partial(patch_method, gated_mlp_forward),
    MistralRMSNorm: partial(patch_method, rms_norm_forward),
    Dropout: partial(patch_method, dropout_forward),
    modeling_mistral: patch_attention,
}
cp_LRP = {
    MistralMLP: partial(patch_method, cp_gated_mlp_forward),
    MistralRMSNorm: partial(patch_method, rms_norm_forward),
    Dropout: partial(patch_method, dropout_forward),
    modeling_mistral: patch_cp_attention,
}
