"""What each job asks a cluster for: memory (``mem_mb``, host MB) and time (``runtime``,
minutes), per job from its model, for the SLURM profile (profiles/slurm).

* A built-in world model (``source: world``) is a few million parameters: its jobs ask for
  ``WORLD`` (2 GB, 10 minutes), whatever the rule. They run in seconds (the default config's
  slowest, a correction job, 74 s on 2 busy cores) and use well under 1 GB.
* A hub model that the cost model estimates (bench/cost_estimates.json, written by
  ``python bench/cost.py`` for the paper preset's models; matched by hf_id) asks for ``MARGIN``
  times its own estimate for the rule's stage: runtime rounded up to a quarter hour, at least
  ``min_runtime_min`` of the JSON (30), memory rounded up to 1,000 MB. A scores job takes its
  method's and reference kind's row where the table has one, a rule with several stages
  (compress: score and calibrated pruners; correction: its behaviours) their largest.
* Any other hub model asks for the largest estimate of the rule over the preset's models
  (a model larger than those needs its own row: run bench/cost.py with it).
* Rules outside the cost model (reference sets, the pruned checkpoint's export, IOI prompts) ask
  for a fixed time, and memory from the model's parameter count (``BYTES_PER_PARAM``; a model
  without a row: the largest preset model's).

Torch-free: the workflow imports it to build the DAG.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

MARGIN = 1.5
# A world-model job: MB, minutes.
WORLD = {"mem_mb": 2000, "runtime": 10}
# The GPU rules the cost model estimates, and its stages for each (bench/cost.py reads this table).
RULE_STAGES = {
    "scores": ("scores",),
    "compress": ("compress", "compress_calibrated"),
    "compress_dense": ("compress_dense",),
    "circuit": ("circuit",),
    "circuit_ablation": ("circuit_ablation",),
    "correction": ("correction_toxicity", "correction_repetition"),
    "behaviour_prompts": ("behaviour_prompts",),
}
# The rules outside the cost model. refset and export_pruned hold the model on the CPU in fp32,
# so their memory is bytes per parameter of the model (the cost table's parameter count) plus
# the cost model's fixed host runtime, x MARGIN; their time is fixed (MB, minutes).
BYTES_PER_PARAM = {
    # Builds a reference set on the CPU in fp32; the toxic and repetition sets also generate
    # 12-30 greedy tokens for 64 prompts with it, on the CPU.
    "refset": 4,
    # Prunes in fp32 on the CPU and saves a Hugging Face checkpoint: the model, fp32 scores (4 B
    # per weight) and the sort's int32 keys (4 B per weight).
    "export_pruned": 12,
}
FIXED = {
    "refset": {"runtime": 120},
    "export_pruned": {"runtime": 120},
    # IOI prompts for a hub model (its tokenizer only, whatever the model's size).
    "ioi_data": {"mem_mb": 8000, "runtime": 30},
}
RULES = (*RULE_STAGES, *FIXED)


def load_estimates(path: str | Path) -> dict:
    with open(path) as f:
        return json.load(f)


def _round_up(x: float, step: int) -> int:
    return int(math.ceil(x / step - 1e-9) * step)


def from_estimate(seconds: float, host_bytes: float, estimates: dict) -> dict:
    """MARGIN x an estimate, rounded up: runtime to a quarter hour (and at least the JSON's
    min_runtime_min), mem_mb to 1,000 MB."""
    runtime = max(int(estimates.get("min_runtime_min", 30)), _round_up(MARGIN * seconds / 60, 15))
    return {"mem_mb": _round_up(MARGIN * host_bytes / 1e6, 1000), "runtime": runtime}


def model_estimate(spec: dict, estimates: dict) -> dict | None:
    """The cost model's entry of a model spec (config models.<alias>), by hf_id; None if absent."""
    hf_id = spec.get("hf_id")
    for entry in estimates["estimates"].values():
        if hf_id is not None and entry.get("hf_id") == hf_id:
            return entry
    return None


def stage_need(rule: str, entry: dict, method: str | None = None, kind: str | None = None) -> dict | None:
    """{seconds, host_bytes} of one model's job of `rule`: its method/kind row for scores when the
    table has one, else the largest over the rule's stages that the model has; None if none."""
    stages = [entry["stages"][s] for s in RULE_STAGES[rule] if s in entry["stages"]]
    if not stages:
        return None
    if rule == "scores" and method and kind:
        row = stages[0].get("by_method_kind", {}).get(f"{method}/{kind}")
        if row is not None:
            return {"seconds": row["seconds"], "host_bytes": row["host_bytes"]}
    return {"seconds": max(s["seconds"] for s in stages), "host_bytes": max(s["host_bytes"] for s in stages)}


def job_size(rule: str, spec: dict, estimates: dict, method: str | None = None, kind: str | None = None) -> dict:
    """{mem_mb, runtime} of a job of `rule` on the model `spec` (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"no cluster size for rule {rule!r} (known: {', '.join(RULES)})")
    if spec.get("source") == "world":
        return dict(WORLD)
    entry = model_estimate(spec, estimates)
    if rule in FIXED:
        size = dict(FIXED[rule])
        if rule in BYTES_PER_PARAM:
            params = (
                entry["shape"]["params"]
                if entry
                else max(e["shape"]["params"] for e in estimates["estimates"].values())
            )
            host = BYTES_PER_PARAM[rule] * params + estimates["assumed"]["host_runtime_bytes"]
            size["mem_mb"] = _round_up(MARGIN * host / 1e6, 1000)
        return size
    need = stage_need(rule, entry, method, kind) if entry is not None else None
    if need is None:  # not a preset model, or no row for this rule: the preset's largest
        largest = estimates["slurm"][rule]
        need = {"seconds": largest["runtime_min"] * 60, "host_bytes": largest["mem_mb"] * 1e6}
    return from_estimate(need["seconds"], need["host_bytes"], estimates)
