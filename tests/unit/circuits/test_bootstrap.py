"""Component bootstrap of ROC AUC and Spearman, and the paired AUC test between rankings."""

import pytest
import torch

from attrprune.circuits.agreement import agreement, roc_auc, spearman, top_k_mask
from attrprune.circuits.bootstrap import (
    batched_roc_auc,
    batched_spearman,
    paired_auc_test,
    percentile_interval,
    resample_indices,
)


def test_signed_and_absolute_drop_disagree_on_a_hand_made_case():
    # component 1 matters most (removing it *raises* the logit difference by 4); the scores are
    # magnitudes, so they rank it first: right against |drop|, wrong against the signed drop
    importance = torch.tensor([3.0, -4.0, 1.0, 0.0, 0.5])
    r = agreement(importance.abs(), importance, top_fraction=0.2)
    assert r["n_important"] == 1 and r["n_important_abs"] == 1
    assert r["roc_auc"] == pytest.approx(3 / 4)  # component 0 (score 3) outranks 3 of 4 others
    assert r["roc_auc_abs"] == 1.0
    # ranks of scores 4 5 3 1 2 vs of signed drops 5 1 4 2 3: sum d^2 = 20, 1 - 6*20/(5*24) = 0
    assert r["spearman"] == pytest.approx(0.0) and r["spearman_abs"] == pytest.approx(1.0)


def test_batched_statistics_equal_the_scalar_ones():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (4, 12), generator=g).double()  # ties on purpose
    other = torch.randn(4, 12, generator=g).double()
    labels = torch.zeros(4, 12, dtype=torch.bool)
    labels[:, :3] = True
    auc = batched_roc_auc(scores.numpy(), labels.numpy())
    rho = batched_spearman(scores.numpy(), other.numpy())
    for b in range(4):
        assert auc[b] == pytest.approx(roc_auc(scores[b], labels[b]))
        assert rho[b] == pytest.approx(spearman(scores[b], other[b]))


def test_stratified_resamples_keep_the_classes():
    strata = torch.tensor([True, False, False, True, False, False, False, False])
    idx = resample_indices(8, 300, seed=1, strata=strata)
    assert strata[idx].sum(1).eq(2).all()  # 2 positives in every resample
    assert torch.equal(strata[idx], strata.expand(300, 8))  # each position keeps its class
    assert torch.equal(idx, resample_indices(8, 300, seed=1, strata=strata))
    assert len(set(idx[:, 0].tolist())) == 2  # a positive slot draws among both positives


def _ranking(n: int, noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    importance = torch.randn(n, generator=g)
    return importance + noise * torch.randn(n, generator=g), importance


def test_agreement_intervals_contain_the_estimate_and_shrink_with_n():
    scores, importance = _ranking(60, 1.0, 0)
    r = agreement(scores, importance, 0.2, n_resamples=500, seed=0)
    for key in ("roc_auc", "spearman", "roc_auc_abs", "spearman_abs"):
        lo, hi = r[f"{key}_ci"]
        assert lo <= r[key] <= hi and lo < hi, key
    assert agreement(scores, importance, 0.2, n_resamples=500, seed=0) == r
    assert agreement(scores, importance, 0.2, n_resamples=500, seed=1)["roc_auc_ci"] != r["roc_auc_ci"]
    big = agreement(*_ranking(960, 1.0, 0), 0.2, n_resamples=500, seed=0)
    for key in ("roc_auc", "spearman"):
        assert big[f"{key}_ci"][1] - big[f"{key}_ci"][0] < (r[f"{key}_ci"][1] - r[f"{key}_ci"][0]) / 2, key


def test_paired_test_separates_a_better_ranking_and_not_an_equal_one():
    good, importance = _ranking(200, 0.2, 0)
    poor = torch.randn(200, generator=torch.Generator().manual_seed(9))
    positive = top_k_mask(importance, 0.1)
    t = paired_auc_test(poor, good, positive, n_resamples=999, seed=0)
    assert t["difference"] == pytest.approx(roc_auc(poor, positive) - roc_auc(good, positive))
    assert t["difference"] < -0.3 and t["hi"] < 0
    assert t["p_value"] == pytest.approx(2 / 1000)  # no resample crosses 0: the smallest p of 999
    same = paired_auc_test(good, good, positive, n_resamples=999, seed=0)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    # a slightly noisier copy of the good ranking: not separable
    close = paired_auc_test(good + 0.05 * poor, good, positive, n_resamples=999, seed=0)
    assert close["lo"] < 0 < close["hi"] or close["lo"] == close["hi"] == 0
    assert close["p_value"] > 0.05
    with pytest.raises(ValueError, match="same components"):
        paired_auc_test(good[:10], good, positive)


def test_percentile_interval_ignores_undefined_resamples():
    samples = torch.tensor([float("nan"), *range(101)])
    assert percentile_interval(samples) == pytest.approx((2.5, 97.5))
    with pytest.raises(ValueError, match="level"):
        percentile_interval(samples, 95)
