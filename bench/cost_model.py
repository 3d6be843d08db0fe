"""The cost model (bench/cost.py): from the measurements' fits in layers to each preset model's
per-job device time, peak device and host memory and disk, stage by stage (`estimate`), and the
SLURM sizes they need (`slurm_needs`, `suggested`).
"""

from __future__ import annotations

import math

from cost_preset import (
    ARCHS,
    ASSUMED,
    LM_EVAL_TASKS,
    MARGIN,
    METHOD_COST,
    MIN_RUNTIME_MIN,
    PRUNE_DONOR,
    RULE_STAGES,
    extrapolate,
    fit_layers,
    flops_per_token,
    full_layers,
    shape,
)


def fits_of(measured: dict, fit_layers_used) -> dict:
    """{quantity: {"seconds": fit, "work_bytes": fit}} over the layer counts used for fitting."""
    layers = sorted(fit_layers_used)
    quantities = [q for q in measured[layers[0]] if all(q in measured[n] for n in layers)]
    keys = {"seconds": "seconds", "call_seconds": "call_seconds", "work_bytes": "device_bytes",
            "host_bytes": "host_bytes", "saved_bytes": "saved_bytes"}  # fmt: skip
    return {
        q: {
            fit: fit_layers(layers, [measured[n][q][key] for n in layers])
            for fit, key in keys.items()
            if key in measured[layers[0]][q]
        }
        for q in quantities
    }


def prune_cost(runs: dict, model: str) -> tuple[float, float]:
    """(host seconds, host bytes) of the compress job's pruning at full depth: the model's own
    fit, or where it was not measured PRUNE_DONOR's fit scaled per layer by the sort work (time)
    and by the weights (bytes)."""
    s, L = shape(model), full_layers(model)
    if "prune" in runs[model]["fits"]:
        f = runs[model]["fits"]["prune"]
        return extrapolate(f["seconds"], L), max(0.0, extrapolate(f["host_bytes"], L))
    if PRUNE_DONOR not in runs or "prune" not in runs[PRUNE_DONOR]["fits"]:
        raise SystemExit(f"{model}: pruning not measured; measure {PRUNE_DONOR} too (--models)")
    f, donor = runs[PRUNE_DONOR]["fits"]["prune"], shape(PRUNE_DONOR)
    per_weight = s["prunable_per_layer"] / donor["prunable_per_layer"]  # memory: bytes per weight
    per_sort = s["sort_work_per_layer"] / donor["sort_work_per_layer"]  # time: n log n per row
    seconds = (f["seconds"]["intercept"] + f["seconds"]["slope"] * L) * per_sort
    return seconds, max(0.0, (f["host_bytes"]["intercept"] + f["host_bytes"]["slope"] * L) * per_weight)


