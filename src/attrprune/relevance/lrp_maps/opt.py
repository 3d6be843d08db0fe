"""LRP maps for OPT, following the rules of lxt's GPT-2 map.

* LayerNorm: identity rule (gradient stopped through the standard deviation);
* attention: uniform rule on the matmuls (AttnLRP: q and k gradients divided by 4, v by 2) or
  no relevance through the softmax (CP-LRP: q and k gradients stopped);
* dropout off.

OPT's ReLU needs no patch: the identity rule, ∂/∂x scaled by f(x)/x, is 1[x>0], which is ReLU's
own gradient. OPT's MLP is not a module of its own (fc1/fc2 live in the decoder layer), so there
is no MLP forward to patch.
"""

from functools import partial

from lxt.efficient.patches import dropout_forward, layer_norm_forward, patch_attention, patch_cp_attention, patch_method
from torch import nn
from transformers.models.opt import modeling_opt

attnLRP = {
    nn.LayerNorm: partial(patch_method, layer_norm_forward),
    nn.Dropout: partial(patch_method, dropout_forward),
    modeling_opt: patch_attention,
}
cp_LRP = {**attnLRP, modeling_opt: patch_cp_attention}
