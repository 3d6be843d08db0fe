"""The `circuit` stage end to end, and the circuit written for people and programs.

Writes into one output folder:

* ``curve.json``: per-seed curves, dense and ablated ends, the ablation value (zero / mean), the
  circuit's size and metrics, the faithfulness areas (CPR, CMD with prompt-bootstrap intervals,
  ``faithfulness``) and (with an ablation file) the ranking's agreement with ablation importance,
  signed and absolute, with component-bootstrap intervals (``groundtruth``; its ``components``
  holds the flat scores and drops that the paired test of `circuit-tables` resamples);
* ``circuit.safetensors``: the kept components as uint8 keep-masks (1 = in the circuit), keyed by
  module name, with the same metadata;
* ``circuit.json``: what a reader wants to see: kept heads per layer, kept neurons per layer,
  kept weights per module;
* ``circuit.png`` and ``circuit.svg``: a heat map of the kept fraction per layer and unit
  (heads / neurons) or per layer and projection (weights).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from attrprune.architectures import architecture_of

log = logging.getLogger(__name__)


def summary(model, granularity: str, masks: dict[str, torch.Tensor]) -> dict:
    """Kept components per module, with their indices for heads and neurons."""
    roles = architecture_of(model).linear_names(model)
    modules = {}
    for name, keep in masks.items():
        entry = {"kept": int(keep.sum()), "total": keep.numel()}
        if granularity in ("head", "neuron"):
            entry["indices"] = torch.nonzero(keep.flatten()).flatten().tolist()
        # heads are keyed by their attention module, which is not a linear layer
        entry["layer"] = roles[name][0] if name in roles else _layer_of(name)
        modules[name] = entry
    kept = sum(e["kept"] for e in modules.values())
    total = sum(e["total"] for e in modules.values())
    return {
        "granularity": granularity,
        "kept": kept,
        "total": total,
        "kept_fraction": kept / total if total else 0.0,
        "modules": modules,
    }


def _layer_of(name: str) -> int | None:
    digits = [p for p in name.split(".") if p.isdigit()]
    return int(digits[0]) if digits else None


def heatmap(model, granularity: str, masks: dict[str, torch.Tensor], title: str, path: Path) -> None:
    from attrprune import plotstyle
    from attrprune.io import pyplot

    plt = pyplot()
    if granularity == "weight":
        arch = architecture_of(model)
        roles = arch.linear_names(model)
        role_names = sorted({roles[n][1] for n in masks}, key=list(arch.linears).index)
        n_layers = len(arch.block_list(model))
        grid = torch.full((n_layers, len(role_names)), float("nan"))
        for name, keep in masks.items():
            layer, role = roles[name]
            grid[layer, role_names.index(role)] = keep.float().mean()
        xlabels, xlabel = role_names, "projection"
    else:
        rows = [masks[n].float().flatten() for n in masks]
        grid = torch.stack(rows)  # [layers, units]
        xlabels, xlabel = None, "head" if granularity == "head" else "neuron"
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * grid.shape[0]))
    im = ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_ylabel("layer")
    ax.set_xlabel(xlabel)
    ax.set_yticks(range(grid.shape[0]))
    if xlabels:
        ax.set_xticks(range(len(xlabels)), xlabels)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="kept fraction" if granularity == "weight" else "kept")
    plotstyle.save(fig, path, dpi=120)  # PNG, and SVG beside it


def run_circuit(
    model_dir: Path,
    score_paths: list[Path],
    eval_file: Path,
    granularity: str,
    scope: str,
    sparsities: list[float],
    threshold: float,
    out_dir: Path,
    weight_modules: str = "mlp",
    ablation_path: Path | None = None,
    top_fraction: float = 0.1,
    limit: int | None = None,
    batch_size: int = 256,
    dtype: str = "auto",
    device_map: str = "none",
    model_name: str | None = None,
    sizes: list[float] | None = None,
    ablation_value: str = "zero",
    mean_reference: list[Path] | None = None,
    n_resamples: int = 1000,
    bootstrap_seed: int = 0,
    published_circuit: str | None = None,
    size_rounding: str = "project",
) -> dict:
    from attrprune.circuits.ablation import corruption_note, importance_and_scores, load_ablation, load_reference_means
    from attrprune.circuits.agreement import agreement
    from attrprune.circuits.components import component_names, select
    from attrprune.circuits.metrics import IOIBatch
    from attrprune.circuits.published import published_agreement
    from attrprune.circuits.published import published_circuit as published_circuit_spec
    from attrprune.circuits.sweep import discover
    from attrprune.io import provenance, removed_on_failure, write_json
    from attrprune.models import load_model, placement, weights_sha256
    from attrprune.relevance.store import load_scores
    from attrprune.store import save_tensors
    from attrprune.text import read_jsonl

    if published_circuit is not None:
        if granularity != "head":
            raise ValueError(f"published circuits are head circuits; {granularity} circuits take none")
        published_circuit_spec(published_circuit)  # an unknown name fails before the sweep
    model, tokenizer = load_model(model_dir, dtype=dtype, device_map=device_map)
    model_sha256 = weights_sha256(model_dir)
    if ablation_value == "counterfactual" and granularity == "weight":
        raise ValueError(
            "counterfactual patching applies to heads and neurons; run weight circuits with ablation value zero"
        )
    rows = read_jsonl(eval_file, ("prompt", "io", "s"), allow_empty=False)
    batch = IOIBatch.encode(tokenizer, rows[:limit], corrupt=ablation_value == "counterfactual", names_from=rows)
    names = component_names(model, granularity, weight_modules)
    seed_scores, metas = [], []
    for path in score_paths:
        scores, meta = load_scores(path, model_sha256=model_sha256)
        seed_scores.append(select(scores, names, granularity, meta.get("method", "?"), path))
        metas.append(meta)
    # Read before the sweep: a missing or broken ground-truth file must fail in seconds.
    ablation, ablation_meta = load_ablation(ablation_path) if ablation_path is not None else (None, None)
    if ablation_path is not None:
        # The ground truth must remove components the way the curves do (weights: always zero).
        truth_value = "zero" if granularity == "weight" else ablation_meta.get("ablation_value", "zero")
        if truth_value != ablation_value:
            raise ValueError(
                f"{ablation_path} ablated {granularity}s by {truth_value}, the circuit by {ablation_value}; "
                "rerun circuit-ablation or the circuit with the same --ablation-value"
            )
    means = None
    if ablation_value == "mean":
        if granularity == "weight":
            raise ValueError("mean ablation applies to heads and neurons; run weight circuits with ablation value zero")
        means = load_reference_means(model, mean_reference, granularity)
    result, masks, pooled = discover(
        model,
        batch,
        seed_scores,
        granularity,
        scope,
        sparsities,
        threshold,
        batch_size,
        sizes=sizes,
        ablation_value=ablation_value,
        means=means,
        n_resamples=n_resamples,
        bootstrap_seed=bootstrap_seed,
        size_rounding=size_rounding,
    )
    if ablation_value == "counterfactual":
        result["counterfactual"] = corruption_note()
    if ablation_path is not None:
        importance, ranked = importance_and_scores(ablation, granularity, pooled)
        # each reference seed's scores of the same components: the intervals redraw the seeds too
        per_seed = [importance_and_scores(ablation, granularity, sc)[1].tolist() for sc in seed_scores]
        result["groundtruth"] = {
            **agreement(ranked, importance, top_fraction, n_resamples, bootstrap_seed, seed_scores=per_seed),
            "components": {"score": ranked.tolist(), "drop": importance.tolist(), "seed_scores": per_seed},
        }
    if published_circuit is not None:
        # Two sizes: the published circuit's own (its heads against the top as many), and the
        # circuit this ranking found at the threshold.
        result["published"] = {
            "circuit_size": published_agreement(model, pooled, published_circuit),
            "threshold_circuit": published_agreement(model, pooled, published_circuit, k=result["circuit"]["n_kept"]),
        }
    result.update(
        {
            "method": metas[0].get("method"),
            "weight_modules": weight_modules if granularity == "weight" else None,
            "eval_file": str(eval_file),
            "scores": [str(p) for p in score_paths],
            "mean_reference": [str(p) for p in mean_reference or []] if ablation_value == "mean" else None,
            "refset_sha256": [m.get("refset_sha256") for m in metas],
            # which code wrote each scores file (tables check that one version wrote them all)
            "scores_code": [{k: m[k] for k in ("code", "git_commit") if k in m} for m in metas],
            **provenance(
                model_dir=str(model_dir),
                model=model_name or Path(model_dir).name,
                limit=limit,
                **placement(model, device_map),
            ),
        }
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = (
        f"{Path(model_dir).name} IOI circuit, {result['method']} {granularity} ({scope}): "
        f"{result['circuit']['n_kept']}/{result['circuit']['n_components']} kept, "
        f"norm. LD {result['circuit']['normalized_logit_diff']:.2f}"
    )
    with removed_on_failure():  # a failure part-way leaves none of the four files
        write_json(
            out_dir / "circuit.json",
            {
                **summary(model, granularity, masks),
                "method": result["method"],
                "scope": scope,
                "threshold": threshold,
                "metrics": result["circuit"],
            },
        )
        heatmap(model, granularity, masks, title, out_dir / "circuit.png")
        save_tensors(
            out_dir / "circuit.safetensors",
            {n: m.to(torch.uint8).contiguous() for n, m in masks.items()},
            {k: result[k] for k in ("method", "granularity", "scope")} | {"threshold": threshold},
            key="circuit",
        )
        write_json(out_dir / "curve.json", result)  # last: the job's completeness marker
    c = result["circuit"]
    log.info(
        f"circuit: {c['n_kept']}/{c['n_components']} {granularity}s kept, normalised LD {c['normalized_logit_diff']:.3f}, "
        f"accuracy {c['accuracy']:.3f} ({c['evaluations']} bisection steps)"
    )
    if "faithfulness" in result:
        f = result["faithfulness"]
        log.info(
            f"{ablation_value}-ablation faithfulness areas: CPR {f['cpr']:.3f} {f['cpr_ci']}, CMD {f['cmd']:.3f} {f['cmd_ci']}"
        )
    return result
