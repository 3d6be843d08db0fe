"""Scores files: safetensors with `weight/<module>`, `neuron/<module>` and `head/<attention>`
tensors, and a JSON `scores` metadata entry (method, target, reference-set hash, seed, n, version,
git commit). Written atomically; a file with non-finite scores is never written."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from attrprune.io import atomic_path
from attrprune.relevance.methods import Scores

_KINDS = {"weight": "weights", "neuron": "neurons", "head": "heads"}


def save_scores(scores: Scores, path: Path, meta: dict) -> None:
    tensors = scores.tensors()
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise FloatingPointError(f"non-finite scores in {bad[:3]}; nothing written to {path}")
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"scores": json.dumps(meta)})


def load_scores(path: Path) -> tuple[Scores, dict]:
    scores = Scores()
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["scores"])
        for key in f.keys():
            kind, name = key.split("/", 1)
            getattr(scores, _KINDS[kind])[name] = f.get_tensor(key)
    return scores, meta
