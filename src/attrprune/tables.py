"""Result tables and plots (pandas, matplotlib) from the per-sparsity metrics files.

`compression_tables` writes the tidy table (one row per model × method × scope × sparsity ×
seed × task × metric), a paper-style pivot at one sparsity (token perplexity, lm-eval's word
perplexity and mean zero-shot accuracy per method, mean ± standard error over reference seeds,
like the paper's Table 1), and one plot per model (word perplexity and mean accuracy vs sparsity,
a line per method, a band of ± s.e. over seeds).

Two perplexities, never mixed: ``token_perplexity`` (rows of task ``wikitext2_tokens`` /
``world_tokens``; the Wanda / SparseGPT protocol at the job's seqlen, the number the paper's
Table 1 reports) and lm-eval's ``word_perplexity`` of ``wikitext`` / ``world_ppl`` (document-level
rolling windows; about 1.6x larger on Llama-2-7B).

Run: ``python -m attrprune compression-tables --metrics a.json,b.json --csv c.csv --markdown c.md --plots-dir plots``
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from attrprune.io import atomic_path, atomic_write_text, model_name, pyplot, save_figure
from attrprune.lineage import with_code_section

TIDY_COLUMNS = [
    "model",
    "method",
    "scope",
    "sparsity",
    "seed",
    "task",
    "metric",
    "value",
    "stderr",
    "sparsity_measured",
]
PERPLEXITY = ("world_ppl", "wikitext")  # tasks whose word_perplexity is the perplexity column
TOKEN_PERPLEXITY = "token_perplexity"  # metric of the token_perplexity column (evaluation.perplexity)


def read_metrics(metrics_files: list[Path]) -> list[dict]:
    """The parsed metrics files, read once for the tidy table and the token-perplexity check."""
    return [json.loads(Path(path).read_text()) for path in metrics_files]


def tidy_compression(records: list[dict]) -> pd.DataFrame:
    """One row per model × method × scope × sparsity × seed × task × metric. The dense model's
    metrics file (method None; the workflow evaluates it once per model) stands at sparsity 0 of
    every method × scope × seed of its model, as if each run had evaluated it. The seed is the
    general reference set's: of the scores, or of a calibrated pruner's calibration set."""
    dense = {model_name(m): m for m in records if m["method"] is None}
    runs = {}
    rows = []
    for m in records:
        if m["method"] is None:
            continue
        calibration = m["pruning"]["calibration"]
        ident = {
            "model": model_name(m),
            "method": m["method"],
            "scope": m["scope"],
            "seed": m["scores"].get("refset_seed") if m["scores"] else calibration["seed"],
        }
        runs[tuple(ident.values())] = ident
        rows += [
            {**ident, "sparsity": m["sparsity"], "sparsity_measured": m["sparsity_measured"], **r} for r in m["metrics"]
        ]
    for ident in runs.values():
        d = dense.get(ident["model"])
        if d is not None:
            rows += [{**ident, "sparsity": 0.0, "sparsity_measured": d["sparsity_measured"], **r} for r in d["metrics"]]
    if not rows:
        raise ValueError("no metrics rows: the compression stage produced nothing to tabulate")
    return pd.DataFrame(rows)[TIDY_COLUMNS].sort_values(
        ["model", "method", "scope", "sparsity", "seed", "task", "metric"]
    )


def token_perplexity_settings(records: list[dict]) -> dict[str, dict]:
    """{model: {"source", "seqlen"}} of the token perplexity in the metrics files (models without
    one are absent). One setting per model: means over seeds and methods of numbers measured at
    different seqlens would compare unlike with like, so that is an error."""
    seen: dict[str, set] = {}
    for m in records:
        if m.get("token_perplexity"):
            t = m["token_perplexity"]
            seen.setdefault(model_name(m), set()).add((t["source"], t["seqlen"]))
    mixed = {model: sorted(s) for model, s in seen.items() if len(s) > 1}
    if mixed:
        raise ValueError(
            f"token perplexity of one model measured on different (source, seqlen): {mixed}; "
            "rerun the compression jobs of the old setting"
        )
    return {model: dict(zip(("source", "seqlen"), next(iter(s)))) for model, s in seen.items()}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per model × method × scope × sparsity: lm-eval's word perplexity (`perplexity`), token
    perplexity (`token_perplexity`) and mean accuracy, mean and s.e. over seeds."""
    keys = ["model", "method", "scope", "sparsity", "seed"]

    def per_seed_mean(rows: pd.DataFrame, name: str) -> pd.DataFrame:
        return rows.groupby(keys, as_index=False)["value"].mean().rename(columns={"value": name})

    per_seed = df[keys].drop_duplicates()
    for rows, name in (
        (df[df.task.isin(PERPLEXITY) & (df.metric == "word_perplexity")], "perplexity"),
        (df[df.metric == TOKEN_PERPLEXITY], "token_perplexity"),
        (df[df.metric == "acc"], "accuracy"),
    ):
        per_seed = per_seed.merge(per_seed_mean(rows, name), how="left")
    g = per_seed.groupby(keys[:-1])
    cols = ["perplexity", "token_perplexity", "accuracy"]
    out = g[cols].mean()
    se = g[cols].sem()  # NaN for a single seed
    out = out.join(se.add_suffix("_se")).join(g.size().rename("n_seeds"))
    return out.reset_index()


