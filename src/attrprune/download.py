"""Downloads: the only code of the suite that touches the network.

On a SLURM cluster the compute nodes have no internet. `snakemake download` runs these functions
on the login node (local rules), which fill

* ``resources/models/<alias>/``: a hub model at a pinned revision, with ``download.json``;
* the Hugging Face datasets cache (``HF_DATASETS_CACHE``): WikiText-2 and the C4 shard of the
  general reference sets, RealToxicityPrompts, and the data of lm-eval tasks (``lmeval:<task>``);
* the torch hub cache (``TORCH_HOME``) and the HF cache of Detoxify's checkpoint and tokenizer.

Compute jobs then run with ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1`` and the same ``HF_HOME`` /
``TORCH_HOME`` (shared storage); `require_model` (in `attrprune.hub`, which the compute stages
import instead of this module) and every error here name the command to run when something was
not downloaded.

Run: ``python -m attrprune download-model --hf-id TinyLlama/TinyLlama_v1.1 --revision <commit> --out-dir resources/models/tinyllama-1.1b``,
``python -m attrprune download-data --names c4,wikitext2,lmeval:boolq --out resources/downloads/datasets.json``,
``python -m attrprune download-detoxify --model-type original --out resources/downloads/detoxify.json``
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

# What the compute stages read offline lives in the core (`attrprune.hub`); this module fetches it.
from attrprune.hub import FIX, HUB_DATASETS
from attrprune.io import NotCachedError, write_json

MOVING_REVISIONS = ("main", "master")

# Root-level files that from_pretrained reads. Subfolders are skipped: Llama-3's original/ holds a
# second copy of the weights (.pth), and transformers never looks there.
MODEL_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt"]
ROOT_ONLY = ["*/*"]
# Old repositories (OPT-125M among them) may have only pytorch_model.bin.
BIN_PATTERNS = ["*.bin"]

LMEVAL_PREFIX = "lmeval:"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
CACHE_VARS = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "TORCH_HOME")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _offline_vars() -> list[str]:
    return [v for v in OFFLINE_VARS if os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE")]


def _why(err: Exception) -> str:
    """The end of an error message: what failed, and the fix that fits where we run."""
    offline = _offline_vars()
    where = (
        f"offline mode is on here ({', '.join(offline)})"
        if offline
        else "the Hub could not be reached or refused the request (a gated model such as Llama needs "
        "an accepted licence and `huggingface-cli login` or HF_TOKEN)"
    )
    return f"({type(err).__name__}: {err}); {where}: {FIX}"


# ------------------------------------------------------------------------------------------ models


def check_revision(revision: str | None) -> None:
    if not revision or revision in MOVING_REVISIONS:
        raise ValueError(
            f"revision {revision!r} is a moving branch (or empty): results would change when the repository "
            "does. Pin a commit id (40 hex digits, from the model page's 'Files and versions' tab) or a release tag"
        )


def _select(snapshot: Path, allow: list[str], ignore: list[str]) -> list[str]:
    from huggingface_hub.utils import filter_repo_objects

    # Offline, snapshot_download returns the whole cached snapshot, whatever the patterns: filter here.
    rel = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    return list(filter_repo_objects(rel, allow_patterns=allow, ignore_patterns=ignore))


def _check_shards(snapshot: Path, files: list[str]) -> None:
    """Every shard a weight index names is there: an interrupted or partly cached download is not a model."""
    for index in (f for f in files if f.endswith(".index.json")):
        shards = set(json.loads((snapshot / index).read_text())["weight_map"].values())
        missing = sorted(shards - set(files))
        if missing:
            raise RuntimeError(f"snapshot {snapshot} is incomplete: {index} names {missing}, which are missing; {FIX}")


def _place(src: Path, dst: Path) -> bool:
    """Hard-link a cached blob into the model folder (no second copy of 15 GB of weights); copy when
    the cache lies on another file system. True if linked. Cache blobs are never modified in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished folder to `out_dir`. Snakemake creates `out_dir` (empty) before the job;
    a rerun finds the previous download there, which is replaced as a whole."""
    if out_dir.exists() and any(out_dir.iterdir()):
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)


def download_model(hf_id: str, revision: str, out_dir: Path, cache_dir: Path | None = None) -> dict:
    """Fetch `hf_id` at `revision` into the HF hub cache (`cache_dir`, default HF_HUB_CACHE), then lay
    its weights, config and tokenizer files into `out_dir` with `download.json` (written last).

    The folder is assembled under a temporary sibling name and renamed at the end, so a killed
    download never looks complete. Returns the contents of download.json."""
    from huggingface_hub import __version__ as hub_version
    from huggingface_hub import snapshot_download

    check_revision(revision)
    out_dir = Path(out_dir)

    def fetch(allow: list[str], ignore: list[str]) -> tuple[Path, list[str]]:
        try:
            snapshot = Path(
                snapshot_download(
                    repo_id=hf_id, revision=revision, cache_dir=cache_dir, allow_patterns=allow, ignore_patterns=ignore
                )
            )
        except Exception as err:  # LocalEntryNotFoundError offline, HTTP / connection errors online
            raise NotCachedError(f"model {hf_id} at revision {revision} could not be fetched {_why(err)}") from err
        return snapshot, _select(snapshot, allow, ignore)

    # A bin index without bin files would only confuse from_pretrained.
    snapshot, files = fetch(MODEL_PATTERNS, ROOT_ONLY + ["*.bin.index.json"])
    record = {"hf_id": hf_id, "revision": revision, "weights_format": "safetensors"}
    if not any(f.endswith(".safetensors") for f in files):
        snapshot, files = fetch(MODEL_PATTERNS + BIN_PATTERNS, ROOT_ONLY)
        if not any(f.endswith(".bin") for f in files):
            raise RuntimeError(
                f"{hf_id} at {revision} has neither *.safetensors nor *.bin weights at its root: "
                "is it a causal LM in Hugging Face format?"
            )
        record["weights_format"] = "bin"
        record["note"] = (
            "the repository has no *.safetensors at this revision; pytorch *.bin weights were "
            "downloaded instead (loaded with torch.load)"
        )
    _check_shards(snapshot, files)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):  # left by a killed earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        linked = [_place((snapshot / f).resolve(), tmp / f) for f in files]
        record.update(
            {
                # The snapshot folder of the HF cache is named by the commit the revision resolved to.
                "commit_sha": snapshot.name,
                "files": [{"name": f, "size": (tmp / f).stat().st_size} for f in files],
                "hard_linked_from_cache": all(linked),
                "cache_snapshot": str(snapshot),
                "huggingface_hub_version": hub_version,
                "downloaded_at": _now(),
            }
        )
        write_json(tmp / "download.json", record)
        _swap_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


# ---------------------------------------------------------------------------------------- datasets


def dataset_names() -> list[str]:
    return [*HUB_DATASETS, f"{LMEVAL_PREFIX}<task>"]


@functools.lru_cache(maxsize=1)
def _lm_eval_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager()  # indexes lm-eval's ~15k task configs (about 15 s): once per process


def _check_lm_eval_tasks(tasks: list[str], manager) -> None:
    known = set(manager.all_tasks)
    for task in tasks:
        if task.startswith("world_"):
            raise ValueError(f"{LMEVAL_PREFIX}{task}: world tasks ship with the package and need no download")
        if task not in known:
            close = difflib.get_close_matches(task, known, n=5)
            raise ValueError(
                f"{LMEVAL_PREFIX}{task}: lm-eval has no task or group of that name"
                + (f"; close: {close}" if close else "")
            )


def _fetch_hub_dataset(name: str) -> dict:
    import datasets

    spec = HUB_DATASETS[name]
    try:
        ds = datasets.load_dataset(**spec)
    except Exception as err:  # ConnectionError offline; DatasetNotFoundError etc. online
        raise NotCachedError(f"dataset {name} ({spec['path']}) could not be fetched {_why(err)}") from err
    return {"spec": spec, "rows": ds.num_rows, "cache_files": [f["filename"] for f in ds.cache_files]}


def _fetch_lm_eval_task(task: str, manager) -> dict:
    try:
        # Building a task downloads its data (ConfigurableTask.__init__ -> load_dataset).
        loaded = manager.load([task])
    except Exception as err:
        raise NotCachedError(f"lm-eval task {task}: its data could not be fetched {_why(err)}") from err
    return {
        name: {
            "dataset_path": t.config.dataset_path,
            "dataset_name": t.config.dataset_name,
            "rows": {split: d.num_rows for split, d in t.dataset.items()},
        }
        for name, t in loaded["tasks"].items()
    }


def download_datasets(names: list[str]) -> dict:
    """Pre-cache the named datasets in the HF datasets cache; {name: what was fetched}.

    Names: keys of HUB_DATASETS (wikitext2, c4, realtoxicityprompts) or ``lmeval:<task>`` for the
    data of an lm-eval task or group. Every name is checked before anything is fetched."""
    unknown = [
        n for n in names if n not in HUB_DATASETS and not (n.startswith(LMEVAL_PREFIX) and n[len(LMEVAL_PREFIX) :])
    ]
    if unknown:
        raise ValueError(f"unknown dataset name(s) {unknown}; valid: {dataset_names()}")
    tasks = [n[len(LMEVAL_PREFIX) :] for n in names if n.startswith(LMEVAL_PREFIX)]
    manager = None
    if tasks:
        manager = _lm_eval_manager()
        _check_lm_eval_tasks(tasks, manager)
    fetched = {}
    for name in names:
        if name.startswith(LMEVAL_PREFIX):
            fetched[name] = _fetch_lm_eval_task(name[len(LMEVAL_PREFIX) :], manager)
        else:
            fetched[name] = _fetch_hub_dataset(name)
    return fetched


# ---------------------------------------------------------------------------------------- detoxify


def detoxify_checkpoint(model_type: str) -> Path:
    """Where torch.hub keeps the checkpoint of a Detoxify model type (under TORCH_HOME)."""
    from detoxify.detoxify import MODEL_URLS

    from attrprune.evaluation.toxicity import detoxify_checkpoint_path

    if model_type not in MODEL_URLS:
        raise ValueError(f"unknown Detoxify model type {model_type!r}; valid: {sorted(MODEL_URLS)}")
    return detoxify_checkpoint_path(model_type)


def download_detoxify(model_type: str = "original") -> dict:
    """Load Detoxify once: torch.hub caches its checkpoint, transformers its base model's config and
    tokenizer. One prediction checks the result works."""
    from detoxify import Detoxify

    checkpoint = detoxify_checkpoint(model_type)
    if not checkpoint.is_file() and _offline_vars():
        # torch.hub ignores the HF offline variables and would wait on the network.
        raise RuntimeError(
            f"Detoxify {model_type!r}: {checkpoint} is missing and offline mode is on "
            f"({', '.join(_offline_vars())}); {FIX}"
        )
    try:
        model = Detoxify(model_type, device="cpu")
        classes = sorted(model.predict(["a test sentence", "another one"]))
    except Exception as err:
        raise RuntimeError(f"Detoxify {model_type!r} could not be loaded {_why(err)}") from err
    return {
        "model_type": model_type,
        "checkpoint": str(checkpoint),
        "checkpoint_size": checkpoint.stat().st_size,
        "base_model": model.model.config.name_or_path,
        "classes": classes,
    }


# ----------------------------------------------------------------------------------------- markers


def cache_locations() -> dict:
    """The cache variables as set, and the folders the libraries resolved from them."""
    import datasets.config
    import torch
    from huggingface_hub import constants

    return {
        "env": {v: os.environ.get(v) for v in CACHE_VARS + OFFLINE_VARS},
        "hf_hub_cache": str(constants.HF_HUB_CACHE),
        "hf_datasets_cache": str(datasets.config.HF_DATASETS_CACHE),
        "torch_hub_dir": torch.hub.get_dir(),
    }


def write_marker(path: Path, what: str, fetched: dict) -> None:
    """The output file of a download rule, written last (atomically): what was fetched and the cache
    folders it went to, which compute jobs must share (same HF_HOME / TORCH_HOME)."""
    write_json(path, {"what": what, "fetched": fetched, "caches": cache_locations(), "downloaded_at": _now()})
