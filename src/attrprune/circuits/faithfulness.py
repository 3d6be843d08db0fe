"""Faithfulness against circuit size, summarised as MIB's areas (circuit track, Mueller et al. 2025).

Faithfulness of the circuit that keeps the fraction k of a granularity's components (the k with
the highest |score|, the rest ablated) is the normalised logit difference
f(k) = (LD(k) − LD(∅)) / (LD(M) − LD(∅)), M the full model and ∅ every component ablated (the
circuit stage's curve). Over MIB's circuit sizes k ∈ {0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
0.1, 0.2, 0.5, 1} (kept fraction, `MIB_SIZES`):

* CPR (circuit performance ratio) = ∫ f(k) dk, higher is better;
* CMD (circuit–model distance) = ∫ |1 − f(k)| dk, lower is better;

both by the trapezoid rule on a **linear** k axis between consecutive sizes, as MIB's
``evaluate_area_under_curve`` does by default (``log_scale=False``), with the nominal sizes as x
(not the counts actually kept, which round) and no division by the width (0.999): a model whose
circuit is perfect at every size has CPR = 0.999 and CMD = 0. The linear axis weights the sizes
from 20 % to 100 % most; the small circuits contribute little area.

`bootstrap_areas` gives percentile intervals by resampling the **evaluation prompts** with
replacement (every seed's curve, the dense and the ablated model on the same resampled prompts):
the prompts are the sampling unit that an independent rerun would redraw, while the reference
seeds (2 by default) are too few to resample.
"""

from __future__ import annotations

import torch

from attrprune.circuits.bootstrap import percentile_interval, resample_counts

MIB_SIZES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def check_sizes(sizes: list[float]) -> list[float]:
    """Sorted, distinct sizes in (0, 1]; at least two (an area needs an interval)."""
    bad = [k for k in sizes if not 0.0 < k <= 1.0]
    if bad:
        raise ValueError(f"circuit sizes (kept fractions) must lie in (0, 1], got {bad}")
    out = sorted(set(sizes))
    if len(out) < 2:
        raise ValueError(f"the faithfulness areas need at least two distinct circuit sizes, got {sizes}")
    return out


def size_sparsity(size: float) -> float:
    """The sparsity (fraction pruned) of kept fraction `size`, rounded so that 1 − 0.95 and a
    configured 0.05 name the same curve point."""
    return round(1.0 - size, 9)


def curve_sparsities(sparsities: list[float], sizes: list[float] | None) -> list[float]:
    """The configured sparsities plus those the areas need, sorted, each once."""
    extra = [size_sparsity(k) for k in check_sizes(sizes)] if sizes else []
    return sorted({round(s, 9) for s in sparsities} | set(extra))


def _trapezoid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∫ y dx over the last dimension of y [..., n] at the points x [n]."""
    dx = x[1:] - x[:-1]  # [n - 1]
    return ((y[..., 1:] + y[..., :-1]) / 2 * dx).sum(-1)


def areas(sizes: list[float], faithfulness: list[float] | torch.Tensor) -> dict:
    """{"cpr", "cmd"} of the curve f(sizes) (trapezoid, linear axis; sizes in any order)."""
    if len(sizes) != len(faithfulness):
        raise ValueError(f"{len(sizes)} sizes but {len(faithfulness)} faithfulness values")
    x = torch.tensor([float(k) for k in sizes], dtype=torch.float64)
    order = torch.argsort(x)
    x = x[order]
    if len(x) < 2 or bool((x[1:] == x[:-1]).any()) or not (0 < x[0] and x[-1] <= 1):
        raise ValueError(f"the areas need at least two distinct sizes in (0, 1], got {sizes}")
    f = torch.as_tensor(faithfulness, dtype=torch.float64)[order]
    return {"cpr": _trapezoid(x, f).item(), "cmd": _trapezoid(x, (1 - f).abs()).item()}


def bootstrap_areas(
    sizes: list[float],
    points: torch.Tensor,
    dense: torch.Tensor,
    ablated: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """CPR and CMD per seed and of the seed-mean curve, with percentile intervals over prompts.

    points: per-prompt logit differences [seeds, sizes, prompts] of each seed's circuit at each
    size; dense, ablated: [prompts] of the full and the fully ablated model. The seed-mean curve
    is the mean of the seeds' f(k) at each size (the curve the tables show); its CPR is the mean
    of the seeds' CPRs, its CMD can be smaller than theirs (|1 − f| is not linear).
    """
    n_seeds, n_sizes, n = points.shape
    if n_sizes != len(sizes) or dense.shape != (n,) or ablated.shape != (n,):
        raise ValueError(f"points {tuple(points.shape)}, dense {tuple(dense.shape)}, ablated {tuple(ablated.shape)}")
    x = torch.tensor([float(k) for k in sizes], dtype=torch.float64)
    order = torch.argsort(x)
    x, points = x[order], points.double()[:, order]

    def faithfulness(weights: torch.Tensor) -> torch.Tensor:
        """f [..., seeds, sizes] of prompt weights [..., prompts] (each row sums to 1)."""
        m = torch.einsum("szp,...p->...sz", points, weights)
        d, a = weights @ dense.double(), weights @ ablated.double()  # [...]
        return (m - a[..., None, None]) / (d - a)[..., None, None]

    f = faithfulness(torch.full((n,), 1.0 / n, dtype=torch.float64))  # [seeds, sizes]
    per_seed = [{"seed_index": i, **areas(x.tolist(), f[i])} for i in range(n_seeds)]
    mean = areas(x.tolist(), f.mean(0))
    fb = faithfulness(resample_counts(n, n_resamples, seed) / n).mean(1)  # [B, sizes]
    cpr_b, cmd_b = _trapezoid(x, fb), _trapezoid(x, (1 - fb).abs())  # [B] each
    return {
        "sizes": x.tolist(),
        "x_axis": "kept fraction, linear",
        "faithfulness": f.mean(0).tolist(),
        "per_seed": per_seed,
        "cpr": mean["cpr"],
        "cmd": mean["cmd"],
        "cpr_ci": list(percentile_interval(cpr_b, level)),
        "cmd_ci": list(percentile_interval(cmd_b, level)),
        "resampled": "evaluation prompts",
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "level": level,
    }
