"""Time and memory of relevance methods next to a plain forward + backward, side by side.

For each model, on one fixed batch, this measures (interleaved repeats, median time):

* ``plain``: forward + backward of the explained target (gradients on the prunable linear
  weights), no LRP patch: the cost floor of any gradient-based score;
* ``lrp``, ``gradient``, ``wanda``: the suite's scoring methods on the same batch, end to end.

Memory is the peak of what a step keeps alive: on CUDA `torch.cuda.max_memory_allocated`; on
CPU (where torch keeps no allocator statistics) the bytes of tensors saved for backward,
counted with `torch.autograd.graph.saved_tensors_hooks` (the activation memory, which is where
LRP's extra cost would show). Ratios are against ``plain`` of the same model in the same run.

Run: ``python bench/relevance_speed.py [--repeats 5] [--batch 4] [--length 128]``
(models: the two world models and a random-init Llama with TinyLlama's shape scaled down
[hidden 2048 -> 512, MLP 5632 -> 1408, 22 -> 4 layers, 32 query / 4 key-value heads -> 8 / 1]).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from attrprune.architectures import architecture_of
from attrprune.refsets import RefSet, explained_target
from attrprune.relevance import ScoreOptions, compute_scores

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from cost import ARCHS  # noqa: E402  (stdlib and yaml only at import)

# TinyLlama 1.1B's shape (its config.json, kept once with the other preset models in
# bench/cost.py); the benches use it with random weights, no download.
TINYLLAMA = ARCHS["tinyllama-1.1b"]["config"]


def scaled_tinyllama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(**{**TINYLLAMA, "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4,
                         "num_attention_heads": 8, "num_key_value_heads": 1})  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


def batch_for(model, n: int, length: int) -> RefSet:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (n, length), generator=g)
    plus = torch.full_like(ids, -1)
    plus[:, :-1] = ids[:, 1:]
    return RefSet(ids, torch.ones_like(ids), plus, torch.full_like(ids, -1))


def plain_step(model, refset: RefSet) -> None:
    weights = [model.get_submodule(n).weight for n in architecture_of(model).linear_names(model)]
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights:
        w.requires_grad_(True)
    device = next(model.parameters()).device
    logits = model(input_ids=refset.input_ids.to(device), attention_mask=refset.attention_mask.to(device)).logits
    explained_target(logits.float(), refset.plus.to(device), refset.minus.to(device)).backward()
    for p in model.parameters():
        p.grad = None
        p.requires_grad_(True)


def measure(fn, device: str) -> tuple[float, int]:
    """(seconds, peak bytes) of one call of fn."""
    saved = [0, 0]  # current, peak bytes saved for backward

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        saved[1] = max(saved[1], saved[0])
        return t

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated()
    return time.perf_counter() - start, saved[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=128, help="tokens per sequence for the TinyLlama-shaped model")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = {
        name: (
            lambda name=name: AutoModelForCausalLM.from_pretrained(
                ROOT / "world" / "models" / name, local_files_only=True
            )
        )
        for name in ("world-llama", "world-opt")
    }
    models["tinyllama-shape/4"] = scaled_tinyllama
    print(
        f"device {device}, threads {a.threads}, {a.repeats} interleaved repeats, median time; memory: "
        + ("CUDA peak allocated" if device == "cuda" else "peak bytes saved for backward")
    )
    print(f"{'model':<20}{'tokens':>8}{'method':>10}{'seconds':>10}{'MB':>9}{'time/plain':>12}{'mem/plain':>11}")
    for name, build in models.items():
        model = build().to(device).eval()
        length = min(a.length, model.config.max_position_embeddings)
        refset = batch_for(model, a.batch, length)
        opts = ScoreOptions(batch_size=a.batch, progress=False)
        runs = {
            "plain": partial(plain_step, model, refset),
            **{m: partial(compute_scores, m, model, refset, opts) for m in ("lrp", "gradient", "wanda")},
        }
        for fn in runs.values():  # warm-up
            fn()
        times = {k: [] for k in runs}
        mem = {}
        for _ in range(a.repeats):
            for k, fn in runs.items():
                t, m = measure(fn, device)
                times[k].append(t)
                mem[k] = max(mem.get(k, 0), m)
        base_t, base_m = statistics.median(times["plain"]), mem["plain"]
        for k in runs:
            t = statistics.median(times[k])
            print(
                f"{name:<20}{a.batch * length:>8}{k:>10}{t:>10.4f}{mem[k] / 2**20:>9.1f}{t / base_t:>12.2f}{(mem[k] / base_m if base_m else float('nan')):>11.2f}"
            )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
