"""The circuit search: grid scan + bisection, and `discover` on a real tiny model."""

import pytest
import torch
from tiny_models import tiny_llama

from attrprune.circuits.components import component_names, select
from attrprune.circuits.metrics import IOIBatch
from attrprune.circuits.sweep import check_scope, discover, sparsest_step
from attrprune.refsets import RefSet
from attrprune.relevance import ScoreOptions, compute_scores


@pytest.mark.parametrize("boundary", [0, 1, 37, 99, 100])
def test_monotone_boundary_is_found_exactly(boundary):
    calls = []

    def passes(k):
        calls.append(k)
        return k <= boundary

    assert sparsest_step(passes, 100) == boundary
    assert len(calls) <= 16 + 8  # scan + log2(grid cell)


def test_scan_sees_past_a_narrow_dip():
    # fails at 30..34 only, passes again up to 80: plain bisection from 0 would stop near 30
    assert sparsest_step(lambda k: k <= 80 and not 30 <= k <= 34, 100) == 80


def test_structured_granularities_refuse_row_scope():
    with pytest.raises(ValueError, match="valid: \\['global', 'layer'\\]"):
        check_scope("head", "row")


def test_discover_on_a_tiny_model():
    torch.manual_seed(0)
    model = tiny_llama()
    n, length = 12, 8
    ids = torch.randint(3, 100, (n, length))
    io, s = ids[:, 1].clone(), ids[:, 2].clone()  # names that occur in the prompt
    batch = IOIBatch(ids, torch.ones_like(ids), torch.full((n,), length - 1), io, s)
    minus, plus = torch.full_like(ids, -1), torch.full_like(ids, -1)
    plus[:, -1], minus[:, -1] = io, s
    refset = RefSet(ids, torch.ones_like(ids), plus, minus)
    scores = compute_scores("gradient", model, refset, ScoreOptions(batch_size=4, progress=False))
    names = component_names(model, "neuron")
    seed_scores = [
        select(scores, names, "neuron"),
        {k: torch.rand(v.shape) for k, v in select(scores, names, "neuron").items()},
    ]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result, masks, pooled = discover(model, batch, seed_scores, "neuron", "global", [0.0, 0.5], threshold=0.9)
    assert [c["sparsity"] for c in result["curve"]] == [0.0, 0.5, 0.0, 0.5]
    assert result["dense"]["normalized_logit_diff"] == pytest.approx(1.0)
    assert result["ablated"]["normalized_logit_diff"] == pytest.approx(0.0)
    c = result["circuit"]
    assert c["normalized_logit_diff"] >= 0.9 and c["n_components"] == 2 * 128
    assert c["n_kept"] == sum(int(m.sum()) for m in masks.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # restored
    torch.testing.assert_close(pooled[names[0]], (seed_scores[0][names[0]] + seed_scores[1][names[0]]) / 2)


@pytest.mark.parametrize("ablation_value", ["zero", "mean"])
def test_discover_reports_the_areas_of_its_own_curve(ablation_value):
    from attrprune.circuits.faithfulness import areas
    from attrprune.circuits.intervention import reference_means

    torch.manual_seed(0)
    model = tiny_llama()
    n, length = 12, 8
    ids = torch.randint(3, 100, (n, length))
    batch = IOIBatch(ids, torch.ones_like(ids), torch.full((n,), length - 1), ids[:, 1].clone(), ids[:, 2].clone())
    names = component_names(model, "head")
    seed_scores = [{k: torch.rand(4) for k in names} for _ in range(2)]
    means = reference_means(model, [(ids, torch.ones_like(ids))], "head") if ablation_value == "mean" else None
    sizes = [0.25, 0.5, 1.0]
    result, _, _ = discover(
        model, batch, seed_scores, "head", "global", [0.5], 0.9, sizes=sizes, ablation_value=ablation_value,
        means=means, n_resamples=50,
    )  # fmt: skip
    assert result["ablation_value"] == ablation_value
    assert sorted({c["sparsity"] for c in result["curve"]}) == [0.0, 0.5, 0.75]  # 0.5 once
    assert result["ablated"]["normalized_logit_diff"] == pytest.approx(0.0)
    fa = result["faithfulness"]
    # the areas are those of the seed-mean curve at the sizes' sparsities
    mean_f = [
        sum(c["normalized_logit_diff"] for c in result["curve"] if c["sparsity"] == round(1 - k, 9)) / 2 for k in sizes
    ]
    assert fa["cpr"] == pytest.approx(areas(sizes, mean_f)["cpr"])
    assert fa["cmd"] == pytest.approx(areas(sizes, mean_f)["cmd"])
    assert len(fa["per_seed"]) == 2 and fa["cpr_ci"][0] <= fa["cpr"] <= fa["cpr_ci"][1]
    c = result["circuit"]
    assert len(c["n_kept_ci"]) == 2 and 0 <= c["n_kept_ci"][0] <= c["n_kept_ci"][1] <= c["n_components"]
    assert len(c["per_seed_n_kept"]) == 2 and len(fa["per_prompt"]["dense"]) == n


def test_circuit_size_interval_reruns_the_search_on_resampled_prompts():
    from attrprune.circuits.sweep import sparsest_circuit

    class Evaluator:
        """Prompt p passes from the dense end up to its own step boundary b_p: its normalised
        logit difference is 1 while k <= b_p, 0 beyond; the mean passes 0.5 up to the median."""

        def __init__(self, boundaries):
            self.b = torch.tensor(boundaries, dtype=torch.float64)
            self.dense_ld, self.ablated_ld = torch.ones(len(boundaries)), torch.zeros(len(boundaries))

        def measure(self, masks):
            pruned = sum(int((~m).sum()) for m in masks.values())
            ld = (pruned <= self.b).float()
            return {"normalized_logit_diff": ld.mean().item()}, ld

    boundaries = list(range(10, 90, 2))  # 40 prompts, boundaries 10 ... 88
    scores = {"m": torch.arange(100.0)}
    ev = Evaluator(boundaries)
    _, c = sparsest_circuit(ev, scores, "global", 0.5, n_resamples=300, bootstrap_seed=0)
    # the full sample: 20 of the 40 prompts (boundaries 50 ... 88) pass at 50 pruned, 19 at 51
    assert c["n_kept"] == 100 - 50
    lo, hi = c["n_kept_ci"]
    assert lo < c["n_kept"] < hi and hi - lo >= 10  # the median of 40 uniform boundaries moves
    assert c["kept_fraction_ci"] == pytest.approx([lo / 100, hi / 100])
    same = sparsest_circuit(ev, scores, "global", 0.5, n_resamples=300, bootstrap_seed=0)[1]
    assert same["n_kept_ci"] == c["n_kept_ci"]
    tight = Evaluator([48] * 40)  # every prompt alike: no resample moves the circuit
    assert sparsest_circuit(tight, scores, "global", 0.5, n_resamples=100)[1]["n_kept_ci"] == [52, 52]


def test_mib_size_rounding_keeps_int_k_n():
    from attrprune.circuits.sweep import size_masks

    heads = {"a": torch.arange(8.0), "b": torch.arange(8.0) + 0.5}  # 16 heads
    kept = {r: int(sum(m.sum() for m in size_masks(heads, "global", 0.1, r).values())) for r in ("project", "mib")}
    # 0.1 of 16 = 1.6: MIB keeps int(1.6) = 1, the project prunes round(14.4) = 14 and keeps 2
    assert kept == {"project": 2, "mib": 1}
    top = size_masks(heads, "global", 0.1, "mib")
    assert top["b"][7] and int(top["a"].sum()) == 0  # the highest |score| is kept
    assert int(sum(m.sum() for m in size_masks(heads, "global", 0.29, "mib").values())) == int(0.29 * 16)
    per_layer = size_masks(heads, "layer", 0.3, "mib")  # int(0.3 * 8) = 2 per layer (round: 2, ceil: 3)
    assert [int(m.sum()) for m in per_layer.values()] == [2, 2]
    assert int(sum(m.sum() for m in size_masks(heads, "global", 1.0, "mib").values())) == 16
    with pytest.raises(ValueError, match="size rounding"):
        size_masks(heads, "global", 0.1, "floor")


def test_discover_under_mib_conventions():
    from attrprune.circuits.faithfulness import areas
    from attrprune.circuits.sweep import CircuitEvaluator, size_masks

    torch.manual_seed(0)
    model = tiny_llama()
    n, length = 12, 8
    ids = torch.randint(3, 100, (n, length))
    corrupted = ids.clone()
    corrupted[:, 1:3] = torch.randint(3, 100, (n, 2))
    batch = IOIBatch(ids, torch.ones_like(ids), torch.full((n,), length - 1), ids[:, 1].clone(), ids[:, 2].clone())
    batch.corrupted_ids = corrupted
    names = component_names(model, "head")
    seed_scores = [{k: torch.rand(4) for k in names}]
    sizes = [0.3, 0.6, 1.0]  # of 8 heads: MIB keeps 2, 4, 8; the project 2, 5, 8
    result, _, _ = discover(
        model, batch, seed_scores, "head", "global", [0.5], 0.9, sizes=sizes, ablation_value="counterfactual",
        n_resamples=50, size_rounding="mib",
    )  # fmt: skip
    assert result["size_rounding"] == "mib" and result["ablation_value"] == "counterfactual"
    assert sorted({c["sparsity"] for c in result["curve"]}) == [0.5]  # MIB's sizes are measured apart
    ev = CircuitEvaluator(model, batch, "head", seed_scores[0], ablation_value="counterfactual")
    f = [ev(size_masks(seed_scores[0], "global", k, "mib"))["normalized_logit_diff"] for k in sizes]
    assert [int(sum(m.sum() for m in size_masks(seed_scores[0], "global", k, "mib").values())) for k in sizes] == [
        2,
        4,
        8,
    ]
    assert result["faithfulness"]["cpr"] == pytest.approx(areas(sizes, f)["cpr"])
    assert result["ablated"]["normalized_logit_diff"] == pytest.approx(0.0)


def test_a_coarser_resolution_stops_early_on_the_passing_side():
    calls = []

    def passes(k):
        calls.append(k)
        return k <= 537

    step = sparsest_step(passes, 1000, resolution=10)
    assert 527 <= step <= 537 and passes(step)
    assert len(calls) <= 16 + 3 + 1  # scan + log2(62 / 10) + the check above
