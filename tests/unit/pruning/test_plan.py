"""`CompressionPlan`, the one way compress and export prune: a score method's masks (uniform or
per block by OWL), a calibrated pruner block by block; the model is dense again afterwards, the
record names what was done, and wrong combinations fail before anything is evaluated."""

import pytest
import torch
from tiny_models import calibration, prunable_weights, tiny_family

from attrprune.architectures import architecture_of
from attrprune.pruning.owl import owl_sparsities
from attrprune.pruning.plan import CompressionPlan
from attrprune.pruning.pruners import prune, weights_restored
from attrprune.relevance import ScoreOptions, compute_scores


def _scores(model, method="magnitude"):
    return compute_scores(method, model, calibration(), ScoreOptions(batch_size=4))


def _dense(model):
    return {n: w.clone() for n, w in prunable_weights(model).items()}


@pytest.mark.parametrize("method, scope", [("sparsegpt", "layer"), ("wanda", "row"), ("ria", "layer_owl")])
def test_a_pruner_through_the_plan_is_the_pruner_and_leaves_the_model_dense(method, scope):
    model, refset = tiny_family("llama"), calibration()
    dense = _dense(model)
    plan = CompressionPlan(model, method, scope, calibration=refset)
    with plan.pruned(0.5) as record:
        inside = _dense(model)
    assert all(torch.equal(w, dense[n]) for n, w in prunable_weights(model).items())
    base = scope.removesuffix("_owl")
    with weights_restored(model):
        prune(method, model, refset, 0.5, base, plan.options)
        assert all(torch.equal(w, inside[n]) for n, w in prunable_weights(model).items())
    assert record["measured"]["overall"] == pytest.approx(0.5, abs=0.01)
    assert (record["method"], record["scores_method"], record["scope"]) == (method, None, scope)
    assert record["allocation"] == ("owl" if scope.endswith("_owl") else "uniform")
    assert record["options"]["allocation"] == record["allocation"]
    assert record["calibration"]["n_tokens"] == int(refset.attention_mask.sum())
    if method == "sparsegpt":
        assert record["options"]["blocksize"] == 128 and record["options"]["percdamp"] == 0.01


def test_owl_scope_prunes_scores_per_block_at_the_owl_sparsities():
    model, refset = tiny_family("llama"), calibration()
    scores = _scores(model, "wanda")
    want = owl_sparsities(model, refset, 0.6)
    assert len(set(want.values())) > 1  # the allocation is not uniform here, so the test can fail
    with CompressionPlan(model, "wanda_onepass", "row_owl", scores, refset).pruned(0.6) as record:
        for name, (block, _) in architecture_of(model).linear_names(model).items():
            w = prunable_weights(model)[name]
            assert ((w == 0).sum(1) == int(want[block] * w.shape[1])).all()  # OWL's code: int(s·n) per row
    assert record["block_sparsity"] == pytest.approx(want)
    assert record["measured"]["overall"] == pytest.approx(0.6, abs=0.01)
    assert record["options"] == {"owl_m": 5.0, "owl_lambda": 0.08} and record["count"] == "floor"


def test_uniform_scores_plan_is_the_mask_of_the_scope():
    model = tiny_family("opt")
    scores = _scores(model)
    with CompressionPlan(model, "magnitude", "layer", scores).pruned(0.7) as record:
        for name, w in prunable_weights(model).items():
            # the Wanda repository's magnitude baseline: everything <= the value at index int(s·n)
            assert (w == 0).sum() == int(0.7 * w.numel()) + 1, name
    assert record["calibration"] is None and record["sparsity_requested_masks"] == pytest.approx(0.7, abs=1e-3)
    assert record["count"] == "at_or_below"


@pytest.mark.parametrize(
    "method, scope, given, message",
    [
        ("sparsegpt", "layer", {}, "runs on a calibration set"),
        ("lrp", "row_owl", {"scores": True}, "allocates OWL sparsities from a calibration set"),
        ("lrp", "row", {}, "prunes by lrp scores: give them"),
        ("sparsegpt", "layer", {"scores": True, "calibration": True}, "reads no scores"),
        ("sparsegpt", "global", {"calibration": True}, "scope 'global' is not available"),
    ],
)
def test_wrong_combinations_fail_at_once(method, scope, given, message):
    model = tiny_family("llama")
    scores = _scores(model) if given.get("scores") else None
    refset = calibration() if given.get("calibration") else None
    with pytest.raises(ValueError, match=message):
        CompressionPlan(model, method, scope, scores, refset)
