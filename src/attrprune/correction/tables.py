"""Correction tables and plots from the `correction` stage's curve.json files.

* ``correction.csv``: tidy, one row per model × behaviour × method × granularity × normalisation
  × k × metric (behaviour metrics, perplexity per task, ``perplexity`` / ``ppl_change`` of the
  primary perplexity task, pruned counts);
* ``correction.md``: per model × behaviour × granularity, the behaviour (greedy and sampled) and
  the relative perplexity change against k, the methods side by side;
* ``correction_{model}.png``: the trade-off: behaviour metric (greedy) against perplexity change,
  one panel per behaviour × granularity, a line per method, points labelled by k;
* ``correction_examples.md``: greedy generations for a few held-out prompts before (k = 0) and
  after pruning the largest k by lrp (by the first method present when there is no lrp curve).

Run: ``python -m attrprune correction-tables --curves a/curve.json,b/curve.json --csv c.csv
--markdown c.md --plots-dir plots --examples-md e.md``
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from attrprune.io import atomic_path, atomic_write_text, model_name, pyplot, save_figure

KEYS = ["model", "behaviour", "method", "granularity", "normalization"]
COLUMNS = [*KEYS, "k", "metric", "value"]
# (greedy, sampled) behaviour metrics shown in the Markdown tables; the first is plotted.
PRIMARY = {
    "toxicity": ("greedy_toxic_fraction", "toxic_fraction"),
    "repetition": ("greedy_unique_ratio", "sampled_unique_ratio"),
}
LABELS = {"toxicity": "toxic fraction", "repetition": "unique-token ratio"}
_SKIP = ("n_prompts", "n_generations")


def _ident(r: dict) -> dict:
    return {
        "model": model_name(r),
        "behaviour": r["behaviour"],
        "method": r["method"],
        "granularity": r["granularity"],
        "normalization": r["normalization"],
    }


def load_curves(paths: list[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """(tidy table, the parsed curve files)."""
    rows, curves = [], []
    for path in paths:
        r = json.loads(Path(path).read_text())
        curves.append(r)
        ident, task = _ident(r), r["primary_ppl_task"]
        for point in r["curve"]:
            m = point["metrics"]
            values = {k: v for k, v in m.items() if k not in _SKIP}
            values.update(
                perplexity=m[f"word_perplexity:{task}"],
                ppl_change=m[f"ppl_change:{task}"],
                n_pruned=point["n_pruned"],
                n_pruned_measured=point["n_pruned_measured"],
                pruned_fraction=point["pruned_fraction"],
            )
            rows += [{**ident, "k": point["k"], "metric": name, "value": float(v)} for name, v in values.items()]
    if not rows:
        raise ValueError("no curve files given: the correction stage produced nothing to tabulate")
    df = pd.DataFrame(rows)[COLUMNS].sort_values([*KEYS, "k", "metric"], kind="stable")
    dup = df.duplicated([*KEYS, "k", "metric"])
    if dup.any():
        raise ValueError(f"two curve files describe the same run: {df[dup].iloc[0][KEYS].to_dict()}")
    return df, curves


def _fmt(x, spec: str) -> str:
    return "–" if x is None or pd.isna(x) else format(x, spec)


def markdown_tables(df: pd.DataFrame, measured: dict[tuple, str] | None = None) -> str:
    """One table per model × behaviour × granularity × normalisation; `measured` maps such a key
    to what text the behaviour was measured on (curve.json's ``measured_text``)."""
    out = []
    for (model, behaviour, gran, norm), grp in df.groupby(["model", "behaviour", "granularity", "normalization"]):
        greedy, sampled = PRIMARY[behaviour]
        on = (measured or {}).get((model, behaviour, gran, norm))
        wide = grp.pivot_table(index="k", columns=["method", "metric"], values="value", aggfunc="first")
        methods = sorted(grp.method.unique(), key=lambda m: (m != "lrp", m))
        head = "| k | " + " | ".join(f"{m}: greedy | {m}: sampled | {m}: Δppl" for m in methods) + " |"
        out += [
            f"### {model}, {behaviour}, {gran}s (normalisation: {norm})",
            "",
            f"{LABELS[behaviour]} of greedy and sampled continuations on held-out prompts"
            + (f" (measured on the {on})" if on else "")
            + "; Δppl = relative change of general perplexity "
            "against k = 0.",
            "",
            head,
            "|---:|" + "---:|" * (3 * len(methods)),
        ]
        for k, row in wide.iterrows():
            cells = []
            for m in methods:
                change = row.get((m, "ppl_change"))
                cells += [
                    _fmt(row.get((m, greedy)), ".3f"),
                    _fmt(row.get((m, sampled)), ".3f"),
                    "–" if change is None or pd.isna(change) else f"{100 * change:+.1f}%",
                ]
            out.append(f"| {k:,} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot_model(df: pd.DataFrame, model: str, path: Path) -> None:
    plt = pyplot()

    sub = df[df.model == model]
    panels = sorted({(b, g) for b, g in zip(sub.behaviour, sub.granularity)})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (behaviour, gran) in zip(axes[0], panels):
        metric = PRIMARY[behaviour][0]
        grp = sub[(sub.behaviour == behaviour) & (sub.granularity == gran)]
        for (method, norm), curve in grp.groupby(["method", "normalization"]):
            wide = curve.pivot_table(index="k", columns="metric", values="value", aggfunc="first").sort_index()
            x, y = 100 * wide["ppl_change"], wide[metric]
            label = method if grp.normalization.nunique() == 1 else f"{method} ({norm})"
            ax.plot(x, y, marker="o", ms=3, label=label)
            for k, xi, yi in zip(wide.index, x, y):
                ax.annotate(f"{k:,}", (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"{model}: {behaviour}, {gran}s", fontsize=9)
        ax.set_xlabel("general perplexity change (%)")
        ax.set_ylabel(f"{LABELS[behaviour]} (greedy)")
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def _cell(text: str, limit: int = 90) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("\n", "⏎")


def examples_markdown(curves: list[dict], n_prompts: int = 3) -> str:
    out = [
        "# Targeted correction: example generations",
        "",
        "Greedy continuations of held-out prompts, unpruned (k = 0) and with the largest k pruned; "
        "⏎ marks a newline. The value after each text is its toxicity score (toxicity) or its "
        "response uniqueness ratio (repetition).",
        "",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in curves:
        groups.setdefault((model_name(r), r["behaviour"], r["granularity"]), []).append(r)
    for (model, behaviour, gran), rs in sorted(groups.items()):
        r = next((c for c in rs if c["method"] == "lrp"), sorted(rs, key=lambda c: c["method"])[0])
        points = sorted(r["curve"], key=lambda p: p["k"])
        before, after = points[0], points[-1]
        value = "greedy_score" if behaviour == "toxicity" else "greedy_ratio"
        out += [
            f"## {model}, {behaviour}, {gran}s: {r['method']}, k = {after['k']:,} ({r['normalization']})",
            "",
            f"| prompt | k = {before['k']:,} | k = {after['k']:,} |",
            "|---|---|---|",
        ]
        for a, b in list(zip(before["examples"], after["examples"]))[:n_prompts]:
            out.append(
                f"| {_cell(a['prompt'], 60)} | {_cell(a['greedy'])} ({a[value]:.2f}) | "
                f"{_cell(b['greedy'])} ({b[value]:.2f}) |"
            )
        out.append("")
    return "\n".join(out)


def correction_tables(
    curve_files: list[Path], csv: Path, markdown: Path, plots_dir: Path, examples_md: Path
) -> pd.DataFrame:
    df, curves = load_curves(curve_files)
    for model in sorted(df.model.unique()):
        plot_model(df, model, Path(plots_dir) / f"correction_{model}.png")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    measured = {
        tuple(_ident(r)[c] for c in ("model", "behaviour", "granularity", "normalization")): r.get("measured_text")
        for r in curves
    }
    atomic_write_text(
        markdown,
        "# Targeted correction\n\nPruning the k components with the lowest contrastive "
        "relevance R_general − R_unwanted (paper Eq. 7).\n\n" + markdown_tables(df, measured),
    )
    atomic_write_text(examples_md, examples_markdown(curves))
    return df