def _pm(mean: float, se: float, digits: int) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f}" + ("" if pd.isna(se) else f" ± {se:.{digits}f}")


def pivot_markdown(summ: pd.DataFrame, at: float, token_settings: dict[str, dict] | None = None) -> str:
    """Per model at sparsity `at`: token perplexity (at the seqlen of `token_settings[model]`),
    lm-eval's word perplexity and mean accuracy per method and scope, best first."""
    token_settings = token_settings or {}
    lines = []
    for model, part in summ[summ.sparsity.round(4) == round(at, 4)].groupby("model"):
        t = token_settings.get(model)
        token = f"{t['source']} token PPL @{t['seqlen']} ↓" if t else "token PPL ↓"
        lines += [
            f"### {model}, sparsity {at:.2f}",
            "",
            f"| method | scope | {token} | lm-eval word PPL ↓ | mean accuracy ↑ | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in part.sort_values(["token_perplexity", "perplexity"]).iterrows():
            lines.append(
                f"| {r.method} | {r.scope} | {_pm(r.token_perplexity, r.token_perplexity_se, 2)} | "
                f"{_pm(r.perplexity, r.perplexity_se, 2)} | {_pm(r.accuracy, r.accuracy_se, 3)} | {r.n_seeds} |"
            )
        lines.append("")
    if not lines:
        raise ValueError(f"no results at sparsity {at:.2f}; add it to compression.sparsities")
    return "\n".join(lines)


def sweep_markdown(summ: pd.DataFrame, token_settings: dict[str, dict] | None = None) -> str:
    """Per model: the perplexity of every method and scope at every sparsity (token perplexity
    where measured, else lm-eval's word perplexity), mean ± s.e. over seeds; rows ordered by
    the highest sparsity, where methods differ most."""
    token_settings = token_settings or {}
    lines = []
    for model, part in summ.groupby("model"):
        t = token_settings.get(model)
        col, what = (
            ("token_perplexity", f"{t['source']} token perplexity @{t['seqlen']}")
            if t
            else ("perplexity", "lm-eval word perplexity")
        )
        sparsities = sorted(part.sparsity.unique())
        last = part[part.sparsity == sparsities[-1]].set_index(["method", "scope"])[col]
        lines += [
            f"### {model}: {what} by sparsity (↓, mean ± s.e. over seeds)",
            "",
            "| method | scope | " + " | ".join(f"{s:.2f}" for s in sparsities) + " |",
            "|---|---|" + "---|" * len(sparsities),
        ]
        for (method, scope), rows in sorted(
            part.groupby(["method", "scope"]), key=lambda kv: last.get(kv[0], float("inf"))
        ):
            by = rows.set_index("sparsity")
            cells = [_pm(by[col].get(s), by[f"{col}_se"].get(s), 2) for s in sparsities]
            lines.append(f"| {method} | {scope} | " + " | ".join(cells) + " |")
        lines.append("")
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


def compression_tables(
    metrics_files: list[Path],
    csv: Path,
    markdown: Path,
    plots_dir: Path,
    at: float = 0.5,
    paper_markdown: Path | None = None,
) -> None:
    from attrprune.paper import paper_table

    records = read_metrics(metrics_files)
    df = tidy_compression(records)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    summ = summary(df)
    token_settings = token_perplexity_settings(records)
    intro = (
        "token PPL: token perplexity by the Wanda / SparseGPT protocol (non-overlapping windows of the "
        "seqlen in the header); lm-eval word PPL: lm-eval's rolling word perplexity, a different number.\n\n"
    )
    tables = pivot_markdown(summ, at, token_settings) + "\n" + sweep_markdown(summ, token_settings)
    atomic_write_text(markdown, with_code_section("# Compression\n\n" + intro + tables, records))
    if paper_markdown is not None:
        atomic_write_text(
            paper_markdown, "# Compression: the paper's Table 1 and ours\n\n" + paper_table(summ, at, token_settings)
        )
    # Snakemake's report shows HTML inline (CSV only as a download).
    atomic_write_text(Path(markdown).with_suffix(".html"), summ.round(4).to_html(index=False))
    for model in summ.model.unique():
        plot_model(summ, model, Path(plots_dir) / f"compression_{model}.png")
