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
    from attrprune.evaluation.lm import evaluate_lm, flatten_results
    from attrprune.io import provenance, write_json
    from attrprune.models import load_model
    from attrprune.pruning import MaskBuilder, measured_sparsity, model_sparsity, pruned
    from attrprune.relevance.store import load_scores

    model, tokenizer = load_model(model_dir, accelerate=True)
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


def export_pruned(model_dir: Path, scores_path: Path, scope: str, sparsity: float, out_dir: Path) -> dict:
    """Write the model pruned at one sparsity in HF format (loadable with
    `AutoModelForCausalLM.from_pretrained`), with a model card stating its measured sparsity."""
    import shutil
    import tempfile

    from attrprune.io import provenance, write_json
    from attrprune.models import load_model
    from attrprune.pruning import MaskBuilder, apply_masks_, model_sparsity
    from attrprune.relevance.store import load_scores

    model, tokenizer = load_model(model_dir)  # fp32 on CPU: the checkpoint keeps its dtype
    scores, scores_meta = load_scores(scores_path)
    masks = MaskBuilder(scores.weights, scope=scope).masks(sparsity)
    apply_masks_(model, weight_masks=masks)
    measured = model_sparsity(model, list(masks))
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"base_model": str(model_dir), "method": scores_meta["method"], "scope": scope, "sparsity": sparsity,
                "sparsity_measured": measured["overall"], "scores": scores_meta, **provenance()}
        write_json(tmp / "pruning.json", info)
        (tmp / "README.md").write_text(
            f"# {Path(model_dir).name}, pruned\n\n"
            f"{Path(model_dir).name} with {measured['overall']:.2%} of the weights of its decoder-block linear layers "
            f"set to zero (requested {sparsity:.2%}, {scope} scope), ranked by `{scores_meta['method']}` scores on "
            f"`{scores_meta.get('refset')}` (target: {scores_meta.get('target')}). No fine-tuning. Written by "
            f"attrprune {info['attrprune_version']} at commit {info['git_commit']}; details in pruning.json.\n"
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info
