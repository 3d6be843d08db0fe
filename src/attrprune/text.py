"""Text and prompt primitives every stage shares: JSON Lines files, padded id batches, IOI names.

The start-of-sequence policy (which token a prompt or a document starts with) is
`attrprune.tokens`; this module holds the rest, so each primitive has one home and the built-in
world (`attrprune.world`) uses these rather than the core using the world's copies.

Use::

    rows = read_jsonl("world/data/ioi_heldout_names.jsonl")       # [{"prompt": ..., "io": ..., "s": ...}, ...]
    ids, mask = pad_rows(encode_prompts(tokenizer, [r["prompt"] for r in rows]), tokenizer.eos_token_id)
    single_token_id(tokenizer, rows[0]["io"])                      # the id of " Mary"
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def read_jsonl(path: Path | str, fields: tuple[str, ...] = (), allow_empty: bool = True) -> list[dict]:
    """The rows of a JSON Lines file, one JSON object per non-blank line. A missing file, a line that
    is not JSON, or one that is not an object is an error naming the file and the line; so is a row
    without one of `fields` or with one that is not a string, and (`allow_empty` False) a file
    without rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist or is not a file (expected JSON Lines: one JSON object per line)"
        )
    rows = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}:{number} is not UTF-8 ({err.reason} at byte {err.start} of the line); save the file as UTF-8"
                ) from err
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{number} is not valid JSON ({err.msg}); JSON Lines files hold one JSON object per line"
                ) from err
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}:{number} is a JSON {type(row).__name__}, not an object; JSON Lines files "
                    "of this suite hold one object per line"
                )
            missing = [k for k in fields if k not in row]
            if missing:
                raise ValueError(
                    f"{path}:{number} has no {missing[0]!r} field (keys: {sorted(row)[:5]}); every row needs "
                    + ", ".join(repr(k) for k in fields)
                )
            wrong = next((k for k in fields if not isinstance(row[k], str)), None)
            if wrong is not None:
                kind = "null" if row[wrong] is None else f"a JSON {type(row[wrong]).__name__}"
                raise ValueError(f"{path}:{number} has {wrong!r} as {kind}, not a string; every {wrong!r} is text")
            rows.append(row)
    if not rows and not allow_empty:
        raise ValueError(
            f"{path} has no rows (empty, or blank lines only): give a JSON Lines file with one object per line"
            + (f" holding {', '.join(repr(k) for k in fields)}" if fields else "")
        )
    return rows


def pad_rows(rows: list[list[int]], pad: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both [n, longest row]; right padding, or left padding for generation."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r)
        mask[i, span] = 1
    return ids, mask


def single_token_id(tokenizer, name: str) -> int:
    """The id of " name" (a name after a space, as in an IOI prompt), which must be one token."""
    ids = tokenizer.encode(" " + name, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"name {name!r} is {len(ids)} tokens for this tokenizer; IOI needs single-token names")
    return ids[0]
