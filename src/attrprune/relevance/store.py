"""Scores files: safetensors with `weight/<module>`, `neuron/<module>` and `head/<attention>`
tensors, and a JSON `scores` metadata entry (method, target, reference-set hash, seed, n, version,
git commit). Written atomically; a file with non-finite scores is never written."""

from __future__ import annotations

from pathlib import Path

import torch

from attrprune.relevance.methods import Scores
from attrprune.store import load_tensors, save_tensors

_KINDS = {"weight": "weights", "neuron": "neurons", "head": "heads"}


def save_scores(scores: Scores, path: Path, meta: dict) -> None:
    tensors = scores.tensors()
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise FloatingPointError(f"non-finite scores in {bad[:3]}; nothing written to {path}")
    save_tensors(path, tensors, meta, key="scores")


def load_scores(path: Path) -> tuple[Scores, dict]:
    scores = Scores()
    tensors, meta = load_tensors(path, key="scores")
    for key in sorted(tensors):  # name order, as the modules' score tables have always been read
        kind, name = key.split("/", 1)
        getattr(scores, _KINDS[kind])[name] = tensors[key]
    return scores, meta
