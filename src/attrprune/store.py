"""Tensor files: named tensors in a safetensors file, with a JSON metadata record in its header.

Scores (`relevance.store`), reference sets (`refsets`), ablation ground truth (`circuits.ablation`)
and circuits are all written this way: the tensors, plus one header entry `key` holding the
record as JSON (what was computed on what, provenance). Writes are atomic (a killed job leaves the
old file or the new one, never half a file).

Use::

    save_tensors(path, {"input_ids": ids}, {"seed": 0}, key="refset")
    tensors, meta = load_tensors(path, key="refset")
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def save_tensors(path: Path | str, tensors: dict[str, torch.Tensor], meta: dict, key: str) -> None:
    """Write `tensors` with `meta` as JSON under header entry `key`, atomically."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from attrprune.io import atomic_path, library_os_error

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={key: json.dumps(meta)})
        except SafetensorError as err:  # a full disk, ...: the OSError it wraps, naming the output
            raise (library_os_error(err, path) or err) from err


def load_tensors(
    path: Path | str, key: str, schema=dict, names: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], dict]:
    """(every tensor by name, in the file's offset order as `safetensors.torch.load_file` gives them;
    the JSON record under header entry `key`, checked against `schema` (`attrprune.records`)). The
    tensors in `names` must be there; anything else is a one-line error naming the file."""
    from safetensors import SafetensorError, safe_open

    from attrprune.records import FIX, check

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist: run the stage (workflow rule) that writes it")
    try:
        with safe_open(str(path), "pt") as f:
            meta = _meta(f, path, key)
            tensors = {name: f.get_tensor(name) for name in f.offset_keys()}
    except SafetensorError as err:
        raise ValueError(
            f"{path} is not a complete safetensors file ({err}): delete it and rerun the stage that writes it"
        ) from err
    check(meta, schema, f"{path} ({key} record in its header)")
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ValueError(f"{path} has no tensor {missing[0]!r} (it holds {sorted(tensors)[:5]}): {FIX}")
    return tensors, meta


def _meta(f, path, key: str) -> dict:
    header = f.metadata() or {}
    if key not in header:
        raise ValueError(
            f"{path} has no {key!r} record in its safetensors header (entries: {sorted(header)}); "
            f"is it a {key} file written by this suite?"
        )
    from attrprune.records import FIX, BadRecord

    try:
        return json.loads(header[key])
    except ValueError as err:
        raise BadRecord(f"{path}: its {key} record is not valid JSON (truncated or malformed: {err}): {FIX}") from None
