"""The SLURM profile requests enough for the paper preset, and the cost model behind that claim.

profiles/slurm/config.yaml sizes every GPU rule from bench/cost_estimates.json (written by
``python bench/cost.py``): its runtime (minutes) and mem_mb (host MB) must be at least MARGIN x
the largest estimate over the preset models that run the rule, so lowering a size below the
estimate fails here. The cost model's pieces are checked too: the linear fit in layers recovers a
synthetic slope, the full depth and the parameter counts come from the published configs, and
the job counts are those of the workflow's dry run of configs/paper.yaml.

bench/ is not a package: bench/cost.py is loaded from its path (as tests/integration/test_gpu_check.py
does); these tests import no torch except the meta-device build.
"""

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
ESTIMATES = ROOT / "bench" / "cost_estimates.json"
MARGIN = 1.5  # the profile's stated margin over the estimate (bench/cost.py MARGIN)


def load_cost():
    spec = importlib.util.spec_from_file_location("bench_cost", ROOT / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cost = load_cost()


@pytest.fixture(scope="module")
def estimates():
    return json.loads(ESTIMATES.read_text())


@pytest.fixture(scope="module")
def sizes():
    return yaml.safe_load(PROFILE.read_text())["set-resources"]


def shortfalls(sizes: dict, estimates: dict, margin: float = MARGIN) -> list[str]:
    """Every GPU rule whose runtime or mem_mb is below `margin` x the estimate (or missing)."""
    out = []
    for rule, need in estimates["slurm"].items():
        size = sizes.get(rule)
        if size is None:
            out.append(f"{rule}: not sized in {PROFILE.name}")
            continue
        for key, estimate in (("runtime", need["runtime_min"]), ("mem_mb", need["mem_mb"])):
            if size.get(key, 0) < margin * estimate:
                which = need["mem_from" if key == "mem_mb" else "runtime_from"]
                out.append(f"{rule}.{key} = {size.get(key)} < {margin} x {estimate:.0f} (the estimate of {which})")
    return out


def test_the_margin_is_the_scripts():
    assert cost.MARGIN >= MARGIN


def test_profile_covers_every_gpu_rule_estimate(sizes, estimates):
    assert set(estimates["slurm"]) == set(cost.RULE_STAGES), "every GPU rule the preset runs has an estimate"
    assert shortfalls(sizes, estimates) == []


@pytest.mark.parametrize("key", ["runtime", "mem_mb"])
def test_a_lowered_size_fails(sizes, estimates, key):
    """The check bites: the compress rule (the largest preset model's job) just below the margin."""
    lowered = copy.deepcopy(sizes)
    need = estimates["slurm"]["compress"]["runtime_min" if key == "runtime" else "mem_mb"]
    lowered["compress"][key] = int(MARGIN * need) - 1
    assert [f for f in shortfalls(lowered, estimates) if f.startswith(f"compress.{key}")]


def test_estimates_are_of_the_current_preset(estimates):
    """The committed JSON was made from configs/paper.yaml as it is (else rerun bench/cost.py)."""
    counts = cost.job_counts(cost.load_preset())
    assert {m: e["jobs"] for m, e in counts.items()} == {m: e["jobs"] for m, e in estimates["jobs"].items()}
    assert set(estimates["estimates"]) == set(counts)


def test_job_counts_match_the_workflow():
    """Per rule, the totals of `snakemake -n --configfile configs/paper.yaml --replace-workflow-config`
    (Snakemake 9.27, this commit's rules): compress 312, compress_dense 3, scores 63, circuit 16,
    circuit_ablation 1, correction 16, behaviour_prompts 2."""
    counts = cost.job_counts(cost.load_preset())
    totals = {}
    for entry in counts.values():
        for stage, n in entry["jobs"].items():
            rule = next(r for r, stages in cost.RULE_STAGES.items() if stage in stages)
            totals[rule] = totals.get(rule, 0) + n
    assert totals == {"compress": 312, "compress_dense": 3, "scores": 63, "circuit": 16, "circuit_ablation": 1,
                      "correction": 16, "behaviour_prompts": 2}  # fmt: skip


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
    monkeypatch.setattr(cost, "ARCHS", patched)
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
