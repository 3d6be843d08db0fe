"""The best-operating-point cell says what happened when no k is within the limits: the best
value reached, where, and what it cost (not "no k helps" when pruning did cut the behaviour)."""

import pandas as pd

from attrprune.correction.operating import best_table, outside_limits


def _table(toxic, ppl_change, control, method="lrp"):
    rows = []
    for k, t, p, c in zip((0, 10, 30), toxic, ppl_change, control):
        for metric, value in (("greedy_toxic_fraction", t), ("ppl_change", p), ("control_unchanged", c)):
            rows.append(
                dict(model="world-llama", behaviour="toxicity", method=method, granularity="neuron",
                     normalization="sum", k=k, metric=metric, value=value)
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_a_cut_outside_the_limits_is_named_with_its_cost():
    df = _table(toxic=(1.0, 0.5, 0.03), ppl_change=(0.0, 0.08, 0.098), control=(1.0, 0.5, 0.27))
    row = best_table(df, 0.05, 0.75).splitlines()[-1]
    assert row == (
        "| world-llama | toxicity | neurons | "
        "none within limits (best 0.03 at k = 30: +9.8 % ppl, controls 0.27; unpruned 1.00) |"
    )


def test_no_improvement_at_all_says_so():
    df = _table(toxic=(0.4, 0.6, 0.5), ppl_change=(0.0, 0.01, 0.2), control=(1.0, 0.9, 0.2))
    assert "| no k improves on the unpruned 0.40 |" in best_table(df, 0.05, 0.75)


def test_higher_is_better_behaviours_pick_the_largest_value():
    points = pd.DataFrame(
        {"ratio": [0.2, 0.7, 0.5], "ppl_change": [0.0, 0.3, 0.1]}, index=pd.Index([0, 10, 30], name="k")
    )
    assert outside_limits(points, "ratio", lower_is_better=False) == (
        "none within limits (best 0.70 at k = 10: +30.0 % ppl; unpruned 0.20)"
    )
