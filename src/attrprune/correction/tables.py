"""Correction tables and plots from the `correction` stage's curve.json files.

* ``correction.csv``: tidy, one row per model × behaviour × method × granularity × normalisation
  × k × metric (behaviour metrics, control metrics, perplexity per task, ``perplexity`` /
  ``ppl_change`` of the primary perplexity task, pruned counts);
* ``correction.md`` (and ``correction.html``, the same rendered for the report): first, where the curves carry per-prompt side effects (world models), the
  operating point chosen on validation prompts and reported on test prompts with every side effect
  (`honest_table`, `attrprune.correction.side_effects`); then the best operating point of every method: the best headline value at
  a perplexity change ≤ `max_ppl_change` *and* a control fidelity (``control_unchanged``, the
  share of control replies identical to the unpruned model's) ≥ `min_control_unchanged`; then
  per model × behaviour × granularity the headline (greedy and sampled), control fidelity and
  relative perplexity change against k, the methods side by side, and a details table (reply
  length, empty replies, the reply-only ratio and distinct-2 for repetition, the control replies'
  ratio, length and closed share);
* ``correction_{model}.png`` and ``.svg``: small panels against k, a row per behaviour ×
  granularity: the headline (greedy, with its bootstrap band), control fidelity, perplexity change
  and the side effects measured, a line per method, the thresholds drawn (`attrprune.plotstyle`);
* ``correction_examples.md``: greedy generations for a few held-out trigger and control prompts
  before (k = 0) and after pruning the largest k by lrp (by the first method present when there
  is no lrp curve).

Headlines: toxicity: greedy toxic fraction (lower is better); repetition: unique-token ratio over
the first `window` generated tokens (higher is better), not over the reply alone, which rewards
replies cut short.

Intervals: where the curve's ``generations.jsonl`` lies beside it (as the correction stage writes
it), the best-operating-point table gives each headline a 95 % percentile bootstrap interval over
the held-out prompts, its change from k = 0 with a paired interval (the same resampled prompts at
k and at k = 0), and the control fidelity's interval over the control prompts
(`attrprune.circuits.bootstrap.resample`). The perplexity change has none: lm-eval reports no
standard error for word perplexity.

Run: ``python -m attrprune correction-tables --curves a/curve.json,b/curve.json --csv c.csv
--markdown c.md --plots-dir plots --examples-md e.md --max-ppl-change 0.05 --min-control-unchanged 0.75``
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from attrprune import headlines
from attrprune.correction.operating import (
    BOOTSTRAP_SEED,
    CONTROL,
    LOWER_IS_BETTER,
    N_RESAMPLES,
    PRIMARY,
    _fmt,
    _methods,
    _pct,
    best_table,
    honest_table,
    read_per_prompt,
)
from attrprune.io import atomic_path, model_name, pyplot
from attrprune.lineage import with_code_section
from attrprune.records import BadRecord, check, read_correction_curve, read_text
from attrprune.report_html import write_markdown

KEYS = ["model", "behaviour", "method", "granularity", "normalization"]
COLUMNS = [*KEYS, "k", "metric", "value"]
LABELS = {"toxicity": "toxic fraction", "repetition": "unique-token ratio of the first tokens"}
# Secondary columns of the details table, (metric, heading, format), shown when measured.
DETAILS = {
    "toxicity": [
        ("greedy_reply_length", "reply length", ".1f"),
        ("greedy_empty_share", "empty", ".2f"),
    ],
    "repetition": [
        ("greedy_unique_ratio", "ratio (reply)", ".3f"),
        ("greedy_unique_ratio_full", "ratio (whole)", ".3f"),
        ("greedy_distinct2_window", "distinct-2 (window)", ".3f"),
        ("greedy_reply_length", "reply length", ".1f"),
        ("greedy_empty_share", "empty", ".2f"),
    ],
}
CONTROL_DETAILS = [
    ("control_unique_ratio", "control ratio", ".3f"),
    ("control_length", "control length", ".1f"),
    ("control_closed", "control closed", ".2f"),
]
_SKIP = ("n_prompts", "n_generations")
# Per-prompt value of each greedy headline in generations.jsonl (toxicity: toxic or not).
PER_PROMPT = {
    "toxicity": lambda r: float(r["greedy_score"] >= 0.5),
    "repetition": lambda r: float(r["greedy_window_ratio"]),
}


def prompt_intervals(generations: Path, behaviour: str, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED):
    """{k: {"lo", "hi", "change", "change_lo", "change_hi", "ctrl_lo", "ctrl_hi"}}: 95 % percentile
    bootstrap intervals over prompts of the greedy headline at each k, of its change from k = 0
    (paired: the same prompts drawn at both), and of the control fidelity (over control prompts)."""
    import numpy as np

    from attrprune.circuits.bootstrap import percentile_interval, resample

    by_k: dict[int, dict[str, list]] = {}
    for n, line in enumerate(read_text(generations).splitlines(), 1):
        try:
            r = check(json.loads(line), {"k": int}, f"{generations}:{n}")
            bucket = by_k.setdefault(r["k"], {"trigger": [], "control": []})
            value = float(r["unchanged"]) if r.get("control") else PER_PROMPT[behaviour](r)
            if not math.isfinite(value):
                raise ValueError(f"a value is {value}, not a finite number")
            bucket["control" if r.get("control") else "trigger"].append(value)
        except BadRecord:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{generations}:{n}: not a generation record of the correction stage ({e!r})") from None
    if 0 not in by_k:
        raise ValueError(f"{generations} has no k = 0 generations, the baseline of every change")
    base = np.array(by_k[0]["trigger"])
    out = {}
    for k, bucket in by_k.items():
        values = np.array(bucket["trigger"])
        if len(values) != len(base):
            raise ValueError(f"{generations}: {len(values)} prompts at k = {k}, {len(base)} at k = 0")
        _, v = resample(lambda i, x=values: x[i].mean(-1), [len(values)], n_resamples, seed)
        change, d = resample(lambda i, x=values: (x[i] - base[i]).mean(-1), [len(values)], n_resamples, seed)
        row = dict(zip(("lo", "hi"), percentile_interval(v)))
        row.update(change=change, **dict(zip(("change_lo", "change_hi"), percentile_interval(d))))
        if bucket["control"]:
            c = np.array(bucket["control"])
            _, cb = resample(lambda i, x=c: x[i].mean(-1), [len(c)], n_resamples, seed)
            row.update(zip(("ctrl_lo", "ctrl_hi"), percentile_interval(cb)))
        out[k] = row
    return out


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
        r = read_correction_curve(path)
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
        generations = Path(path).with_name("generations.jsonl")
        if generations.exists():
            headline = PRIMARY[r["behaviour"]][0]
            for k, iv in prompt_intervals(generations, r["behaviour"]).items():
                named = {f"{headline}_{key}": v for key, v in iv.items() if not key.startswith("ctrl")}
                named.update({f"{CONTROL}_{key[5:]}": v for key, v in iv.items() if key.startswith("ctrl")})
                rows += [{**ident, "k": k, "metric": name, "value": float(v)} for name, v in named.items()]
    if not rows:
        raise ValueError("no curve files given: the correction stage produced nothing to tabulate")
    df = pd.DataFrame(rows)[COLUMNS].sort_values([*KEYS, "k", "metric"], kind="stable")
    dup = df.duplicated([*KEYS, "k", "metric"])
    if dup.any():
        raise ValueError(f"two curve files describe the same run: {df[dup].iloc[0][KEYS].to_dict()}")
    return df, curves


def _headline(behaviour: str, window: int | None) -> str:
    if behaviour == "repetition" and window:
        return f"unique-token ratio of the first {window} generated tokens"
    return LABELS[behaviour]


def markdown_tables(df: pd.DataFrame, notes: dict[tuple, dict] | None = None) -> str:
    """One table per model × behaviour × granularity × normalisation, and its details table;
    `notes` maps such a key to curve.json's ``measured_text`` and ``window``."""
    out = []
    for (model, behaviour, gran, norm), grp in df.groupby(["model", "behaviour", "granularity", "normalization"]):
        greedy, sampled = PRIMARY[behaviour]
        note = (notes or {}).get((model, behaviour, gran, norm), {})
        on = note.get("measured_text")
        wide = grp.pivot_table(index="k", columns=["method", "metric"], values="value", aggfunc="first")
        methods = _methods(grp.method)
        head = "| k | " + " | ".join(f"{m}: greedy | {m}: sampled | {m}: ctrl | {m}: Δppl" for m in methods) + " |"
        out += [
            f"### {model}, {behaviour}, {gran}s (normalisation: {norm})",
            "",
            f"{_headline(behaviour, note.get('window'))} of greedy and sampled continuations on held-out prompts"
            + (f" (measured on the {on})" if on and behaviour == "toxicity" else "")
            + (
                f" (the reply-only ratio and lengths are measured on the {on})"
                if on and behaviour != "toxicity"
                else ""
            )
            + "; ctrl = share of control replies unchanged from k = 0; Δppl = relative change of the "
            f"{note.get('ppl_task') or 'general'} perplexity against k = 0.",
            "",
            head,
            "|---:|" + "---:|" * (4 * len(methods)),
        ]
        for k, row in wide.iterrows():
            cells = []
            for m in methods:
                cells += [
                    _fmt(row.get((m, greedy)), ".3f"),
                    _fmt(row.get((m, sampled)), ".3f"),
                    _fmt(row.get((m, CONTROL)), ".2f"),
                    _pct(row.get((m, "ppl_change"))),
                ]
            out.append(f"| {k:,} | " + " | ".join(cells) + " |")
        details = [d for d in DETAILS[behaviour] + CONTROL_DETAILS if (grp.metric == d[0]).any()]
        if details:
            out += [
                "",
                "| k | method | " + " | ".join(h for _, h, _ in details) + " |",
                "|---:|---|" + "---:|" * len(details),
            ]
            for k in sorted(grp.k.unique()):
                for m in methods:
                    cells = [_fmt(wide.get((m, metric), pd.Series(dtype=float)).get(k), f) for metric, _, f in details]
                    out.append(f"| {k:,} | {m} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


# Side effects plotted beside the behaviour when measured (world models): (metric, axis label).
SIDE_PANELS = [
    ("side:ioi:correct", "IOI accuracy (side effect) ↑"),
    ("acc:world_facts", "facts accuracy (side effect) ↑"),
]


def _k_axis(ax, ks) -> None:
    """k on a symmetric-log axis (k = 0 is the unpruned model), a tick at every k."""
    ks = sorted(ks)
    positive = [k for k in ks if k > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xticks(ks)
    ax.set_xticklabels([f"{k:,}" for k in ks], rotation=45 if len(ks) > 5 else 0, fontsize=8)
    ax.set_xlabel("k (components pruned)")


def plot_model(
    df: pd.DataFrame, model: str, path: Path, max_ppl_change: float | None = None, min_control: float | None = None
) -> None:
    """Small panels against k, a row per behaviour × granularity: the behaviour's greedy headline
    (a 95 % bootstrap band over prompts where measured), control fidelity, the general
    perplexity change and the side effects measured (IOI, facts); a line per method in its
    colour, points in k order; the thresholds of the best-operating-point table drawn. PNG and SVG."""
    from attrprune import plotstyle

    plt = pyplot()
    sub = df[df.model == model]
    groups = sorted({(b, g) for b, g in zip(sub.behaviour, sub.granularity)})
    measured = set(sub.metric)
    panels = [
        (None, None),  # the behaviour's headline
        *([(CONTROL, "control replies unchanged ↑")] if CONTROL in measured else []),
        ("ppl_change", "general perplexity change (%) ↓"),
        *[(m, label) for m, label in SIDE_PANELS if m in measured],
    ]
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(3.5 * len(panels), 3.1 * len(groups)), squeeze=False)
    for row, (behaviour, gran) in zip(axes, groups):
        grp = sub[(sub.behaviour == behaviour) & (sub.granularity == gran)]
        several = grp.normalization.nunique() > 1
        for (method, norm), curve in grp.groupby(["method", "normalization"]):
            wide = curve.pivot_table(index="k", columns="metric", values="value", aggfunc="first").sort_index()
            label = f"{method} ({norm})" if several else method
            style = plotstyle.method_style(method, norm if several else None, label=label)
            for ax, (metric, _) in zip(row, panels):
                metric = metric or PRIMARY[behaviour][0]
                if metric not in wide:
                    continue
                y = wide[metric] * (100 if metric == "ppl_change" else 1)
                ax.plot(wide.index, y, **style)
                if f"{metric}_lo" in wide and wide[f"{metric}_lo"].notna().any():
                    plotstyle.band(
                        ax, wide.index, wide[f"{metric}_lo"], wide[f"{metric}_hi"], style["color"],
                        plotstyle.BOOTSTRAP_PROMPTS,
                    )  # fmt: skip
        ks = sorted(grp.k.unique())
        for ax, (metric, label) in zip(row, panels):
            ax.set_ylabel(label or f"{LABELS[behaviour]} (greedy) {'↓' if LOWER_IS_BETTER[behaviour] else '↑'}")
            ax.set_title(f"{behaviour}, {gran}s", fontsize=9)
            if metric == "ppl_change" and max_ppl_change is not None:
                plotstyle.threshold(ax, 100 * max_ppl_change, f"limit +{100 * max_ppl_change:g} %")
            if metric == CONTROL and min_control is not None:
                plotstyle.threshold(ax, min_control, f"limit {min_control:g}")
            _k_axis(ax, ks)
            plotstyle.finish(ax)
    fig.suptitle(f"{model}: targeted correction against k", fontsize=11)
    plotstyle.save(fig, path)


def _cell(text: str, limit: int = 90) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("\n", "⏎")


def examples_markdown(curves: list[dict], n_prompts: int = 3) -> str:
    out = [
        "# Targeted correction: example generations",
        "",
        "Greedy continuations of held-out prompts, unpruned (k = 0) and with the largest k pruned; "
        "⏎ marks a newline. The value after each text is its toxicity score (toxicity), the "
        "uniqueness ratio of its first generated tokens (repetition) or, for control prompts "
        "(which should get a normal reply), the uniqueness ratio of the reply.",
        "",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in curves:
        groups.setdefault((model_name(r), r["behaviour"], r["granularity"]), []).append(r)
    for (model, behaviour, gran), rs in sorted(groups.items()):
        r = next((c for c in rs if c["method"] == "lrp"), sorted(rs, key=lambda c: c["method"])[0])
        points = sorted(r["curve"], key=lambda p: p["k"])
        before, after = points[0], points[-1]
        value = "greedy_score" if behaviour == "toxicity" else "greedy_window_ratio"
        out += [
            f"## {model}, {behaviour}, {gran}s: {r['method']}, k = {after['k']:,} ({r['normalization']})",
            "",
            f"| prompt | k = {before['k']:,} | k = {after['k']:,} |",
            "|---|---|---|",
        ]
        pairs = [(a, b, value) for a, b in list(zip(before["examples"], after["examples"]))[:n_prompts]]
        controls = zip(before.get("control_examples", []), after.get("control_examples", []))
        pairs += [(a, b, "greedy_ratio") for a, b in list(controls)[:n_prompts]]
        for a, b, v in pairs:
            tag = "control: " if a.get("control") else ""
            out.append(
                f"| {tag}{_cell(a['prompt'], 60)} | {_cell(a['greedy'])} ({_fmt(a.get(v), '.2f')}) | "
                f"{_cell(b['greedy'])} ({_fmt(b.get(v), '.2f')}) |"
            )
        out.append("")
    return "\n".join(out)


def correction_tables(
    curve_files: list[Path],
    csv: Path,
    markdown: Path,
    plots_dir: Path,
    examples_md: Path,
    max_ppl_change: float = 0.05,
    min_control_unchanged: float = 0.75,
) -> pd.DataFrame:
    """Write every output (see the module docstring); `max_ppl_change` and `min_control_unchanged`
    are the best-operating-point table's thresholds."""
    if not max_ppl_change >= 0:
        raise ValueError(f"max_ppl_change must be >= 0 (0.05 = 5 %), got {max_ppl_change}")
    if not 0 <= min_control_unchanged <= 1:
        raise ValueError(f"min_control_unchanged is a share in [0, 1], got {min_control_unchanged}")
    df, curves = load_curves(curve_files)
    sides = [Path(path).with_name("per_prompt.jsonl") for path in curve_files]
    per_prompt = [read_per_prompt(side) if side.exists() else [] for side in sides]
    for model in sorted(df.model.unique()):
        plot_model(df, model, Path(plots_dir) / f"correction_{model}.png", max_ppl_change, min_control_unchanged)
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    notes = {
        tuple(_ident(r)[c] for c in ("model", "behaviour", "granularity", "normalization")): {
            "measured_text": r.get("measured_text"),
            "window": r.get("generation", {}).get("window"),
            "ppl_task": r.get("primary_ppl_task"),
        }
        for r in curves
    }
    write_markdown(  # and its .html, for the report
        markdown,
        with_code_section(
            "# Targeted correction\n\n"
            + headlines.section(headlines.correction(df, max_ppl_change, min_control_unchanged))
            + "Pruning the k components with the lowest contrastive "
            "relevance R_general − R_unwanted (paper Eq. 7).\n\n"
            + honest_table(curves, per_prompt, max_ppl_change, min_control_unchanged)
            + "\n"
            + best_table(df, max_ppl_change, min_control_unchanged)
            + "\n## Per k\n\n"
            + markdown_tables(df, notes),
            curves,
        ),
    )
    write_markdown(examples_md, examples_markdown(curves))
    return df