def estimate(cfg: dict, counts: dict, runs: dict, device: str) -> dict:
    """Per model and stage: jobs, device seconds per job, device-hours, peak device and host
    bytes, disk bytes; plus the CPU -> A100 factor. `runs`: {model: {"measured", "fits",
    "tokens", "fwd_batch", "gen"}}."""
    A = ASSUMED
    anchor = A["anchor"]
    per_token = {}  # model -> quantity -> device seconds per token at the measured length
    for model, run in runs.items():
        L = full_layers(model)
        per_token[model] = {
            q: extrapolate(f["seconds"], L) / (run["fwd_batch"] * run["tokens"] if q == "forward" else run["tokens"])
            for q, f in run["fits"].items()
            if q.startswith(("scores/", "forward"))
        }
        g = run["gen"]
        if "generate" in run["fits"]:
            per_token[model]["generate"] = extrapolate(run["fits"]["generate"]["seconds"], L) / (g["rows"] * g["new"])
    if device == "cuda":
        factor = 1.0
    else:
        a = anchor["model"]
        if a not in runs:
            raise SystemExit(f"the CPU -> A100 factor needs {a} measured (--models)")
        cpu_sample = (
            per_token[a]["scores/lrp"]
            * anchor["tokens"]
            * flops_per_token(a, anchor["tokens"])
            / (flops_per_token(a, runs[a]["tokens"]))
        )
        factor = anchor["seconds_per_sample"] / cpu_sample
    implied_tflops = (
        3 * flops_per_token(anchor["model"], anchor["tokens"]) * anchor["tokens"] / anchor["seconds_per_sample"] / 1e12
    )

    def dev_seconds(model, q, tokens, context, calls=0):
        """Device seconds of `tokens` tokens of quantity q at `context` tokens per sequence, and at
        least `calls` forward calls at the per-layer floor."""
        run = runs[model]
        measured_ctx = run["gen"]["prompt"] if q == "generate" else run["tokens"]
        t = per_token[model][q] * tokens * flops_per_token(model, context) / flops_per_token(model, measured_ctx)
        return max(
            factor * t, calls * (A["gpu_seconds_per_call"] + full_layers(model) * A["gpu_seconds_per_layer_call"])
        )

    out = {"factor_cpu_to_a100": factor, "implied_a100_tflops": implied_tflops, "models": {}}
    for model, entry in counts.items():
        if model not in runs:
            continue
        run, s, L = runs[model], shape(model), full_layers(model)
        dtype_scale = 1.0 if device == "cuda" else A["device_bytes_per_param"] / 4  # fp32 -> bf16 activations
        weights_dev = s["params"] * A["device_bytes_per_param"]
        staged = s["params"] * A["checkpoint_bytes_per_param"]
        score_file = 4 * s["score_elements"]
        # Host: the process, plus the larger of the checkpoint staged on the CPU (freed when the
        # model moves to the GPU, before any scores are made or read) and what the job holds later:
        # score files (and their serialized copy while saving), the pruning's sort keys and masks
        # (measured on the CPU, where it also keeps what a GPU job keeps on the device).
        base_host = run["host_base_bytes"] + A["host_runtime_bytes"]
        io = A["fs_bytes_per_s"]
        load = A["startup_s"] + staged / io

        def work(q, run=run, L=L):
            """Peak bytes of quantity q above what was allocated before, at full depth."""
            return max(0.0, extrapolate(run["fits"][q]["work_bytes"], L))

        def state(q, s=s):
            """What a scores call keeps on the device whatever the tokens: the fp32 accumulators or
            scores (4 bytes per weight; on a CPU run the measured peak where it is larger)."""
            return max(4 * s["prunable"], work(q) if device == "cpu" else 0.0) if q.startswith("scores/") else 0.0

        def pass_bytes(q, tokens_per_pass, run=run, s=s, L=L, dtype_scale=dtype_scale):
            """Device bytes of one pass of `tokens_per_pass` tokens beyond weights and state. CUDA:
            the measured peak, scaled to the tokens. CPU: the activations saved for backward (measured,
            in the device dtype) plus the logits per token and vocabulary entry: bf16 logits and
            lm-eval's bf16 log-softmax (4 bytes), or bf16 logits and the fp32 copy the explained
            target takes (scores: 6 bytes)."""
            measured_tokens = run["fwd_batch"] * run["tokens"] if q == "forward" else run["tokens"]
            ratio = tokens_per_pass / measured_tokens
            if device == "cuda":
                return max(0.0, work(q) - state(q)) * ratio
            fit = run["fits"][q].get("saved_bytes")
            saved = max(0.0, extrapolate(fit, L)) if fit else 0.0
            return saved * ratio * dtype_scale + tokens_per_pass * s["vocab"] * (6 if q.startswith("scores/") else 4)

        prune_s, prune_bytes = prune_cost(runs, model)
        rows = {}

        # scores: per method and reference-set kind
        score_rows = {}
        for mk, n_jobs in entry["scores_by_method_kind"].items():
            method, kind = mk.split("/")
            r = cfg["refsets"][kind]
            per_seq = {"general": r.get("length", 2048), "ioi": A["ioi_prompt_tokens"]}.get(
                kind, A["behaviour_prompt_tokens"] + r.get("new_tokens", 0)
            )
            q = METHOD_COST[method]
            compute = dev_seconds(model, f"scores/{q}", r["n"] * per_seq, per_seq, calls=r["n"]) if q else 0.0
            if q:  # once per job over all weights: measured on a GPU; on a CPU run, the copy to the host
                compute += (
                    max(0.0, extrapolate(run["fits"][f"scores/{q}"]["call_seconds"], L))
                    if device == "cuda"
                    else score_file / A["d2h_bytes_per_s"]
                )
            device_peak = weights_dev + (state(f"scores/{q}") + pass_bytes(f"scores/{q}", per_seq) if q else 0)
            score_rows[mk] = {
                "jobs": n_jobs,
                "seconds": load + compute + score_file / io,
                "parts_s": {"load": load, "device": compute, "write_scores": score_file / io},
                "device_bytes": device_peak,
                "host_bytes": base_host + max(staged, 2 * score_file),
                "disk_bytes": score_file,
            }
        rows["scores"] = {
            "jobs": sum(r["jobs"] for r in score_rows.values()),
            "seconds": max(r["seconds"] for r in score_rows.values()),
            "device_hours": sum(r["jobs"] * r["seconds"] for r in score_rows.values()) / 3600,
            "device_bytes": max(r["device_bytes"] for r in score_rows.values()),
            "host_bytes": max(r["host_bytes"] for r in score_rows.values()),
            "disk_bytes": sum(r["jobs"] * r["disk_bytes"] for r in score_rows.values()),
            "by_method_kind": score_rows,
        }

        # compression: lm-eval tasks + token perplexity, per sparsity
        comp = cfg["compression"]
        if any(k.startswith("compress") for k in entry["jobs"]):
            max_len = s["max_positions"]  # lm-eval's max_length: the model's positions
            eval_s, calls, eval_tokens = 0.0, 0, 0
            for task in comp["tasks"]:
                t = LM_EVAL_TASKS[task]
                n_req = t["examples"] * t["requests"]
                tokens = n_req * t["tokens"]
                ctx = min(max_len, t["tokens"]) if not t.get("rolling") else max_len
                eval_s += dev_seconds(model, "forward", tokens, ctx)
                calls += math.ceil(n_req / comp["batch_size"])
                eval_tokens += tokens
            seqlen = comp["seqlen"] or max_len
            if comp["ppl_source"] != "none":
                eval_s += dev_seconds(model, "forward", A["wikitext2_tokens"], seqlen)
                eval_tokens += A["wikitext2_tokens"]
            eval_s = max(eval_s, calls * (A["gpu_seconds_per_call"] + L * A["gpu_seconds_per_layer_call"]))
            # Largest pass: lm-eval's rolling windows of max_len x batch (logits + log-softmax).
            fwd_dev = pass_bytes(
                "forward", comp["batch_size"] * max(max_len if "wikitext" in comp["tasks"] else 0, seqlen)
            )
            general = cfg["refsets"]["general"]
            calib_tokens = general["n"] * general["length"]
            # bool masks and the pruned values kept for restoring, at the highest sparsity
            masks_dev = s["prunable"] * (1 + max(comp["sparsities"]) * A["device_bytes_per_param"])
            common = {"eval_tokens": eval_tokens}
            rows["compress"] = {
                **common,
                "jobs": entry["jobs"].get("compress", 0),
                "seconds": load + score_file / io + prune_s + eval_s,
                "parts_s": {"load": load, "read_scores": score_file / io, "prune_host": prune_s, "evaluate": eval_s},
                "device_bytes": weights_dev + masks_dev + fwd_dev,
                "host_bytes": base_host + max(staged, score_file + prune_bytes),
            }
            # Calibrated pruners: one sequential pass over the calibration set per sparsity (the
            # cost of wanda scores), block inputs and outputs kept on the device; SparseGPT's
            # per-layer solves are not modelled (seconds per layer on a GPU).
            blocks_dev = 2 * calib_tokens * s["hidden"] * A["device_bytes_per_param"]
            rows["compress_calibrated"] = {
                **common,
                "jobs": entry["jobs"].get("compress_calibrated", 0),
                "seconds": load + dev_seconds(model, "scores/wanda", calib_tokens, general["length"]) + eval_s,
                "parts_s": {
                    "load": load,
                    "calibrate": dev_seconds(model, "scores/wanda", calib_tokens, general["length"]),
                    "evaluate": eval_s,
                },  # fmt: skip
                "device_bytes": weights_dev + blocks_dev + fwd_dev,
                "host_bytes": base_host + staged,
            }
            rows["compress_dense"] = {
                **common,
                "jobs": entry["jobs"].get("compress_dense", 0),
                "seconds": load + eval_s,
                "parts_s": {"load": load, "evaluate": eval_s},
                "device_bytes": weights_dev + fwd_dev,
                "host_bytes": base_host + staged,
            }
            small = A["small_output_bytes"]["compress"]
            for k in ("compress", "compress_calibrated", "compress_dense"):
                rows[k]["disk_bytes"] = rows[k]["jobs"] * small

        # circuits: IOI evaluations over the sweep and the search; exhaustive ablation
        circ = cfg["circuits"]
        if entry["jobs"].get("circuit"):
            from attrprune.circuits.faithfulness import curve_sparsities

            seeds = len(cfg["refsets"]["ioi"]["seeds"])
            grid = curve_sparsities(circ["sparsities"], circ.get("faithfulness_sizes") or None)
            evaluations = seeds * len(grid) + 16 + 2  # sweep per seed, sparsest-circuit scan, dense + ablated
            prompts, pt = circ["limit"] or 500, A["ioi_prompt_tokens"]
            per_eval_calls = math.ceil(prompts / A["circuit_batch"])
            compute = dev_seconds(model, "forward", evaluations * prompts * pt, pt, evaluations * per_eval_calls)
            rows["circuit"] = {
                "jobs": entry["jobs"]["circuit"],
                "evaluations": evaluations,
                "seconds": load + seeds * score_file / io + seeds * prune_s + compute,
                "parts_s": {
                    "load": load,
                    "read_scores": seeds * score_file / io,
                    "sort_host": seeds * prune_s,
                    "evaluate": compute,
                },  # fmt: skip
                "device_bytes": weights_dev + s["prunable"] + pass_bytes("forward", A["circuit_batch"] * pt),
                "host_bytes": base_host + max(staged, (seeds + 2) * score_file + prune_bytes),
                "disk_bytes": entry["jobs"]["circuit"] * (A["small_output_bytes"]["circuit"] + s["prunable"]),
            }
        if entry["jobs"].get("circuit_ablation"):
            ab = circ["ablation"]
            forwards = s["heads"] + s["neurons"] + ab["n_weights"] + 1
            pt = A["ioi_prompt_tokens"]
            calls = forwards * math.ceil(ab["limit"] / A["circuit_batch"])
            rows["circuit_ablation"] = {
                "jobs": entry["jobs"]["circuit_ablation"],
                "forwards": forwards,
                "seconds": load + dev_seconds(model, "forward", forwards * ab["limit"] * pt, pt, calls),
                "device_bytes": weights_dev + pass_bytes("forward", A["circuit_batch"] * pt),
                "host_bytes": base_host + staged,
                "disk_bytes": 4 * (s["heads"] + s["neurons"] + 2 * ab["n_weights"]),
            }

        # correction: per k (and k = 0), generate, score, control prompts, lm-eval perplexity
        corr = cfg["correction"]
        for behaviour in corr["behaviours"]:
            key = f"correction_{behaviour}"
            if not entry["jobs"].get(key):
                continue
            kind = {"toxicity": "toxic", "repetition": "repetition"}[behaviour]
            n_eval = corr["n_prompts"] or cfg["refsets"][kind]["n"]
            samples = corr["sampling"]["n"][behaviour]
            new = corr["new_tokens"][behaviour]
            rows_gen = n_eval * (1 + samples) + n_eval  # greedy + samples, control prompts greedy
            points = len({0, *corr["ks"]["neuron"]})  # ks per granularity have the same length here
            points = max(points, len({0, *corr["ks"]["weight"]}))
            gb = A["generation_batch"]
            gen_s = dev_seconds(model, "generate", rows_gen * new, A["behaviour_prompt_tokens"],
                                math.ceil(rows_gen / gb) * new)  # fmt: skip
            ppl_tokens = sum(LM_EVAL_TASKS[t]["examples"] * LM_EVAL_TASKS[t]["tokens"] for t in corr["ppl_tasks"])
            ppl_s = dev_seconds(model, "forward", ppl_tokens, s["max_positions"])
            kv = 2 * s["layers"] * s["hidden"] * A["device_bytes_per_param"] * gb * (A["behaviour_prompt_tokens"] + new)
            rows[key] = {
                "jobs": entry["jobs"][key],
                "points": points,
                "generated_rows_per_point": rows_gen,
                "seconds": load + 2 * score_file / io + prune_s + points * (gen_s + ppl_s),
                "parts_s": {
                    "load": load,
                    "read_scores": 2 * score_file / io,
                    "sort_host": prune_s,
                    "generate": points * gen_s,
                    "perplexity": points * ppl_s,
                },  # fmt: skip
                "device_bytes": weights_dev + s["prunable"] + max(kv, pass_bytes("forward", gb * s["max_positions"])),
                "host_bytes": base_host + max(staged, 4 * score_file + prune_bytes),
                "disk_bytes": entry["jobs"][key] * points * rows_gen * A["small_output_bytes"]["correction_row"],
            }
        if entry["jobs"].get("behaviour_prompts"):
            hub = corr["hub_prompts"]
            new = max(corr["new_tokens"].values())
            gb = A["generation_batch"]
            rows["behaviour_prompts"] = {
                "jobs": entry["jobs"]["behaviour_prompts"],
                "seconds": load
                + dev_seconds(
                    model,
                    "generate",
                    hub["n_candidates"] * new,
                    A["behaviour_prompt_tokens"],
                    math.ceil(hub["n_candidates"] / gb) * new,
                ),  # fmt: skip
                "device_bytes": weights_dev
                + 2 * s["layers"] * s["hidden"] * 2 * gb * (A["behaviour_prompt_tokens"] + new),
                "host_bytes": base_host + staged + A["detoxify_host_bytes"],
                "disk_bytes": 0,
            }
        for r in rows.values():
            r.setdefault("device_hours", r["jobs"] * r["seconds"] / 3600)
        refset_bytes = 0
        for name in entry["refsets"]:
            r = cfg["refsets"][name.rsplit("-s", 1)[0]]
            refset_bytes += 4 * 8 * r["n"] * r.get("length", A["behaviour_prompt_tokens"] + r.get("new_tokens", 0))
        out["models"][model] = {
            "hf_id": ARCHS[model]["hf_id"],
            "shape": s,
            "stages": rows,
            "disk": {
                "score_files": len(entry["score_files"]),
                "score_file_bytes_fp32": score_file,
                "scores_bytes_fp32": len(entry["score_files"]) * score_file,
                "scores_bytes_16bit": len(entry["score_files"]) * score_file // 2,
                "refsets_bytes": refset_bytes,
                "checkpoint_bytes": staged,
                "outputs_bytes": sum(r["disk_bytes"] for k, r in rows.items() if k != "scores"),
            },
        }
    return out


