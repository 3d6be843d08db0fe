"""What the suite takes from the Hugging Face hub, as the compute stages see it: the datasets they
read from the local cache, and the check that a downloaded model folder is complete.

`attrprune.download` (the only code that touches the network) fetches what is named here; the
compute stages only read the local copies, so they import this module and never `download`.

Use: ``require_model("resources/models/tinyllama-1.1b", "tinyllama-1.1b")`` before loading a hub model.
"""

from __future__ import annotations

from pathlib import Path

FIX = "run `snakemake download` on a machine with internet (login node), then rerun"

# Hugging Face datasets of the general-text sources (the Wanda / SparseGPT calibration data).
HUB_TEXT = {
    "wikitext2": {"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "train"},
    "c4": {"path": "allenai/c4", "data_files": {"train": "en/c4-train.00000-of-01024.json.gz"}, "split": "train"},
}
# Every dataset the download stage can cache, keyed like HUB_TEXT: kwargs of datasets.load_dataset.
HUB_DATASETS = {**HUB_TEXT, "realtoxicityprompts": {"path": "allenai/real-toxicity-prompts", "split": "train"}}


def require_model(model_dir: Path, alias: str) -> dict:
    """download.json of a downloaded hub model, after checking every file it lists is there with its
    size. Compute stages call this before loading, so a missing model names the fix."""
    model_dir = Path(model_dir)
    stamp = model_dir / "download.json"
    if not stamp.is_file():
        raise FileNotFoundError(f"model {alias} is not downloaded ({stamp} is missing): {FIX}")
    from attrprune.records import DOWNLOAD, read_json

    record = read_json(stamp, DOWNLOAD)
    wrong = [
        f["name"]
        for f in record["files"]
        if not (model_dir / f["name"]).is_file() or (model_dir / f["name"]).stat().st_size != f["size"]
    ]
    if wrong:
        raise FileNotFoundError(
            f"model {alias} is not downloaded completely ({model_dir}: missing or "
            f"truncated {wrong}): delete {stamp}, {FIX}"
        )
    if not any(f["name"].endswith((".safetensors", ".bin")) for f in record["files"]):
        raise FileNotFoundError(f"model {alias} has no weights in {model_dir}: delete {stamp}, {FIX}")
    return record
