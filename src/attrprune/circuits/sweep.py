"""Circuit discovery (paper §3.3, §4.2): prune the components least relevant on IOI reference
samples and measure IOI on held-out prompts, over a sparsity sweep and at a performance threshold.

For one model × method × granularity × scope, `discover` takes the score files of every
reference seed and

1. measures the dense model and the fully ablated one (every component of the granularity
   removed), the two ends of the normalised logit difference;
2. per seed, prunes each configured sparsity and measures accuracy, logit difference and
   normalised logit difference (the paper's curves, mean ± std over seeds);
3. on the seed-averaged scores (relevance over all reference samples), finds the sparsest point
   whose normalised logit difference stays ≥ the threshold: a 16-step scan, then bisection
   between the sparsest passing step and the next, over one sorted score order (exact pruned
   counts for the global scope, 1/1000 steps of sparsity for the others). The curve need not be
   monotone; a passing point hidden between two failing scan steps is not found. The size gets
   a 95 % interval by rerunning the search on resampled evaluation prompts, and each seed's
   scores get their own circuit (the size's spread between reference sets);
4. with an ablation file (`circuits.ablation`), scores the ranking against ablation importance;
5. with circuit sizes (`circuits.faithfulness_sizes`, kept fractions), adds their sparsities to
   the curve and summarises faithfulness as MIB's CPR and CMD per seed and for the seed-mean
   curve, with intervals over prompts and reference seeds (`attrprune.circuits.faithfulness`).

Removed components are zeroed (``ablation_value="zero"``) or replaced by their mean over the IOI
reference prompts (``"mean"``, `attrprune.circuits.intervention`), for the curves, the circuit
and both ends of the normalisation alike.

Run: ``python -m attrprune circuit --model-dir world/models/world-llama --scores s0.safetensors,s1.safetensors
--eval-file world/data/ioi_heldout_names.jsonl --granularity neuron --scope global
--sparsities 0.5,0.9 --out-dir out/``
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from attrprune.circuits.components import all_pruned
from attrprune.circuits.faithfulness import bootstrap_areas, check_sizes, curve_sparsities, size_sparsity
from attrprune.circuits.intervention import ablated_logit_differences, counterfactual_activations
from attrprune.circuits.metrics import IOIBatch, logit_differences, summarize
from attrprune.pruning import MaskBuilder, measured_sparsity
from attrprune.registry import CIRCUIT_SCOPES

log = logging.getLogger(__name__)

ROW_STEPS = 1000  # bisection resolution of non-global scopes: sparsity in steps of 0.001
SIZE_STEPS = 1000  # resolution of the circuit size's interval: 1/1000 of the steps


def check_scope(granularity: str, scope: str) -> None:
    valid = CIRCUIT_SCOPES[granularity]
    if scope not in valid:
        raise ValueError(f"scope {scope!r} does not apply to {granularity} circuits; valid: {list(valid)}")


class CircuitEvaluator:
    """IOI metrics of `model` with keep-masks of one granularity applied, normalised between the
    dense and the fully ablated model."""

    def __init__(
        self,
        model,
        batch: IOIBatch,
        granularity: str,
        components: dict[str, torch.Tensor],
        batch_size: int = 256,
        ablation_value: str = "zero",
        means: dict[str, torch.Tensor] | None = None,
    ):
        self.model, self.batch, self.granularity, self.batch_size = model, batch, granularity, batch_size
        self.ablation_value, self.means = ablation_value, means
        if ablation_value == "counterfactual":
            if batch.corrupted_ids is None:
                raise ValueError("counterfactual patching needs the evaluation prompts' corrupted copies")
            self.means = counterfactual_activations(
                model, granularity, batch.corrupted_ids, batch.attention_mask, batch_size
            )
        self.dense_ld, self.ablated_ld = self._ld(None), self._ld(all_pruned(components))  # [n] each
        self.dense, self.ablated = self.dense_ld.mean().item(), self.ablated_ld.mean().item()
        self.dense_metrics = summarize(self.dense_ld, self.dense, self.ablated)
        self.ablated_metrics = summarize(self.ablated_ld, self.dense, self.ablated)

    def _ld(self, masks: dict[str, torch.Tensor] | None) -> torch.Tensor:
        if masks is None:
            return logit_differences(self.model, self.batch, self.batch_size)
        return ablated_logit_differences(
            self.model, self.batch, self.granularity, masks, self.ablation_value, self.means, self.batch_size
        )

    def measure(self, masks: dict[str, torch.Tensor]) -> tuple[dict, torch.Tensor]:
        """(metrics, per-prompt logit differences [n]) with `masks` applied."""
        sparsity = measured_sparsity(masks)["overall"]
        ld = self._ld(masks)
        return {
            "kept_fraction": 1.0 - sparsity,
            "sparsity_measured": sparsity,
            **summarize(ld, self.dense, self.ablated),
        }, ld

    def __call__(self, masks: dict[str, torch.Tensor]) -> dict:
        return self.measure(masks)[0]


SIZE_ROUNDINGS = ("project", "mib")


def size_masks(scores: dict[str, torch.Tensor], scope: str, size: float, rounding: str) -> dict[str, torch.Tensor]:
    """Keep-masks of the circuit keeping the fraction `size` of the components (highest |score|):
    ``project``: the sparsity 1 − size, pruned by the pruning count rule per group (`MaskBuilder.masks`);
    ``mib``: MIB's count, int(size · n) kept per group (n the group's components: all of them for
    the global scope, a layer's or a row's otherwise)."""
    if rounding == "project":
        return MaskBuilder(scores, scope).masks(size_sparsity(size))
    if rounding != "mib":
        raise ValueError(f"unknown size rounding {rounding!r}; valid: {list(SIZE_ROUNDINGS)}")
    builder = MaskBuilder(scores, scope)
    if builder.scope == "global":
        return builder.lowest(builder.numel - int(size * builder.numel))
    out = {}
    for name, t in scores.items():
        group = t.shape[-1] if builder.scope == "row" else t.numel()
        out.update(MaskBuilder({name: t}, scope).lowest(group - int(size * group)))
    return out


def sparsest_step(passes: Callable[[int], bool], n_steps: int, grid: int = 16, resolution: int = 1) -> int:
    """Largest step k in [0, n_steps] with passes(k) that a grid scan then bisection finds.

    The scan evaluates `grid` + 1 evenly spaced steps and takes the sparsest passing one; the
    bisection then narrows the gap to the next (failing) grid step. A plain bisection from 0 would
    stop at the first dip of a non-monotone curve; the scan sees past dips wider than a grid cell.
    Step 0 (nothing pruned) is taken to pass. `resolution` > 1 stops the bisection once the gap
    is that narrow (the passing end is returned).
    """
    points = sorted({round(i * n_steps / grid) for i in range(grid + 1)})
    passing = [k for k in points if k == 0 or passes(k)]
    lo = passing[-1]
    if lo == n_steps:
        return lo
    hi = points[points.index(lo) + 1]  # fails
    while hi - lo > max(1, resolution):
        mid = (lo + hi) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _search(evaluate: CircuitEvaluator, scores: dict[str, torch.Tensor], scope: str):
    """(number of steps, keep-masks of step k) of the circuit search over one score order."""
    builder = MaskBuilder(scores, scope)
    if builder.scope == "global":
        return builder.numel, builder.lowest, builder.numel

    def masks_at(k: int) -> dict[str, torch.Tensor]:
        return builder.masks(k / ROW_STEPS) if k < ROW_STEPS else all_pruned(scores)

    return ROW_STEPS, masks_at, builder.numel


def sparsest_circuit(
    evaluate: CircuitEvaluator,
    scores: dict[str, torch.Tensor],
    scope: str,
    threshold: float,
    grid: int = 16,
    n_resamples: int = 0,
    bootstrap_seed: int = 0,
    level: float = 0.95,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Keep-masks and metrics of the sparsest point with normalised logit difference ≥ threshold.

    With `n_resamples`, the circuit's size also gets a percentile interval over the evaluation
    prompts (``n_kept_ci``, ``kept_fraction_ci``): each resample of the prompts reruns the same
    scan and bisection on the resampled normalised logit difference (evaluating any step the
    full sample did not reach), so the interval is that of the search itself, not of a fitted
    curve. The resamples' searches stop at 1/1000 of the steps (`SIZE_STEPS`; exact up to 1,000
    components), so the interval's ends are within that of the search's."""
    n_steps, masks_at, numel = _search(evaluate, scores, scope)
    seen: dict[int, dict] = {}
    lds: dict[int, torch.Tensor] = {}  # per-prompt logit differences of every evaluated step
    kept: dict[int, int] = {}

    def measure(k: int) -> torch.Tensor:
        if k not in lds:
            masks = masks_at(k)
            seen[k], lds[k] = evaluate.measure(masks)
            kept[k] = int(sum(m.sum() for m in masks.values()))
        return lds[k]

    def passes(k: int) -> bool:
        measure(k)
        return seen[k]["normalized_logit_diff"] >= threshold

    k = sparsest_step(passes, n_steps, grid)
    evaluations = len(seen)
    masks = masks_at(k)
    measure(k)
    result = {
        **seen[k],
        "threshold": threshold,
        "n_components": numel,
        "n_kept": int(sum(m.sum() for m in masks.values())),
        "evaluations": evaluations,
    }
    if n_resamples:
        import numpy as np

        from attrprune.circuits.bootstrap import percentile_interval, resample

        dense, ablated = evaluate.dense_ld.double().numpy(), evaluate.ablated_ld.double().numpy()
        # the resamples' searches stop at 1/1000 of the steps (exact for up to 1,000 components),
        # which bounds the steps they add beside the full sample's
        resolution = max(1, n_steps // SIZE_STEPS)

        def size(prompts: np.ndarray) -> np.ndarray:
            out = np.empty(prompts.shape[:-1])
            for row in np.ndindex(out.shape):
                w = np.bincount(prompts[row], minlength=len(dense)) / prompts.shape[-1]
                d, a = w @ dense, w @ ablated

                def passes_here(j: int, w=w, d=d, a=a) -> bool:
                    return (w @ measure(j).double().numpy() - a) / (d - a) >= threshold

                step = sparsest_step(passes_here, n_steps, grid, resolution)
                measure(step)  # step 0 passes without an evaluation
                out[row] = kept[step]
            return out

        _, samples = resample(size, [len(dense)], n_resamples, bootstrap_seed)
        lo, hi = percentile_interval(samples, level)
        result.update(
            n_kept_ci=[lo, hi],
            kept_fraction_ci=[lo / numel, hi / numel],
            size_resampled="evaluation prompts",
            size_evaluations=len(seen),
        )
    return masks, result


def discover(
    model,
    batch: IOIBatch,
    seed_scores: list[dict[str, torch.Tensor]],
    granularity: str,
    scope: str,
    sparsities: list[float],
    threshold: float,
    batch_size: int = 256,
    sizes: list[float] | None = None,
    ablation_value: str = "zero",
    means: dict[str, torch.Tensor] | None = None,
    n_resamples: int = 1000,
    bootstrap_seed: int = 0,
    size_rounding: str = "project",
) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(result, circuit keep-masks, seed-averaged scores): curves per seed, the dense and ablated
    ends, the circuit at `threshold`, and with `sizes` (kept fractions) the faithfulness areas."""
    check_scope(granularity, scope)
    if not seed_scores:
        raise ValueError("no score files given")
    model.eval()
    pooled = {n: torch.stack([s[n].float() for s in seed_scores]).mean(0) for n in seed_scores[0]}  # mean over seeds
    evaluate = CircuitEvaluator(model, batch, granularity, pooled, batch_size, ablation_value, means)
    if size_rounding not in SIZE_ROUNDINGS:
        raise ValueError(f"unknown size rounding {size_rounding!r}; valid: {list(SIZE_ROUNDINGS)}")
    sizes = check_sizes(sizes) if sizes else None
    # project: the sizes' sparsities join the curve; mib: their own counts, measured apart
    grid = curve_sparsities(sparsities, sizes if size_rounding == "project" else None)
    at_size = [size_sparsity(k) for k in sizes] if sizes else []
    curves, size_ld = [], []  # size_ld: per seed, per size, the per-prompt logit differences
    for seed_index, scores in enumerate(seed_scores):
        builder = MaskBuilder(scores, scope)
        lds = {}
        for s in grid:
            metrics, lds[s] = evaluate.measure(builder.masks(s))
            curves.append({"seed_index": seed_index, "sparsity": s, **metrics})
        if size_rounding == "project":
            size_ld.append([lds[s] for s in at_size])
        else:
            size_ld.append([evaluate.measure(size_masks(scores, scope, k, "mib"))[1] for k in sizes or []])
        log.info(
            f"seed {seed_index}: "
            + " ".join(
                f"{c['sparsity']:g}:{c['normalized_logit_diff']:.2f}" for c in curves if c["seed_index"] == seed_index
            )
        )
    masks, circuit = sparsest_circuit(
        evaluate, pooled, scope, threshold, n_resamples=n_resamples, bootstrap_seed=bootstrap_seed
    )
    # Each reference seed's own circuit: how much the size moves with the reference set.
    circuit["per_seed_n_kept"] = [
        sparsest_circuit(evaluate, scores, scope, threshold)[1]["n_kept"] for scores in seed_scores
    ]
    result = {
        "granularity": granularity,
        "scope": scope,
        "n_seeds": len(seed_scores),
        "n_prompts": len(batch),
        "dense": evaluate.dense_metrics,
        "ablated": evaluate.ablated_metrics,
        "ablation_value": ablation_value,
        "size_rounding": size_rounding,
        "curve": curves,
        "circuit": circuit,
    }
    if sizes:
        points = torch.stack([torch.stack(per_seed) for per_seed in size_ld])  # [seeds, sizes, prompts]
        result["faithfulness"] = bootstrap_areas(
            sizes, points, evaluate.dense_ld, evaluate.ablated_ld, n_resamples, bootstrap_seed
        )
    return result, masks, pooled
