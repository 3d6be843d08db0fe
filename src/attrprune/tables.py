"""Result tables and plots (pandas, matplotlib) from the per-sparsity metrics files.

`compression_tables` writes the tidy table (one row per model × method × scope × sparsity ×
seed × task × metric); as Markdown, and as HTML beside it for the report, a paper-style pivot at
one sparsity (token perplexity, lm-eval's word perplexity and mean zero-shot accuracy per method,
mean ± standard error over reference seeds, like the paper's Table 1); and one plot per model (the
table's perplexity, token perplexity where measured, and mean accuracy vs sparsity, a line per
method, a band of ± s.e. over seeds; PNG and SVG, `attrprune.plotstyle`).

What the intervals cover: ± in the pivot and sweep tables is the standard error over reference
seeds (the spread of the reference/calibration samples); "eval s.e." is lm-eval's own standard
error of the mean accuracy (its documents are a sample too; seed 0's evaluation); the paired
table gives 95 % bootstrap intervals over documents (each task's documents resampled, the same
documents for both models, 1000 resamples) of each method's difference to the dense model and to
lrp, on per-document values averaged over seeds (`paired_differences`).

Two perplexities, never mixed: ``token_perplexity`` (rows of task ``wikitext2_tokens`` /
``world_tokens``; the Wanda / SparseGPT protocol at the job's seqlen, the number the paper's
Table 1 reports) and lm-eval's ``word_perplexity`` of ``wikitext`` / ``world_ppl`` (document-level
rolling windows; about 1.6x larger on Llama-2-7B).

Run: ``python -m attrprune compression-tables --metrics a.json,b.json --csv c.csv --markdown c.md --plots-dir plots``
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from attrprune.io import atomic_path, atomic_write_text, model_name
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
    """The parsed metrics files, read once for the tidy table and the token-perplexity check;
    a damaged one is a one-line error naming it (`attrprune.records`)."""
    from attrprune.records import read_metrics_file

    return [read_metrics_file(path) for path in metrics_files]


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
    # lm-eval's s.e. of the mean accuracy (tasks' documents independent): sqrt(Σ se_t²) / T, per seed
    acc = df[df.metric == "acc"].assign(var=lambda d: d["stderr"].astype(float) ** 2)
    eval_se = acc.groupby(keys).agg(var=("var", "sum"), n=("var", "size")).reset_index()
    eval_se["accuracy_eval_se"] = eval_se["var"] ** 0.5 / eval_se["n"]
    per_seed = per_seed.merge(eval_se[keys + ["accuracy_eval_se"]], how="left")
    g = per_seed.groupby(keys[:-1])
    cols = ["perplexity", "token_perplexity", "accuracy"]
    out = g[cols + ["accuracy_eval_se"]].mean()
    se = g[cols].sem()  # NaN for a single seed
    out = out.join(se.add_suffix("_se")).join(g.size().rename("n_seeds"))
    return out.reset_index()


N_RESAMPLES = 1000


def seed_mean_documents(records: list[dict]) -> dict[str, dict]:
    """{task: {metric: per-document values averaged over `records` (one per reference seed)}}:
    [n] accuracies, or [n, 2] log-likelihood and word count; tasks and metrics all records have."""
    import numpy as np

    docs = [m.get("per_document") or {} for m in records]
    out = {}
    for task in set.intersection(*(set(d) for d in docs)):
        out[task] = {}
        for metric in set.intersection(*(set(d[task]) for d in docs)):
            values = [np.asarray(d[task][metric], dtype=np.float64) for d in docs]
            if len({v.shape for v in values}) == 1:
                out[task][metric] = np.mean(values, axis=0)
    return out


def _documents(records: list[dict]) -> dict[tuple, dict[str, dict]]:
    """{(model, method, scope, sparsity): `seed_mean_documents` of its seeds}; the dense model is
    method None, scope None, sparsity 0."""
    runs: dict[tuple, list[dict]] = {}
    for m in records:
        key = (model_name(m), m["method"], m["scope"] if m["method"] else None, round(float(m["sparsity"]), 4))
        runs.setdefault(key, []).append(m)
    return {key: seed_mean_documents(seeds) for key, seeds in runs.items()}


def paired_documents(a: dict, b: dict) -> dict:
    """Paired bootstrap over documents of model a against model b: mean accuracy difference (a − b,
    the tasks' accuracies averaged) and word-perplexity ratio (a ÷ b), estimate and 95 % interval."""
    import numpy as np

    from attrprune.circuits.bootstrap import percentile_interval, resample

    out = {}
    acc = [
        t for t in sorted(set(a) & set(b)) if "acc" in a[t] and "acc" in b[t] and len(a[t]["acc"]) == len(b[t]["acc"])
    ]
    if acc:
        diffs = [a[t]["acc"] - b[t]["acc"] for t in acc]  # [n_t] per task, the same documents

        def acc_stat(*idx):
            return np.mean([d[i].mean(-1) for d, i in zip(diffs, idx)], axis=0)

        est, draws = resample(acc_stat, [len(d) for d in diffs], N_RESAMPLES, seed=0)
        out["acc_diff"], (out["acc_diff_lo"], out["acc_diff_hi"]) = est, percentile_interval(draws)
    ppl = [t for t in PERPLEXITY if t in a and t in b and "word_perplexity" in a[t] and "word_perplexity" in b[t]]
    if ppl:
        pa, pb = a[ppl[0]]["word_perplexity"], b[ppl[0]]["word_perplexity"]  # [n, 2]: ll, words

        def ratio(i):
            return np.exp(-pa[i, 0].sum(-1) / pa[i, 1].sum(-1) + pb[i, 0].sum(-1) / pb[i, 1].sum(-1))

        if len(pa) == len(pb):
            est, draws = resample(ratio, [len(pa)], N_RESAMPLES, seed=0)
            out["ppl_ratio"], (out["ppl_ratio_lo"], out["ppl_ratio_hi"]) = est, percentile_interval(draws)
    return out


def paired_differences(records: list[dict]) -> pd.DataFrame:
    """Per model × method × scope × sparsity: the paired bootstrap over documents against the
    dense model (`vs_dense_*`) and against lrp at the same scope, else lrp per row (`vs_lrp_*`)."""
    docs = _documents(records)
    rows = []
    for (model, method, scope, sparsity), tasks in docs.items():
        if method is None:
            continue
        row = {"model": model, "method": method, "scope": scope, "sparsity": sparsity}
        dense = docs.get((model, None, None, 0.0))
        if dense:
            row |= {f"vs_dense_{k}": v for k, v in paired_documents(tasks, dense).items()}
        lrp = docs.get((model, "lrp", scope, sparsity)) or docs.get((model, "lrp", "row", sparsity))
        if lrp and method != "lrp":
            row |= {f"vs_lrp_{k}": v for k, v in paired_documents(tasks, lrp).items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _ci(df_row, prefix: str, digits: int, signed: bool) -> str:
    est = df_row.get(prefix)
    if est is None or pd.isna(est):
        return "–"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(est)} [{fmt.format(df_row[prefix + '_lo'])}, {fmt.format(df_row[prefix + '_hi'])}]"


def paired_markdown(paired: pd.DataFrame, at: float) -> str:
    """Per model at sparsity `at`: each method against the dense model and against lrp, with 95 %
    paired bootstrap intervals over documents."""
    if paired.empty:
        return ""
    lines = []
    for model, part in paired[paired.sparsity.round(4) == round(at, 4)].groupby("model"):
        lines += [
            f"### {model}, sparsity {at:.2f}: paired differences (95 % bootstrap over documents)",
            "",
            "| method | scope | Δ mean acc vs dense | Δ mean acc vs lrp | word PPL ÷ dense | word PPL ÷ lrp |",
            "|---|---|---|---|---|---|",
        ]
        for _, r in part.sort_values(["method", "scope"]).iterrows():
            r = r.to_dict()
            lines.append(
                f"| {r['method']} | {r['scope']} | {_ci(r, 'vs_dense_acc_diff', 3, True)} | "
                f"{_ci(r, 'vs_lrp_acc_diff', 3, True)} | {_ci(r, 'vs_dense_ppl_ratio', 3, False)} | "
                f"{_ci(r, 'vs_lrp_ppl_ratio', 3, False)} |"
            )
        lines.append("")
    return "\n".join(lines)


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
            f"| method | scope | {token} | lm-eval word PPL ↓ | mean accuracy ↑ | eval s.e. | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for _, r in part.sort_values(["token_perplexity", "perplexity"]).iterrows():
            eval_se = "–" if pd.isna(r.accuracy_eval_se) else f"{r.accuracy_eval_se:.3f}"
            lines.append(
                f"| {r.method} | {r.scope} | {_pm(r.token_perplexity, r.token_perplexity_se, 2)} | "
                f"{_pm(r.perplexity, r.perplexity_se, 2)} | {_pm(r.accuracy, r.accuracy_se, 3)} | {eval_se} | "
                f"{r.n_seeds} |"
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


def compression_tables(
    metrics_files: list[Path],
    csv: Path,
    markdown: Path,
    plots_dir: Path,
    at: float = 0.5,
    paper_markdown: Path | None = None,
) -> None:
    from attrprune import compression_plot, headlines
    from attrprune.paper import paper_markdown as paper_text
    from attrprune.report_html import write_markdown

    records = read_metrics(metrics_files)
    df = tidy_compression(records)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    summ = summary(df)
    token_settings = token_perplexity_settings(records)
    intro = (
        "token PPL: token perplexity by the Wanda / SparseGPT protocol (non-overlapping windows of the "
        "seqlen in the header); lm-eval word PPL: lm-eval's rolling word perplexity, a different number. "
        "± is the standard error over reference seeds (the reference / calibration samples); eval s.e. is "
        "lm-eval's standard error of the mean accuracy over its documents; the paired tables give 95 % "
        "bootstrap intervals over documents (the same documents for both models) of the seed-mean "
        "difference to the dense model and to lrp.\n\n"
    )
    paired = paired_differences(records)
    short = headlines.section(headlines.compression(summ, paired, at))
    tables = (
        pivot_markdown(summ, at, token_settings)
        + "\n"
        + paired_markdown(paired, at)
        + "\n"
        + sweep_markdown(summ, token_settings)
    )
    with atomic_path(Path(csv).with_name(Path(csv).stem + "_paired.csv")) as tmp:
        paired.to_csv(tmp, index=False)
    # and its HTML rendering beside it, which Snakemake's report shows (it cannot show Markdown)
    write_markdown(markdown, with_code_section("# Compression\n\n" + short + intro + tables, records))
    if paper_markdown is not None:
        atomic_write_text(paper_markdown, paper_text(summ, at, token_settings))
    for model in summ.model.unique():
        compression_plot.plot_model(
            summ, model, Path(plots_dir) / f"compression_{model}.png", token_settings.get(model)
        )
