"""The compression plot of one model (results/plots/compression_{model}.png and .svg): the
table's perplexity and mean accuracy against sparsity, from attrprune.tables.summary. Written by
the compression-tables stage (attrprune.tables.compression_tables).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from attrprune.io import pyplot


def _clip_limit(values: pd.Series, reference: pd.Series) -> float | None:
    """An upper y limit that keeps `reference` (every method but random) readable: 3x its
    largest value, or None when nothing lies beyond that."""
    top = reference.max()
    if pd.isna(top) or not (values > 3 * top).any():
        return None
    return 3 * top


def plot_model(summ: pd.DataFrame, model: str, path: Path, token_setting: dict | None = None) -> None:
    """The table's perplexity (token perplexity where measured, else lm-eval's word perplexity;
    log axis, random clipped at 3x the others' largest value and its off-scale points written
    at the top) and mean accuracy against sparsity; a line per method and scope, a band of ±1
    s.e. over reference seeds. PNG and SVG."""
    from attrprune import plotstyle

    plt = pyplot()
    part = summ[summ.model == model]
    token = part["token_perplexity"].notna().any()
    ppl_col = "token_perplexity" if token else "perplexity"
    if token and token_setting:
        ppl_label = f"{token_setting['source']} token perplexity @{token_setting['seqlen']} (log) ↓"
    else:
        ppl_label = "token perplexity (log) ↓" if token else "lm-eval word perplexity (log) ↓"
    n_seeds = int(part.n_seeds.max()) if len(part) else 1
    band_label = f"±1 s.e. over {n_seeds} reference seeds" if n_seeds > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    limit = _clip_limit(part[ppl_col], part.loc[part.method != "random", ppl_col])
    for (method, scope), rows in part.groupby(["method", "scope"]):
        rows = rows.sort_values("sparsity")
        style = plotstyle.method_style(method, scope)
        for ax, col in zip(axes, (ppl_col, "accuracy")):
            y = rows[col]
            if col == ppl_col and limit is not None:
                for s, v in zip(rows.sparsity, y):
                    if v > limit:  # the off-scale value, written where the line leaves the axes
                        ax.annotate(
                            f"{method} {v:,.0f}", (s, limit), fontsize=7, color=style["color"],
                            xytext=(-4, -10), textcoords="offset points", ha="right",
                        )  # fmt: skip
                y = y.clip(upper=limit)
            ax.plot(rows.sparsity, y, **style)
            se = rows[f"{col}_se"].fillna(0)
            if se.any():
                plotstyle.band(ax, rows.sparsity, y - se, y + se, style["color"], band_label)
    plotstyle.quality_axes(axes, ppl_label, "sparsity (fraction of weights pruned)")
    if limit is not None:
        axes[0].set_ylim(top=limit)
    fig.suptitle(f"{model}: compression by pruning the least relevant weights")
    plotstyle.save(fig, path)
