"""Circuit tables and plots from the `circuit` stage's curve.json files.

* ``circuits.csv``: the curves, tidy: one row per model × method × granularity × scope × seed ×
  sparsity (kept fraction, accuracy, logit difference, normalised logit difference);
* ``circuits_summary.csv``: per model × method × granularity × scope, the ablation value, the
  circuit at the threshold (kept components with their 95 % interval over evaluation prompts,
  ``n_kept_lo`` / ``n_kept_hi``, and each reference seed's own circuit size, kept fraction, its
  metrics), MIB's faithfulness areas CPR and CMD of the seed-mean curve with 95 % intervals over
  evaluation prompts and reference seeds (``cpr_lo`` / ``cpr_hi`` ...), and the ranking's agreement with exhaustive ablation: ROC AUC of
  the top ablation-important components and Spearman, against the signed drop (``roc_auc``,
  ``spearman``) and against |drop| (``roc_auc_abs``, ``spearman_abs``), each with its
  component-bootstrap 95 % interval, and the numbers of components and of positives;
* ``circuits_paired.csv``: the paired bootstraps of each method other than lrp against lrp
  (``statistic``): ``roc_auc`` per model × granularity × target (signed drop, |drop|),
  AUC(method) − AUC(lrp) on the same resampled components
  (`attrprune.circuits.bootstrap.paired_auc_test`, the resamples of the per-method intervals);
  ``cpr`` / ``cmd`` per model × granularity × scope, the areas' difference on the same resampled
  prompts and reference seeds (`attrprune.circuits.faithfulness.paired_areas`); each with the
  difference, its 95 % interval, a two-sided bootstrap p-value and what was resampled;
* ``circuits.md``: the circuits with their areas, the agreement with ablation, the paired tests,
  and the normalised logit difference vs sparsity (mean ± std over seeds), as Markdown, and as
  HTML beside it (``circuits.html``, for the report);
* ``circuits_{model}.png`` and ``.svg``: accuracy and normalised logit difference against the kept
  fraction (log axis), one panel per granularity, a line per method and scope with a ± std band
  over seeds and the threshold drawn (`attrprune.plotstyle`).

Run: ``python -m attrprune circuit-tables --curves a/curve.json,b/curve.json --csv c.csv
--summary-csv s.csv --markdown c.md --plots-dir plots``
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from attrprune import headlines
from attrprune.circuits.paired import BASELINE, KEYS, _fmt, paired_areas_markdown, paired_markdown, paired_tests
from attrprune.io import atomic_path, model_name, pyplot
from attrprune.lineage import with_code_section
from attrprune.records import read_circuit_curve
from attrprune.report_html import write_markdown

# agreement statistics: (column, curve.json key); each has _lo / _hi columns from its "_ci"
AGREEMENT = [
    ("roc_auc", "roc_auc"),
    ("spearman", "spearman"),
    ("roc_auc_abs", "roc_auc_abs"),
    ("spearman_abs", "spearman_abs"),
]
CURVE_COLUMNS = [*KEYS, "seed_index", "sparsity", "kept_fraction", "accuracy", "logit_diff", "normalized_logit_diff"]


def load_curves(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy curves, one summary row per curve file)."""
    curves, summary = [], []
    for path in paths:
        r = read_circuit_curve(path)
        ident = {"model": model_name(r), "method": r["method"], "granularity": r["granularity"], "scope": r["scope"]}
        curves += [{**ident, **point} for point in r["curve"]]
        c, gt, fa = r["circuit"], r.get("groundtruth") or {}, r.get("faithfulness") or {}
        pub = (r.get("published") or {}).get("circuit_size") or {}
        pub_found = (r.get("published") or {}).get("threshold_circuit") or {}
        stats = {}
        for column, key in [("cpr", "cpr"), ("cmd", "cmd"), *AGREEMENT]:
            source = fa if column in ("cpr", "cmd") else gt
            lo, hi = source.get(f"{key}_ci") or (None, None)
            stats.update({column: source.get(key), f"{column}_lo": lo, f"{column}_hi": hi})
        summary.append(
            {
                **ident,
                "ablation_value": r.get("ablation_value", "zero"),
                "conventions": r.get("size_rounding", "project"),
                "threshold": c["threshold"],
                "n_kept": c["n_kept"],
                "n_kept_lo": (c.get("n_kept_ci") or [None, None])[0],
                "n_kept_hi": (c.get("n_kept_ci") or [None, None])[1],
                "n_kept_per_seed": " ".join(str(n) for n in c.get("per_seed_n_kept") or []) or None,
                "n_components": c["n_components"],
                "kept_fraction": c["kept_fraction"],
                "accuracy": c["accuracy"],
                "normalized_logit_diff": c["normalized_logit_diff"],
                "dense_accuracy": r["dense"]["accuracy"],
                "dense_logit_diff": r["dense"]["logit_diff"],
                **stats,
                "areas_resampled": fa.get("resampled"),
                "n_ablated": gt.get("n_components"),
                "n_important": gt.get("n_important"),
                "n_important_abs": gt.get("n_important_abs"),
                "n_seeds": r["n_seeds"],
                # against a published circuit (head circuits of models that have one)
                "published": pub.get("circuit"),
                "published_roc_auc": pub.get("roc_auc"),
                "published_recall": pub.get("recall"),
                "published_recall_found": pub_found.get("recall"),
                "published_precision_found": pub_found.get("precision"),
                **{f"published_recall:{cls}": v for cls, v in (pub.get("recall_by_class") or {}).items()},
            }
        )
    if not curves:
        raise ValueError("no curve files given: the circuit stage produced nothing to tabulate")
    return (
        pd.DataFrame(curves)[CURVE_COLUMNS].sort_values([*KEYS, "seed_index", "sparsity"]),
        pd.DataFrame(summary).sort_values(KEYS),
    )


