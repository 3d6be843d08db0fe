"""Tiny random-init Llama and OPT models built from configs (no download), for tests."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

from attrprune.architectures import architecture_of
from attrprune.refsets import RefSet


def tiny_llama(bias_free: bool = True, seed: int = 0, vocab: int = 100) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=32,
        attention_bias=not bias_free,
        mlp_bias=not bias_free,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_opt(bias_free: bool = True, seed: int = 0, vocab: int = 100) -> OPTForCausalLM:
    torch.manual_seed(seed)
    cfg = OPTConfig(
        vocab_size=vocab,
        hidden_size=64,
        ffn_dim=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
        word_embed_proj_dim=64,
        enable_bias=not bias_free,
    )
    model = OPTForCausalLM(cfg).eval()
    if bias_free:
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                torch.nn.init.zeros_(m.bias)
    return model


TINY = {"llama": tiny_llama, "opt": tiny_opt}


def tiny_family(family: str, seed: int = 0, vocab: int = 100, positions: int = 64, bias_free: bool = False):
    """A tiny random-init model of `family` with the features of its real configs: grouped-query
    attention (llama, mistral, qwen2, qwen3, gemma3), tied embeddings (llama as in Llama-3.2,
    qwen2, qwen3, gemma3, gpt2), q/k/v biases (qwen2), q/k norms and a head_dim other than
    hidden / heads (qwen3, gemma3), sliding-window layers (mistral, gemma3), Gemma's scaled
    embeddings and (1 + w) norms, LayerNorm + biases + learned positions (opt, gpt2), GPT-2's
    Conv1D ([in, out]) with a fused q/k/v projection. `bias_free` zeroes every bias, so that the
    LRP rules' conservation can be checked exactly."""
    import transformers as tf

    torch.manual_seed(seed)
    gqa = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=positions,
    )
    configs = {
        "llama": lambda: tf.LlamaConfig(**gqa, tie_word_embeddings=True),
        "mistral": lambda: tf.MistralConfig(**gqa, sliding_window=8),
        "qwen2": lambda: tf.Qwen2Config(**gqa, tie_word_embeddings=True),
        "qwen3": lambda: tf.Qwen3Config(**gqa, head_dim=32, tie_word_embeddings=True),
        "gemma3": lambda: tf.Gemma3TextConfig(
            **{**gqa, "num_key_value_heads": 1},
            head_dim=32,
            query_pre_attn_scalar=32,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
        ),
        "opt": lambda: tf.OPTConfig(
            vocab_size=vocab,
            hidden_size=64,
            ffn_dim=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=positions,
            word_embed_proj_dim=64,
        ),
        "gpt2": lambda: tf.GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=positions),
    }
    cfg = configs[family]()
    model = tf.AutoModelForCausalLM.from_config(cfg).eval()
    # Random-init biases and norm weights are 0 / 1: give them values, as a trained model has.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_() if bias_free else p.normal_(0, 0.02)
            elif "norm" in name or "ln_" in name or "layer_norm" in name:
                p.normal_(0 if family == "gemma3" else 1, 0.1)  # Gemma's norms scale by (1 + w)
    return model


FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma3", "opt", "gpt2"]


# Families whose real tokenizers have no BOS token (Qwen's): their tiny stand-ins drop it too.
NO_BOS = {"qwen2", "qwen3"}


def save_tiny_family(family: str, out_dir, tokenizer_dir, seed: int = 0):
    """Write a tiny `family` model with the tokenizer of `tokenizer_dir` (e.g. the world's) as an
    HF folder, as a researcher's local model would look; returns `out_dir`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    if family in NO_BOS:
        tokenizer.bos_token = None
    model = tiny_family(family, seed=seed, vocab=len(tokenizer))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def calibration(n=8, length=16, seed=0, padded=True) -> RefSet:
    """Random token ids as a calibration / reference set, two rows right-padded."""
    ids = torch.randint(3, 100, (n, length), generator=torch.Generator().manual_seed(seed))  # [n, L]
    mask = torch.ones_like(ids)
    if padded:  # right padding, as the suite's reference sets have it
        mask[1, 9:] = 0
        mask[5, 4:] = 0
        ids[mask == 0] = 1
    return RefSet(ids, mask, torch.full_like(ids, -1), torch.full_like(ids, -1))


def prunable_weights(model) -> dict[str, torch.Tensor]:
    """{name: [out, in] weight view} of every prunable linear."""
    arch = architecture_of(model)
    return {name: arch.weight(model.get_submodule(name)) for name in arch.linear_names(model)}  # [out, in] views
