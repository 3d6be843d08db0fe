"""What each SLURM job asks for, and the cost model behind it.

Every job that works on a model sets mem_mb and runtime from its model (attrprune.cluster, used by
the rules through cluster_size in rules/common.smk); profiles/slurm sizes the other rules. Both are
read here as Snakemake applies them: from a dry run with ``--workflow-profile profiles/slurm``.
A world model's jobs must fit a small node (16 GB, one hour; the model's own jobs at most 2 GB);
a paper-preset model's job must ask for at least MARGIN x its own estimate in
bench/cost_estimates.json (written by ``python bench/cost.py``), so lowering a size below the
estimate fails here. The cost model's pieces are checked too: the linear fit in layers recovers a
synthetic slope, the full depth and the parameter counts come from the published configs, and
the job counts are those of the workflow's dry run of configs/paper.yaml.

bench/ is not a package: bench/cost.py is loaded from its path (as tests/integration/test_gpu_check.py
does); these tests import no torch except the meta-device build.
"""

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attrprune import cluster

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
ESTIMATES = ROOT / "bench" / "cost_estimates.json"
MARGIN = 1.5  # the stated margin over the estimate (bench/cost.py MARGIN)
# A small node: what every job of the built-in world models must fit.
SMALL_NODE = {"mem_mb": 16000, "runtime": 60}
WORLD_JOB_MB = 2000


def load_cost():
    spec = importlib.util.spec_from_file_location("bench_cost", ROOT / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cost = load_cost()


@pytest.fixture(scope="module")
def estimates():
    return json.loads(ESTIMATES.read_text())


def _fields(line: str) -> dict:
    """ "a=1, b=x y, c=2" (a dry run's wildcards / resources line) -> {a: "1", b: "x y", c: "2"}."""
    return dict(part.split("=", 1) for part in line.split(", ") if "=" in part)


def submitted_jobs(tmp_path, *configfiles, extra=()) -> list[dict]:
    """Each job a dry run through the SLURM profile would submit: {rule, wildcards, resources}
    (a local rule, or one without output like `all`, is never submitted)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", str(PROFILE), "-n", "--configfile", *map(str, configfiles), *extra]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = []
    for block in r.stdout.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        while lines and lines[0].startswith("[") and lines[0].endswith("]"):  # the job's timestamp
            lines.pop(0)
        if not lines or not lines[0].startswith("rule ") or not any(x.startswith("output:") for x in lines):
            continue
        job = {"rule": lines[0][len("rule ") : -1], "wildcards": {}, "resources": {}}
        for line in lines[1:]:
            key, _, value = line.partition(": ")
            if key in ("wildcards", "resources"):
                job[key] = _fields(value)
        jobs.append(job)
    assert jobs, r.stdout[-3000:]
    return jobs


def too_large_for_a_small_node(jobs: list[dict]) -> list[str]:
    out = []
    for job in jobs:
        res, model_job = job["resources"], job["rule"] in cluster.RULES
        limits = {**SMALL_NODE, "mem_mb": WORLD_JOB_MB if model_job else SMALL_NODE["mem_mb"]}
        for key, limit in limits.items():
            if key not in res or int(res[key]) > limit:
                out.append(f"{job['rule']} {job['wildcards']}: {key}={res.get(key)} (at most {limit})")
    return out


def shortfalls(jobs: list[dict], estimates: dict, margin: float = MARGIN) -> list[str]:
    """Every preset-model job of a cost-model rule whose runtime or mem_mb is below `margin` x its
    model's estimate: the scores job's method/kind row where the table has one, else the largest
    of the rule's stages for that model."""
    models = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())["models"]
    by_hf_id = {e["hf_id"]: e for e in estimates["estimates"].values()}
    out = []
    for job in jobs:
        rule, wc, res = job["rule"], job["wildcards"], job["resources"]
        if rule not in cost.RULE_STAGES:
            continue
        entry = by_hf_id[models[wc["model"]]["hf_id"]]
        stages = [entry["stages"][s] for s in cost.RULE_STAGES[rule] if s in entry["stages"]]
        assert stages, f"{rule} runs on {wc['model']}, which has no estimate for it"
        rows = [s.get("by_method_kind", {}).get(f"{wc.get('method')}/{wc.get('refset', '').rsplit('-s', 1)[0]}") for s in stages]  # fmt: skip
        need = rows[0] if rule == "scores" and rows[0] else None
        seconds = need["seconds"] if need else max(s["seconds"] for s in stages)
        host = need["host_bytes"] if need else max(s["host_bytes"] for s in stages)
        for key, estimate in (("runtime", seconds / 60), ("mem_mb", host / 1e6)):
            if int(res.get(key, 0)) < margin * estimate:
                out.append(f"{rule} {wc}: {key}={res.get(key)} < {margin} x {estimate:.0f}")
    return out


