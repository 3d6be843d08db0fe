"""Circuit tables and plots from the `circuit` stage's curve.json files.

* ``circuits.csv``: the curves, tidy: one row per model × method × granularity × scope × seed ×
  sparsity (kept fraction, accuracy, logit difference, normalised logit difference);
* ``circuits_summary.csv``: per model × method × granularity × scope, the circuit at the
  threshold (kept components, kept fraction, its metrics) and the ranking's agreement with
  exhaustive ablation (ROC AUC of the top ablation-important components, Spearman);
* ``circuits.md``: the summary, and the normalised logit difference vs sparsity (mean ± std
  over seeds), as Markdown;
* ``circuits_{model}.png``: accuracy and normalised logit difference vs sparsity, one panel per
  granularity, a line per method and scope with a ± std band over seeds.

Run: ``python -m attrprune circuit-tables --curves a/curve.json,b/curve.json --csv c.csv
--summary-csv s.csv --markdown c.md --plots-dir plots``
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from attrprune.io import atomic_path, atomic_write_text, model_name, pyplot, save_figure

KEYS = ["model", "method", "granularity", "scope"]
CURVE_COLUMNS = [*KEYS, "seed_index", "sparsity", "kept_fraction", "accuracy", "logit_diff", "normalized_logit_diff"]


def load_curves(paths: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tidy curves, one summary row per curve file)."""
    curves, summary = [], []
    for path in paths:
        r = json.loads(Path(path).read_text())
        ident = {"model": model_name(r), "method": r["method"], "granularity": r["granularity"], "scope": r["scope"]}
        curves += [{**ident, **point} for point in r["curve"]]
        c, gt = r["circuit"], r.get("groundtruth") or {}
        summary.append(
            {
                **ident,
                "threshold": c["threshold"],
                "n_kept": c["n_kept"],
                "n_components": c["n_components"],
                "kept_fraction": c["kept_fraction"],
                "accuracy": c["accuracy"],
                "normalized_logit_diff": c["normalized_logit_diff"],
                "dense_accuracy": r["dense"]["accuracy"],
                "dense_logit_diff": r["dense"]["logit_diff"],
                "roc_auc": gt.get("roc_auc"),
                "spearman": gt.get("spearman"),
                "n_seeds": r["n_seeds"],
            }
        )
    if not curves:
        raise ValueError("no curve files given: the circuit stage produced nothing to tabulate")
    return (
        pd.DataFrame(curves)[CURVE_COLUMNS].sort_values([*KEYS, "seed_index", "sparsity"]),
        pd.DataFrame(summary).sort_values(KEYS),
    )


def _fmt(x, digits: int = 3) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| model | method | granularity | scope | kept / total | kept fraction | accuracy | norm. LD | ROC AUC | Spearman |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.model} | {r.method} | {r.granularity} | {r.scope} | {r.n_kept:,} / {r.n_components:,} | "
            f"{_fmt(r.kept_fraction)} | {_fmt(r.accuracy)} | {_fmt(r.normalized_logit_diff)} | "
            f"{_fmt(r.roc_auc)} | {_fmt(r.spearman)} |"
        )
    return "\n".join(lines)


def curve_markdown(curves: pd.DataFrame) -> str:
    g = curves.groupby([*KEYS, "sparsity"])["normalized_logit_diff"]
    stats = g.mean().to_frame("mean").join(g.std().rename("std")).reset_index()
    sparsities = sorted(stats.sparsity.unique())
    lines = [
        "| model | method | granularity | scope | " + " | ".join(f"{s:.2f}" for s in sparsities) + " |",
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


def plot_model(curves: pd.DataFrame, model: str, path: Path) -> None:
    plt = pyplot()

    df = curves[curves.model == model]
    granularities = [g for g in ("weight", "neuron", "head") if g in set(df.granularity)]
    fig, axes = plt.subplots(2, len(granularities), figsize=(4.2 * len(granularities), 6.5), squeeze=False)
    for col, gran in enumerate(granularities):
        sub = df[df.granularity == gran]
        for (method, scope), grp in sub.groupby(["method", "scope"]):
            for row, metric in enumerate(("accuracy", "normalized_logit_diff")):
                g = grp.groupby("sparsity")[metric]
                mean, std = g.mean(), g.std().fillna(0)
                ax = axes[row, col]
                line = ax.plot(mean.index, mean.values, marker="o", ms=3, label=f"{method} ({scope})")[0]
                ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        axes[0, col].set_title(f"{model}: {gran}s")
        axes[0, col].set_ylabel("IOI accuracy")
        axes[1, col].set_ylabel("normalised logit difference")
        axes[1, col].set_xlabel("sparsity (fraction of components pruned)")
        axes[1, col].axhline(0.9, color="grey", lw=0.8, ls="--")
        axes[0, col].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def circuit_tables(
    curve_files: list[Path], csv: Path, summary_csv: Path, markdown: Path, plots_dir: Path
) -> pd.DataFrame:
    curves, summary = load_curves(curve_files)
    for model in sorted(curves.model.unique()):
        plot_model(curves, model, Path(plots_dir) / f"circuits_{model}.png")
    with atomic_path(csv) as tmp:
        curves.to_csv(tmp, index=False)
    with atomic_path(summary_csv) as tmp:
        summary.to_csv(tmp, index=False)
    threshold = ", ".join(f"{t:g}" for t in sorted(summary.threshold.unique()))
    atomic_write_text(
        markdown,
        (
            f"# IOI circuits\n\nThe sparsest circuit whose normalised logit difference stays >= {threshold} "
            "(1 = dense, 0 = every component of the granularity removed), on the seed-averaged scores; ROC AUC "
            "and Spearman compare each method's ranking with the drop that ablating each component alone causes "
            "(exhaustive for heads and neurons, sampled for weights).\n\n"
            + summary_markdown(summary)
            + "\n\n## Normalised logit difference vs sparsity (mean ± std over reference seeds)\n\n"
            + curve_markdown(curves)
            + "\n"
        ),
    )
    return summary
