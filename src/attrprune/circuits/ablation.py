"""Ground truth by exhaustive ablation: remove one component at a time, measure the IOI drop.

Beyond the paper: the world models are small enough to ablate every attention head
and every MLP neuron on its own, and a seeded sample of single weights. A component's importance
is the drop of the mean logit difference when it alone is removed (dense − ablated; negative
when removing it helps). Methods' rankings are then scored against it (`agreement`).

Removal is zero ablation (pruning) by default; with ``ablation_value="mean"`` heads and neurons
are instead replaced by their mean over the IOI reference prompts, with ``"counterfactual"`` by
their activation on each prompt's corrupted copy (MIB's counterfactual patching; `attrprune.
circuits.intervention`), as the circuit stage then does; single weights are always zeroed (a
weight has no activation to average or patch), and the file's metadata records both.

Run: ``python -m attrprune circuit-ablation --model-dir world/models/world-llama
--eval-file world/data/ioi_heldout_names.jsonl --n-weights 256 --out ablation.safetensors``
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from attrprune.architectures import architecture_of
from attrprune.circuits.components import component_names
from attrprune.circuits.intervention import ablated_logit_differences, counterfactual_activations
from attrprune.circuits.metrics import IOIBatch, logit_differences
from attrprune.logs import steps
from attrprune.pruning import pruned

log = logging.getLogger(__name__)


def _unit_drops(
    model,
    batch: IOIBatch,
    granularity: str,
    shapes: dict[str, int],
    dense: float,
    progress: bool,
    ablation_value: str = "zero",
    means: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    drops = {}
    total = sum(shapes.values())
    with steps(total=total, desc=f"ablate {granularity}s", enabled=progress) as bar:
        for name, n in shapes.items():
            out = torch.empty(n)
            for j in range(n):
                keep = torch.ones(n, dtype=torch.bool)
                keep[j] = False
                ld = ablated_logit_differences(model, batch, granularity, {name: keep}, ablation_value, means)
                out[j] = dense - ld.mean()
                bar.update()
            drops[name] = out
    return drops


def _weight_drops(model, batch: IOIBatch, names: list[str], n_weights: int, seed: int, dense: float, progress: bool):
    """(flat indices, drops) per module for `n_weights` elements drawn uniformly over all of them."""
    arch = architecture_of(model)
    shapes = [arch.weight(model.get_submodule(n)).shape for n in names]  # [out, in] each
    sizes = torch.tensor([s.numel() for s in shapes])
    flat = torch.randperm(int(sizes.sum()), generator=torch.Generator().manual_seed(seed))[:n_weights].sort().values
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)])
    out = {}
    with steps(total=len(flat), desc="ablate weights", enabled=progress) as bar:
        for i, name in enumerate(names):
            shape = shapes[i]
            local = flat[(flat >= offsets[i]) & (flat < offsets[i + 1])] - offsets[i]
            drops = torch.empty(len(local))
            for j, idx in enumerate(local.tolist()):
                keep = torch.ones(shape.numel(), dtype=torch.bool)
                keep[idx] = False
                with pruned(model, weight_masks={name: keep.view(shape)}):
                    drops[j] = dense - logit_differences(model, batch).mean()
                bar.update()
            out[name] = (local, drops)
    return out


@torch.no_grad()
def ablation_importance(
    model,
    batch: IOIBatch,
    n_weights: int = 256,
    weight_modules: str = "mlp",
    seed: int = 0,
    progress: bool = True,
    ablation_value: str = "zero",
    means: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict:
    """{"dense_logit_diff", "head": {attn: [heads]}, "neuron": {module: [neurons]},
    "weight": {module: (flat index [k], drop [k])}}. `means`: {"head": ..., "neuron": ...}
    reference means (`intervention.reference_means`) for ``ablation_value="mean"``; with
    ``"counterfactual"`` the activations of `batch`'s corrupted prompts are taken here."""
    model.eval()
    means = means or {}
    if ablation_value == "counterfactual":
        if batch.corrupted_ids is None:
            raise ValueError("counterfactual patching needs the evaluation prompts' corrupted copies")
        means = {
            g: counterfactual_activations(model, g, batch.corrupted_ids, batch.attention_mask)
            for g in ("head", "neuron")
        }
    dense = logit_differences(model, batch).mean().item()
    heads = component_names(model, "head")
    neurons = component_names(model, "neuron")
    arch = architecture_of(model)
    n_heads = arch.n_heads(model)
    return {
        "dense_logit_diff": dense,
        "head": _unit_drops(
            model, batch, "head", {n: n_heads for n in heads}, dense, progress, ablation_value, means.get("head")
        ),
        "neuron": _unit_drops(
            model,
            batch,
            "neuron",
            {n: arch.weight(model.get_submodule(n)).shape[0] for n in neurons},
            dense,
            progress,
            ablation_value,
            means.get("neuron"),
        ),
        "weight": _weight_drops(
            model, batch, component_names(model, "weight", weight_modules), n_weights, seed, dense, progress
        ),
    }


