"""The circuit stage's outputs: all four or none (a failure part-way removes what it wrote)."""

import errno

import pytest
import torch


def test_a_failure_while_writing_leaves_no_circuit_file(repo_root, tmp_path, monkeypatch):
    import attrprune.store
    from attrprune.circuits.export import run_circuit
    from attrprune.models import weights_sha256
    from attrprune.relevance.methods import Scores
    from attrprune.relevance.store import save_scores

    model_dir = repo_root / "world/models/world-llama"
    heads = {"model.layers.0.self_attn": torch.arange(8.0), "model.layers.1.self_attn": torch.arange(8.0, 16.0)}
    save_scores(
        Scores(heads=heads), tmp_path / "s.safetensors", {"method": "x", "model_sha256": weights_sha256(model_dir)}
    )

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(attrprune.store, "save_tensors", full_disk)  # the third of four files
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        run_circuit(
            model_dir,
            [tmp_path / "s.safetensors"],
            repo_root / "world/data/ioi_heldout_names.jsonl",
            "head",
            "global",
            [0.0, 0.5],
            0.5,
            out,
            limit=8,
        )
    assert out.is_dir() and not list(out.iterdir())  # circuit.json and the heat map (PNG, SVG) were removed
