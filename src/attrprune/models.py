"""Loading a local Hugging Face causal LM for a stage (never from the hub: compute is offline)."""

from __future__ import annotations

from pathlib import Path


def load_model(model_dir: Path, accelerate: bool = False):
    """(model in eval mode, tokenizer) from `model_dir`. With `accelerate`, the model goes to the
    GPU in bf16 when there is one (DESIGN.md §7); otherwise it stays in fp32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if (model_dir / "download.json").exists() or not (model_dir / "config.json").exists():
        from attrprune.download import require_model

        require_model(model_dir, model_dir.name)  # a hub download: complete, or an error naming the fix
    on_gpu = accelerate and torch.cuda.is_available()
    dtype = torch.bfloat16 if on_gpu else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, torch_dtype=dtype)
    model = model.to("cuda" if on_gpu else "cpu").eval()
    return model, AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
