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
