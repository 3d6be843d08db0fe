"""The operating points of the correction tables (`attrprune.correction.tables`): the best k of
every method under the perplexity and control-fidelity limits (`best_point`, `best_table`), and
where the curves carry per-prompt side effects, k chosen on the validation prompts and reported on
the test prompts with every side effect (`honest_table`; `attrprune.correction.side_effects`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from attrprune.io import model_name
from attrprune.records import BadRecord, check, read_text

# (greedy, sampled) behaviour metrics shown in the Markdown tables; the first is plotted.
PRIMARY = {
    "toxicity": ("greedy_toxic_fraction", "toxic_fraction"),
    "repetition": ("greedy_unique_ratio_window", "sampled_unique_ratio_window"),
}
LOWER_IS_BETTER = {"toxicity": True, "repetition": False}
CONTROL = "control_unchanged"
N_RESAMPLES, BOOTSTRAP_SEED = 1000, 0


def _fmt(x, spec: str) -> str:
    return "–" if x is None or pd.isna(x) else format(x, spec)


def _methods(methods) -> list[str]:
    return sorted(set(methods), key=lambda m: (m != "lrp", m))  # lrp first


def _pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{100 * x:+.1f}%"


def best_point(
    points: pd.DataFrame, metric: str, lower_is_better: bool, max_ppl_change: float, min_control_unchanged: float
) -> pd.Series | None:
    """The row of `points` (one curve: index k, columns metrics) with the best `metric` among the
    k whose ``ppl_change`` ≤ `max_ppl_change` and ``control_unchanged`` ≥ `min_control_unchanged`
    (not checked where the curve has no control prompts), the smallest such k on ties; None when
    no k qualifies. k = 0 always qualifies when measured (no change, every control unchanged)."""
    if metric not in points or "ppl_change" not in points:
        return None
    ok = points[metric].notna() & (points["ppl_change"] <= max_ppl_change)
    if CONTROL in points:
        ok &= points[CONTROL].isna() | (points[CONTROL] >= min_control_unchanged)
    candidates = points[ok].sort_index()
    if candidates.empty:
        return None
    values = candidates[metric] if lower_is_better else -candidates[metric]
    return candidates.loc[values.idxmin()]  # idxmin: the first, i.e. smallest k, among ties


def best_at_any_k(points: pd.DataFrame, metric: str, lower_is_better: bool) -> pd.Series | None:
    """The pruned k (> 0) of `points` (one curve: index k, columns metrics) with the best `metric`,
    limits aside (the smallest k on ties); None when no pruned k is measured, or when the best does
    not improve on the unpruned value (k = 0; compared only where k = 0 is measured)."""
    pruned = points[(points.index > 0) & points[metric].notna()].sort_index()
    if pruned.empty:
        return None
    values = pruned[metric] if lower_is_better else -pruned[metric]
    best = pruned.loc[values.idxmin()]
    unpruned = points[metric].get(0)
    if unpruned is not None and not pd.isna(unpruned):
        if not (best[metric] < unpruned if lower_is_better else best[metric] > unpruned):
            return None
    return best


def side_effects(point: pd.Series) -> str:
    """ "+9.8 % ppl, controls 0.27": the point's perplexity change and control fidelity, where measured."""
    facts = []
    if "ppl_change" in point and not pd.isna(point["ppl_change"]):
        facts.append(f"{100 * point['ppl_change']:+.1f} % ppl")
    if CONTROL in point and not pd.isna(point[CONTROL]):
        facts.append(f"controls {point[CONTROL]:.2f}")
    return ", ".join(facts)


def outside_limits(points: pd.DataFrame, metric: str, lower_is_better: bool) -> str:
    """Words for a curve where no k within the limits improves on k = 0 (`points`: index k,
    columns metrics): the best value any pruned k reaches regardless of the limits
    (`best_at_any_k`), at which k, with its `side_effects`, and the unpruned value, e.g.
    "none within limits (best 0.03 at k = 30: +9.8 % ppl, controls 0.27; unpruned 1.00)"; or
    "no k improves on the unpruned 1.00" where none does even outside them."""
    unpruned = points[metric].get(0)
    base = "" if unpruned is None or pd.isna(unpruned) else f"{unpruned:.2f}"
    best = best_at_any_k(points, metric, lower_is_better)
    if best is None:
        if not points.loc[points.index > 0, metric].notna().any():
            return f"no pruned k measured; unpruned {base}" if base else "no pruned k measured"
        return f"no k improves on the unpruned {base}"
    facts = side_effects(best)
    at = f"best {best[metric]:.2f} at k = {best.name:,}" + (f": {facts}" if facts else "")
    return f"none within limits ({at}" + (f"; unpruned {base})" if base else ")")


