"""attrprune.headlines: the "In short" sentences at the top of each stage's table say what the
numbers below them say: a method is better or worse than lrp only where its paired interval
excludes no difference, circuits whose size intervals overlap are named together, a correction
counts only within both limits, a missed world target is named."""

import math

import pandas as pd

from attrprune import headlines


def _summ(rows):
    return pd.DataFrame(
        rows, columns=["model", "method", "scope", "sparsity", "token_perplexity", "perplexity", "accuracy"]
    )


def _paired(rows):
    cols = ["model", "method", "scope", "sparsity", "vs_lrp_ppl_ratio", "vs_lrp_ppl_ratio_lo", "vs_lrp_ppl_ratio_hi",
            "vs_lrp_acc_diff", "vs_lrp_acc_diff_lo", "vs_lrp_acc_diff_hi"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_compression_compares_with_lrp_by_paired_intervals_not_point_values():
    summ = _summ([
        ("m", "lrp", "row", 0.5, 6.0, 8.0, 0.9),
        ("m", "wanda", "row", 0.5, 5.9, 7.9, 0.91),  # lower point value, interval covers 1
        ("m", "magnitude", "row", 0.5, 7.0, 9.5, 0.8),
        ("m", "random", "row", 0.5, 90.0, 300.0, 0.3),
        ("m", "lrp", "row", 0.7, 9.0, 12.0, 0.8),  # another sparsity: not read
    ])  # fmt: skip
    paired = _paired([
        ("m", "lrp", "row", 0.5, *[math.nan] * 6),
        ("m", "wanda", "row", 0.5, 0.99, 0.97, 1.01, 0.01, -0.02, 0.03),
        ("m", "magnitude", "row", 0.5, 1.2, 1.1, 1.3, -0.1, -0.15, -0.05),
        ("m", "random", "row", 0.5, 30.0, 25.0, 35.0, -0.6, -0.7, -0.5),
    ])  # fmt: skip
    (sentence,) = headlines.compression(summ, paired, 0.5)
    assert "token perplexity from 5.90 (wanda) to 90.00 (random), lrp 6.00." in sentence
    assert "higher: magnitude, random; not distinguishable: wanda." in sentence
    assert "Mean accuracy against lrp's: lower: magnitude, random; not distinguishable: wanda." in sentence


def test_circuits_name_the_methods_whose_interval_overlaps_the_smallest():
    summary = pd.DataFrame(
        [
            ("m", "lrp", "neuron", "global", "zero", "project", 38, 26, 60, 1024),
            ("m", "gradient", "neuron", "global", "zero", "project", 46, 31, 70, 1024),  # overlaps lrp's
            ("m", "wanda", "neuron", "global", "zero", "project", 200, 150, 260, 1024),  # does not
            ("m", "random", "neuron", "global", "zero", "project", 680, 444, 783, 1024),
        ],
        columns=["model", "method", "granularity", "scope", "ablation_value", "conventions", "n_kept",
                 "n_kept_lo", "n_kept_hi", "n_components"],
    )  # fmt: skip
    (sentence,) = headlines.circuits(summary)
    assert sentence == (
        "m, neurons (global): the smallest circuit keeps 38 [26, 60] of 1,024 (lrp); "
        "intervals overlapping it: gradient 46; random 680."
    )


def test_circuits_without_intervals_name_the_smallest_alone():
    summary = pd.DataFrame(
        [("m", "lrp", "head", "global", "zero", "project", 2, None, None, 16),
         ("m", "random", "head", "global", "zero", "project", 9, None, None, 16)],
        columns=["model", "method", "granularity", "scope", "ablation_value", "conventions", "n_kept",
                 "n_kept_lo", "n_kept_hi", "n_components"],
    )  # fmt: skip
    assert headlines.circuits(summary) == ["m, heads (global): the smallest circuit keeps 2 of 16 (lrp); random 9."]


def _curve(method, gran, points):
    """Rows of the correction curves: points = {k: (toxic fraction, ppl change, controls unchanged)}."""
    rows = []
    for k, (toxic, ppl, ctrl) in points.items():
        for metric, value in (("greedy_toxic_fraction", toxic), ("ppl_change", ppl), ("control_unchanged", ctrl)):
            rows.append(("m", "toxicity", method, gran, "sum", k, metric, value))
    return rows


def _correction(*curves):
    cols = ["model", "behaviour", "method", "granularity", "normalization", "k", "metric", "value"]
    return pd.DataFrame([r for c in curves for r in c], columns=cols)


def test_correction_counts_a_method_only_within_both_limits():
    df = _correction(
        # lrp: toxicity gone at k = 75, but perplexity +15 %: outside the limits
        _curve("lrp", "neuron", {0: (1.0, 0.0, 1.0), 30: (1.0, 0.01, 0.9), 75: (0.0, 0.15, 0.1)}),
        # random: a small improvement within both limits at k = 30
        _curve("random", "neuron", {0: (1.0, 0.0, 1.0), 30: (0.9, 0.01, 0.8), 75: (0.5, 0.2, 0.2)}),
    )
    (sentence,) = headlines.correction(df, max_ppl_change=0.05, min_control_unchanged=0.75)
    assert sentence == (
        "m, toxicity (toxic fraction, lower is better; unpruned 1.00): within both limits: random (neurons) 0.90 "
        "at k = 30; lrp (neurons) reaches 0.00 at k = 75 (+15.0 % ppl, controls 0.10)."
    )
    strict = headlines.correction(df, max_ppl_change=0.0, min_control_unchanged=0.75)[0]
    assert "no method within both limits" in strict and "random (neurons) 0.90" not in strict


def test_structured_reads_the_paired_comparison_and_the_speed():
    quality = pd.DataFrame(
        [
            ("m", "lrp", 0.5, 6.5, math.nan, math.nan, math.nan, math.nan),
            ("m", "wanda", 0.5, 6.1, 0.8, 0.9, -0.2, -0.1),
            ("m", "random", 0.5, 33.0, 6.0, 8.0, -0.05, 0.1),
            ("m", "dense", 0.0, 5.7, math.nan, math.nan, math.nan, math.nan),
        ],
        columns=["model", "method", "ratio", "token_ppl", "vs_lrp_ppl_ratio_lo", "vs_lrp_ppl_ratio_hi",
                 "vs_lrp_acc_diff_lo", "vs_lrp_acc_diff_hi"],
    )  # fmt: skip
    (sentence,) = headlines.structured(quality, {("m", "lrp", 0.5): 0.41}, {"m": "cpu"})
    assert sentence.startswith(
        "m, ratio 0.50: token perplexity from 6.10 (wanda) to 33.00 (random), lrp 6.50, dense 5.70."
    )
    assert "higher: random; lower: wanda." in sentence
    assert "Mean accuracy against lrp's: lower: wanda; not distinguishable: random." in sentence
    assert sentence.endswith("0.41 × the dense model's time (cpu).")


def test_world_card_names_each_missed_target():
    assert "meets all 12 targets" in headlines.world_card({"a": [], "b": []}, 12)[0]
    (line,) = headlines.world_card({"a": [], "b": ["IOI accuracy, held-out names 0.92 (≥ 0.95)"]}, 12)
    assert line.startswith("b misses 1 of 12 targets: IOI accuracy, held-out names 0.92 (≥ 0.95).")


def test_section_is_empty_without_bullets():
    assert headlines.section([]) == ""
    assert headlines.section(["a.", "b."]) == "## In short\n\n- a.\n- b.\n\n"
