"""The seed paper's published compression numbers next to ours (Hatefi et al. 2025, Table 1).

Table 1: WikiText-2 perplexity and mean zero-shot accuracy (%) over BoolQ, RTE, HellaSwag,
WinoGrande, ARC-e, ARC-c, OBQA at 50 % row-wise unstructured sparsity; ± is the standard error
over 3 C4 reference seeds. `paper_table` puts our measurement of the same cell beside each
published one when our results have that model (by the aliases of configs/paper.yaml) and
method; every other cell of ours stays "–".

The paper's perplexity is token perplexity on the WikiText-2 test split in windows of 2,048
tokens (the Wanda / SparseGPT protocol), so our perplexity cells are the compression stage's
``token_perplexity`` on ``wikitext2`` at compression.seqlen, never lm-eval's ``wikitext`` word
perplexity (about 1.6x larger); a model without a WikiText-2 token perplexity gets "–".
"""

from __future__ import annotations

import pandas as pd

from attrprune.registry import PAPER_MODELS

# model -> method -> (perplexity, mean accuracy %); "dense" = the unpruned model.
TABLE_1 = {
    "TinyLlama": {"dense": (7.98, 48.74), "magnitude": (24.42, 41.38), "wanda": (11.52, 45.46), "lrp": (11.85, 44.71)},
    "Llama2-7B": {"dense": (5.48, 59.67), "magnitude": (16.13, 51.26), "wanda": (6.94, 55.92), "lrp": (7.14, 54.72)},
    "Llama3-8B": {"dense": (6.13, 63.91), "magnitude": (206.82, 38.77), "wanda": (9.86, 57.07), "lrp": (9.82, 55.18)},
}
# Methods of configs/paper.yaml the paper does not report: our row, the paper's cells "–".
EXTRA_METHODS = ("wanda_onepass", "sparsegpt")
# The scope each method's comparison uses: magnitude per layer as in the Wanda repository, whose
# numbers Table 1 quotes; SparseGPT within each layer, as its authors prune; the rest per row.
SCOPES = {"magnitude": "layer", "sparsegpt": "layer"}


PAPER_SEQLEN = 2048  # tokens per window of the paper's (and Wanda's, SparseGPT's) perplexity


def _ours(summ: pd.DataFrame, alias: str, method: str, at: float, wikitext2: bool) -> tuple[str, str]:
    rows = summ[summ.model == alias]
    rows = (
        rows[rows.sparsity.round(4) == 0.0]
        if method == "dense"
        else rows[
            (rows.method == method)
            & (rows.scope == SCOPES.get(method, "row"))
            & (rows.sparsity.round(4) == round(at, 4))
        ]
    )
    if rows.empty:
        return "–", "–"
    r = rows.iloc[0]
    ppl = "–" if not wikitext2 or pd.isna(r.token_perplexity) else f"{r.token_perplexity:.2f}"
    acc = "–" if pd.isna(r.accuracy) else f"{100 * r.accuracy:.2f}"
    return ppl, acc


def _seqlen_text(settings: dict[str, dict]) -> str:
    seqlens = {
        alias: s["seqlen"] for alias, s in settings.items() if alias in PAPER_MODELS and s["source"] == "wikitext2"
    }
    if not seqlens:
        return "no WikiText-2 token perplexity in our results (compression.ppl_source: wikitext2 measures it)"
    values = sorted(set(seqlens.values()))
    where = (
        f"{values[0]:,} tokens"
        if len(values) == 1
        else ", ".join(f"{alias} {n:,} tokens" for alias, n in sorted(seqlens.items()))
    )
    note = "" if values == [PAPER_SEQLEN] else f"; the paper's windows are {PAPER_SEQLEN:,} tokens, so these differ"
    return f"ours at windows of {where}{note}"


def paper_table(summ: pd.DataFrame, at: float = 0.5, token_settings: dict[str, dict] | None = None) -> str:
    """Markdown: per paper model and method, published perplexity / accuracy and ours.

    `token_settings` ({model: {"source", "seqlen"}}, `tables.token_perplexity_settings`) says
    which models' `token_perplexity` is WikiText-2's and at what seqlen; only those fill our
    perplexity cells."""
    settings = token_settings or {}
    by_model = {v: k for k, v in PAPER_MODELS.items()}
    lines = [
        "| model | method | paper PPL ↓ | ours PPL ↓ | paper ACC % ↑ | ours ACC % ↑ |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model, methods in TABLE_1.items():
        alias = by_model[model]
        wikitext2 = settings.get(alias, {}).get("source") == "wikitext2"
        for method, (ppl, acc) in methods.items():
            ours_ppl, ours_acc = _ours(summ, alias, method, at, wikitext2)
            lines.append(f"| {model} | {method} | {ppl:.2f} | {ours_ppl} | {acc:.2f} | {ours_acc} |")
        for method in EXTRA_METHODS:
            ours_ppl, ours_acc = _ours(summ, alias, method, at, wikitext2)
            if (ours_ppl, ours_acc) != ("–", "–"):
                lines.append(f"| {model} | {method} | – | {ours_ppl} | – | {ours_acc} |")
    return (
        f"Paper Table 1 (50 % row-wise, mean over 3 C4 seeds) and this suite's measurement at sparsity "
        f"{at:.2f}, mean over its reference seeds (dense: sparsity 0; model aliases {', '.join(sorted(PAPER_MODELS))}): "
        f"row-wise, except {', '.join(f'{m} per {s}' for m, s in SCOPES.items())}. wanda is Wanda's "
        f"sequential procedure, wanda_onepass the one-pass scores; methods the paper does not report have "
        f"'–' in its columns.\n\n"
        f"PPL is token perplexity on the WikiText-2 test split (documents joined with blank lines, tokenised "
        f"once, non-overlapping windows, the Wanda / SparseGPT protocol): the paper's at windows of "
        f"{PAPER_SEQLEN:,} tokens, {_seqlen_text(settings)}. lm-eval's `wikitext` word perplexity (in "
        f"compression.md) is a different, larger number and is not compared here.\n\n" + "\n".join(lines) + "\n"
    )


def paper_markdown(summ: pd.DataFrame, at: float = 0.5, token_settings: dict[str, dict] | None = None) -> str:
    """compression_paper.md: the comparison when the run has a paper model (an alias of
    configs/paper.yaml), else one line saying there is nothing to compare."""
    title = "# Compression: the paper's Table 1 and ours\n\n"
    if not set(summ.model) & set(PAPER_MODELS):
        return (
            title + f"No paper model in this run (the preset aliases are {', '.join(sorted(PAPER_MODELS))}, "
            "configs/paper.yaml): nothing to compare with the paper's Table 1.\n"
        )
    return title + paper_table(summ, at, token_settings)
