"""AurA on hand-made responses and on a tiny model against a computation written out here."""

import pytest
import torch
from tiny_models import TINY

from attrprune.circuits.components import component_names
from attrprune.correction.aura import apply_dampening, auroc, dampening, neuron_responses, restore


def test_auroc_counts_pairs_and_half_ties():
    # columns: a detector (3 of 4 toxic/non-toxic pairs ordered right), one with ties, a reversed one
    scores = torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 1.0, 5.0], [0.0, 0.0, 4.0]])
    labels = torch.tensor([1, 1, 0, 0])
    # column 0: toxic {3, 1} vs non-toxic {2, 0}: 3>2, 3>0, 1<2, 1>0 -> 3/4
    # column 1: toxic {1, 1} vs {1, 0}: tie, >, tie, > -> (2 + 0.5 * 2) / 4
    # column 2: toxic {0, 1} vs {5, 4}: never greater -> 0
    assert auroc(scores, labels).tolist() == [0.75, 0.75, 0.0]
    with pytest.raises(ValueError, match="toxic and non-toxic"):
        auroc(scores, torch.ones(4))


def test_dampening_is_one_minus_gini_above_chance_and_one_otherwise():
    alphas = dampening(torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert alphas.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]  # below chance: untouched, not dampened by |Gini|


class _Tok:
    """Whitespace tokenizer over digits, right padding with id 0 and an attention mask."""

    def __call__(self, texts, return_tensors, padding):
        ids = [[int(w) for w in t.split()] for t in texts]
        width = max(map(len, ids))
        return {
            "input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
        }


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_responses_are_max_over_tokens_and_dampening_scales_the_neurons_contribution(family):
    model = TINY[family](bias_free=False)
    names = component_names(model, "neuron")
    texts = ["5 17 3 9", "8 1", "42 42 7", "11 2 30"]
    labels = torch.tensor([1, 0, 1, 0])

    # by hand: the input of each up / fc1 module per sentence (unpadded), its linear map, max over tokens
    inputs = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, i[0])) for n in names
    ]
    expected = []
    with torch.no_grad():
        for t in texts:
            model(input_ids=torch.tensor([[int(w) for w in t.split()]]))
            row = []
            for n in names:
                lin = model.get_submodule(n)
                x = inputs[n].reshape(-1, inputs[n].shape[-1])  # [tokens, hidden] (OPT flattens already)
                out = x @ lin.weight.T + (lin.bias if lin.bias is not None else 0)  # [tokens, neurons]
                row.append(out.max(0).values)
            expected.append(torch.cat(row))
    for h in hooks:
        h.remove()
    responses = neuron_responses(model, _Tok(), texts, names, batch_size=3)  # a padded batch and a single one
    torch.testing.assert_close(responses, torch.stack(expected), rtol=1e-5, atol=1e-5)

    # AUROC by counting pairs by hand, then alpha
    pos, neg = responses[labels == 1], responses[labels == 0]
    hand = torch.zeros(responses.shape[1])
    for p in pos:
        for q in neg:
            hand += (p > q).float() + 0.5 * (p == q).float()
    hand /= len(pos) * len(neg)
    aurocs = auroc(responses, labels)
    torch.testing.assert_close(aurocs, hand.double())
    alphas = dampening(aurocs)
    assert (alphas < 1).any() and (alphas == 1).any()

    # the same intervention written as scaling each neuron's output column of down / fc2
    reference = TINY[family](bias_free=False)
    with torch.no_grad():
        start = 0
        for n in names:
            out_proj = reference.get_submodule(n.replace("up_proj", "down_proj").replace("fc1", "fc2"))
            size = out_proj.weight.shape[1]
            out_proj.weight.mul_(alphas[start : start + size].float()[None, :])
            start += size
    ids = torch.tensor([[5, 17, 3, 9, 42, 1]])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = apply_dampening(model, names, alphas)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits, rtol=1e-4, atol=1e-5)
    restore(model, saved)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
