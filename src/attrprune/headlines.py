"""What each stage's results say, in a few sentences: the "In short" list at the top of its
Markdown table (and so of the report's page for the stage), computed from the same data as the
tables below it, so that a reader sees the point before the numbers.

Each function takes the stage's summary as its tables module builds it and returns the bullets;
`section` puts them under a heading. Used by attrprune.tables (compression),
attrprune.circuits.tables, attrprune.correction.tables, attrprune.deploy_tables (structured) and
the world-card-table stage.
"""

from __future__ import annotations

import pandas as pd


def section(bullets: list[str]) -> str:
    """ "## In short" and one Markdown bullet per sentence; empty without bullets."""
    if not bullets:
        return ""
    return "## In short\n\n" + "".join(f"- {b}\n" for b in bullets) + "\n"


def _against(rows: pd.DataFrame, column: str, null: float) -> dict[str, list[str]]:
    """Methods whose paired 95 % interval of `column` lies above / below `null`, or covers it."""
    out: dict[str, list[str]] = {"above": [], "below": [], "neither": []}
    for name, r in rows.iterrows():
        lo, hi = r[f"{column}_lo"], r[f"{column}_hi"]
        if pd.isna(lo) or pd.isna(hi):
            continue
        out["above" if lo > null else "below" if hi < null else "neither"].append(name)
    return out


def _sides(parts: dict[str, list[str]], above: str, below: str) -> str:
    words = [(above, parts["above"]), (below, parts["below"]), ("not distinguishable", parts["neither"])]
    return "; ".join(f"{label}: {', '.join(sorted(names))}" for label, names in words if names)


def compression(summ: pd.DataFrame, paired: pd.DataFrame, at: float) -> list[str]:
    """Per model at sparsity `at`: the range of token perplexity (lm-eval word perplexity where a
    run has none) with lrp's value, then each method against lrp, paired over documents: word
    perplexity ratio and mean-accuracy difference whose 95 % interval excludes "no difference".
    `summ`: attrprune.tables.summary; `paired`: attrprune.tables.paired_differences."""
    out = []
    at_summ = summ[summ.sparsity.round(4) == round(at, 4)]
    at_paired = paired[paired.sparsity.round(4) == round(at, 4)] if len(paired) else paired
    for model, part in at_summ.groupby("model"):
        metric = "token_perplexity" if part["token_perplexity"].notna().any() else "perplexity"
        label = "token perplexity" if metric == "token_perplexity" else "lm-eval word perplexity"
        values = _by_name(part, metric)
        if values.empty:
            continue
        low, high = values.idxmin(), values.idxmax()
        sentence = (
            f"{model} at sparsity {at:.2f}: {label} from {values[low]:.2f} ({low}) to {values[high]:.2f} ({high})"
        )
        sentence += "".join(
            f", {k} {v:.2f}" for k, v in values.items() if k.split(" ")[0] == "lrp" and k not in (low, high)
        )
        sentence += "."
        rows = at_paired[(at_paired.model == model) & (at_paired.method != "lrp")] if len(at_paired) else at_paired
        if len(rows) and "vs_lrp_ppl_ratio_lo" in rows:
            rows = rows.set_axis(_names(rows))
            ppl = _sides(_against(rows, "vs_lrp_ppl_ratio", 1.0), "higher", "lower")
            acc = _sides(_against(rows, "vs_lrp_acc_diff", 0.0), "higher", "lower")
            if ppl:
                sentence += f" Word perplexity against lrp's (paired over documents, 95 %): {ppl}."
            if acc:
                sentence += f" Mean accuracy against lrp's: {acc}."
        out.append(sentence)
    return out


def _names(rows: pd.DataFrame) -> list[str]:
    """A method's name, with its scope where the method runs in several."""
    several = rows.groupby("method").scope.transform("nunique").gt(1)
    return [f"{m} ({s})" if many else m for m, s, many in zip(rows.method, rows.scope, several)]


