"""Small shared helpers of attrprune.io: model names of results, the offline datasets cache."""

import datasets
import pytest

from attrprune.correction.prompts import rtp_prompts
from attrprune.io import cached_dataset, model_name


def test_model_name_is_the_recorded_alias_else_the_folder():
    # A local model's folder need not be named like its config alias; tables key by the alias.
    assert model_name({"model": "tiny-llama", "model_dir": "/data/ckpt/llama"}) == "tiny-llama"
    assert model_name({"model_dir": "world/models/world-opt"}) == "world-opt"


def test_an_uncached_dataset_names_snakemake_download_and_the_alternative(monkeypatch):
    def offline(**spec):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        RuntimeError,
        match=r"^wikitext2 is not in the local datasets cache \(ConnectionError: offline\)\. "
        r"Run `snakemake download`.*it caches wikitext2 when listed\), or use a file$",
    ):
        cached_dataset({"path": "wikitext"}, "wikitext2", "wikitext2 when listed", "use a file")
    with pytest.raises(
        RuntimeError, match=r"RealToxicityPrompts is not in the local datasets cache.*`snakemake download`"
    ):
        rtp_prompts(10, seed=0)
