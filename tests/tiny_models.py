"""Tiny random-init Llama and OPT models built from configs (no download), for tests."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM


def tiny_llama(bias_free: bool = True, seed: int = 0, vocab: int = 100) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=32, attention_bias=not bias_free, mlp_bias=not bias_free,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_opt(bias_free: bool = True, seed: int = 0, vocab: int = 100) -> OPTForCausalLM:
    torch.manual_seed(seed)
    cfg = OPTConfig(
        vocab_size=vocab, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=32, word_embed_proj_dim=64, enable_bias=not bias_free,
    )
    model = OPTForCausalLM(cfg).eval()
    if bias_free:
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                torch.nn.init.zeros_(m.bias)
    return model


TINY = {"llama": tiny_llama, "opt": tiny_opt}