def _interval(point: pd.Series, metric: str) -> str:
    """ " [lo, hi]" of `metric` at a point where the prompts' bootstrap measured it, else ""."""
    lo, hi = point.get(f"{metric}_lo"), point.get(f"{metric}_hi")
    return "" if lo is None or pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]"


def best_table(df: pd.DataFrame, max_ppl_change: float = 0.05, min_control_unchanged: float = 0.75) -> str:
    """The best operating point of every method (see `best_point`), models × behaviours ×
    granularities (× normalisations when several) against methods."""
    methods = _methods(df.method)
    several = df.normalization.nunique() > 1
    out = [
        f"## Best at ≤ {100 * max_ppl_change:g} % perplexity and ≥ {min_control_unchanged:g} control fidelity "
        "(control_unchanged)",
        "",
        f"The best greedy headline each method reaches at a perplexity increase of at most "
        f"{100 * max_ppl_change:g} % while at least {min_control_unchanged:g} of the control replies "
        "(prompts of the same form without the behaviour) stay identical to the unpruned model's, "
        "with the smallest k reaching it: toxic fraction (lower is better) and unique-token ratio of "
        'the first generated tokens (higher is better). "none within limits": no k within both limits '
        "improves on the unpruned model (k = 0); the parentheses give the best value any k reaches "
        "regardless of the limits, with its perplexity change and control fidelity, and the unpruned "
        'value; "ctrl –": the run had no control prompts, so fidelity was not checked. Brackets: 95 % '
        f"percentile bootstrap intervals over the held-out prompts ({N_RESAMPLES:,} resamples; the control "
        "fidelity's over the control prompts); Δ: the headline's change from k = 0, its interval paired "
        "(the same resampled prompts at k and at k = 0). The perplexity change has no interval (lm-eval "
        "reports no standard error for word perplexity).",
        "",
        "| model | behaviour | granularity | " + ("normalisation | " if several else "") + " | ".join(methods) + " |",
        "|---|---|---|" + ("---|" if several else "") + "---|" * len(methods),
    ]
    for (model, behaviour, gran, norm), grp in df.groupby(["model", "behaviour", "granularity", "normalization"]):
        cells = []
        for m in methods:
            points = grp[grp.method == m].pivot_table(index="k", columns="metric", values="value", aggfunc="first")
            best = best_point(
                points, PRIMARY[behaviour][0], LOWER_IS_BETTER[behaviour], max_ppl_change, min_control_unchanged
            )
            headline = PRIMARY[behaviour][0]
            if best is None:
                cells.append("–")
            elif best.name == 0:
                cells.append(outside_limits(points, headline, LOWER_IS_BETTER[behaviour]))
            else:
                ctrl = best.get(CONTROL)
                change = best.get(f"{headline}_change")
                delta = (
                    ""
                    if change is None or pd.isna(change)
                    else f"Δ {change:+.2f} [{best[f'{headline}_change_lo']:+.2f}, {best[f'{headline}_change_hi']:+.2f}], "
                )
                cells.append(
                    f"{best[headline]:.2f}{_interval(best, headline)} (k={best.name:,}, {delta}"
                    f"{100 * best['ppl_change']:+.1f} %, ctrl {_fmt(ctrl, '.2f')}{_interval(best, CONTROL)})"
                )
        key = [model, behaviour, f"{gran}s"] + ([norm] if several else [])
        out.append("| " + " | ".join(key + cells) + " |")
    return "\n".join(out + [""])


def read_per_prompt(path: Path) -> list[dict]:
    """The per-prompt side-effect records of a curve (`correction.side_effects`); [] when empty."""
    out = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        try:
            r = json.loads(line)
            check(r, {"k": int, "set": str, "index": int, "split": str}, f"{path}:{n}")
        except BadRecord:
            raise
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a per-prompt record of the correction stage ({e!r})") from None
        out.append(r)
    return out


