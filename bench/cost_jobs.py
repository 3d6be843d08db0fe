"""The preset's jobs, for the cost model (bench/cost.py): read from the workflow's own dry run
(`snakemake -n` on the preset alone, --replace-workflow-config), so the counts are the DAG's,
never re-derived by hand.

Per model: the jobs of each cost-model stage (compress split into score-based and calibrated
pruners, correction per behaviour), the score files the jobs read (method, reference set) and the
reference sets. Run: ``python bench/cost.py --counts``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from cost_preset import PRESET, ROOT, SCHEMA


def load_preset(path: Path = PRESET) -> dict:
    """The preset with the schema's defaults for the keys it leaves out (one level deep)."""
    cfg = yaml.safe_load(Path(path).read_text())
    schema = yaml.safe_load(SCHEMA.read_text())
    for section, spec in schema.get("properties", {}).items():
        if isinstance(cfg.get(section), dict):
            for key, sub in spec.get("properties", {}).items():
                if key not in cfg[section] and "default" in sub:
                    cfg[section][key] = sub["default"]
    return cfg


def _fields(line: str) -> dict:
    """ "a=1, b=x" (a dry run's wildcards line) -> {"a": "1", "b": "x"}."""
    return dict(part.split("=", 1) for part in line.split(", ") if "=" in part)


@functools.lru_cache(maxsize=4)
def dry_run_jobs(preset: Path = PRESET) -> tuple[tuple[str, tuple], ...]:
    """(rule, wildcards as sorted pairs) of every job of the workflow's dry run of `preset`."""
    with tempfile.TemporaryDirectory(prefix="attrprune-cost-") as workdir:
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", workdir,
               "--configfile", str(preset), "--replace-workflow-config", "--workflow-profile", "none",
               "-n", "--cores", "1"]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"the workflow's dry run of {preset} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    jobs = []  # a job: its "rule <name>:" line, then indented "key: value" lines
    for line in run.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append([line.split()[1].rstrip(":"), {}])
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1][1] = _fields(line[len("    wildcards: ") :])
    jobs = [(rule, tuple(sorted(wildcards.items()))) for rule, wildcards in jobs]
    if not jobs:
        raise SystemExit(f"the workflow's dry run of {preset} listed no jobs:\n{run.stdout[-2000:]}")
    return tuple(jobs)


def _stage(rule: str, wildcards: dict) -> str | None:
    """The cost-model stage of a job (None: outside the cost model)."""
    sys.path.insert(0, str(ROOT / "src"))
    from attrprune import registry  # torch-free

    if rule == "compress":
        return "compress" if registry.compression_methods()[wildcards["method"]] else "compress_calibrated"
    if rule == "correction":
        return f"correction_{wildcards['behaviour']}"
    if rule in ("compress_dense", "circuit", "circuit_ablation", "behaviour_prompts", "scores"):
        return rule
    return None


def job_counts(cfg: dict, preset: Path = PRESET) -> dict:
    """{model: {"jobs": {stage: jobs}, "score_files": {(method, refset)}, "refsets": {refset},
    "scores_by_method_kind": {"method/kind": files}}} of the models that run cost-model jobs, from
    the dry run of `preset` (`cfg`, its loaded config, names the reference-set kinds)."""
    out: dict[str, dict] = {}
    for rule, pairs in dry_run_jobs(Path(preset)):
        wildcards = dict(pairs)
        stage = _stage(rule, wildcards)
        if rule == "refset" and wildcards.get("kind") in cfg["refsets"]:
            refset = f"{wildcards['kind']}-s{wildcards['seed']}"
            out.setdefault(wildcards["model"], _empty())["refsets"].add(refset)
        if stage is None:
            continue
        entry = out.setdefault(wildcards["model"], _empty())
        entry["jobs"][stage] = entry["jobs"].get(stage, 0) + 1
        if rule == "scores":
            entry["score_files"].add((wildcards["method"], wildcards["refset"]))
    out = {model: out[model] for model in cfg["models"] if out.get(model, {}).get("jobs")}  # the preset's order
    for entry in out.values():
        scores = {}
        for method, refset in entry["score_files"]:
            key = f"{method}/{refset.rsplit('-s', 1)[0]}"
            scores[key] = scores.get(key, 0) + 1
        entry["scores_by_method_kind"] = dict(sorted(scores.items()))
    return out


def _empty() -> dict:
    return {"jobs": {}, "score_files": set(), "refsets": set()}