@pytest.fixture(scope="module")
def preset_jobs(tmp_path_factory):
    return submitted_jobs(tmp_path_factory.mktemp("paper"), ROOT / "configs" / "paper.yaml",
                          extra=["--replace-workflow-config"])  # fmt: skip


def test_the_margin_and_stages_are_the_scripts():
    assert cost.MARGIN >= MARGIN and cluster.MARGIN >= MARGIN
    assert cluster.RULE_STAGES == cost.RULE_STAGES


@pytest.mark.parametrize(
    "configfiles",
    [("config.yaml",), ("config.yaml", "configs/world_full.yaml"), ("tests/e2e/config.yaml",)],
    ids=["default", "world_full", "e2e"],
)
def test_world_model_jobs_fit_a_small_node(tmp_path, configfiles):
    """The built-in world models' jobs, as the profile submits them: each fits a 16 GB, one-hour
    node, and a job on a world model (reference set, scores, compress, ...) asks for at most 2 GB."""
    jobs = submitted_jobs(tmp_path, *(ROOT / c for c in configfiles))
    assert {"refset", "scores", "compress"} <= {j["rule"] for j in jobs}
    assert too_large_for_a_small_node(jobs) == []


def test_every_preset_job_covers_its_models_estimate(preset_jobs, estimates):
    assert set(estimates["slurm"]) == set(cost.RULE_STAGES), "every GPU rule the preset runs has an estimate"
    rules = {j["rule"] for j in preset_jobs}
    assert set(cost.RULE_STAGES) <= rules
    assert shortfalls(preset_jobs, estimates) == []


def test_preset_jobs_ask_for_their_own_model(preset_jobs):
    """Sizes follow the model: OPT-125M's scores jobs ask for less than Llama-3-8B's."""
    mem = {}
    for j in preset_jobs:
        if j["rule"] == "scores" and j["wildcards"]["method"] == "lrp":
            mem.setdefault(j["wildcards"]["model"], set()).add(int(j["resources"]["mem_mb"]))
    assert max(mem["opt-125m"]) * 4 < min(mem["llama-3-8b"])
    assert max(mem["tinyllama-1.1b"]) < min(mem["llama-2-7b"]) < min(mem["llama-3-8b"])


