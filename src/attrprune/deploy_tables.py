"""Tables of structured compression (results/tables/structured.{csv,md,html}): per model, each method
and ratio's quality (token perplexity, lm-eval word perplexity and accuracy: mean ± s.e. over the
reference sets the method read, lm-eval's s.e. where it read one) beside the measured benefit
(parameters, weight-file size, peak memory, forward latency and generation speed as ratios to the
dense model, on the device the speed job names), and each method against lrp at the same ratio:
paired 95 % bootstrap intervals over documents (the same documents; per-document values averaged
over the reference sets) of the mean-accuracy difference and the word-perplexity ratio."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

from attrprune import headlines
from attrprune.evaluation.perplexity import METRIC
from attrprune.io import atomic_path
from attrprune.records import STRUCTURED_DENSE, STRUCTURED_METRICS, STRUCTURED_SPEED, read_json
from attrprune.report_html import write_markdown

SPEED_KEYS = ("parameters", "file_bytes", "peak_memory_bytes", "forward_s", "generate_tokens_per_s")
SPEED_HEADERS = ("params ×", "file ×", "peak mem ×", "forward time ×", "tokens/s ×")


def _read(paths, schema) -> list[dict]:
    """The files, each checked (`attrprune.records`): a damaged one is one line naming it."""
    return [read_json(p, schema) for p in paths]


def _quality(record: dict) -> dict[str, float]:
    """{quantity: value} of one metrics record: token perplexity, word perplexity, mean accuracy."""
    rows = record["metrics"]
    out = {}
    for r in rows:
        if r["metric"] == METRIC:
            out["token_ppl"] = r["value"]
        elif r["metric"] == "word_perplexity":
            out[f"{r['task']}_word_ppl"] = r["value"]
        elif r["metric"] == "acc":
            out[f"{r['task']}_acc"] = r["value"]
    accs = [r["value"] for r in rows if r["metric"] == "acc"]
    if accs:
        out["mean_acc"] = sum(accs) / len(accs)
    return out


def _vs(records: list[dict], reference: list[dict] | None) -> dict:
    """Paired bootstrap over documents against `reference` (attrprune.tables' protocol)."""
    from attrprune.tables import paired_documents, seed_mean_documents

    if not reference or records is reference:
        return {}
    return paired_documents(seed_mean_documents(records), seed_mean_documents(reference))


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    if len(values) < 2:
        return values[0], None
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def _fmt(mean: float, se: float | None, digits: int = 2) -> str:
    return f"{mean:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def plot_model(groups: dict, dense: dict | None, model: str, path: Path) -> None:
    """Token perplexity (log) and mean accuracy against the ratio, one line per method in its
    colour (mean, error bars ±1 s.e. over reference sets; the dense model at ratio 0). PNG and SVG."""
    from attrprune import plotstyle
    from attrprune.io import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    base = _quality(dense) if dense else {}
    methods = sorted({k[1] for k in groups if k[0] == model}, key=_order)
    for method in methods:
        ratios = sorted(k[2] for k in groups if k[0] == model and k[1] == method)
        style = plotstyle.method_style(method)
        for ax, name in zip(axes, ("token_ppl", "mean_acc")):
            xs, ys, ses = ([0.0], [base[name]], [0.0]) if name in base else ([], [], [])
            for r in ratios:
                vals = [_quality(rec)[name] for rec in groups[(model, method, r)] if name in _quality(rec)]
                if vals:
                    mean, se = _mean_se(vals)
                    xs, ys, ses = [*xs, r], [*ys, mean], [*ses, se or 0.0]
            ax.errorbar(xs, ys, yerr=ses if any(ses) else None, capsize=3, **style)
    plotstyle.quality_axes(axes, "token perplexity (log) ↓", "fraction of neurons and heads removed per block")
    fig.suptitle(f"{model}: structured compression (smaller dense models; error bars ±1 s.e. over reference sets)")
    plotstyle.save(fig, path)


def structured_tables(
    metrics: list, dense: list, speed: list, csv_path: Path, md_path: Path, plots_dir: Path | None = None
) -> None:
    records = _read(metrics, STRUCTURED_METRICS)
    denses = {r["model"]: r for r in _read(dense, STRUCTURED_DENSE)}
    speeds = {s["model_name"]: s for s in _read(speed, STRUCTURED_SPEED)}
    rows = []  # tidy: model, method, ratio, reference_set, quantity, value
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], r["method"], r["ratio"])].append(r)
        for quantity, value in _quality(r).items():
            rows.append([r["model"], r["method"], f"{r['ratio']:.2f}", r["reference_set"] or "", quantity, value])
        rows.append(
            [r["model"], r["method"], f"{r['ratio']:.2f}", r["reference_set"] or "", "parameters", r["parameters"]]
        )
    # each group against lrp at its ratio, once: a bootstrap the CSV, the Markdown and In short read
    vs_lrp = {key: _vs(rs, groups.get((key[0], "lrp", key[2]))) for key, rs in groups.items()}
    for (model, method, ratio), vs in vs_lrp.items():
        for key, value in vs.items():
            rows.append([model, method, f"{ratio:.2f}", "", f"vs_lrp_{key}", value])
    for model, r in denses.items():
        for quantity, value in _quality(r).items():
            rows.append([model, "dense", "0.00", "", quantity, value])
    for model, s in speeds.items():
        for label, m in s["models"].items():
            method, _, ratio = label.partition("@")
            for key in SPEED_KEYS:
                rows.append([model, method, ratio or "0.00", "", f"speed_{key}", m[key]])
                if method != "dense":
                    rows.append([model, method, ratio, "", f"speed_{key}_ratio", m["ratios"][key]])
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "method", "ratio", "reference_set", "quantity", "value"])
        w.writerows(rows)

    lines = [
        "# Structured compression",
        "",
        headlines.section(_in_short(groups, vs_lrp, denses, speeds)).rstrip("\n"),
        "",
    ]
    lines.append(
        "A fraction (ratio) of the MLP neurons and of the attention heads (key/value groups) removed in every block; "
        "the smaller model is saved in Hugging Face format, reloaded and evaluated. Token perplexity, lm-eval word "
        "perplexity (world_ppl) and mean accuracy: mean ± s.e. over the reference sets the method read (none: "
        "magnitude, random). The last five columns are measured on the saved models side by side in one run, as "
        "ratios to the dense model (below 1 is smaller / faster, except tokens/s, where above 1 is faster)."
    )
    for model in sorted({k[0] for k in groups} | set(denses)):
        lines += ["", f"## {model}", ""]
        s = speeds.get(model)
        if s is not None:
            st = s["settings"]
            lines.append(
                f"Speed and memory on {st['device']} ({st['device_name']}, {st['threads']} thread(s), torch "
                f"{st['torch']}): forward pass of {st['batch']} × {st['seqlen']} tokens (median of {st['repeats']}), "
                f"{st['new_tokens']} greedy tokens after a {st['prompt']}-token prompt; peak memory = peak resident "
                "set while loading and running, above the process's before loading."
            )
        notes = {
            r["structure"].get(note)
            for k, rs in groups.items()
            if k[0] == model
            for r in rs
            for note in ("heads_note", "compensation_note")
        }
        lines += [f"Note: {n}." for n in sorted(n for n in notes if n)]
        lines += [
            "",
            "| method | ratio | neurons removed / block | heads removed / block | parameters | token ppl | world_ppl word ppl "
            "| mean acc | acc − lrp [95 % CI] | word ppl ÷ lrp [95 % CI] | " + " | ".join(SPEED_HEADERS) + " |",
            "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(SPEED_HEADERS),
        ]
        d = denses.get(model)
        if d is not None:
            q = _quality(d)
            lines.append(
                f"| dense | 0.00 | 0 | 0 | {format(s['models']['dense']['parameters'], ',') if s else ''} | {q.get('token_ppl', float('nan')):.2f} "
                f"| {q.get('world_ppl_word_ppl', float('nan')):.2f} | {q.get('mean_acc', float('nan')):.3f} |  |  | "
                + " | ".join("1.00" for _ in SPEED_KEYS)
                + " |"
            )
        keys = sorted((k for k in groups if k[0] == model), key=lambda k: (k[2], _order(k[1])))
        for key in keys:
            rs = groups[key]
            qs = [_quality(r) for r in rs]

            def cell(name, digits=2, qs=qs):
                vals = [q[name] for q in qs if name in q]
                return _fmt(*_mean_se(vals), digits=digits) if vals else ""

            st = rs[0]["structure"]
            ratios = (s or {}).get("models", {}).get(f"{key[1]}@{key[2]:.2f}", {}).get("ratios", {})
            speed_cells = [f"{ratios[k]:.2f}" if ratios.get(k) is not None else "" for k in SPEED_KEYS]
            vs = vs_lrp[key]
            acc_vs = (
                f"{vs['acc_diff']:+.3f} [{vs['acc_diff_lo']:+.3f}, {vs['acc_diff_hi']:+.3f}]"
                if "acc_diff" in vs
                else ""
            )
            ppl_vs = (
                f"{vs['ppl_ratio']:.3f} [{vs['ppl_ratio_lo']:.3f}, {vs['ppl_ratio_hi']:.3f}]"
                if "ppl_ratio" in vs
                else ""
            )
            lines.append(
                f"| {key[1]} | {key[2]:.2f} | {st['neurons_removed_per_block']} of {st['neurons_per_block']} "
                f"| {st['heads_removed_per_block']} of {st['heads_per_block']} | {rs[0]['parameters']:,} "
                f"| {cell('token_ppl')} | {cell('world_ppl_word_ppl')} | {cell('mean_acc', 3)} | {acc_vs} | {ppl_vs} | "
                + " | ".join(speed_cells)
                + " |"
            )
    write_markdown(md_path, "\n".join(lines) + "\n")  # and structured.html beside it, for the report
    if plots_dir is not None:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        for model in sorted({k[0] for k in groups}):
            plot_model(groups, denses.get(model), model, Path(plots_dir) / f"structured_{model}.png")


