"""<stage>.models: null runs the stage on every model, a list on those, [] on none (the stage's
jobs and table are simply not targets)."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflow import DEFAULT_CONFIG, job_counts, snakemake  # noqa: E402


@pytest.mark.parametrize(
    "models, expected",
    [
        # circuits and correction on no model; compression on world-opt only (17 runs x 3 non-zero
        # sparsities, and the dense model once)
        (
            {"compression": ["world-opt"], "structured": [], "circuits": [], "correction": []},
            {"compress": 17 * 3, "compress_dense": 1, "compression_tables": 1, "export_pruned": 1},
        ),
        # no stage: the world cards only
        ({"compression": [], "structured": [], "circuits": [], "correction": []}, {}),
    ],
    ids=["one-and-none", "none"],
)
def test_stage_models(tmp_path, models, expected):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for stage, aliases in models.items():
        config[stage]["models"] = aliases
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    r = snakemake(tmp_path, path, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    counts = job_counts(r.stdout + r.stderr)
    assert not {"circuit", "circuit_tables", "correction", "correction_tables", "structured"} & set(counts)
    assert {k: counts.get(k, 0) for k in expected} == expected
    assert counts["world_card"] == 2 and counts["world_card_table"] == 1 and counts["all"] == 1
    if not expected:
        assert set(counts) == {"world_card", "world_card_table", "all"}
