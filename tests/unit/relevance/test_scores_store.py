"""Scores files belong to one checkpoint and hold finite numbers: `load_scores` refuses the rest."""

import json

import pytest
import torch
from safetensors.torch import save_file

from attrprune.models import weights_sha256
from attrprune.relevance.methods import Scores
from attrprune.relevance.store import load_scores, save_scores


def _model_dir(path, value: float):
    path.mkdir()
    save_file({"w": torch.full((2, 2), value)}, str(path / "model.safetensors"))
    (path / "config.json").write_text("{}")  # not a weight file: not in the fingerprint
    return path


def test_weights_fingerprint_follows_the_weight_bytes_only(tmp_path):
    a, b = _model_dir(tmp_path / "a", 1.0), _model_dir(tmp_path / "b", 1.0)
    (b / "config.json").write_text('{"other": 1}')
    assert weights_sha256(a) == weights_sha256(b)
    c = _model_dir(tmp_path / "c", 2.0)  # same names and shapes, other values: another checkpoint
    assert weights_sha256(c) != weights_sha256(a)
    with pytest.raises(FileNotFoundError, match="has no weight files"):
        weights_sha256(tmp_path)


def test_scores_of_another_checkpoint_or_without_one_are_refused(tmp_path):
    a, c = _model_dir(tmp_path / "a", 1.0), _model_dir(tmp_path / "c", 2.0)
    scores = Scores(weights={"m": torch.rand(2, 2)})
    path = tmp_path / "s.safetensors"
    save_scores(scores, path, {"method": "lrp", "model_sha256": weights_sha256(a), "model_dir": str(a)})
    loaded, meta = load_scores(path, a)
    assert torch.equal(loaded.weights["m"], scores.weights["m"]) and meta["method"] == "lrp"
    assert load_scores(path)[1] == meta  # no model given: nothing to check against
    with pytest.raises(ValueError, match="s.safetensors was computed on another checkpoint"):
        load_scores(path, c)
    save_scores(scores, path, {"method": "lrp"})
    with pytest.raises(ValueError, match="does not record the checkpoint it was computed on"):
        load_scores(path, a)


def test_non_finite_scores_are_never_written_nor_read(tmp_path):
    bad = Scores(weights={"m": torch.tensor([[1.0, float("inf")]])})
    with pytest.raises(FloatingPointError, match="non-finite scores"):
        save_scores(bad, tmp_path / "s.safetensors", {"method": "lrp"})
    assert not (tmp_path / "s.safetensors").exists()
    # A file written by anything else: refused on reading, the file named.
    save_file(
        {"weight/m": torch.tensor([[float("nan"), 1.0]])},
        str(tmp_path / "n.safetensors"),
        metadata={"scores": json.dumps({"method": "lrp"})},
    )
    with pytest.raises(ValueError, match="n.safetensors holds non-finite scores \\(weight/m\\)"):
        load_scores(tmp_path / "n.safetensors")