@pytest.mark.parametrize("key", ["runtime", "mem_mb"])
def test_a_lowered_size_fails(preset_jobs, estimates, key):
    """The checks bite: one Llama-3-8B compress job just below the margin, one world job above."""
    lowered = copy.deepcopy(preset_jobs)
    job = next(j for j in lowered if j["rule"] == "compress" and j["wildcards"]["model"] == "llama-3-8b")
    job["resources"][key] = str(int(job["resources"][key]) * 2 // 3 - 1)
    assert [f for f in shortfalls(lowered, estimates) if f.startswith("compress") and f"{key}=" in f]
    world = [
        {"rule": "scores", "wildcards": {"model": "world-llama"}, "resources": {"mem_mb": "2000", "runtime": "30"}}
    ]
    world[0]["resources"][key] = str(int(world[0]["resources"][key]) + 61)
    assert too_large_for_a_small_node(world)


def test_other_hub_models_get_the_presets_largest(estimates):
    """A hub model the cost table does not know asks for the preset's largest estimate x MARGIN."""
    spec = {"source": "hub", "hf_id": "someone/unknown-13b"}
    for rule, largest in estimates["slurm"].items():
        size = cluster.job_size(rule, spec, estimates)
        assert size["runtime"] >= MARGIN * largest["runtime_min"] and size["mem_mb"] >= MARGIN * largest["mem_mb"]
    assert cluster.job_size("refset", spec, estimates)["mem_mb"] >= MARGIN * 4 * 8.03e9 / 1e6  # Llama-3-8B fp32
    with pytest.raises(ValueError, match="no cluster size for rule 'world_card'"):
        cluster.job_size("world_card", spec, estimates)


def test_the_profile_polls_job_states_without_accounting():
    """sacct (the plugin's default) fails on a cluster without slurmdbd; squeue does not."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["slurm-status-command"] == "squeue"
    from snakemake_executor_plugin_slurm import ExecutorSettings

    assert "status_command" in ExecutorSettings.__dataclass_fields__


def test_estimates_are_of_the_current_preset(estimates):
    """The committed JSON was made from configs/paper.yaml as it is (else rerun bench/cost.py)."""
    counts = cost.job_counts(cost.load_preset())
    assert {m: e["jobs"] for m, e in counts.items()} == {m: e["jobs"] for m, e in estimates["jobs"].items()}
    assert set(estimates["estimates"]) == set(counts)


def test_job_counts_are_the_workflows_dry_run(tmp_path):
    """bench/cost.py counts the jobs of the workflow's own dry run of the preset: per GPU rule, its
    stages add up to the rule's count in the dry run's job stats (no job lost or counted twice
    by the mapping onto cost stages), and the split stages are both there."""
    counts = cost.job_counts(cost.load_preset())
    totals = {}
    for entry in counts.values():
        for stage, n in entry["jobs"].items():
            rule = next(r for r, stages in cost.RULE_STAGES.items() if stage in stages)
            totals[rule] = totals.get(rule, 0) + n
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--workflow-profile", "none", "-n", "--quiet", "rules", "--configfile", str(ROOT / "configs" / "paper.yaml"),
           "--replace-workflow-config"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    stats = dict(line.split() for line in r.stdout.split("Job stats:", 1)[1].splitlines()[3:] if len(line.split()) == 2)
    assert totals == {rule: int(stats[rule]) for rule in cost.RULE_STAGES if rule in stats}
    stages = {stage for entry in counts.values() for stage in entry["jobs"]}
    assert {"compress", "compress_calibrated", "correction_toxicity", "correction_repetition"} <= stages


def test_fit_recovers_a_synthetic_linear_cost():
    layers = [1, 2, 4]
    fit = cost.fit_layers(layers, [3.0 + 2.5 * n for n in layers])
    assert fit["slope"] == pytest.approx(2.5) and fit["intercept"] == pytest.approx(3.0)
    assert max(abs(r) for r in fit["residuals"]) < 1e-12
    assert cost.extrapolate(fit, 32) == pytest.approx(3.0 + 2.5 * 32)
    noisy = cost.fit_layers([1, 2, 3, 4], [5.1, 6.9, 9.1, 10.9])  # 3 + 2n with +-0.1 noise
    assert noisy["slope"] == pytest.approx(1.96) and sum(noisy["residuals"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="two distinct"):
        cost.fit_layers([2, 2], [1.0, 1.0])


def test_full_depth_is_read_from_the_config(monkeypatch):
    assert {m: cost.full_layers(m) for m in cost.ARCHS} == {
        "opt-125m": 12, "tinyllama-1.1b": 22, "llama-2-7b": 32, "llama-3-8b": 32}  # fmt: skip
    patched = copy.deepcopy(cost.ARCHS)
    patched["llama-2-7b"]["config"]["num_hidden_layers"] = 5
    monkeypatch.setattr(sys.modules[cost.full_layers.__module__], "ARCHS", patched)  # where the shapes read it
    assert cost.full_layers("llama-2-7b") == 5
    assert cost.shape("llama-2-7b")["prunable"] == 5 * cost.shape("llama-2-7b")["prunable_per_layer"]


def test_parameter_counts_are_the_published_ones():
    """shape() from the hard-coded configs gives each model's published parameter count, and the
    transformers model built from the same config (2 layers, on the meta device: no memory)
    agrees with its per-layer and fixed parts."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    published = {"opt-125m": 125_239_296, "tinyllama-1.1b": 1_100_048_384, "llama-2-7b": 6_738_415_616,
                 "llama-3-8b": 8_030_261_248}  # fmt: skip
    for model, n in published.items():
        s = cost.shape(model)
        assert s["params"] == n, model
        spec = cost.ARCHS[model]
        cfg_cls, cls = (LlamaConfig, LlamaForCausalLM) if spec["family"] == "llama" else (OPTConfig, OPTForCausalLM)
        with torch.device("meta"):
            built = cls(cfg_cls(**{**spec["config"], "num_hidden_layers": 2}))
        unique = {id(p): p.numel() for p in built.parameters()}  # OPT ties its LM head
        assert sum(unique.values()) == n - (s["layers"] - 2) * s["params_per_layer"], model