def slurm_needs(est: dict, counts: dict) -> dict:
    """Per GPU rule: the largest estimate (minutes of runtime, MB of host memory) over the preset
    models that run it, and which model that is."""
    needs = {}
    for rule, stages in RULE_STAGES.items():
        cands = [
            (model, st, est["models"][model]["stages"][st])
            for model in est["models"]
            for st in stages
            if counts[model]["jobs"].get(st) and st in est["models"][model]["stages"]
        ]
        if not cands:
            continue
        t = max(cands, key=lambda c: c[2]["seconds"])
        m = max(cands, key=lambda c: c[2]["host_bytes"])
        d = max(cands, key=lambda c: c[2]["device_bytes"])
        needs[rule] = {
            "runtime_min": t[2]["seconds"] / 60,
            "runtime_from": f"{t[0]} {t[1]}",
            "mem_mb": m[2]["host_bytes"] / 1e6,
            "mem_from": f"{m[0]} {m[1]}",
            "device_gb": d[2]["device_bytes"] / 1e9,
            "device_from": f"{d[0]} {d[1]}",
        }
    return needs


def suggested(need: dict) -> dict:
    """The profile's sizes for a need: MARGIN x the estimate, runtime in whole quarter hours (at
    least MIN_RUNTIME_MIN), memory in whole 4 GB."""
    runtime = max(MIN_RUNTIME_MIN, 15 * math.ceil(MARGIN * need["runtime_min"] / 15))
    return {"runtime": runtime, "mem_mb": 4000 * math.ceil(MARGIN * need["mem_mb"] / 4000)}