def _ci(row, column: str, digits: int = 3) -> str:
    """ "0.874 [0.833, 0.915]": the value and its interval (the value alone without one)."""
    value, lo, hi = (getattr(row, c, None) for c in (column, f"{column}_lo", f"{column}_hi"))
    if value is None or pd.isna(value):
        return "–"
    if lo is None or pd.isna(lo):
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _size(r) -> str:
    """ "225 [198, 260] / 1,024": kept components, their interval over prompts, the total."""
    lo, hi = getattr(r, "n_kept_lo", None), getattr(r, "n_kept_hi", None)
    interval = "" if lo is None or pd.isna(lo) else f" [{int(lo):,}, {int(hi):,}]"
    return f"{r.n_kept:,}{interval} / {r.n_components:,}"


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| model | method | granularity | scope | ablation | conventions | kept [95 % over prompts] / total "
        "| per seed | kept fraction | accuracy | norm. LD | CPR ↑ | CMD ↓ |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        per_seed = getattr(r, "n_kept_per_seed", None)
        lines.append(
            f"| {r.model} | {r.method} | {r.granularity} | {r.scope} | {r.ablation_value} | "
            f"{getattr(r, 'conventions', 'project')} | {_size(r)} | "
            f"{'–' if per_seed is None or pd.isna(per_seed) else per_seed} | {_fmt(r.kept_fraction)} | "
            f"{_fmt(r.accuracy)} | {_fmt(r.normalized_logit_diff)} | {_ci(r, 'cpr')} | {_ci(r, 'cmd')} |"
        )
    return "\n".join(lines)


