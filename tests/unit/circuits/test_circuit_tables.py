"""Circuit tables: intervals in the summary, one agreement row per ranking, the paired test."""

import json

import pandas as pd
import pytest
import torch

from attrprune.circuits.agreement import agreement
from attrprune.circuits.faithfulness import bootstrap_areas
from attrprune.circuits.tables import circuit_tables


def _curve_file(path, method, scope, score, drop, granularity="neuron"):
    sizes = [0.1, 0.5, 1.0]
    points = torch.tensor([2 * k for k in sizes])[None, :, None] + 0.3 * torch.randn(1, 3, 20)
    gt = agreement(score, drop, 0.1, n_resamples=200, seed=0)
    record = {
        "model": "tiny",
        "method": method,
        "granularity": granularity,
        "scope": scope,
        "n_seeds": 1,
        "ablation_value": "zero",
        "dense": {"accuracy": 1.0, "logit_diff": 2.0, "normalized_logit_diff": 1.0},
        "curve": [
            {
                "seed_index": 0,
                "sparsity": s,
                "kept_fraction": 1 - s,
                "accuracy": 1.0,
                "logit_diff": 2 - 2 * s,
                "normalized_logit_diff": 1 - s,
            }
            for s in (0.0, 0.5, 0.9)
        ],
        "circuit": {
            "threshold": 0.9,
            "n_kept": 10,
            "n_components": 40,
            "kept_fraction": 0.25,
            "accuracy": 1.0,
            "normalized_logit_diff": 0.92,
        },  # fmt: skip
        "faithfulness": bootstrap_areas(sizes, points, torch.full((20,), 2.0), torch.zeros(20), 200, 0),
        "groundtruth": {**gt, "components": {"score": score.tolist(), "drop": drop.tolist()}},
    }
    path.write_text(json.dumps(record))
    return path


def test_tables_carry_intervals_counts_and_the_paired_test(tmp_path):
    g = torch.Generator().manual_seed(0)
    drop = torch.randn(40, generator=g)
    files = [
        _curve_file(tmp_path / "a.json", "lrp", "global", drop.abs() + 0.1 * torch.rand(40, generator=g), drop),
        _curve_file(tmp_path / "b.json", "random", "global", torch.rand(40, generator=g), drop),
        _curve_file(tmp_path / "c.json", "random", "layer", torch.rand(40, generator=g), drop),
    ]
    summary = circuit_tables(
        files, tmp_path / "c.csv", tmp_path / "s.csv", tmp_path / "c.md", tmp_path / "plots", tmp_path / "p.csv"
    )
    row = summary[summary.method == "lrp"].iloc[0]
    assert row.roc_auc_lo <= row.roc_auc <= row.roc_auc_hi and row.cpr_lo <= row.cpr <= row.cpr_hi
    assert row.n_ablated == 40 and row.n_important == 4 and row.n_important_abs == 4
    assert row.roc_auc_abs == pytest.approx(1.0)  # lrp's score here is |drop| + small noise

    paired = pd.read_csv(tmp_path / "p.csv")
    # random against lrp, signed and abs; random's second scope is the same ranking: one row each
    auc = paired[paired.statistic == "roc_auc"]
    assert len(auc) == 2 and set(auc.target) == {"signed", "abs"} and set(auc.method) == {"random"}
    # the areas per scope: random's global circuit against lrp's (lrp has no layer-scope circuit)
    areas = paired[paired.statistic.isin(["cpr", "cmd"])]
    assert len(areas) == 2 and set(areas.scope) == {"global"} and (areas.n_units == 20).all()
    abs_row = auc[auc.target == "abs"].iloc[0]
    assert abs_row.difference < 0 and abs_row.hi < 0 and abs_row.p_value < 0.05
    assert abs_row.value_baseline == pytest.approx(row.roc_auc_abs)

    md = (tmp_path / "c.md").read_text()
    assert f"{row.roc_auc_abs:.3f} [{row.roc_auc_abs_lo:.3f}, {row.roc_auc_abs_hi:.3f}]" in md
    assert "| 4 / 4 |" in md  # important components, signed / abs, beside the AUCs
    assert "## Paired test against lrp" in md and "| 4 / 4 of 40 |" in md
    assert "0.1, 0.5, 1" in md  # the sizes the areas are over
    assert "## Faithfulness areas against lrp, paired" in md
    assert "| zero | project |" in md and "No row here follows MIB's conventions" in md


