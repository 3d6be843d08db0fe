"""Shared test setup: everything runs offline, on CPU, with few threads."""

import os

# Module-level constants in datasets / transformers / huggingface_hub read these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def world_llama(repo_root):
    """(model, tokenizer, data dir) of the committed world-llama. Tests must leave it unchanged."""
    from attrprune.models import load_model

    model, tokenizer = load_model(repo_root / "world" / "models" / "world-llama", dtype="float32", device_map="cpu")
    return model.eval(), tokenizer, repo_root / "world" / "data"
