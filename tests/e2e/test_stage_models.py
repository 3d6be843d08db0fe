"""<stage>.models: null runs the stage on every model, a list on those, [] on none (the stage's
jobs and table are simply not targets)."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflow import DEFAULT_CONFIG, expected_jobs, job_counts, snakemake, workflow_config  # noqa: E402


@pytest.mark.parametrize(
    "models",
    [
        # circuits and correction on no model; compression on world-opt only
        {"compression": ["world-opt"], "structured": [], "circuits": [], "correction": []},
        # no stage: the world cards only
        {"compression": [], "structured": [], "circuits": [], "correction": []},
    ],
    ids=["one-and-none", "none"],
)
def test_stage_models(tmp_path, models):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for stage, aliases in models.items():
        config[stage]["models"] = aliases
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, path, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout + r.stderr)
    assert not {"circuit", "circuit_tables", "correction", "correction_tables", "structured"} & set(counts)
    assert counts == expected_jobs(workflow_config(path))
    assert counts["world_card"] == 2 and counts["world_card_table"] == 1 and counts["all"] == 1
    if models["compression"]:  # the one model's runs, its dense model and its export
        assert counts["compress_dense"] == counts["export_pruned"] == 1 and counts["compress"] > 0
    else:
        assert set(counts) == {"world_card", "world_card_table", "all"}