def _by_name(rows: pd.DataFrame, column: str) -> pd.Series:
    values = pd.Series(rows[column].to_numpy(), index=_names(rows))
    return values.dropna()


def circuits(summary: pd.DataFrame) -> list[str]:
    """Per model, granularity, scope (and ablation and conventions where a run has several): the
    smallest faithful circuit with its 95 % interval over prompts and the methods reaching it, the
    methods whose interval overlaps it (not told apart by this run), and lrp's and random's sizes.
    `summary`: one row per circuit (model, method, granularity, scope, ablation_value, conventions,
    n_kept, n_kept_lo, n_kept_hi, n_components)."""
    out = []
    keys = ["model", "granularity", "scope", "ablation_value", "conventions"]
    several = {k: summary[k].nunique() > 1 for k in ("ablation_value", "conventions")}
    for (model, granularity, scope, ablation, conventions), part in summary.dropna(subset=["n_kept"]).groupby(keys):
        part = part.set_index("method")
        for bound in ("n_kept_lo", "n_kept_hi"):  # None where a run measured no interval
            part[bound] = pd.to_numeric(part[bound], errors="coerce")
        kept = part["n_kept"].astype(int)
        smallest = kept.min()
        winners = sorted(kept.index[kept == smallest])
        lo, hi = part.loc[winners, "n_kept_lo"].min(), part.loc[winners, "n_kept_hi"].max()
        interval = "" if pd.isna(lo) else f" [{int(lo):,}, {int(hi):,}]"  # as the table below
        overlapping = [
            m for m in sorted(kept.index) if m not in winners and part.at[m, "n_kept_lo"] <= hi and lo <= part.at[m, "n_kept_hi"]
        ]  # fmt: skip
        where = ", ".join(
            [scope] + [f"{ablation} ablation"] * several["ablation_value"] + [conventions] * several["conventions"]
        )
        sentence = (
            f"{model}, {granularity}s ({where}): the smallest circuit keeps {smallest:,}{interval} of "
            f"{int(part['n_components'].iloc[0]):,} ({', '.join(winners)})"
        )
        if overlapping:
            sentence += "; intervals overlapping it: " + ", ".join(f"{m} {kept[m]:,}" for m in overlapping)
        others = [f"{m} {kept[m]:,}" for m in ("lrp", "random") if m in kept and m not in winners + overlapping]
        out.append(sentence + (f"; {', '.join(others)}." if others else "."))
    return out


HEADLINE_WORDS = {"toxicity": "toxic fraction, lower is better", "repetition": "unique-token ratio, higher is better"}


def correction(df: pd.DataFrame, max_ppl_change: float, min_control_unchanged: float) -> list[str]:
    """Per model and behaviour: the methods (with granularity) whose best operating point within
    both limits improves on the unpruned model, with its value and k, and lrp's nearest miss where
    lrp has none (operating.best_point, operating.outside_limits; the same points as the "Best at"
    table). `df`: the correction curves (model, behaviour, method, granularity, normalization, k,
    metric, value)."""
    from attrprune.correction.operating import (
        LOWER_IS_BETTER,
        PRIMARY,
        best_at_any_k,
        best_point,
        outside_limits,
        side_effects,
    )

    out = []
    for (model, behaviour), grp in df.groupby(["model", "behaviour"]):
        metric, lower = PRIMARY[behaviour][0], LOWER_IS_BETTER[behaviour]
        within, lrp_misses, base = [], [], None
        for (method, gran, _), curve in grp.groupby(["method", "granularity", "normalization"]):
            points = curve.pivot_table(index="k", columns="metric", values="value", aggfunc="first")
            if base is None and metric in points and 0 in points.index and not pd.isna(points.at[0, metric]):
                base = points.at[0, metric]
            best = best_point(points, metric, lower, max_ppl_change, min_control_unchanged)
            if best is not None and best.name != 0:  # ties go to the smaller k, so k > 0 improves on k = 0
                within.append(f"{method} ({gran}s) {best[metric]:.2f} at k = {best.name:,}")
            elif method == "lrp" and best is not None:  # its best at any k; the unpruned value is said once above
                far = best_at_any_k(points, metric, lower)
                if far is None:  # no pruned k measured, or none improves
                    lrp_misses.append(f"lrp ({gran}s): {outside_limits(points, metric, lower)}")
                else:
                    facts = side_effects(far)
                    lrp_misses.append(
                        f"lrp ({gran}s) reaches {far[metric]:.2f} at k = {far.name:,}"
                        + (f" ({facts})" if facts else "")
                    )
        head = f"{model}, {behaviour} ({HEADLINE_WORDS[behaviour]}" + (
            f"; unpruned {base:.2f})" if base is not None else ")"
        )
        said = f"within both limits: {', '.join(sorted(within))}" if within else "no method within both limits"
        out.append(f"{head}: {said}" + ("; " + "; ".join(lrp_misses) if lrp_misses else "") + ".")
    return out


