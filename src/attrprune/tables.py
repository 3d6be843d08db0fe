"""Result tables and plots (pandas, matplotlib) from the per-sparsity metrics files.

`compression_tables` writes the tidy table (one row per model × method × scope × sparsity ×
seed × task × metric), a paper-style pivot at one sparsity (perplexity and mean zero-shot
accuracy per method, mean ± standard error over reference seeds, like the paper's Table 1),
and one plot per model (perplexity and mean accuracy vs sparsity, a line per method, a band of
± s.e. over seeds).

Run: ``python -m attrprune tables --metrics a.json,b.json --csv c.csv --markdown c.md --plots-dir plots``
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from attrprune.io import atomic_path, atomic_write_text, pyplot, save_figure

TIDY_COLUMNS = ["model", "method", "scope", "sparsity", "seed", "task", "metric", "value", "stderr", "sparsity_measured"]
PERPLEXITY = ("world_ppl", "wikitext")  # tasks whose word_perplexity is the perplexity column


def tidy_compression(metrics_files: list[Path]) -> pd.DataFrame:
    rows = []
    for path in metrics_files:
        m = json.loads(Path(path).read_text())
        ident = {
            "model": Path(m["model_dir"]).name, "method": m["scores"]["method"], "scope": m["scope"],
            "sparsity": m["sparsity"], "seed": m["scores"].get("refset_seed"), "sparsity_measured": m["sparsity_measured"],
        }
        rows += [{**ident, **r} for r in m["metrics"]]
    if not rows:
        raise ValueError("no metrics rows: the compression stage produced nothing to tabulate")
    return pd.DataFrame(rows)[TIDY_COLUMNS].sort_values(["model", "method", "scope", "sparsity", "seed", "task", "metric"])


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model × method × scope × sparsity: perplexity and mean accuracy, mean and s.e. over seeds."""
    ppl = df[df.task.isin(PERPLEXITY) & (df.metric == "word_perplexity")]
    acc = df[df.metric == "acc"].groupby(["model", "method", "scope", "sparsity", "seed"], as_index=False)["value"].mean()
    per_seed = ppl.groupby(["model", "method", "scope", "sparsity", "seed"], as_index=False)["value"].mean().rename(columns={"value": "perplexity"})
    per_seed = per_seed.merge(acc.rename(columns={"value": "accuracy"}), how="outer")
    keys = ["model", "method", "scope", "sparsity"]
    g = per_seed.groupby(keys)
    out = g[["perplexity", "accuracy"]].mean()
    se = g[["perplexity", "accuracy"]].sem()  # NaN for a single seed
    out = out.join(se.add_suffix("_se")).join(g.size().rename("n_seeds"))
    return out.reset_index()


def _pm(mean: float, se: float, digits: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if pd.isna(se) else f" ± {se:.{digits}f}")


def pivot_markdown(summ: pd.DataFrame, at: float) -> str:
    lines = []
    for (model, scope), part in summ[summ.sparsity.round(4) == round(at, 4)].groupby(["model", "scope"]):
        lines += [f"### {model}, {scope} scope, sparsity {at:.2f}", "", "| method | perplexity ↓ | mean accuracy ↑ | seeds |", "|---|---|---|---|"]
        for _, r in part.sort_values("perplexity").iterrows():
            lines.append(f"| {r.method} | {_pm(r.perplexity, r.perplexity_se, 2)} | {_pm(r.accuracy, r.accuracy_se, 3)} | {r.n_seeds} |")
        lines.append("")
    if not lines:
        raise ValueError(f"no results at sparsity {at:.2f}; add it to compression.sparsities")
    return "\n".join(lines)


def plot_model(summ: pd.DataFrame, model: str, path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (method, scope), part in summ[summ.model == model].groupby(["method", "scope"]):
        part = part.sort_values("sparsity")
        for ax, col in zip(axes, ("perplexity", "accuracy")):
            line = ax.plot(part.sparsity, part[col], marker="o", label=f"{method} ({scope})")[0]
            se = part[f"{col}_se"].fillna(0)
            ax.fill_between(part.sparsity, part[col] - se, part[col] + se, alpha=0.2, color=line.get_color())
    axes[0].set_yscale("log")
    axes[0].set_ylabel("word perplexity (log)")
    axes[1].set_ylabel("mean accuracy")
    for ax in axes:
        ax.set_xlabel("sparsity")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{model}: compression by pruning the least relevant weights")
    save_figure(fig, path, dpi=110)


def compression_tables(metrics_files: list[Path], csv: Path, markdown: Path, plots_dir: Path, at: float = 0.5,
                       paper_markdown: Path | None = None) -> None:
    from attrprune.paper import paper_table

    df = tidy_compression(metrics_files)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    summ = summary(df)
    atomic_write_text(markdown, "# Compression\n\n" + pivot_markdown(summ, at))
    if paper_markdown is not None:
        atomic_write_text(paper_markdown, "# Compression: the paper's Table 1 and ours\n\n" + paper_table(summ, at))
    # Snakemake's report shows HTML inline (CSV only as a download).
    atomic_write_text(Path(markdown).with_suffix(".html"), summ.round(4).to_html(index=False))
    for model in summ.model.unique():
        plot_model(summ, model, Path(plots_dir) / f"compression_{model}.png")
