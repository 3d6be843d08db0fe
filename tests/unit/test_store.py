"""The one tensor store: tensors + a JSON record in the safetensors header, written atomically."""

import os

import pytest
import torch

from attrprune.store import load_tensors, save_tensors


def test_round_trip_keeps_tensors_record_and_file_order(tmp_path):
    path = tmp_path / "sub" / "x.safetensors"
    tensors = {"b": torch.arange(3.0), "a": torch.tensor([1, 2]), "c": torch.ones(2, 2, dtype=torch.uint8)}
    save_tensors(path, tensors, {"seed": 0, "name": "x"}, key="thing")
    back, meta = load_tensors(path, key="thing")
    assert meta == {"seed": 0, "name": "x"}
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors)
    from safetensors.torch import load_file

    assert list(back) == list(load_file(str(path)))  # the order load_file gives
    assert [p.name for p in path.parent.iterdir()] == ["x.safetensors"]  # no temporary file left


def test_a_file_without_the_record_names_what_it_has(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.zeros(1)}, {}, key="scores")
    with pytest.raises(ValueError, match=r"no 'refset' record .*\['scores'\]"):
        load_tensors(path, key="refset")


def test_a_tensor_file_reads_like_any_file_the_user_writes(tmp_path):
    """safetensors writes its own 0600 file in place of the temporary one; the output still
    gets the mode the umask gives (0644 under umask 022), as JSON and text outputs do."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"a": torch.zeros(2)}, {}, key="thing")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
