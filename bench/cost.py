"""Cost model of the paper preset (configs/paper.yaml): device time, peak device and host memory
and disk of every GPU job, per model, from measurements on scaled-down random-init models.

What is measured. Each preset model is built with random weights from its published config.json
(``ARCHS`` below, hard-coded with the hub ids they come from) but with only a few decoder layers
(a full 7-8B model does not fit a small machine), and on it, through the suite's own code:

* ``scores/<method>``: `attrprune.relevance.compute_scores` for lrp, gradient and wanda, one
  sample per pass as the ``scores`` rule runs it (like bench/gpu_check.py), on 3 samples: the
  fastest sample's time is the per-sample cost, the rest of the call (accumulators, |W| products,
  finiteness checks: once per job, over all weights) is recorded apart;
* ``prune``: the compress job's pruning, `CompressionPlan(model, "lrp", "row", scores)` sorted
  once and applied at sparsity 0.5 (host work: the scores live on the CPU);
* ``forward``: a forward pass and log-softmax, the per-token cost of lm-eval's loglikelihood
  requests, the token perplexity and each IOI evaluation;
* ``generate``: greedy `model.generate` of a batch of rows, the cost per generated token of the
  correction and behaviour_prompts jobs (measured on the models the preset generates with).

Each quantity is measured at several layer counts, fitted linearly in the number of layers
(slope = one decoder layer, intercept = embeddings, LM head and fixed overhead; residuals shown)
and extrapolated to the full depth. OPT-125M is also measured at its full 12 layers: the
"extrapolation check" compares that with the extrapolation from 1, 2 and 4 layers.

What is modelled. Per-job work comes from the preset: job counts from the workflow's own dry
run of the preset (bench/cost_jobs.py), tokens per job (reference sets, lm-eval task sizes in
``LM_EVAL_TASKS``, IOI prompts, generated rows), then time = tokens x measured cost per token,
scaled from the measured sequence length to the job's by the ratio of FLOPs per token (linear
layers + causal attention), plus startup and file I/O (``ASSUMED``). Device memory = weights in
bf16 + what the stage keeps whatever the tokens (scores: fp32 accumulators, 4 bytes per weight,
or the measured peak where larger; compress: masks and saved values) + one pass: activations
saved for backward (measured, parameters excluded, scaled to the job's tokens per pass and to
bf16) and the logits (tokens x vocabulary x 4-6 bytes; lm-eval scores wikitext in windows of the
model's max length, batch_size at a time). Host memory = the staged checkpoint, the score files
a job holds and the measured peak resident set of the pruning sort, plus a fixed runtime.

CPU runs (the default): torch on one thread, timed in process CPU time (a shared machine's load
changes wall time, not the work), at a short sequence length; turned into A100 times by ONE
factor, chosen so that LRP on Llama-2-7B costs what the paper reports on an A100 (about 5 s per
2,048-token sample; see bench/gpu_check.py). The factor and the effective A100 throughput it
implies (~17 TFLOP/s) are printed; forward-only stages run closer to peak on a GPU, so they are
likely overestimated by it. These rows are estimates for sizing jobs, not GPU measurements: on a
GPU machine run ``python bench/cost.py --device cuda`` (bf16, 2,048 tokens, CUDA peak memory,
wall time; no factor) and commit the JSON it writes.

Run (CPU: ~7 minutes of one core, ~12 GB of memory):
    python bench/cost.py [--out bench/cost_estimates.json] [--markdown cost.md]
GPU:  python bench/cost.py --device cuda
Estimates again from a JSON's measurements (seconds; e.g. after changing an assumption):
    python bench/cost.py --reuse bench/cost_estimates.json --out new.json
Job counts only (no torch):  python bench/cost.py --counts

The pieces: bench/cost_preset.py (the preset's models, constants, assumptions, shapes and the
fit), cost_jobs.py (job counts), cost_measure.py (measurements), cost_model.py (estimates and
SLURM sizes); this script writes the JSON and the tables.

The JSON (bench/cost_estimates.json, committed) is what tests/unit/test_slurm_sizes.py checks
profiles/slurm/config.yaml against: every GPU rule's runtime and mem_mb must cover the largest
estimate of a preset model by ``MARGIN``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# bench/ is not a package: its modules import each other from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cost_jobs import job_counts, load_preset  # noqa: E402
from cost_measure import measure_all  # noqa: E402
from cost_model import estimate, fits_of, slurm_needs, suggested  # noqa: E402
from cost_preset import (  # noqa: E402, F401  (also this script's interface: tests, other benches)
    ARCHS,
    ASSUMED,
    DEFAULT_OUT,
    LM_EVAL_TASKS,
    MARGIN,
    MIN_RUNTIME_MIN,
    PRESET,
    ROOT,
    RULE_STAGES,
    extrapolate,
    fit_layers,
    full_layers,
    shape,
)

# ----------------------------------------------------------------------------- output


def fmt_time(seconds: float) -> str:
    m = seconds / 60
    return f"{m:.1f} min" if m < 60 else f"{m / 60:.1f} h"


def markdown(est: dict, device: str) -> str:
    """The cost table: one row per model and GPU stage of the preset, a disk row per model."""
    cpu = device == "cpu"
    lines = [
        f"| model | stage | jobs | time per job{' (A100, est.)' if cpu else ''} | device-hours | peak device GB "
        "| peak host GB | disk GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    total_h = total_disk = total_16 = 0.0
    for model, m in est["models"].items():
        for stage, r in m["stages"].items():
            if not r["jobs"]:
                continue
            total_h += r["device_hours"]
            lines.append(
                f"| {model} | {stage} | {r['jobs']} | {fmt_time(r['seconds'])} | {r['device_hours']:.1f} | "
                f"{r['device_bytes'] / 1e9:.1f} | {r['host_bytes'] / 1e9:.1f} | {r['disk_bytes'] / 1e9:.2f} |"
            )
        d = m["disk"]
        rest = d["refsets_bytes"] + d["checkpoint_bytes"] + d["outputs_bytes"]
        total_disk += d["scores_bytes_fp32"] + rest
        total_16 += d["scores_bytes_16bit"] + rest
        lines.append(
            f"| {model} | disk in all: {d['score_files']} score files x {d['score_file_bytes_fp32'] / 1e9:.2f} GB "
            f"(fp32), refsets, checkpoint, outputs | | | | | | {(d['scores_bytes_fp32'] + rest) / 1e9:.1f} |"
        )
    lines.append(f"| **all** | | | | **{total_h:.0f}** | | | **{total_disk / 1e9:.0f}** |")
    if cpu:
        note = (
            f"Every row is a CPU measurement extrapolated to the full model: A100 time = CPU time x "
            f"{est['factor_cpu_to_a100']:.3g} (LRP on Llama-2-7B = the paper's 5 s per 2,048-token sample, an "
            f"effective {est['implied_a100_tflops']:.0f} TFLOP/s)."
        )
    else:
        note = f"Measured on {device} ({est.get('device_name', '')}), extrapolated to the full models."
    note += f" Score files in 16 bits instead of fp32: {total_16 / 1e9:.0f} GB of disk in all."
    return "\n".join(lines) + "\n\n" + note + "\n"


def fit_table(runs: dict) -> str:
    lines = ["| model | quantity | layers | seconds | slope s/layer | intercept s | residuals s | full depth s |",
             "|---|---|---|---|---:|---:|---|---:|"]  # fmt: skip
    for model, run in runs.items():
        for q, f in run["fits"].items():
            t = f["seconds"]
            lines.append(
                f"| {model} | {q} | {','.join(map(str, t['layers']))} | {', '.join(f'{v:.3f}' for v in t['values'])} | "
                f"{t['slope']:.4f} | {t['intercept']:.4f} | {', '.join(f'{v:+.3f}' for v in t['residuals'])} | "
                f"{extrapolate(t, full_layers(model)):.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--preset", type=Path, default=PRESET)
    ap.add_argument("--models", help="comma-separated subset of " + ",".join(ARCHS))
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: on a shared machine extra threads wait on each other)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON estimates (default: %(default)s)")
    ap.add_argument("--markdown", type=Path, help="also write the tables here")
    ap.add_argument("--counts", action="store_true", help="print the preset's job counts and stop")
    ap.add_argument(
        "--reuse", type=Path, help="no measuring: redo the fits and estimates from this JSON's measurements"
    )
    a = ap.parse_args(argv)

    cfg = load_preset(a.preset)
    counts = job_counts(cfg)
    if a.counts:
        for model, e in counts.items():
            print(model, dict(sorted(e["jobs"].items())), e["scores_by_method_kind"])
        return 0
    if a.reuse:
        old = json.loads(a.reuse.read_text())
        meta = old["measurement"]
        runs = {}
        for model, run in old["runs"].items():
            run["measured"] = {int(n): row for n, row in run["measured"].items()}
            runs[model] = {**run, "fits": fits_of(run["measured"], run["layers_fitted"])}
    else:
        meta, runs = measure_all(a, cfg, counts)
        a.out.parent.mkdir(parents=True, exist_ok=True)  # the raw measurements first: --reuse reads them
        a.out.write_text(json.dumps({"measurement": meta, "runs": runs}, indent=1, default=str) + "\n")
    device = meta["device"]
    checks = {}
    for model, run in runs.items():  # depth measured beyond the fit: the extrapolation's check
        for n in set(run["layers_measured"]) - set(run["layers_fitted"]):
            checks[f"{model}@{n}"] = {
                q: {"measured_s": run["measured"][n][q]["seconds"], "predicted_s": extrapolate(f["seconds"], n)}
                for q, f in run["fits"].items()
                if q in run["measured"][n]
            }
    est = estimate(cfg, counts, runs, device)
    needs = slurm_needs(est, counts)
    result = {
        "generated_by": " ".join(["python bench/cost.py", *(sys.argv[1:] if argv is None else argv)]),
        "measurement": meta,
        "preset": str(a.preset.relative_to(ROOT) if a.preset.is_relative_to(ROOT) else a.preset),
        "margin": MARGIN,
        "min_runtime_min": MIN_RUNTIME_MIN,
        "assumed": ASSUMED,
        "lm_eval_tasks": LM_EVAL_TASKS,
        "jobs": {
            m: {"jobs": e["jobs"], "scores_by_method_kind": e["scores_by_method_kind"]} for m, e in counts.items()
        },
        "factor_cpu_to_a100": est["factor_cpu_to_a100"],
        "implied_a100_tflops": est["implied_a100_tflops"],
        "estimates": est["models"],
        "slurm": {rule: {**n, "suggested": suggested(n)} for rule, n in needs.items()},
        "fits": {m: {q: f for q, f in r["fits"].items()} for m, r in runs.items()},
        "extrapolation_checks": checks,
        "runs": {m: {k: v for k, v in r.items() if k != "fits"} for m, r in runs.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")

    table = markdown(est, device)
    fits = fit_table(runs)
    lines = ["", "## What the paper preset costs", "", table, "## Linear fits in layers (seconds)", "", fits]
    if checks:
        lines += ["## Extrapolation check", ""]
        for where, qs in checks.items():
            lines.append(
                f"{where}: "
                + ", ".join(
                    f"{q} {v['measured_s']:.3f} s measured vs {v['predicted_s']:.3f} s predicted" for q, v in qs.items()
                )
            )
        lines.append("")
    lines += ["## SLURM sizes (profiles/slurm/config.yaml: at least MARGIN x estimate)", ""]
    lines += [
        f"{rule}: estimate {n['runtime_min']:.0f} min ({n['runtime_from']}), {n['mem_mb'] / 1000:.1f} GB host "
        f"({n['mem_from']}), {n['device_gb']:.1f} GB device ({n['device_from']}) -> runtime: {suggested(n)['runtime']}, "
        f"mem_mb: {suggested(n)['mem_mb']}"
        for rule, n in needs.items()
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    print(f"wrote {a.out} ({meta['measure_seconds']:.0f} s of measurement)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
