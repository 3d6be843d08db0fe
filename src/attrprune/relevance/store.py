"""Scores files: safetensors with `weight/<module>`, `neuron/<module>` and `head/<attention>`
tensors, and a JSON `scores` metadata entry (method, target, reference-set hash, the sha256 of the
model's weight files, seed, n, version, git commit). Written atomically; a file with non-finite
scores is never written, and never read: `load_scores` refuses one, and with `model_dir` also
scores of another checkpoint."""

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


def load_scores(path: Path, model_dir: Path | None = None, model_sha256: str | None = None) -> tuple[Scores, dict]:
    """(scores, metadata) of a scores file. With `model_dir` (or its `model_sha256`, when the
    caller has it already), the file must have been computed on exactly that checkpoint."""
    scores = Scores()
    tensors, meta = load_tensors(path, key="scores")
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path} holds non-finite scores ({', '.join(bad[:3])}): delete it and rerun its scores job")
    if model_dir is not None or model_sha256 is not None:
        check_scores_model(meta, path, model_dir, model_sha256)
    for key in sorted(tensors):  # name order, as the modules' score tables have always been read
        kind, name = key.split("/", 1)
        getattr(scores, _KINDS[kind])[name] = tensors[key]
    return scores, meta


def check_scores_model(meta: dict, path: Path, model_dir: Path | None, model_sha256: str | None = None) -> None:
    """Refuse scores computed on another checkpoint than `model_dir`'s (same shapes are no proof:
    a fine-tuned or retrained model has them too)."""
    from attrprune.models import weights_sha256

    recorded = meta.get("model_sha256")
    if recorded is None:
        raise ValueError(
            f"{path} does not record the checkpoint it was computed on (model_sha256; written by an older "
            "version): delete it and rerun its scores job"
        )
    actual = model_sha256 or weights_sha256(model_dir)
    if recorded != actual:
        raise ValueError(
            f"{path} was computed on another checkpoint (weights sha256 {recorded[:12]}..., from "
            f"{meta.get('model_dir')}) than {model_dir or 'this model'} ({actual[:12]}...): "
            "score this model, or prune the model the scores belong to"
        )
