"""Compression (paper §4.1): prune the least relevant weights at many sparsities and evaluate
each pruned model with lm-eval, in memory, from one scores file.

The masks of all requested sparsities come from one `MaskBuilder` (sorted once, thresholded per
sparsity); each pruned model exists only inside `pruned(...)`, so nothing is written back to the
model directory. One metrics JSON per sparsity records the lm-eval results, the requested and
the measured sparsity (counted as exact zeros in the pruned weights), the scores' provenance
and this run's.

Run: ``python -m attrprune compress --model-dir M --scores S --scope row --sparsities 0.00,0.50
--tasks world_ppl,world_ioi --data-dir world/data --out-template 'out/sparsity_{sparsity}/metrics.json'``
"""

from __future__ import annotations

import sys
from pathlib import Path


def format_sparsity(s: float) -> str:
    """The one spelling of a sparsity in paths: two decimals ("0.50")."""
    return f"{s:.2f}"


def compress_and_evaluate(model_dir: Path, scores_path: Path, scope: str, sparsities: list[float], tasks: list[str],
                          data_dir: Path | None, out_template: str, batch_size: int = 32, limit: int | None = None,
                          seed: int = 0) -> list[Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attrprune.evaluation.lm import evaluate_lm, flatten_results
    from attrprune.io import provenance, write_json
    from attrprune.pruning import MaskBuilder, measured_sparsity, model_sparsity, pruned
    from attrprune.relevance.store import load_scores

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, torch_dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    scores, scores_meta = load_scores(scores_path)
    if not scores.weights:
        raise ValueError(f"{scores_path} has no weight scores ({scores_meta.get('method')} is structured only); "
                         "compression prunes weights: use lrp, gradient, wanda, magnitude or random")
    builder = MaskBuilder(scores.weights, scope=scope)
    written = []
    for s in sparsities:
        masks = builder.masks(s)
        with pruned(model, weight_masks=masks):
            measured = model_sparsity(model, list(masks))
            res = evaluate_lm(model, tokenizer, tasks, data_dir=data_dir, batch_size=batch_size, limit=limit, seed=seed)
        out = Path(out_template.format(sparsity=format_sparsity(s)))
        write_json(out, {
            "sparsity": s, "scope": scope,
            "sparsity_requested_masks": measured_sparsity(masks)["overall"],
            "sparsity_measured": measured["overall"], "sparsity_per_layer": measured["per_layer"],
            "metrics": flatten_results(res), "n_samples": res.get("n-samples"), "task_versions": res.get("versions"),
            "scores": scores_meta, **provenance(seed=seed, limit=limit, tasks=tasks, model_dir=str(model_dir)),
        })
        print(f"sparsity {s:.2f}: measured {measured['overall']:.4f} -> {out}", file=sys.stderr)
        written.append(out)
    return written
