"""What structured compression buys, measured side by side in one run: parameters, weight-file
size, peak memory, forward latency and generation speed of the dense model and each smaller one,
on the same inputs, as ratios to the dense model (`attrprune.speed`: each model in its own forked
process, one after another).

Models:

* a world model (``--model world-llama``): the dense checkpoint and the smaller models the
  workflow saved (``results/{model}/structured/*/general-s0/ratio_*/model``, every method and
  ratio; run ``python -m snakemake results/tables/structured.md --cores 2`` first);
* ``--model tinyllama-shape``: a random-init Llama with TinyLlama's layout scaled down (hidden
  2048 -> 512, MLP 5632 -> 1408, 22 -> 8 layers, 32 query / 4 key-value heads -> 16 / 4, vocabulary
  32,000 -> 4,096 so that the blocks hold most parameters, as in a real LLM), pruned here by
  magnitude at each ratio: the world models are so small that fixed per-call costs hide what
  removing units saves; this one shows it on a shape with grouped-query attention. Its quality
  means nothing (random weights); only its size and speed are measured.

Run: ``python bench/structured_speed.py --model world-llama --model tinyllama-shape [--device cpu]
[--threads 1] [--out bench/structured_speed.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def world_models(model: str) -> dict[str, Path]:
    found = sorted((ROOT / "results" / model / "structured").glob("*/general-s0/ratio_*/model"))
    if not found:
        sys.exit(f"no structured models of {model} under results/: run the workflow's structured jobs first")
    out = {"dense": ROOT / "world" / "models" / model}
    for folder in found:
        info = json.loads((folder / "structured.json").read_text())
        out[f"{info['method']}@{info['ratio']:.2f}"] = folder
    return out


def tinyllama_shape(tmp: Path, ratios: list[float]) -> dict[str, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from attrprune.pruning.structured import plan_structured, shrink

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=4096,
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=2048,
    )
    model = LlamaForCausalLM(cfg).eval()
    out = {"dense": tmp / "dense"}
    model.save_pretrained(out["dense"])
    for r in ratios:
        small = shrink(model, plan_structured(model, "magnitude", r))
        out[f"magnitude@{r:.2f}"] = tmp / f"magnitude-{r:.2f}"
        small.save_pretrained(out[f"magnitude@{r:.2f}"])
    return out


def table(name: str, res: dict) -> str:
    s = res["settings"]
    lines = [
        f"{name}: {s['device']} ({s['device_name']}), {s['threads']} thread(s), forward {s['batch']} x {s['seqlen']} "
        f"tokens, {s['new_tokens']} greedy tokens after {s['prompt']}",
        "",
        "| model | parameters | params × | file × | peak mem × | forward time × | tokens/s × | forward ms | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in res["models"].items():
        r = m["ratios"]
        mem = f"{r['peak_memory_bytes']:.2f}" if r["peak_memory_bytes"] is not None else "n/a"
        lines.append(
            f"| {label} | {m['parameters']:,} | {r['parameters']:.2f} | {r['file_bytes']:.2f} | {mem} "
            f"| {r['forward_s']:.2f} | {r['generate_tokens_per_s']:.2f} | {1000 * m['forward_s']:.1f} "
            f"| {m['generate_tokens_per_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    from attrprune.speed import measure_models

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=None, help="world-llama, world-opt or tinyllama-shape")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--ratios", default="0.25,0.5", help="tinyllama-shape's ratios")
    p.add_argument("--out", type=Path, default=None, help="also write every measurement as JSON here")
    a = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.model or ["world-llama", "world-opt", "tinyllama-shape"]:
            if name == "tinyllama-shape":
                models = tinyllama_shape(Path(tmp), [float(r) for r in a.ratios.split(",")])
            else:
                models = world_models(name)
            results[name] = measure_models(models, device=a.device, threads=a.threads, batch=a.batch, repeats=a.repeats)
            print(table(name, results[name]) + "\n", flush=True)
    if a.out:
        a.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
