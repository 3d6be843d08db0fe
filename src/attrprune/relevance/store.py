"""Scores files: safetensors with `weight/<module>`, `neuron/<module>` and `head/<attention>`
tensors, and a JSON `scores` metadata entry (method, target, reference-set hash, the sha256 of the
model's weight files, seed, n, version, git commit, storage). Written atomically; a file with
non-finite scores is never written, and never read: `load_scores` refuses one, and with
`model_dir` also scores of another checkpoint.

Storage (`registry.SCORE_STORAGES`): per-weight scores may be written as float16, half the file;
neuron and head scores (small) stay float32, and `load_scores` always returns float32, so pruning
code never sees the difference. Each float16 tensor is rescaled by a power of two (recorded as
``storage_scale_log2``, undone exactly on reading) that puts its largest |score| in [2^14, 2^15):
LRP scores of real models may lie far below float16's smallest normal number (6e-5) and would lose
precision or underflow to 0 unscaled, and none can overflow (max 65504). What remains is float16's
rounding (relative 2^-11), which makes some scores of a row tie (masks break ties by position,
`pruning.masks`). bfloat16 is not offered: same size, 8 times coarser (2^-8), and it changed about
8 times more mask entries (bench/compact_scores.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from attrprune.registry import SCORE_STORAGES
from attrprune.relevance.methods import Scores
from attrprune.store import load_tensors, save_tensors

_KINDS = {"weight": "weights", "neuron": "neurons", "head": "heads"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_SCALE = "storage_scale_log2"  # metadata: {tensor name: e}, stored = score * 2^e (float16 only)
_TOP = 15  # float16: the largest |score| of a tensor is stored in [2^14, 2^15) (max 65504)


def save_scores(scores: Scores, path: Path, meta: dict, storage: str = "float32") -> None:
    """Write `scores` with `meta`; per-weight scores in `storage` (one of `SCORE_STORAGES`)."""
    if storage not in SCORE_STORAGES:
        raise ValueError(f"unknown scores storage {storage!r}; valid: {list(SCORE_STORAGES)}")
    tensors = scores.tensors()
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise FloatingPointError(f"non-finite scores in {bad[:3]}; nothing written to {path}")
    meta = {**meta, "storage": storage}
    if storage == "float16":
        meta[_SCALE] = {}
        for key in [k for k in tensors if k.startswith("weight/")]:
            tensors[key], meta[_SCALE][key] = _to_float16(tensors[key])
    save_tensors(path, tensors, meta, key="scores")


def _to_float16(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(x * 2^e as float16, e), e chosen so that max |x| * 2^e lies in [2^14, 2^15)."""
    top = x.abs().max() if x.numel() else torch.tensor(0.0)
    e = 0 if top == 0 else _TOP - int(torch.frexp(top).exponent)  # top = m * 2^k, m in [0.5, 1)
    return (x.double() * 2.0**e).half().contiguous(), e  # double: 2^e may exceed float32's range


def _decode(x: torch.Tensor, e: int) -> torch.Tensor:
    if not e:
        return x.float()
    return (x.double() * 2.0**-e).float()  # exact: a power of two times an 11-bit mantissa


def load_scores(path: Path, model_dir: Path | None = None, model_sha256: str | None = None) -> tuple[Scores, dict]:
    """(scores, metadata) of a scores file. With `model_dir` (or its `model_sha256`, when the
    caller has it already), the file must have been computed on exactly that checkpoint."""
    scores = Scores()
    from attrprune.records import FIX, SCORES_HEADER

    tensors, meta = load_tensors(path, key="scores", schema=SCORES_HEADER)
    odd = [k for k in tensors if k.split("/", 1)[0] not in _KINDS or "/" not in k]
    if odd:
        raise ValueError(f"{path} holds a tensor {odd[0]!r} that is not weight/, neuron/ or head/ scores: {FIX}")
    storage = meta.get("storage", "float32")  # files written before storage existed: float32
    if storage not in SCORE_STORAGES:
        raise ValueError(f"{path} records an unknown scores storage {storage!r} (valid: {list(SCORE_STORAGES)})")
    scales = meta.pop(_SCALE, {})
    for key in [k for k in tensors if k.startswith("weight/")]:
        if tensors[key].dtype != _DTYPES[storage]:
            raise ValueError(
                f"{path} holds {key} as {str(tensors[key].dtype).removeprefix('torch.')} but records {storage} "
                "storage: delete it and rerun its scores job"
            )
        tensors[key] = _decode(tensors[key], int(scales.get(key, 0)))
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
