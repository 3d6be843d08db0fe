import pytest
import torch

from attrprune.circuits.agreement import agreement, roc_auc, spearman, top_k_mask


def test_roc_auc_extremes_and_ties():
    labels = torch.tensor([0, 0, 1, 1]).bool()
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert roc_auc(torch.ones(4), labels) == 0.5
    # one positive outranks both negatives, the other only one: (2 + 1) / 4
    assert roc_auc(torch.tensor([0.1, 0.5, 0.9, 0.3]), labels) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(torch.ones(3), torch.ones(3).bool())


def test_spearman_is_rank_correlation():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(0.5)


def test_top_k_and_agreement():
    importance = torch.tensor([0.0, 5.0, 1.0, 3.0, -1.0, 0.5, 0.2, 0.1, 0.3, 0.4])
    assert top_k_mask(importance, 0.2).nonzero().flatten().tolist() == [1, 3]
    result = agreement(importance * 2, importance, 0.2)  # a ranking equal to the truth
    assert result["roc_auc"] == 1.0 and result["spearman"] == pytest.approx(1.0) and result["n_important"] == 2


# Fixed inputs with ties, and the values the hand-written rank implementations (replaced by SciPy's
# Mann-Whitney U and spearmanrho) gave on them; the library versions must give the same numbers.
SCORES = torch.tensor([0.3, 1.2, 0.3, 2.5, 0.0, 0.9, 1.2, 0.4, 3.1, 0.3, 0.7, 1.9])
DROP = torch.tensor([0.1, 0.8, -0.2, 1.5, 0.0, -0.9, 0.4, 0.05, 2.2, 0.1, 0.3, -1.1])
OTHER = torch.tensor([1.0, 0.2, 0.5, 0.9, 0.1, 2.0, 0.2, 0.6, 1.1, 0.0, 0.4, 0.8])
POSITIVE = torch.tensor([0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0]).bool()


def test_library_statistics_keep_the_previous_values():
    assert roc_auc(SCORES, POSITIVE) == pytest.approx(0.9375, abs=1e-12)
    assert roc_auc(OTHER, POSITIVE) == pytest.approx(0.53125, abs=1e-12)
    assert spearman(SCORES, DROP) == pytest.approx(0.4841110294066407, abs=1e-12)
    assert spearman(OTHER, DROP) == pytest.approx(-0.035087719298245605, abs=1e-12)
    r = agreement(SCORES, DROP, 0.25)
    assert r["roc_auc"] == pytest.approx(0.9444444444444444, abs=1e-12)
    assert r["roc_auc_abs"] == 1.0
    assert r["spearman_abs"] == pytest.approx(0.929351830174792, abs=1e-12)
    assert (r["n_important"], r["n_important_abs"]) == (3, 3)


def test_top_k_rounds_the_count_up_as_documented():
    # ceil(0.1 * 12) = 2: rounding half or down would keep 1, MIB's int(k * n) too
    importance = torch.arange(12.0)
    assert top_k_mask(importance, 0.1).nonzero().flatten().tolist() == [10, 11]
    assert int(top_k_mask(torch.arange(16.0), 0.1).sum()) == 2  # the 2 important heads of 16
    assert int(top_k_mask(torch.arange(10.0), 0.01).sum()) == 1  # never empty
    # 0.1 * 30 is 3.0000000000000004 in floating point: still 3, not 4
    assert int(top_k_mask(torch.arange(30.0), 0.1).sum()) == 3
    with pytest.raises(ValueError, match="top fraction"):
        top_k_mask(importance, 1.0)
