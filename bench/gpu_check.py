"""GPU check: seconds per sample and peak memory of LRP relevance next to the plain gradient, on
a random-init Llama with TinyLlama 1.1B's shape, in bf16, on 2048-token sequences.

Both methods run end to end through `attrprune.relevance.compute_scores` (AttnLRP via lxt's
efficient mode for ``lrp``; |w ⊙ ∂target/∂w| for ``gradient``), one sample per pass, as the
workflow's `scores` rule does with batch size 1: a warm-up sample, then the timed samples. Scores
accumulate in fp32 whatever the model dtype, and `compute_scores` raises on non-finite scores,
so a pass also checks that bf16 relevance stays finite. Memory is `torch.cuda.max_memory_allocated`
over the timed samples (weights included); on CPU, where torch keeps no allocator statistics, the
peak bytes saved for backward (activations only; see bench/relevance_speed.py). For reference,
the paper reports about 5 s and 60 GB per sample for LRP on an A100.

Run on a CUDA machine (well under 5 minutes): ``python bench/gpu_check.py --out gpu_check.json``
Smoke run on CPU (seconds; a scaled-down shape): ``python bench/gpu_check.py --tiny --out x.json``
Exit status 1 if a method failed (its error is in the JSON and the table).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from relevance_speed import TINYLLAMA, batch_for, measure  # noqa: E402

from attrprune.relevance import ScoreOptions, compute_scores  # noqa: E402

# TinyLlama's proportions (GQA 4:1, SwiGLU MLP ~2.75x) at a size a CPU handles in seconds.
TINY = {**TINYLLAMA, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 1, "max_position_embeddings": 128}  # fmt: skip
METHODS = ("lrp", "gradient")
PAPER = "paper, LRP on an A100: about 5 s and 60 GB per sample"


def build_model(cfg: dict, dtype: torch.dtype, device: str) -> LlamaForCausalLM:
    """Random-init model, created on the device (no 4 GB fp32 detour through host memory)."""
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**cfg))
    return model.to(dtype).eval()


def check(model, method: str, samples: int, length: int, device: str, batch_size: int) -> dict:
    """Seconds per sample and peak memory of `method`, or the error it raised."""
    opts = ScoreOptions(batch_size=batch_size, progress=False)
    try:
        compute_scores(method, model, batch_for(model, 1, length), opts)  # warm-up: kernels, lxt, allocator
        refset = batch_for(model, samples, length)
        seconds, peak = measure(lambda: compute_scores(method, model, refset, opts), device)
    except (FloatingPointError, RuntimeError) as e:  # non-finite scores; CUDA out of memory
        if device == "cuda":
            torch.cuda.empty_cache()
        return {"error": f"{type(e).__name__}: {e}"}
    return {"seconds_per_sample": seconds / samples, "peak_bytes": peak, "peak_gb": peak / 1e9}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="scaled-down shape and sequence (the CPU smoke run)")
    ap.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when there is one")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--length", type=int, help="tokens per sequence (default 2048; --tiny: 64)")
    ap.add_argument("--samples", type=int, help="timed samples per method (default 4; --tiny: 2)")
    ap.add_argument("--batch-size", type=int, default=1, help="samples per forward/backward pass")
    ap.add_argument("--threads", type=int, help="CPU threads for torch")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    a = ap.parse_args(argv)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    if device == "cpu" and not a.tiny:
        ap.error("the full TinyLlama shape at 2048 tokens takes hours on a CPU; add --tiny for the CPU smoke run")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = TINY if a.tiny else TINYLLAMA
    length = a.length or (64 if a.tiny else 2048)
    samples = a.samples or (2 if a.tiny else 4)
    if length > cfg["max_position_embeddings"]:
        ap.error(f"--length {length} exceeds the model's {cfg['max_position_embeddings']} positions")

    model = build_model(cfg, getattr(torch, a.dtype), device)
    n_params = sum(p.numel() for p in model.parameters())
    result = {
        "model": "tinyllama-shape (random init)" + (", tiny" if a.tiny else ""),
        "config": cfg,
        "parameters": n_params,
        "dtype": a.dtype,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "attn_implementation": model.config._attn_implementation,
        "tokens_per_sample": length,
        "samples": samples,
        "batch_size": a.batch_size,
        "memory": "cuda max_memory_allocated, weights included"
        if device == "cuda"
        else "cpu peak bytes saved for backward",
        "weights_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "torch": torch.__version__,
        "methods": {m: check(model, m, samples, length, device, a.batch_size) for m in METHODS},
        "reference": PAPER,
    }

    print(f"{result['model']}: {n_params / 1e6:.1f} M parameters, {a.dtype}, {samples} x {length} tokens, "
          f"{result['device_name']}, attention {result['attn_implementation']}")  # fmt: skip
    print(f"memory: {result['memory']}")
    print(f"{'method':<10}{'s/sample':>10}{'peak MB':>12}")
    for m, r in result["methods"].items():
        if "error" in r:
            print(f"{m:<10}  failed: {r['error']}")
        else:
            print(f"{m:<10}{r['seconds_per_sample']:>10.3f}{r['peak_bytes'] / 1e6:>12.1f}")
    lrp, grad = result["methods"]["lrp"], result["methods"]["gradient"]
    if "error" not in lrp and "error" not in grad:
        print(f"lrp / gradient: time {lrp['seconds_per_sample'] / grad['seconds_per_sample']:.2f}x, "
              f"memory {lrp['peak_bytes'] / grad['peak_bytes']:.2f}x")  # fmt: skip
    print(f"({PAPER})")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if any("error" in r for r in result["methods"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
