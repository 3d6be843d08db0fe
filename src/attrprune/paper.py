"""The seed paper's published compression numbers next to ours (Hatefi et al. 2025, Table 1).

Table 1: WikiText-2 perplexity and mean zero-shot accuracy (%) over BoolQ, RTE, HellaSwag,
WinoGrande, ARC-e, ARC-c, OBQA at 50 % row-wise unstructured sparsity; ± is the standard error
over 3 C4 reference seeds. `paper_table` puts our measurement of the same cell beside each
published one when our results have that model (by the aliases of configs/paper.yaml) and
method; every other cell of ours stays "–".
"""

from __future__ import annotations

import pandas as pd

# model -> method -> (perplexity, mean accuracy %); "dense" = the unpruned model.
TABLE_1 = {
    "TinyLlama": {"dense": (7.98, 48.74), "magnitude": (24.42, 41.38), "wanda": (11.52, 45.46), "lrp": (11.85, 44.71)},
    "Llama2-7B": {"dense": (5.48, 59.67), "magnitude": (16.13, 51.26), "wanda": (6.94, 55.92), "lrp": (7.14, 54.72)},
    "Llama3-8B": {"dense": (6.13, 63.91), "magnitude": (206.82, 38.77), "wanda": (9.86, 57.07), "lrp": (9.82, 55.18)},
}
# Aliases of configs/paper.yaml.
ALIASES = {"tinyllama-1.1b": "TinyLlama", "llama-2-7b": "Llama2-7B", "llama-3-8b": "Llama3-8B"}


def _ours(summ: pd.DataFrame, alias: str, method: str, at: float) -> tuple[str, str]:
    rows = summ[(summ.model == alias) & (summ.scope == "row")]
    rows = rows[rows.sparsity.round(4) == 0.0] if method == "dense" else rows[(rows.method == method) & (rows.sparsity.round(4) == round(at, 4))]
    if rows.empty:
        return "–", "–"
    r = rows.iloc[0]
    ppl = "–" if pd.isna(r.perplexity) else f"{r.perplexity:.2f}"
    acc = "–" if pd.isna(r.accuracy) else f"{100 * r.accuracy:.2f}"
    return ppl, acc


def paper_table(summ: pd.DataFrame, at: float = 0.5) -> str:
    """Markdown: per paper model and method, published perplexity / accuracy and ours."""
    by_model = {v: k for k, v in ALIASES.items()}
    lines = [f"| model | method | paper PPL ↓ | ours PPL ↓ | paper ACC % ↑ | ours ACC % ↑ |", "|---|---|---:|---:|---:|---:|"]
    for model, methods in TABLE_1.items():
        for method, (ppl, acc) in methods.items():
            ours_ppl, ours_acc = _ours(summ, by_model[model], method, at)
            lines.append(f"| {model} | {method} | {ppl:.2f} | {ours_ppl} | {acc:.2f} | {ours_acc} |")
    return (f"Paper Table 1 (50 % row-wise, mean over 3 C4 seeds) and this suite's measurement at sparsity "
            f"{at:.2f}, row-wise, mean over its reference seeds (dense: sparsity 0; model aliases "
            f"{sorted(ALIASES)}).\n\n" + "\n".join(lines) + "\n")
