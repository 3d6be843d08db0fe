"""Bootstrap intervals for circuit metrics, and the paired bootstrap test between two rankings.

* `resample_indices`: B resamples of n units with replacement from a seeded generator, plain or
  stratified by a boolean label (each class resampled within itself, so every resample keeps the
  numbers of important and other components: with 2 important heads of 16 a plain resample has
  none 12 % of the time, and the ROC AUC is undefined there; pROC's default for AUC intervals);
* `percentile_interval`: the percentile interval (2.5 % and 97.5 % quantiles for 95 %) of the
  resampled statistic, resamples where it is undefined (NaN) left out;
* `bootstrap_agreement`: intervals of the ROC AUC (stratified by the label) and the Spearman
  correlation (plain) of a ranking against the ablation drop, signed and absolute;
* `paired_auc_test`: the AUC difference of two rankings of the same components on the same
  resamples, its interval and a two-sided bootstrap p-value.

Everything is a deterministic function of the seed: the per-method intervals and the paired
test draw the very same resamples (same n, labels and seed).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def resample_indices(n: int, n_resamples: int, seed: int, strata: torch.Tensor | None = None) -> torch.Tensor:
    """[B, n] indices drawn with replacement; with boolean `strata` [n], position i of every
    resample is drawn from the class of unit i (class sizes kept)."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"bootstrap needs n >= 1 units and resamples, got n={n}, resamples={n_resamples}")
    g = _generator(seed)
    if strata is None:
        return torch.randint(n, (n_resamples, n), generator=g)
    strata = strata.bool().flatten()
    if len(strata) != n:
        raise ValueError(f"strata has {len(strata)} labels for {n} units")
    out = torch.empty(n_resamples, n, dtype=torch.long)
    for cls in (True, False):
        members = torch.nonzero(strata == cls).flatten()  # [n_cls]
        if len(members):
            out[:, members] = members[torch.randint(len(members), (n_resamples, len(members)), generator=g)]
    return out


def resample_counts(n: int, n_resamples: int, seed: int) -> torch.Tensor:
    """[B, n] float64 counts of each unit in B plain resamples (rows sum to n)."""
    idx = resample_indices(n, n_resamples, seed)
    return torch.zeros(n_resamples, n, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones_like(idx, dtype=torch.float64)
    )


def percentile_interval(samples: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """(lower, upper) percentile interval of `samples`, NaNs left out (NaN, NaN if all are)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    x = np.asarray(torch.as_tensor(samples, dtype=torch.float64).flatten())
    x = x[~np.isnan(x)]
    if not len(x):
        return float("nan"), float("nan")
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _ranks(x: np.ndarray) -> np.ndarray:
    return rankdata(x, axis=-1)  # average ranks for ties, per row


def batched_roc_auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties one half) of each row of scores [B, n] for labels [B, n]."""
    n_pos = positive.sum(-1)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = (_ranks(scores) * positive).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def batched_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair of a, b [B, n] (NaN where a row is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def bootstrap_auc(scores: torch.Tensor, positive: torch.Tensor, n_resamples: int, seed: int) -> np.ndarray:
    """[B] AUCs of `scores` [n] on resamples stratified by `positive` [n]."""
    idx = resample_indices(len(scores), n_resamples, seed, positive).numpy()
    return batched_roc_auc(scores.double().numpy()[idx], positive.bool().numpy()[idx])


def bootstrap_spearman(a: torch.Tensor, b: torch.Tensor, n_resamples: int, seed: int) -> np.ndarray:
    idx = resample_indices(len(a), n_resamples, seed).numpy()
    return batched_spearman(a.double().numpy()[idx], b.double().numpy()[idx])


def bootstrap_agreement(
    scores: torch.Tensor,
    importance: torch.Tensor,
    positive: torch.Tensor,
    positive_abs: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Percentile intervals [lo, hi] of roc_auc / spearman (signed drop) and roc_auc_abs /
    spearman_abs (|drop|); the labels are the components' own, carried into each resample."""
    scores, importance = scores.flatten().double(), importance.flatten().double()
    return {
        "roc_auc_ci": list(percentile_interval(bootstrap_auc(scores, positive, n_resamples, seed), level)),
        "spearman_ci": list(percentile_interval(bootstrap_spearman(scores, importance, n_resamples, seed), level)),
        "roc_auc_abs_ci": list(percentile_interval(bootstrap_auc(scores, positive_abs, n_resamples, seed), level)),
        "spearman_abs_ci": list(
            percentile_interval(bootstrap_spearman(scores, importance.abs(), n_resamples, seed), level)
        ),
        "n_resamples": n_resamples,
        "bootstrap_seed": seed,
        "level": level,
    }


def paired_auc_test(
    scores: torch.Tensor,
    baseline: torch.Tensor,
    positive: torch.Tensor,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """AUC(scores) − AUC(baseline) on the same components [n], with its percentile interval over
    the same stratified resamples for both, and the two-sided bootstrap p-value
    p = min(1, 2 · min(1 + #{Δ* ≤ 0}, 1 + #{Δ* ≥ 0}) / (B + 1)) (the +1 keeps p above 0: the
    smallest p a run of B resamples can show is 2 / (B + 1))."""
    if scores.shape != baseline.shape or scores.shape != positive.shape:
        raise ValueError(f"paired test needs the same components: {scores.shape}, {baseline.shape}, {positive.shape}")
    idx = resample_indices(len(scores), n_resamples, seed, positive).numpy()
    labels = positive.bool().numpy()[idx]
    diff_b = batched_roc_auc(scores.double().numpy()[idx], labels) - batched_roc_auc(
        baseline.double().numpy()[idx], labels
    )
    full = positive.bool().numpy()[None]
    diff = float(
        batched_roc_auc(scores.double().numpy()[None], full)[0]
        - batched_roc_auc(baseline.double().numpy()[None], full)[0]
    )
    lo, hi = percentile_interval(torch.from_numpy(diff_b), level)
    below, above = int((diff_b <= 0).sum()), int((diff_b >= 0).sum())
    p = min(1.0, 2 * (1 + min(below, above)) / (n_resamples + 1))
    return {"difference": diff, "lo": lo, "hi": hi, "p_value": p, "n_resamples": n_resamples}
