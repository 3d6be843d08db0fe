"""Reading back the JSON files the workflow wrote, checked: one job, used by every reader.

A table stage trusts nothing it reads: a file cut short by a full disk, edited by hand or written
by another version of the suite ends the stage with one ValueError line naming the file (and the
key inside it) and the fix, before any table is written, instead of a parser message without a
file name, a KeyError or a pandas traceback.

A schema says what a reader needs (more keys may be there):

- a type (``str``, ``int``, ``bool``, ``dict``, ``list``): ``int`` excludes ``bool``;
- `NUMBER`: an int or float that is finite; `REAL`: one that may be NaN or infinite (a mean of
  nothing); `ARRAY`: a list of finite numbers, or of equally long such lists;
- ``{key: schema}``: an object with these keys; `Opt(schema)`: the key may be absent or null;
  `Nullable(schema)`: the key must be there, its value may be null;
- ``[schema]``: a list whose every item has the schema; `Map(schema)`: an object whose every
  value has the schema.

Use::

    record = read_json(path, METRICS)        # or check(record, METRICS, f"{path}:3") for JSONL rows
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

FIX = "delete it and rerun the job that writes it"


class _Number:
    def __init__(self, finite: bool):
        self.finite = finite


NUMBER, REAL = _Number(True), _Number(False)
ARRAY = object()


@dataclass(frozen=True)
class Opt:
    schema: object


@dataclass(frozen=True)
class Nullable:
    schema: object


@dataclass(frozen=True)
class Map:
    schema: object


class BadRecord(ValueError):
    """A file the workflow wrote is not what its reader needs; the message is one line."""


def read_json(path: Path | str, schema=dict):
    """The JSON value in `path`, checked against `schema`; else a one-line BadRecord naming the file
    (missing files raise FileNotFoundError, which the command line also prints as one line)."""
    data = Path(path).read_bytes()
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise BadRecord(f"{path} is not UTF-8 ({err.reason} at byte {err.start}): {FIX}") from None
    except ValueError as err:
        what = "empty" if not data.strip() else "truncated or malformed JSON"
        raise BadRecord(f"{path} is not valid JSON ({what}: {err}): {FIX}") from None
    return check(record, schema, path)


def check(value, schema, where: Path | str):
    """`value` itself if it has `schema`; else a one-line BadRecord naming `where` and the key."""
    _check(value, schema, "", str(where))
    return value


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "a list"}


def _fail(where: str, key: str, problem: str):
    at = f"key {key!r}" if key else "its content"
    raise BadRecord(f"{where}: {at} {problem}: {FIX}")


def _check(value, schema, key: str, where: str) -> None:
    if isinstance(schema, (Opt, Nullable)):
        if value is not None:
            _check(value, schema.schema, key, where)
        return
    if isinstance(schema, _Number):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, key, f"is {_kind(value)}, not a number")
        if schema.finite and not math.isfinite(value):
            _fail(where, key, f"is {value}, not a finite number")
        return
    if schema is ARRAY:  # numbers, or equally long lists of them (a rectangular array)
        if not isinstance(value, list):
            _fail(where, key, f"is {_kind(value)}, not a list of numbers")
        rows = value and isinstance(value[0], list)
        for i, item in enumerate(value):
            _check(item, ARRAY if rows else NUMBER, f"{key}[{i}]", where)
            if rows and len(item) != len(value[0]):
                _fail(where, f"{key}[{i}]", f"has {len(item)} values, {key}[0] {len(value[0])}")
        return
    if isinstance(schema, type):
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        if not ok:
            _fail(where, key, f"is {_kind(value)}, not {_NAMES.get(schema, schema.__name__)}")
        return
    if isinstance(schema, list):
        _check(value, list, key, where)
        for i, item in enumerate(value):
            _check(item, schema[0], f"{key}[{i}]", where)
        return
    if isinstance(schema, Map):
        _check(value, dict, key, where)
        for name, item in value.items():
            _check(item, schema.schema, f"{key}.{name}" if key else name, where)
        return
    if isinstance(schema, dict):
        _check(value, dict, key, where)
        for name, sub in schema.items():
            inner = f"{key}.{name}" if key else name
            if name not in value and not isinstance(sub, Opt):
                _fail(where, inner, "is missing")
            _check(value.get(name), sub, inner, where)
        return
    raise TypeError(f"not a schema: {schema!r}")


# ---- the files the workflow writes, as their readers need them ------------------------------------

_NAMED = {"model": Opt(str), "model_dir": Opt(str)}  # io.model_name: the alias, else the folder's name

METRICS = {  # compress (also of the dense model): metrics.json, read by compression-tables
    **_NAMED,
    "method": Nullable(str),  # null: the dense model
    "scope": Nullable(str),
    "sparsity": NUMBER,
    "sparsity_measured": NUMBER,
    "metrics": [{"task": str, "metric": str, "value": REAL, "stderr": Opt(REAL)}],
    "token_perplexity": Opt({"source": str, "seqlen": int, "value": NUMBER}),
    "per_document": Opt(Map(Map(ARRAY))),
}
# a pruned run's metrics.json also names its scores or its calibration set
METRICS_PRUNED = {
    **METRICS,
    "method": str,
    "scope": str,
    "pruning": {"calibration": Nullable(dict)},
    "scores": Nullable(dict),
}

# structured/<...>/metrics.json and the dense model's, read by structured-tables
STRUCTURED_DENSE = {
    "model": str,
    "metrics": METRICS["metrics"],
    "per_document": Opt(Map(Map(ARRAY))),
    "parameters": Opt(int),
}
STRUCTURED_METRICS = {
    **STRUCTURED_DENSE,
    "method": str,
    "ratio": NUMBER,
    "reference_set": Nullable(str),
    "parameters": int,
    "structure": dict,
}
STRUCTURED_SPEED = {"model_name": str, "settings": dict, "models": Map({"ratios": Map(NUMBER)})}  # speed.json

CIRCUIT_CURVE = {  # circuit: curve.json, read by circuit-tables
    **_NAMED,
    "method": str,
    "granularity": str,
    "scope": str,
    "n_seeds": int,
    "curve": [
        {
            "seed_index": int,
            "sparsity": NUMBER,
            "kept_fraction": NUMBER,
            "accuracy": NUMBER,
            "logit_diff": NUMBER,
            "normalized_logit_diff": REAL,
        }
    ],
    "circuit": {
        "threshold": NUMBER,
        "n_kept": int,
        "n_components": int,
        "kept_fraction": NUMBER,
        "accuracy": NUMBER,
        "normalized_logit_diff": REAL,
        "n_kept_ci": Opt([NUMBER]),
        "per_seed_n_kept": Opt([int]),
    },
    "dense": {"accuracy": NUMBER, "logit_diff": NUMBER},
    "groundtruth": Opt({"components": Opt({"drop": ARRAY, "score": ARRAY})}),
    "faithfulness": Opt({"sizes": [NUMBER], "n_resamples": int}),
    "published": Opt(dict),
}

CORRECTION_CURVE = {  # correction: curve.json, read by correction-tables
    **_NAMED,
    "behaviour": str,
    "method": str,
    "granularity": str,
    "normalization": str,
    "primary_ppl_task": str,
    "curve": [
        {
            "k": int,
            "n_pruned": int,
            "n_pruned_measured": int,
            "pruned_fraction": NUMBER,
            "metrics": Map(Opt(REAL)),
            "examples": [{"prompt": str, "greedy": str}],
            "control_examples": Opt([{"prompt": str, "greedy": str}]),
        }
    ],
    "generation": Opt(dict),
}

WORLD_CARD = {"model": str, "n_parameters": int, "card": dict}  # world-card: card.json, read by world-card-table

# world-corpus: manifest.json and world-train: training.json, read by world-publish
CORPUS_MANIFEST = {"seed": int, "n_train_documents": int, "files": Map(str)}
TRAINING_LOG = {"steps": int, "tokens": int, "threads": int, "train_seconds": NUMBER, "final_loss": NUMBER}
DOWNLOAD = {"files": [{"name": str, "size": int}]}  # download-model: download.json


def _named(record: dict, path) -> dict:
    """The record names its model (`io.model_name`: the alias, else the model folder)."""
    if not record.get("model") and not record.get("model_dir"):
        _fail(str(path), "model", "is missing (and so is 'model_dir')")
    return record


def read_metrics_file(path: Path | str) -> dict:
    """A metrics.json of compress (a pruned run: its scores, else its calibration set's seed) or
    of the dense model (method null)."""
    record = _named(read_json(path, METRICS), path)
    if record["method"] is not None:
        check(record, METRICS_PRUNED, path)
        if not record["scores"]:
            check(record, {"pruning": {"calibration": {"seed": int}}}, path)
    return record


def read_correction_curve(path: Path | str) -> dict:
    """A correction curve.json, with the perplexity of its primary task at every k."""
    record = _named(read_json(path, CORRECTION_CURVE), path)
    task = record["primary_ppl_task"]
    for i, point in enumerate(record["curve"]):
        need = {f"word_perplexity:{task}": NUMBER, f"ppl_change:{task}": NUMBER}
        _check(point["metrics"], need, f"curve[{i}].metrics", str(path))
    return record


def read_circuit_curve(path: Path | str) -> dict:
    """A circuit curve.json."""
    return _named(read_json(path, CIRCUIT_CURVE), path)


def check_values(record, getters: dict, where: Path | str) -> None:
    """Each of `getters` (label -> function of the record) must read a finite number from `record`;
    else a one-line BadRecord naming `where` and the label (for records a table reads by rows)."""
    for label, get in getters.items():
        try:
            value = get(record)
        except (KeyError, IndexError, TypeError) as err:
            _fail(str(where), label, f"cannot be read ({type(err).__name__}: {err})")
        _check(value, NUMBER, label, str(where))


def read_text(path: Path | str) -> str:
    """A text file the workflow wrote (JSON Lines), or one line naming it when it is not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BadRecord(f"{path} is not UTF-8 ({err.reason} at byte {err.start}): {FIX}") from None


# header records of tensor files (`attrprune.store.load_tensors`)
SCORES_HEADER = {
    "method": str,
    "storage": Opt(str),
    "storage_scale_log2": Opt(Map(int)),
    "model_sha256": Opt(str),
    "refset_kind": Opt(str),
}
ABLATION_HEADER = {"dense_logit_diff": NUMBER}
