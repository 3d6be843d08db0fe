"""Component bootstrap of ROC AUC and Spearman, and the paired AUC test between rankings."""

import numpy as np
import pytest
import torch

from attrprune.circuits.agreement import agreement, roc_auc, roc_auc_of_classes, spearman, top_k_mask
from attrprune.circuits.bootstrap import p_value, paired_auc_test, percentile_interval, resample


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


def test_vectorised_statistics_equal_scikit_learn_and_scipy_per_row():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (4, 12), generator=g).double().numpy()  # ties on purpose
    other = torch.randn(4, 12, generator=g).double().numpy()
    labels = np.zeros(12, dtype=bool)
    labels[[0, 4, 7]] = True
    auc = roc_auc_of_classes(scores[:, labels], scores[:, ~labels])
    rho = spearman(scores, other)
    for b in range(4):
        assert auc[b] == pytest.approx(roc_auc_score(labels, scores[b]), abs=1e-12)
        assert auc[b] == pytest.approx(roc_auc(scores[b], labels), abs=1e-12)
        assert rho[b] == pytest.approx(spearmanr(scores[b], other[b]).statistic, abs=1e-12)


def test_stratified_resamples_keep_the_classes():
    positive = torch.tensor([True, False, False, True, False, False, False, False])
    drawn = []

    def statistic(si, ip, ineg):
        drawn.append((ip, ineg))
        return ip.sum(-1) * 0.0

    from attrprune.circuits.bootstrap import stratified_auc

    _, sizes = stratified_auc([np.zeros((1, 8))], positive, [1.0])
    assert sizes == (1, 2, 6)  # one reference seed, 2 positives, 6 negatives
    resample(statistic, sizes, 300, seed=1)
    ip = np.concatenate([d[0] for d in drawn[1:]])  # drawn[0]: the estimate on the units as given
    assert ip.shape == (300, 2) and set(np.unique(ip)) == {0, 1}  # a positive slot draws among both positives


def test_resample_is_seeded_crossed_and_holds_single_units():
    def mean_of(s, p):
        return s.mean(-1) * 100 + p.mean(-1)

    value, a = resample(mean_of, [3, 5], 400, seed=2)
    assert value == 100 + 2  # the units as given: means of 0..2 and 0..4
    assert np.array_equal(a, resample(mean_of, [3, 5], 400, seed=2)[1])
    assert not np.array_equal(a, resample(mean_of, [3, 5], 400, seed=3)[1])
    seeds_part = np.round(a / 100)  # both groups vary: the seeds' mean and the prompts'
    assert len(np.unique(seeds_part)) > 2 and len(np.unique(a - 100 * seeds_part)) > 5
    value, b = resample(mean_of, [1, 5], 400, seed=2)  # one seed: it stays, the prompts vary
    assert value == 2 and (np.floor(b / 100) == 0).all() and b.std() > 0


def test_p_value_counts_resamples_on_the_far_side_of_zero():
    assert p_value(np.arange(1, 1000)) == pytest.approx(2 / 1000)
    assert p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)
    assert p_value(np.zeros(9)) == 1.0


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


def test_seed_draws_widen_the_agreement_interval_when_the_seeds_disagree():
    good, importance = _ranking(200, 0.2, 0)
    other = torch.randn(200, generator=torch.Generator().manual_seed(5))
    per_seed = torch.stack([good, other])  # one reference set ranks well, the other at random
    pooled = per_seed.mean(0)
    plain = agreement(pooled, importance, 0.1, n_resamples=400, seed=0)
    seeds = agreement(pooled, importance, 0.1, n_resamples=400, seed=0, seed_scores=per_seed)
    assert seeds["roc_auc"] == plain["roc_auc"]  # the estimate is the pooled ranking's either way
    width = {k: r["roc_auc_ci"][1] - r["roc_auc_ci"][0] for k, r in (("plain", plain), ("seeds", seeds))}
    assert width["seeds"] > 2 * width["plain"] and "reference seeds" in seeds["resampled"]
    # paired on seeds as well: a ranking against itself differs by exactly 0 on every draw
    t = paired_auc_test(pooled, pooled, top_k_mask(importance, 0.1), 400, 0, 0.95, per_seed, per_seed)
    assert t["lo"] == t["hi"] == 0 and t["p_value"] == 1.0
    with pytest.raises(ValueError, match="of both rankings or of neither"):
        paired_auc_test(pooled, pooled, top_k_mask(importance, 0.1), 10, 0, 0.95, per_seed, None)