def _in_short(groups: dict, vs_lrp: dict, denses: dict, speeds: dict) -> list[str]:
    """headlines.structured from the tables' records: mean token perplexity per model, method and
    ratio (the dense model's at ratio 0) with the paired comparison against lrp of the table, and
    the forward-time ratios of the speed measurement."""
    import pandas as pd

    rows = []
    for (model, method, ratio), rs in groups.items():
        values = [q["token_ppl"] for q in map(_quality, rs) if "token_ppl" in q]
        vs = vs_lrp[(model, method, ratio)]
        rows.append({"model": model, "method": method, "ratio": ratio,
                     "token_ppl": statistics.fmean(values) if values else math.nan,
                     **{f"vs_lrp_{k}": vs.get(k, math.nan) for k in
                        ("ppl_ratio_lo", "ppl_ratio_hi", "acc_diff_lo", "acc_diff_hi")}})  # fmt: skip
    rows += [{"model": m, "method": "dense", "ratio": 0.0, "token_ppl": _quality(r).get("token_ppl", math.nan)}
             for m, r in denses.items()]  # fmt: skip
    speed = {
        (model, method, float(ratio)): m["ratios"]["forward_s"]
        for model, s in speeds.items()
        for label, m in s["models"].items()
        for method, _, ratio in [label.partition("@")]
        if method != "dense" and m.get("ratios", {}).get("forward_s") is not None
    }
    device = {model: s["settings"]["device"] for model, s in speeds.items()}
    return headlines.structured(pd.DataFrame(rows), speed, device)


def _order(method: str) -> tuple[int, str]:
    first = ("lrp", "gradient", "activation", "wanda", "flap", "magnitude", "random")
    return (first.index(method) if method in first else len(first), method)
