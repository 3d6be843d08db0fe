"""How well a method's component ranking agrees with ablation importance.

* `roc_auc`: the score as a classifier of the top-k ablation-important components (the
  Mann-Whitney form: the probability that a random important component outscores a random other
  one, ties counting one half);
* `spearman`: rank correlation of score and ablation drop (average ranks for ties).

`agreement` scores a ranking against the signed drop (removing the component lowers the logit
difference by that much; negative when removing it helps) and against its magnitude |drop| (the
component matters either way). The scores are taken as stored: every method's scores are
magnitudes (``scores.aggregation: abs``), so they rank "matters", not "helps"; against the
signed drop a component whose removal helps counts as unimportant. With `n_resamples`, each
number gets a bootstrap interval over components (`attrprune.circuits.bootstrap`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _array(x) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def roc_auc_of_classes(positives, negatives):
    """ROC AUC of the scores of positives [..., n_pos] against negatives [..., n_neg] (per leading
    index): SciPy's Mann-Whitney U of the positives over n_pos · n_neg, i.e. the probability that
    a random positive outscores a random negative, ties one half (scikit-learn's roc_auc_score)."""
    from scipy.stats import mannwhitneyu

    positives, negatives = _array(positives), _array(negatives)
    n_pos, n_neg = positives.shape[-1], negatives.shape[-1]
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes; got {n_pos} positive and {n_neg} negative")
    u = mannwhitneyu(positives, negatives, axis=-1, method="asymptotic").statistic
    return u / (n_pos * n_neg)


def roc_auc(scores, positive) -> float:
    """ROC AUC of `scores` [n] for the boolean labels `positive` [n]."""
    labels = _array(positive).astype(bool).flatten()
    s = _array(scores).flatten()
    return float(roc_auc_of_classes(s[labels], s[~labels]))


def spearman(a, b):
    """Spearman's rank correlation of a and b [..., n] along the last axis (SciPy's spearmanrho,
    average ranks for ties); NaN where either is constant."""
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanrho

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        rho = spearmanrho(_array(a), _array(b), axis=-1).statistic
    return float(rho) if np.ndim(rho) == 0 else rho


def top_k_mask(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """The ceil(fraction · n) most important components (largest drop), ties by position."""
    if not 0 < fraction < 1:
        raise ValueError(f"top fraction must be in (0, 1), got {fraction}")
    k = max(1, math.ceil(round(fraction * len(importance), 6)))  # round: 0.1 * 30 is 3.0000000000000004
    order = torch.sort(importance, descending=True, stable=True).indices
    mask = torch.zeros(len(importance), dtype=torch.bool)
    mask[order[:k]] = True
    return mask


def agreement(
    scores: torch.Tensor,
    importance: torch.Tensor,
    top_fraction: float,
    n_resamples: int | None = None,
    seed: int = 0,
    seed_scores=None,
) -> dict:
    """ROC AUC (top `top_fraction` by the signed drop as positives) and Spearman of flat tensors,
    and the same against |drop| (``*_abs``); with `n_resamples`, their 95 % bootstrap intervals
    (``*_ci``: [lo, hi]), over components and, given `seed_scores` ([S, n], the reference seeds'
    scores whose mean `scores` is), over reference seeds too."""
    scores, importance = scores.flatten().float(), importance.flatten().float()
    if scores.shape != importance.shape:
        raise ValueError(f"{len(scores)} scores for {len(importance)} ablated components")
    top = top_k_mask(importance, top_fraction)
    top_abs = top_k_mask(importance.abs(), top_fraction)
    result = {
        "roc_auc": roc_auc(scores, top),
        "spearman": spearman(scores, importance),
        "roc_auc_abs": roc_auc(scores, top_abs),
        "spearman_abs": spearman(scores, importance.abs()),
        "n_components": len(scores),
        "n_important": int(top.sum()),
        "n_important_abs": int(top_abs.sum()),
        "top_fraction": top_fraction,
    }
    if n_resamples:
        from attrprune.circuits.bootstrap import bootstrap_agreement

        result.update(bootstrap_agreement(scores, importance, top, top_abs, n_resamples, seed, seed_scores=seed_scores))
    return result
