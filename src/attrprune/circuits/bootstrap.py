"""The one bootstrap of the circuit and correction statistics, on SciPy's `scipy.stats.bootstrap`.

* `resample`: B resamples of one or more groups of units, each group drawn with replacement on
  its own (SciPy's multi-sample bootstrap), the statistic evaluated on all resamples at once;
  the units are passed as index arrays, so a statistic can gather whatever each unit carries
  (a component's score and drop, a prompt's logit differences under several methods);
  - stratification is one group per stratum (the ROC AUC's positives and negatives: every
    resample keeps their numbers; with 2 important heads of 16 a plain resample has none 12 %
    of the time, and the AUC is undefined there; pROC's default for AUC intervals);
  - crossed designs are one group per factor (reference seeds × evaluation prompts: each
    resample redraws both, so the interval covers the seeds' spread as well as the prompts');
  - pairing is one statistic computing a difference on the same draw (two methods on the same
    prompts and seeds, or the same components);
  a group of a single unit always resamples to itself and is held fixed;
* `percentile_interval`: the percentile interval of the resampled statistic (NumPy's quantiles,
  as SciPy's percentile method), resamples where the statistic is undefined (NaN) left out;
* `p_value`: two-sided bootstrap p-value of a difference against 0;
* `bootstrap_agreement` / `paired_auc_test`: the intervals of ROC AUC and Spearman against the
  ablation drop, and the paired test of two rankings of the same components.

Everything is a deterministic function of the seed (a NumPy generator seeded with it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

BATCH = 250  # resamples evaluated at once (memory: BATCH x units x what the statistic gathers)


def resample(
    statistic: Callable[..., np.ndarray], sizes: Sequence[int], n_resamples: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """(statistic on the units as given, its [B] values on B resamples).

    `statistic(*indices)` takes one integer index array per group, each [..., size_g], and returns
    the statistic [...] (vectorised over the leading dimensions). Each group of units is
    resampled with replacement independently of the others."""
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1 or n_resamples < 1:
        raise ValueError(f"bootstrap needs groups of >= 1 unit and >= 1 resample, got sizes {sizes}, {n_resamples}")
    full = [np.arange(n) for n in sizes]
    estimate = float(statistic(*full))
    free = [g for g, n in enumerate(sizes) if n > 1]  # scipy resamples these; single units stay

    def on_draw(*drawn, axis=-1):
        shape = drawn[0].shape[:-1] if drawn else ()
        args = [np.broadcast_to(full[g], (*shape, n)) for g, n in enumerate(sizes)]
        for g, d in zip(free, drawn):
            args[g] = d
        return statistic(*(a.astype(np.intp) for a in args))

    if not free:
        return estimate, np.full(n_resamples, estimate)
    from scipy.stats import bootstrap

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # constant resamples: undefined correlations are NaN, left out below
        res = bootstrap(
            tuple(full[g] for g in free),
            on_draw,
            n_resamples=n_resamples,
            batch=BATCH,
            vectorized=True,
            axis=-1,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return estimate, np.asarray(res.bootstrap_distribution, dtype=np.float64)


def percentile_interval(samples, level: float = 0.95) -> tuple[float, float]:
    """(lower, upper) percentile interval of `samples`, NaNs left out (NaN, NaN if all are)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    x = np.asarray(torch.as_tensor(samples, dtype=torch.float64).flatten())
    x = x[~np.isnan(x)]
    if not len(x):
        return float("nan"), float("nan")
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def p_value(samples: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference against 0 from its B resampled values:
    p = min(1, 2 · (1 + min(#{Δ* ≤ 0}, #{Δ* ≥ 0})) / (B + 1)) (the +1 keeps p above 0: the smallest
    p that B resamples can show is 2 / (B + 1)); NaN resamples left out."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[~np.isnan(x)]
    below, above = int((x <= 0).sum()), int((x >= 0).sum())
    return min(1.0, 2 * (1 + min(below, above)) / (len(x) + 1))


def interval_record(estimate: float, samples: np.ndarray, level: float = 0.95) -> dict:
    """{"value", "lo", "hi", "p_value"} of a statistic (p against 0: meaningful for differences)."""
    lo, hi = percentile_interval(samples, level)
    return {"value": estimate, "lo": lo, "hi": hi, "p_value": p_value(samples)}


def shares(idx: np.ndarray, n: int) -> np.ndarray:
    """[..., n] share of each of n units in the draws idx [..., m] (rows sum to 1)."""
    idx = np.asarray(idx)
    lead, m = idx.shape[:-1], idx.shape[-1]
    flat = idx.reshape(-1, m)
    rows = np.arange(len(flat))[:, None]
    counts = np.bincount((rows * n + flat).ravel(), minlength=len(flat) * n).reshape(len(flat), n)
    return (counts / m).reshape(*lead, n)


def _strata(positive: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    labels = positive.bool().flatten().numpy()
    return np.flatnonzero(labels), np.flatnonzero(~labels)


def _per_seed(scores, seed_scores) -> np.ndarray:
    """[S, n] float64: the per-seed scores, or the one ranking as a single seed."""
    if seed_scores is None:
        return torch.as_tensor(scores).flatten().double().numpy()[None]
    out = np.asarray(torch.as_tensor(seed_scores, dtype=torch.float64))
    if out.ndim != 2 or out.shape[1] != torch.as_tensor(scores).numel():
        raise ValueError(f"per-seed scores {out.shape} do not match {torch.as_tensor(scores).numel()} components")
    return out


def stratified_auc(score_sets: Sequence[np.ndarray], positive: torch.Tensor, weights: Sequence[float]):
    """Statistic for `resample` over (reference seeds, positives, negatives): Σ_i weights[i] ·
    AUC of the mean over the drawn seeds of score_sets[i] ([S, n] per-seed scores, the same S
    for every set: the rankings are paired on their seeds too)."""
    from attrprune.circuits.agreement import roc_auc_of_classes

    pos, neg = _strata(positive)
    n_seeds = score_sets[0].shape[0]
    if any(s.shape[0] != n_seeds for s in score_sets):
        raise ValueError(f"paired rankings need the same reference seeds: {[s.shape[0] for s in score_sets]}")

    def statistic(si, ip, ineg):
        w_seeds = shares(si, n_seeds)  # [..., S]
        total = 0.0
        for s, w in zip(score_sets, weights):
            m = w_seeds @ s  # [..., n]
            total = total + w * roc_auc_of_classes(
                np.take_along_axis(m, pos[ip], -1), np.take_along_axis(m, neg[ineg], -1)
            )
        return total

    return statistic, (n_seeds, len(pos), len(neg))


def _what(n_seeds: int) -> str:
    seeds = " and reference seeds" if n_seeds > 1 else ""
    return f"ablated components (the AUC's stratified by label){seeds}"


def bootstrap_agreement(
    scores: torch.Tensor,
    importance: torch.Tensor,
    positive: torch.Tensor,
    positive_abs: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    seed_scores=None,
) -> dict:
    """Percentile intervals [lo, hi] of roc_auc / spearman (signed drop) and roc_auc_abs /
    spearman_abs (|drop|): the AUC's resamples stratified by the label, Spearman's plain. With
    `seed_scores` ([S, n], each reference seed's scores, whose mean `scores` is) every resample
    also redraws the seeds and ranks by the mean of the drawn seeds' scores."""
    from attrprune.circuits.agreement import spearman

    per_seed = _per_seed(scores, seed_scores)
    n_seeds = len(per_seed)
    imp = importance.flatten().double().numpy()
    out = {}
    for key, label in (("roc_auc", positive), ("roc_auc_abs", positive_abs)):
        stat, sizes = stratified_auc([per_seed], label, [1.0])
        out[f"{key}_ci"] = list(percentile_interval(resample(stat, sizes, n_resamples, seed)[1], level))
    for key, target in (("spearman", imp), ("spearman_abs", np.abs(imp))):

        def rho(si, i, t=target):
            m = shares(si, n_seeds) @ per_seed
            return spearman(np.take_along_axis(m, i, -1), t[i])

        samples = resample(rho, [n_seeds, len(imp)], n_resamples, seed)[1]
        out[f"{key}_ci"] = list(percentile_interval(samples, level))
    return {
        **out,
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "level": level,
        "resampled": _what(n_seeds),
    }


def paired_auc_test(
    scores: torch.Tensor,
    baseline: torch.Tensor,
    positive: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    seed_scores=None,
    baseline_seed_scores=None,
) -> dict:
    """AUC(scores) − AUC(baseline) on the same components [n], with its percentile interval over
    resamples stratified by `positive` that draw the same components for both, and the two-sided
    bootstrap p-value (`p_value`). With both rankings' per-seed scores ([S, n]), the resamples
    also draw the same reference seeds for both (seed i of each explains the same reference set)."""
    if scores.shape != baseline.shape or scores.shape != positive.shape:
        raise ValueError(f"paired test needs the same components: {scores.shape}, {baseline.shape}, {positive.shape}")
    if (seed_scores is None) != (baseline_seed_scores is None):
        raise ValueError("paired test needs per-seed scores of both rankings or of neither")
    sets = [_per_seed(scores, seed_scores), _per_seed(baseline, baseline_seed_scores)]
    stat, sizes = stratified_auc(sets, positive, [1.0, -1.0])
    diff, samples = resample(stat, sizes, n_resamples, seed)
    lo, hi = percentile_interval(samples, level)
    return {
        "difference": diff,
        "lo": lo,
        "hi": hi,
        "p_value": p_value(samples),
        "n_resamples": n_resamples,
        "resampled": _what(len(sets[0])),
    }