def test_tables_say_which_rows_follow_mibs_conventions(tmp_path):
    g = torch.Generator().manual_seed(0)
    drop = torch.randn(40, generator=g)
    path = _curve_file(tmp_path / "a.json", "lrp", "global", drop.abs(), drop)
    r = json.loads(path.read_text())
    r.update(size_rounding="mib", ablation_value="counterfactual")
    path.write_text(json.dumps(r))
    summary = circuit_tables([path], tmp_path / "c.csv", tmp_path / "s.csv", tmp_path / "c.md", tmp_path / "plots")
    assert summary.conventions.tolist() == ["mib"]
    md = (tmp_path / "c.md").read_text()
    assert "| counterfactual | mib |" in md and "can be set beside MIB's numbers" in md


def test_paired_areas_see_a_small_shared_noise_difference_that_separate_intervals_miss():
    from attrprune.circuits.faithfulness import paired_areas

    g = torch.Generator().manual_seed(0)
    sizes, n = [0.1, 0.5, 1.0], 60
    prompt = torch.randn(n, generator=g)  # each prompt's difficulty, shared by both rankings
    base = torch.tensor([2 * k for k in sizes])[None, :, None] + prompt[None, None, :]  # [1 seed, sizes, prompts]
    dense, ablated = torch.full((n,), 2.0), torch.zeros(n)
    a = bootstrap_areas(sizes, base + 0.05, dense, ablated, 500, 0)  # uniformly a little better
    b = bootstrap_areas(sizes, base, dense, ablated, 500, 0)
    assert a["cpr_ci"][0] < b["cpr_ci"][1]  # the separate intervals overlap
    t = paired_areas(a, b, 500, 0)
    assert t["cpr"]["value"] == pytest.approx(0.05 * 0.9 / 2) and t["cpr"]["lo"] > 0 and t["cpr"]["p_value"] < 0.01
    same = paired_areas(b, b, 500, 0)
    assert same["cpr"]["value"] == 0 and same["cpr"]["p_value"] == 1.0
    other = bootstrap_areas(sizes, base, dense + 1, ablated, 500, 0)
    with pytest.raises(ValueError, match="same evaluation prompts"):
        paired_areas(a, other)


def test_published_circuit_agreement_reaches_the_summary_and_markdown(tmp_path):
    drop = torch.arange(16.0)
    path = _curve_file(tmp_path / "h.json", "lrp", "global", drop, drop, granularity="head")
    record = json.loads(path.read_text())
    published = {"circuit": "toy-ioi", "roc_auc": 0.875, "recall": 0.5, "precision": 0.5}
    record["published"] = {
        "circuit_size": {**published, "recall_by_class": {"name mover": 1.0, "induction": 0.0}},
        "threshold_circuit": {**published, "recall": 0.75, "precision": 0.25},
    }
    path.write_text(json.dumps(record))
    other = _curve_file(tmp_path / "n.json", "lrp", "global", drop, drop)  # no published circuit
    summary = circuit_tables([path, other], *(tmp_path / n for n in ("c.csv", "s.csv", "c.md", "plots")))
    row = summary[summary.granularity == "head"].iloc[0]
    assert row.published == "toy-ioi" and row.published_roc_auc == 0.875
    assert row["published_recall:name mover"] == 1.0 and row.published_recall_found == 0.75
    assert summary[summary.granularity == "neuron"].published.isna().all()
    md = (tmp_path / "c.md").read_text()
    assert "## Against the published circuit" in md
    assert "| tiny | lrp | toy-ioi | 0.875 | 0.50 | 0.75 / 0.25 | 1.00 | 0.00 |" in md
