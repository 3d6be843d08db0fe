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

`bootstrap_areas` gives percentile intervals from a crossed bootstrap (`attrprune.circuits.
bootstrap.resample`): each resample redraws the **evaluation prompts** (every seed's curve, the
dense and the ablated model on the same drawn prompts) and the **reference seeds** (the seed-mean
curve over the drawn seeds), so the interval covers what an independent rerun would redraw:
prompts and reference sets. With one reference seed it covers the prompts only (``resampled``
says which). `paired_areas` takes the difference of two rankings' areas on the same draws
(the same prompts, and the same reference seeds: seed i of every method was scored on the same
reference set), with its interval and p-value.
"""

from __future__ import annotations

import numpy as np
import torch

from attrprune.circuits.bootstrap import interval_record, percentile_interval, resample, shares

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


def _trapezoid(x, y) -> np.ndarray:
    """∫ y dx over the last dimension of y [..., n] at the points x [n] (NumPy's trapezoid)."""
    return np.trapezoid(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64), axis=-1)


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
    return {"cpr": float(_trapezoid(x, f)), "cmd": float(_trapezoid(x, (1 - f).abs()))}


class AreaData:
    """One ranking's per-prompt logit differences: points [seeds, sizes, prompts] of each seed's
    circuit at each size (sizes sorted ascending), dense and ablated [prompts]."""

    def __init__(self, sizes: list[float], points, dense, ablated):
        points, dense, ablated = (torch.as_tensor(t, dtype=torch.float64) for t in (points, dense, ablated))
        n_seeds, n_sizes, n = points.shape
        if n_sizes != len(sizes) or dense.shape != (n,) or ablated.shape != (n,):
            raise ValueError(
                f"points {tuple(points.shape)}, dense {tuple(dense.shape)}, ablated {tuple(ablated.shape)}"
            )
        x = torch.tensor([float(k) for k in sizes], dtype=torch.float64)
        order = torch.argsort(x)
        self.x = x[order].numpy()
        self.points = points[:, order].numpy()
        self.dense, self.ablated = dense.numpy(), ablated.numpy()
        self.n_seeds, self.n_prompts = n_seeds, n

    def faithfulness(self, seeds: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        """Seed-mean f [..., sizes] over the drawn seeds [..., s] on the drawn prompts [..., p]."""
        wp, ws = shares(prompts, self.n_prompts), shares(seeds, self.n_seeds)  # [..., P], [..., S]
        m = np.einsum("szp,...p->...sz", self.points, wp)
        d, a = wp @ self.dense, wp @ self.ablated  # [...]
        f = (m - a[..., None, None]) / (d - a)[..., None, None]  # [..., S, sizes]
        return np.einsum("...s,...sz->...z", ws, f)

    def areas(self, seeds: np.ndarray, prompts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(CPR, CMD) [...] of the seed-mean curve on the draws."""
        f = self.faithfulness(seeds, prompts)
        return _trapezoid(self.x, f), _trapezoid(self.x, np.abs(1 - f))


def _what(n_seeds: int) -> str:
    return "evaluation prompts and reference seeds" if n_seeds > 1 else "evaluation prompts (one reference seed)"


def bootstrap_areas(
    sizes: list[float],
    points: torch.Tensor,
    dense: torch.Tensor,
    ablated: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """CPR and CMD per seed and of the seed-mean curve, with percentile intervals over prompts
    and reference seeds (see the module docstring).

    points: per-prompt logit differences [seeds, sizes, prompts] of each seed's circuit at each
    size; dense, ablated: [prompts] of the full and the fully ablated model. The seed-mean curve
    is the mean of the seeds' f(k) at each size (the curve the tables show); its CPR is the mean
    of the seeds' CPRs, its CMD can be smaller than theirs (|1 − f| is not linear).
    """
    data = AreaData(sizes, points, dense, ablated)
    every = np.arange(data.n_prompts)
    per_seed = []
    for i in range(data.n_seeds):
        cpr, cmd = data.areas(np.array([i]), every)
        per_seed.append({"seed_index": i, "cpr": float(cpr), "cmd": float(cmd)})
    groups = [data.n_seeds, data.n_prompts]
    cpr, cpr_b = resample(lambda s, p: data.areas(s, p)[0], groups, n_resamples, seed)
    cmd, cmd_b = resample(lambda s, p: data.areas(s, p)[1], groups, n_resamples, seed)
    return {
        "sizes": data.x.tolist(),
        "x_axis": "kept fraction, linear",
        "faithfulness": data.faithfulness(np.arange(data.n_seeds), every).tolist(),
        "per_seed": per_seed,
        "cpr": cpr,
        "cmd": cmd,
        "cpr_ci": list(percentile_interval(cpr_b, level)),
        "cmd_ci": list(percentile_interval(cmd_b, level)),
        "resampled": _what(data.n_seeds),
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "level": level,
        # what the paired comparisons of circuit-tables resample
        "per_prompt": {
            "points": data.points.tolist(),
            "dense": data.dense.tolist(),
            "ablated": data.ablated.tolist(),
        },
    }


def paired_areas(a: dict, b: dict, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """CPR and CMD of ranking `a` minus ranking `b` (two `bootstrap_areas` results of the same
    model, prompts and sizes) on the same draws of prompts and reference seeds: {"cpr": {"value",
    "lo", "hi", "p_value"}, "cmd": {...}, "resampled"}."""
    if a["sizes"] != b["sizes"]:
        raise ValueError(f"paired areas need the same sizes: {a['sizes']} vs {b['sizes']}")
    da, db = (AreaData(r["sizes"], **r["per_prompt"]) for r in (a, b))
    if not (np.array_equal(da.dense, db.dense) and np.array_equal(da.ablated, db.ablated)):
        raise ValueError("paired areas need the same evaluation prompts: the dense or ablated logit differences differ")
    if da.n_seeds != db.n_seeds:
        raise ValueError(f"paired areas need the same reference seeds: {da.n_seeds} vs {db.n_seeds}")
    groups = [da.n_seeds, da.n_prompts]
    out = {}
    for i, name in enumerate(("cpr", "cmd")):
        value, samples = resample(lambda s, p, i=i: da.areas(s, p)[i] - db.areas(s, p)[i], groups, n_resamples, seed)
        out[name] = interval_record(value, samples, level)
    return {**out, "resampled": _what(da.n_seeds), "n_resamples": n_resamples}