def save_ablation(result: dict, path: Path, meta: dict) -> None:
    from attrprune.store import save_tensors

    tensors = {}
    for kind in ("head", "neuron"):
        tensors.update({f"{kind}/{n}": t.contiguous() for n, t in result[kind].items()})
    for n, (index, drop) in result["weight"].items():
        tensors[f"weight_index/{n}"] = index.contiguous()
        tensors[f"weight/{n}"] = drop.contiguous()
    save_tensors(path, tensors, {**meta, "dense_logit_diff": result["dense_logit_diff"]}, key="ablation")


def load_ablation(path: Path) -> tuple[dict, dict]:
    """(result as `ablation_importance` returns it, metadata)."""
    from attrprune.records import ABLATION_HEADER
    from attrprune.store import load_tensors

    tensors, meta = load_tensors(path, key="ablation", schema=ABLATION_HEADER)
    result = {"dense_logit_diff": meta["dense_logit_diff"], "head": {}, "neuron": {}, "weight": {}}
    for key, t in tensors.items():
        kind, name = key.split("/", 1)
        if kind in ("head", "neuron"):
            result[kind][name] = t
        elif kind == "weight":
            result["weight"][name] = (tensors[f"weight_index/{name}"], t)
    return result, meta


def importance_and_scores(
    ablation: dict, granularity: str, scores: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (importance, score) pairs of the ablated components that `scores` covers."""
    imp, sc = [], []
    for name, table in ablation[granularity].items():
        if name not in scores:
            continue
        if granularity == "weight":
            index, drop = table
            imp.append(drop)
            sc.append(scores[name].flatten()[index])
        else:
            imp.append(table)
            sc.append(scores[name].flatten())
    if not imp:
        raise ValueError(f"the ablation file has no {granularity} components in common with the scores")
    return torch.cat(imp), torch.cat(sc).float()


def run_ablation(
    model_dir: Path,
    eval_file: Path,
    out: Path,
    n_weights: int = 256,
    weight_modules: str = "mlp",
    seed: int = 0,
    limit: int | None = None,
    threads: int | None = None,
    dtype: str = "auto",
    device_map: str = "none",
    ablation_value: str = "zero",
    mean_reference: list[Path] | None = None,
) -> dict:
    """The `circuit-ablation` stage: ablation importance of every head and neuron and of
    `n_weights` sampled weights on the first `limit` prompts of `eval_file`; with
    ``ablation_value="mean"``, heads and neurons take their mean over the `mean_reference`
    reference sets instead of zero; with ``"counterfactual"``, their activation on each prompt's
    corrupted copy."""
    from attrprune.circuits.intervention import ABLATION_VALUES
    from attrprune.io import provenance
    from attrprune.models import load_model, placement
    from attrprune.text import read_jsonl

    if ablation_value not in ABLATION_VALUES:
        raise ValueError(f"unknown ablation value {ablation_value!r}; valid: {list(ABLATION_VALUES)}")
    model, tokenizer = load_model(model_dir, dtype=dtype, device_map=device_map)
    rows = read_jsonl(eval_file, ("prompt", "io", "s"), allow_empty=False)
    batch = IOIBatch.encode(tokenizer, rows[:limit], corrupt=ablation_value == "counterfactual", names_from=rows)
    means = None
    if ablation_value == "mean":
        means = {g: load_reference_means(model, mean_reference, g) for g in ("head", "neuron")}
    result = ablation_importance(model, batch, n_weights, weight_modules, seed, True, ablation_value, means)
    save_ablation(
        result,
        out,
        provenance(
            model_dir=str(model_dir),
            eval_file=str(eval_file),
            n_prompts=len(batch),
            n_weights=n_weights,
            weight_modules=weight_modules,
            seed=seed,
            ablation_value=ablation_value,
            weight_ablation_value="zero",
            counterfactual=corruption_note() if ablation_value == "counterfactual" else None,
            mean_reference=[str(p) for p in mean_reference or []],
            **placement(model, device_map),
        ),
    )
    top = {
        kind: max(((n, float(t.max())) for n, t in result[kind].items()), key=lambda x: x[1])
        for kind in ("head", "neuron")
    }
    log.info(f"dense logit difference {result['dense_logit_diff']:.3f}; largest single drops: {top}")
    return result


def corruption_note() -> str:
    from attrprune.refsets import CORRUPTION

    return f"{CORRUPTION}, applied to each evaluation prompt (names of the evaluation file, seed 0)"


def load_reference_means(model, paths: list[Path] | None, granularity: str) -> dict[str, torch.Tensor]:
    """Reference means (`intervention.reference_means`) over every prompt of the reference-set
    files `paths` (the IOI reference sets of every seed), all non-padding positions."""
    from attrprune.circuits.intervention import reference_means
    from attrprune.refsets import load_refset

    if not paths:
        raise ValueError("mean ablation needs --mean-reference: the IOI reference-set files to average over")
    refsets = [load_refset(p) for p in paths]
    batches = ((r.input_ids[i : i + 64], r.attention_mask[i : i + 64]) for r in refsets for i in range(0, len(r), 64))
    return reference_means(model, batches, granularity)
