"""circuits.conventions reaches the circuit jobs: MIB's size rounding and counterfactual patching
for heads and neurons (weights stay zero-ablated), and a conflicting ablation_value is one line."""

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _dry_run(tmp_path, config):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none", "-n", "-p", "--cores", "1",
        "circuit_tables",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _config(**circuits):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["circuits"].update(methods=["lrp"], granularities=["weight", "head"], weight_scopes=["global"], **circuits)
    config["compression"]["models"] = config["correction"]["models"] = []
    return config


def _flags(stdout: str, stage: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        if f"attrprune {stage} " in line:
            words = shlex.split(line.split("Shell command:", 1)[-1].split(">", 1)[0])
            out.append({w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")})
    return out


def test_mib_conventions_reach_the_circuit_jobs(tmp_path):
    r = _dry_run(tmp_path, _config(conventions="mib"))
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = _flags(r.stdout, "circuit")
    by_granularity = {j["--granularity"]: j for j in jobs}
    assert set(by_granularity) == {"weight", "head"}
    assert all(j["--size-rounding"] == "mib" for j in jobs)
    assert by_granularity["head"]["--ablation-value"] == "counterfactual"
    assert by_granularity["weight"]["--ablation-value"] == "zero"  # a weight has no activation to patch
    assert {j["--ablation-value"] for j in _flags(r.stdout, "circuit-ablation")} == {"counterfactual"}

    r = _dry_run(tmp_path, _config())
    assert r.returncode == 0, r.stdout + r.stderr
    assert {(j["--size-rounding"], j["--ablation-value"]) for j in _flags(r.stdout, "circuit")} == {("project", "zero")}


def test_mib_conventions_refuse_another_ablation_value(tmp_path):
    r = _dry_run(tmp_path, _config(conventions="mib", ablation_value="mean"))
    assert r.returncode != 0
    assert "circuits.conventions mib patches removed heads and neurons" in r.stdout + r.stderr
