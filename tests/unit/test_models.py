"""Precision and placement of load_model: dtype resolution per device, the refused
combinations (one-line errors naming the fix), and the loaded model's dtype."""

import json

import pytest
import torch

from attrprune import models
from attrprune.models import checkpoint_dtype, load_model, placement, resolve_dtype


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def gpu(monkeypatch):
    """A pretend GPU: `set(bf16)` says whether it supports bfloat16 (nothing is put on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-32GB")

    def set_bf16(supported: bool):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)

    return set_bf16


def test_auto_is_float32_on_cpu(cpu_only):
    assert resolve_dtype("auto") is torch.float32
    assert resolve_dtype("auto", "cpu") is torch.float32


@pytest.mark.parametrize("name", ["float32", "bfloat16"])
def test_explicit_dtypes_on_cpu(name):
    assert resolve_dtype(name, "cpu") is getattr(torch, name)


def test_float16_on_cpu_is_refused_with_the_fix(cpu_only):
    with pytest.raises(ValueError, match="use float32 on CPU") as e:
        resolve_dtype("float16")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["fp16", "half", "float64", ""])
def test_unknown_dtype_names_the_choices(name):
    with pytest.raises(ValueError, match="unknown dtype .*auto, bfloat16, float16, float32"):
        resolve_dtype(name, "cpu")


def test_auto_on_gpus_with_and_without_bf16(gpu):
    gpu(True)
    assert resolve_dtype("auto", "cuda") is torch.bfloat16
    assert resolve_dtype("float16", "cuda") is torch.float16
    gpu(False)
    assert resolve_dtype("auto", "cuda") is torch.float16  # V100
    assert resolve_dtype("float32", "cuda") is torch.float32


def test_bfloat16_on_a_gpu_without_bf16_is_refused(gpu):
    gpu(False)
    with pytest.raises(ValueError, match="V100.*does not support bfloat16; use float16 or float32"):
        resolve_dtype("bfloat16", "cuda")


def test_load_model_honours_dtype(repo_root, cpu_only):
    model, tok = load_model(repo_root / "world/models/world-llama", dtype="bfloat16")
    assert model.dtype is torch.bfloat16 and not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert placement(model) == {"dtype": "bfloat16", "device_map": "none", "devices": ["cpu"]}
    model, _ = load_model(repo_root / "world/models/world-llama")
    assert model.dtype is torch.float32  # auto on CPU


def test_cpu_placement_stays_on_cpu_with_a_gpu(repo_root, gpu):
    gpu(True)
    model, _ = load_model(repo_root / "world/models/world-llama", dtype="float32", device_map="cpu")
    assert model.dtype is torch.float32 and next(model.parameters()).device.type == "cpu"


def test_refused_combinations_fail_before_loading(tmp_path, cpu_only):
    missing = tmp_path / "nothing-here"  # never read: the checks come first
    with pytest.raises(ValueError, match="device_map auto .* no CUDA GPU is visible; use device_map none"):
        load_model(missing, device_map="auto")
    with pytest.raises(ValueError, match="use float32 on CPU"):
        load_model(missing, dtype="float16")
    with pytest.raises(ValueError, match="unknown device_map 'balanced'; use one of none, auto"):
        load_model(missing, device_map="balanced")


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"torch_dtype": "bfloat16"}, torch.bfloat16),
        ({"dtype": "float16"}, torch.float16),
        ({"torch_dtype": "float32"}, torch.float32),
        ({}, torch.float32),
    ],
)
def test_checkpoint_dtype_reads_config_json(tmp_path, config, expected):
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert checkpoint_dtype(tmp_path) is expected


def test_dtype_names_match_the_cli_and_schema(repo_root):
    import yaml

    schema = yaml.safe_load((repo_root / "schemas/config.schema.yaml").read_text())
    spec = schema["properties"]["models"]["additionalProperties"]["properties"]
    assert spec["dtype"]["enum"] == list(models.DTYPES) and spec["dtype"]["default"] == "auto"
    assert spec["device_map"]["enum"] == list(models.DEVICE_MAPS) and spec["device_map"]["default"] == "none"
