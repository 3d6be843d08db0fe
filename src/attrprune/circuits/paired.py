"""The paired tests of the circuit tables (`attrprune.circuits.tables`): each method other than
lrp against lrp on the same resamples, ROC AUC per model × granularity × target
(`attrprune.circuits.bootstrap.paired_auc_test`) and the faithfulness areas CPR / CMD per model
× granularity × scope (`attrprune.circuits.faithfulness.paired_areas`), as a table
(circuits_paired.csv) and as Markdown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from attrprune.io import model_name
from attrprune.records import read_circuit_curve

KEYS = ["model", "method", "granularity", "scope"]
BASELINE = "lrp"  # the method every other one is paired against


def _fmt(x, digits: int = 3) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}f}"


PAIRED_COLUMNS = [
    "model", "granularity", "scope", "ablation_value", "method", "baseline", "statistic", "target",
    "n_units", "n_important", "value", "value_baseline", "difference", "lo", "hi", "p_value", "n_resamples",
    "resampled",
]  # fmt: skip


def paired_tests(paths: list[Path]) -> pd.DataFrame:
    """Paired bootstraps of each method against lrp on the same units:

    * ``roc_auc`` (target signed / abs): AUC(method) − AUC(lrp) per model × granularity, on the
      components of the ground truth (the same for every method), resamples stratified by label;
    * ``cpr`` / ``cmd``: the faithfulness areas of method − lrp per model × granularity × scope
      on the same draws of evaluation prompts and reference seeds (`faithfulness.paired_areas`).
    """
    import torch

    from attrprune.circuits.agreement import top_k_mask
    from attrprune.circuits.bootstrap import paired_auc_test
    from attrprune.circuits.faithfulness import paired_areas

    runs, areas = {}, {}
    for path in paths:
        r = read_circuit_curve(path)
        value = r.get("ablation_value", "zero")
        gt = r.get("groundtruth") or {}
        if "components" in gt:  # first scope of each ranking: the others have the same scores
            runs.setdefault((model_name(r), r["granularity"], value, r["method"]), gt)
        fa = r.get("faithfulness") or {}
        if "per_prompt" in fa:
            areas[(model_name(r), r["granularity"], r["scope"], value, r["method"])] = fa
    rows = []
    for (model, gran, value, method), gt in sorted(runs.items()):
        base = runs.get((model, gran, value, BASELINE))
        if method == BASELINE or base is None:
            continue
        drop = torch.tensor(gt["components"]["drop"])
        if not torch.equal(drop, torch.tensor(base["components"]["drop"])):
            raise ValueError(f"{model} {gran}: {method} and {BASELINE} were scored on different ablation components")
        score, base_score = torch.tensor(gt["components"]["score"]), torch.tensor(base["components"]["score"])
        for target, importance in (("signed", drop), ("abs", drop.abs())):
            positive = top_k_mask(importance, gt["top_fraction"])
            seeds = [r["components"].get("seed_scores") for r in (gt, base)]
            if None in seeds:  # curve files without per-seed scores: components only
                seeds = [None, None]
            test = paired_auc_test(score, base_score, positive, gt["n_resamples"], gt["bootstrap_seed"], 0.95, *seeds)
            key = "roc_auc" if target == "signed" else "roc_auc_abs"
            rows.append(
                {
                    "model": model,
                    "granularity": gran,
                    "scope": None,  # the ranking's agreement does not depend on the circuit's scope
                    "ablation_value": value,
                    "method": method,
                    "baseline": BASELINE,
                    "statistic": "roc_auc",
                    "target": target,
                    "n_units": len(drop),
                    "n_important": int(positive.sum()),
                    "value": gt[key],
                    "value_baseline": base[key],
                    **{k: test[k] for k in ("difference", "lo", "hi", "p_value", "n_resamples", "resampled")},
                }
            )
    for (model, gran, scope, value, method), fa in sorted(areas.items()):
        base = areas.get((model, gran, scope, value, BASELINE))
        if method == BASELINE or base is None:
            continue
        test = paired_areas(fa, base, fa["n_resamples"], fa["bootstrap_seed"], fa["level"])
        for stat in ("cpr", "cmd"):
            t = test[stat]
            rows.append(
                {
                    "model": model,
                    "granularity": gran,
                    "scope": scope,
                    "ablation_value": value,
                    "method": method,
                    "baseline": BASELINE,
                    "statistic": stat,
                    "target": None,
                    "n_units": len(fa["per_prompt"]["dense"]),
                    "n_important": None,
                    "value": fa[stat],
                    "value_baseline": base[stat],
                    "difference": t["value"],
                    "lo": t["lo"],
                    "hi": t["hi"],
                    "p_value": t["p_value"],
                    "n_resamples": test["n_resamples"],
                    "resampled": test["resampled"],
                }
            )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def paired_markdown(paired: pd.DataFrame) -> str:
    auc = paired[paired.statistic == "roc_auc"]
    lines = [
        f"| model | granularity | ablation | method | important (signed / abs) | ROC AUC − {BASELINE}, signed drop | p "
        f"| ROC AUC − {BASELINE}, abs drop | p |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (model, gran, value, method), g in auc.groupby(["model", "granularity", "ablation_value", "method"]):
        cells = []
        for target in ("signed", "abs"):
            t = g[g.target == target].iloc[0]
            cells += [f"{t.difference:+.3f} [{t.lo:+.3f}, {t.hi:+.3f}]", f"{t.p_value:.3f}"]
        counts = " / ".join(str(int(g[g.target == t].n_important.iloc[0])) for t in ("signed", "abs"))
        lines.append(
            f"| {model} | {gran} | {value} | {method} | {counts} of {int(g.n_units.iloc[0]):,} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def paired_areas_markdown(paired: pd.DataFrame) -> str:
    rows = paired[paired.statistic.isin(["cpr", "cmd"])]
    lines = [
        f"| model | granularity | scope | ablation | method | CPR | CPR − {BASELINE} | p | CMD | CMD − {BASELINE} | p "
        "| resampled |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    keys = ["model", "granularity", "scope", "ablation_value", "method"]
    for (model, gran, scope, value, method), g in rows.groupby(keys):
        cells = []
        for stat in ("cpr", "cmd"):
            t = g[g.statistic == stat].iloc[0]
            cells += [
                f"{t.value:.3f} vs {t.value_baseline:.3f}",
                f"{t.difference:+.3f} [{t.lo:+.3f}, {t.hi:+.3f}]",
                f"{t.p_value:.3f}",
            ]
        lines.append(
            f"| {model} | {gran} | {scope} | {value} | {method} | "
            + " | ".join(cells)
            + f" | {g.resampled.iloc[0]}, {int(g.n_units.iloc[0])} prompts |"
        )
    return "\n".join(lines)