def structured(quality: pd.DataFrame, speed: dict[tuple, float], device: dict[str, str]) -> list[str]:
    """Per model and ratio (the fraction removed in every block): the range of token perplexity
    with lrp's and the dense model's, each method against lrp paired over documents (word
    perplexity ratio, mean-accuracy difference; 95 % intervals that exclude no difference), and
    lrp's forward-time ratio. `quality`: model, method, ratio, token_ppl (mean over reference sets;
    the dense model as method "dense"), vs_lrp_ppl_ratio_lo/_hi, vs_lrp_acc_diff_lo/_hi;
    `speed[(model, method, ratio)]`: forward time ÷ the dense model's; `device[model]`: where."""
    out = []
    pruned = quality[quality.method != "dense"]
    for (model, ratio), part in pruned.groupby(["model", "ratio"]):
        ppl = part.set_index("method")["token_ppl"].dropna()
        if ppl.empty:
            continue
        dense = quality[(quality.model == model) & (quality.method == "dense")]["token_ppl"].dropna()
        low, high = ppl.idxmin(), ppl.idxmax()
        sentence = (
            f"{model}, ratio {ratio:.2f}: token perplexity from {ppl[low]:.2f} ({low}) to {ppl[high]:.2f} ({high})"
        )
        sentence += (f", lrp {ppl['lrp']:.2f}" if "lrp" in ppl and "lrp" not in (low, high) else "") + (
            f", dense {dense.iloc[0]:.2f}" if len(dense) else ""
        )
        rows = part[part.method != "lrp"].set_index("method")
        if "vs_lrp_ppl_ratio_lo" in rows:
            ppl_words = _sides(_against(rows, "vs_lrp_ppl_ratio", 1.0), "higher", "lower")
            acc_words = _sides(_against(rows, "vs_lrp_acc_diff", 0.0), "higher", "lower")
            sentence += (
                f". Word perplexity against lrp's (paired over documents, 95 %): {ppl_words}" if ppl_words else ""
            )
            sentence += f". Mean accuracy against lrp's: {acc_words}" if acc_words else ""
        if (model, "lrp", ratio) in speed:
            sentence += f". lrp's model runs a forward pass in {speed[(model, 'lrp', ratio)]:.2f} × the dense model's time ({device.get(model, '')})"
        out.append(sentence + ".")
    return out


def world_card(misses: dict[str, list[str]], n_targets: int) -> list[str]:
    """`misses[model]`: the card's rows whose target the model misses."""
    if not any(misses.values()):
        return [f"Every model meets all {n_targets} targets of its card: the planted behaviours are there to find."]
    return [
        f"{model} misses {len(rows)} of {n_targets} targets: {'; '.join(rows)}. Results that rely on those "
        "behaviours are weaker for it."
        for model, rows in misses.items()
        if rows
    ]
