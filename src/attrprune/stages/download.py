"""Downloads (rules/download.smk), the only stages that touch the network: run on a login node."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from attrprune.stages.args import arg, names
from attrprune.stages.correction import DETOXIFY_MODEL_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DownloadModelStage:
    """fetch a hub model at a pinned revision (login node: needs internet)"""

    hf_id: str = arg(help="Hugging Face repository id, e.g. TinyLlama/TinyLlama_v1.1")
    revision: str = arg(help="commit id (40 hex digits) or release tag; never main")
    out_dir: Path = arg(help="model folder; download.json is written last")

    def run(self) -> None:
        from attrprune.download import download_model

        record = download_model(self.hf_id, self.revision, self.out_dir)
        log.info(
            f"{self.hf_id} at {record['commit_sha']}: {len(record['files'])} files ({record['weights_format']}) "
            f"-> {self.out_dir}"
        )


@dataclass(frozen=True, kw_only=True)
class DownloadDataStage:
    """pre-cache datasets and lm-eval task data (login node: needs internet)"""

    names: list[str] = arg(parse=names, help="comma-separated: wikitext2, c4, realtoxicityprompts, lmeval:<task>")
    out: Path = arg(help="marker JSON, written last")

    def run(self) -> None:
        from attrprune.download import download_datasets, write_marker

        write_marker(self.out, "datasets", download_datasets(self.names))
        log.info(f"cached {', '.join(self.names)}; marker {self.out}")


@dataclass(frozen=True, kw_only=True)
class DownloadDetoxifyStage:
    """pre-cache a Detoxify checkpoint and its tokenizer (login node: needs internet)"""

    model_type: str = arg("original", choices=DETOXIFY_MODEL_TYPES)
    out: Path = arg(help="marker JSON, written last")

    def run(self) -> None:
        from attrprune.download import download_detoxify, write_marker

        record = download_detoxify(self.model_type)
        write_marker(self.out, "detoxify", record)
        log.info(f"Detoxify {self.model_type}: {record['checkpoint']}; marker {self.out}")