def _one_per_ranking(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per model × method × granularity: the agreement uses the seed-averaged scores,
    which do not depend on the circuit's scope."""
    keys = ["model", "granularity", "ablation_value", "method"]
    return summary.drop_duplicates(keys).sort_values(keys)


def agreement_markdown(summary: pd.DataFrame) -> str:
    rows = _one_per_ranking(summary[summary.roc_auc.notna()])
    lines = [
        "| model | granularity | method | ablation | ablated | important (signed / abs) | ROC AUC, signed drop "
        "| Spearman, signed drop | ROC AUC, abs drop | Spearman, abs drop |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows.itertuples():
        lines.append(
            f"| {r.model} | {r.granularity} | {r.method} | {r.ablation_value} | {int(r.n_ablated):,} | "
            f"{int(r.n_important)} / {int(r.n_important_abs)} | {_ci(r, 'roc_auc')} | {_ci(r, 'spearman')} | "
            f"{_ci(r, 'roc_auc_abs')} | {_ci(r, 'spearman_abs')} |"
        )
    return "\n".join(lines)


def published_markdown(summary: pd.DataFrame) -> str:
    rows = summary[summary.published.notna()]
    classes = [c.split(":", 1)[1] for c in rows.columns if c.startswith("published_recall:")]
    lines = [
        "| model | method | circuit | ROC AUC | recall, top n | recall / precision, threshold circuit | "
        + " | ".join(f"{c}, top n" for c in classes)
        + " |",
        "|---|---|---|---:|---:|---:|" + "---:|" * len(classes),
    ]
    for r in rows.to_dict("records"):
        per_class = " | ".join(_fmt(r[f"published_recall:{c}"], 2) for c in classes)
        lines.append(
            f"| {r['model']} | {r['method']} | {r['published']} | {_fmt(r['published_roc_auc'])} | "
            f"{_fmt(r['published_recall'], 2)} | {_fmt(r['published_recall_found'], 2)} / "
            f"{_fmt(r['published_precision_found'], 2)} | {per_class} |"
        )
    return "\n".join(lines)


def curve_markdown(curves: pd.DataFrame) -> str:
    g = curves.groupby([*KEYS, "sparsity"])["normalized_logit_diff"]
    stats = g.mean().to_frame("mean").join(g.std().rename("std")).reset_index()
    sparsities = sorted(stats.sparsity.unique())
    lines = [
        "| model | method | granularity | scope | " + " | ".join(f"{s:g}" for s in sparsities) + " |",
        "|---|---|---|---|" + "---:|" * len(sparsities),
    ]
    for key, grp in stats.groupby(KEYS):
        by = grp.set_index("sparsity")
        cells = [
            (_fmt(by.at[s, "mean"], 2) + ("" if pd.isna(by.at[s, "std"]) else f" ± {by.at[s, 'std']:.2f}"))
            if s in by.index
            else "–"
            for s in sparsities
        ]
        lines.append("| " + " | ".join(key) + " | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_model(curves: pd.DataFrame, model: str, path: Path, threshold: float | None = None) -> None:
    """IOI accuracy and normalised logit difference against the kept fraction (log axis, most
    kept on the left: the differences sit close to 1), a column per granularity, a line per
    method (colour) and scope (line style), a band of ±1 std over reference seeds, the
    faithfulness threshold drawn and labelled. PNG and SVG."""
    from attrprune import plotstyle

    plt = pyplot()
    df = curves[(curves.model == model) & (curves.kept_fraction > 0)]
    granularities = [g for g in ("weight", "neuron", "head") if g in set(df.granularity)]
    fig, axes = plt.subplots(2, len(granularities), figsize=(4.4 * len(granularities), 6.8), squeeze=False)
    n_seeds = df.groupby(KEYS).seed_index.nunique().max() if len(df) else 1
    band_label = f"±1 std over {n_seeds} reference seeds" if n_seeds > 1 else None
    for col, gran in enumerate(granularities):
        sub = df[df.granularity == gran]
        for (method, scope), grp in sub.groupby(["method", "scope"]):
            style = plotstyle.method_style(method, scope)
            for row, metric in enumerate(("accuracy", "normalized_logit_diff")):
                g = grp.groupby("kept_fraction")[metric]
                mean, std = g.mean(), g.std().fillna(0)
                ax = axes[row, col]
                ax.plot(mean.index, mean.values, **style)
                if std.any():
                    plotstyle.band(ax, mean.index, mean - std, mean + std, style["color"], band_label)
        axes[0, col].set_title(f"{model}: {gran}s")
        axes[0, col].set_ylabel("IOI accuracy ↑")
        axes[1, col].set_ylabel("normalised logit difference (1 = dense)")
        axes[1, col].set_xlabel("kept fraction of components (log)")
        if threshold is not None:
            plotstyle.threshold(axes[1, col], threshold, f"faithfulness threshold {threshold:g}")
        for row in range(2):
            axes[row, col].set_xscale("log")
            axes[row, col].invert_xaxis()
            plotstyle.finish(axes[row, col], legend=row == 1 or len(granularities) == 1)
    plotstyle.save(fig, path)


def circuit_tables(
    curve_files: list[Path],
    csv: Path,
    summary_csv: Path,
    markdown: Path,
    plots_dir: Path,
    paired_csv: Path | None = None,
) -> pd.DataFrame:
    curves, summary = load_curves(curve_files)
    paired = paired_tests(curve_files)
    if paired_csv is not None:
        with atomic_path(paired_csv) as tmp:
            paired.to_csv(tmp, index=False)
    # one threshold per run (circuits.threshold); the plot draws it when there is just one
    thresholds = summary.threshold.unique()
    for model in sorted(curves.model.unique()):
        plot_model(
            curves, model, Path(plots_dir) / f"circuits_{model}.png", thresholds[0] if len(thresholds) == 1 else None
        )
    with atomic_path(csv) as tmp:
        curves.to_csv(tmp, index=False)
    with atomic_path(summary_csv) as tmp:
        summary.to_csv(tmp, index=False)
    threshold = ", ".join(f"{t:g}" for t in sorted(summary.threshold.unique()))
    ablation = ", ".join(sorted(summary.ablation_value.unique()))
    parts = [
        "# IOI circuits\n\n"
        + headlines.section(headlines.circuits(summary))
        + f"The sparsest circuit whose normalised logit difference stays >= {threshold} "
        "(1 = dense, 0 = every component of the granularity removed), on the seed-averaged scores; removed "
        f"components are {ablation}-ablated (mean: replaced by their mean over the IOI reference prompts; "
        "counterfactual: patched with their activation on each evaluation prompt's corrupted copy, other "
        "names in the same template; weights always zero). "
        + _areas_note(curve_files)
        + "\n\n"
        + _conventions_note(summary)
        + "\n\n"
        + summary_markdown(summary)
    ]
    if summary.roc_auc.notna().any():
        parts.append(
            "## Agreement with exhaustive ablation\n\nEach method's ranking (seed-averaged scores) against the drop "
            "of the logit difference that removing each component alone causes (exhaustive for heads and "
            "neurons, sampled for weights): ROC AUC with the top fraction by drop as positives, and Spearman, "
            "against the signed drop and against |drop|. Intervals: 95 % percentile bootstrap over components "
            "(the AUC's stratified by the label, so every resample keeps the positives; with 2 important heads "
            "of 16 the head AUC moves in steps of 1/28) and over reference seeds (each resample ranks by the "
            "mean of the drawn seeds' scores).\n\n" + agreement_markdown(summary)
        )
    if "published" in summary and summary.published.notna().any():
        parts.append(
            "## Against the published circuit\n\nEach head ranking as a classifier of the published circuit's "
            "heads (ROC AUC), the share of those heads among its top n (n = the circuit's size; per class "
            "below), and among the heads the threshold circuit keeps (recall, precision).\n\n"
            + published_markdown(summary)
        )
    if (paired.statistic == "roc_auc").any():
        parts.append(
            f"## Paired test against {BASELINE}\n\nROC AUC of each method minus {BASELINE}'s on the same "
            "resampled components and reference seeds (the resamples of the intervals above; seed i of every method "
            "explains the same reference set), its 95 % interval and the two-sided bootstrap p-value (smallest "
            "possible: 2 / (resamples + 1)).\n\n" + paired_markdown(paired)
        )
    if paired.statistic.isin(["cpr", "cmd"]).any():
        parts.append(
            f"## Faithfulness areas against {BASELINE}, paired\n\nCPR and CMD of each method minus "
            f"{BASELINE}'s, both computed on the same resampled evaluation prompts and the same resampled "
            "reference seeds (seed i of every method explains the same reference set), with the 95 % "
            "percentile interval of the difference and its two-sided bootstrap p-value. Say that two areas "
            "differ or agree from this table, not from whether their separate intervals overlap.\n\n"
            + paired_areas_markdown(paired)
        )
    parts.append(
        "## Normalised logit difference vs sparsity (mean ± std over reference seeds)\n\n" + curve_markdown(curves)
    )
    records = [read_circuit_curve(p) for p in curve_files]  # load_curves keeps only tables
    write_markdown(markdown, with_code_section("\n\n".join(parts) + "\n", records))  # and its .html
    return summary


def _conventions_note(summary: pd.DataFrame) -> str:
    """Which rows follow MIB's circuit-track conventions, and so which areas can be set beside MIB's."""
    mib = summary[(summary.conventions == "mib") & (summary.ablation_value == "counterfactual")]
    text = (
        "Conventions: project = circuit sizes pruned at sparsity 1 − k by the pruning count rule and the "
        "ablation named; mib = MIB's circuit track: int(k · n) components kept at each size k, the rest "
        "patched from the corrupted prompts (counterfactual). "
    )
    if len(mib):
        return text + (
            "Only the CPR / CMD of the mib rows with counterfactual ablation (heads, neurons) follow MIB's "
            "conventions and can be set beside MIB's numbers; weight rows are zero-ablated under both."
        )
    return text + "No row here follows MIB's conventions: do not set these CPR / CMD beside MIB's numbers."


def _areas_note(paths: list[Path]) -> str:
    """What the CPR / CMD columns are, from the first curve file that has them."""
    for path in paths:
        fa = read_circuit_curve(path).get("faithfulness")
        if fa:
            sizes = ", ".join(f"{k:g}" for k in fa["sizes"])
            return (
                f"CPR ↑ / CMD ↓: MIB's areas under f and between f and 1 over the circuit sizes {{{sizes}}} "
                "(kept fraction, highest |score| kept; trapezoid on a linear axis, so a perfect curve has CPR "
                f"{fa['sizes'][-1] - fa['sizes'][0]:g} and CMD 0), of the seed-mean curve, with 95 % percentile "
                f"intervals from {fa['n_resamples']:,} resamples of the {fa.get('resampled', 'evaluation prompts')} "
                "(each resample redraws both, so the interval covers the spread between reference sets as well "
                "as the prompts). Kept: the threshold circuit's size with its 95 % interval from rerunning the "
                "search on resampled evaluation prompts (the seed-averaged scores fixed); per seed: the size "
                "of each reference seed's own circuit."
            )
    return ""