def _ci(cell) -> str:
    if cell is None:
        return "–"
    mean, lo, hi, n, distinct = cell
    eff = f"; {distinct} distinct" if distinct is not None else ""
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}] (n {n}{eff})"


def honest_table(
    curves: list[dict], per_prompt: list[list[dict]], max_ppl_change: float, min_control_unchanged: float
) -> str:
    """Per model × behaviour × granularity × method: k chosen on the validation prompts
    (`side_effects.choose_on_validation`) and, on the disjoint test prompts, the effect and every
    side effect with bootstrap intervals and effective samples; the unpruned model's row first."""
    from attrprune.correction.side_effects import COLUMNS, choose_on_validation, test_report

    rows = [(r, records) for r, records in zip(curves, per_prompt) if records]
    if not rows:
        return ""
    out = [
        "## Chosen on validation prompts, reported on test prompts, with side effects",
        "",
        "Prompts with an even index in their held-out file choose the operating point k (the best "
        f"headline with perplexity change ≤ {100 * max_ppl_change:g} % and ≥ {min_control_unchanged:g} of "
        "the behaviour's control replies unchanged, both on validation prompts); every number is measured "
        "on the odd-index prompts only. Each cell: mean [95 % percentile bootstrap interval over the test "
        f"prompts, {N_RESAMPLES:,} resamples] (n test prompts; distinct replies of the unpruned model to "
        "them, the effective sample). Every corrected model is measured on both behaviours: toxic = reply "
        "holds a planted insult; window ratio = unique-token ratio of the first generated tokens; loops = "
        "share of continuations (50 tokens for repetition prompts) holding a span of tokens repeated three "
        "times; ctrl unchanged = control replies identical to the unpruned model's; IOI on held-out names; "
        'facts = lm-eval world_facts accuracy; Δppl = dialogue perplexity change. "none": no k met the '
        "constraints and improved the headline on the validation prompts. AurA has one operating point and is reported without choice.",
        "",
        "| model | behaviour | granularity | method | k | "
        + " | ".join(h for h, _, _ in COLUMNS)
        + " | facts acc | Δppl |",
        "|---|---|---|---|---:|" + "---|" * (len(COLUMNS) + 2),
    ]
    seen_dense = set()
    for r, records in sorted(
        rows,
        key=lambda c: (
            model_name(c[0]),
            c[0]["behaviour"],
            c[0]["granularity"],
            c[0]["method"] != "lrp",
            c[0]["method"],
        ),
    ):
        task = r["primary_ppl_task"]
        metrics = {p["k"]: p["metrics"] for p in r["curve"]}
        ppl_change = {k: m[f"ppl_change:{task}"] for k, m in metrics.items()}
        ident = [model_name(r), r["behaviour"], f"{r['granularity']}s"]
        if tuple(ident) not in seen_dense:
            seen_dense.add(tuple(ident))
            report = test_report(records, 0, N_RESAMPLES, BOOTSTRAP_SEED)
            cells = [_ci(report.get((name, value))) for _, name, value in COLUMNS]
            out.append(
                "| "
                + " | ".join([*ident, "unpruned", "0", *cells, _fmt(metrics[0].get("acc:world_facts"), ".3f"), "–"])
                + " |"
            )
        if r["method"] == "aura":
            k = max(metrics)
        else:
            k = choose_on_validation(records, ppl_change, r["behaviour"], max_ppl_change, min_control_unchanged)
        if k is None:
            out.append("| " + " | ".join([*ident, r["method"], "none"] + ["–"] * (len(COLUMNS) + 2)) + " |")
            continue
        report = test_report(records, k, N_RESAMPLES, BOOTSTRAP_SEED)
        cells = [_ci(report.get((name, value))) for _, name, value in COLUMNS]
        facts = _fmt(metrics[k].get("acc:world_facts"), ".3f")
        out.append("| " + " | ".join([*ident, r["method"], f"{k:,}", *cells, facts, _pct(ppl_change[k])]) + " |")
    return "\n".join(out + [""])
