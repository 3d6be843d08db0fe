"""Reference sets and component scores (rules/relevance.smk)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from attrprune.registry import METHODS, REFSET_KINDS, SCORE_STORAGES
from attrprune.stages.args import ModelJob, arg, positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RefsetStage(ModelJob):
    """materialise a seeded reference set and its explained target"""

    kind: str = arg(choices=REFSET_KINDS)
    data_dir: Path | None = arg(None, help="the world's data folder (world source, prompts)")
    source: str = arg(
        "world",
        choices=("world", "wikitext2", "c4", "json"),
        help="general text: the world's, WikiText-2 / C4 from the local datasets cache, or --text-file",
    )
    text_file: Path | None = arg(None, help='JSONL with a "text" field (source json)')
    prompts_file: Path | None = arg(
        None, help="ioi / toxic / repetition prompts as JSONL (default: the world's files under --data-dir)"
    )
    n: int = arg(128, parse=positive_int, help="number of samples")
    length: int | None = arg(None, parse=positive_int, help="tokens per general-text window (default: model context)")
    new_tokens: int | None = arg(
        None, parse=positive_int, help="greedy tokens explained per behaviour prompt (default 20)"
    )
    seed: int = arg(0)
    out: Path = arg()

    def run(self) -> None:
        from attrprune.refsets import build_refset, save_refset

        self.set_threads()
        refset = build_refset(
            self.kind,
            self.model_dir,
            self.data_dir,
            self.n,
            self.seed,
            length=self.length,
            new_tokens=self.new_tokens,
            source=self.source,
            text_file=self.text_file,
            prompts_file=self.prompts_file,
            dtype=self.dtype,
            device_map=self.device_map,
        )
        save_refset(refset, self.out)
        log.info(f"{self.kind} reference set: {len(refset)} samples x {refset.input_ids.shape[1]} tokens -> {self.out}")


@dataclass(frozen=True, kw_only=True)
class ScoresStage(ModelJob):
    """score every weight, neuron and head of a model on a reference set"""

    refset: Path = arg()
    method: str = arg(choices=tuple(METHODS))
    lrp_variant: str = arg("attnlrp", choices=("attnlrp", "cp"))
    aggregation: str = arg(
        "abs",
        choices=("abs", "signed"),
        help="lrp / gradient over tokens: sum of |R| per token (default) or |sum of R|; atp over prompts: "
        "mean of |effect| (default) or signed mean",
    )
    batch_size: int = arg(16, parse=positive_int)
    seed: int = arg(0, help="seed of the random method (and torch)")
    storage: str = arg(
        "float32",
        choices=SCORE_STORAGES,
        help="dtype of the per-weight scores in the file: float16 (rescaled per tensor) halves it; neuron "
        "and head scores stay float32, and reading returns float32 (bench/compact_scores.py)",
    )
    out: Path = arg()

    def run(self) -> None:
        import torch

        from attrprune.io import provenance
        from attrprune.models import load_model, placement, weights_sha256
        from attrprune.refsets import load_refset
        from attrprune.relevance import ScoreOptions, compute_scores
        from attrprune.relevance.store import save_scores

        torch.manual_seed(self.seed)
        self.set_threads()
        model, _ = load_model(self.model_dir, dtype=self.dtype, device_map=self.device_map)
        refset = load_refset(self.refset)
        options = ScoreOptions(
            batch_size=self.batch_size, seed=self.seed, lrp_variant=self.lrp_variant, aggregation=self.aggregation
        )
        scores = compute_scores(self.method, model, refset, options)
        meta = provenance(
            method=self.method,
            lrp_variant=self.lrp_variant if self.method == "lrp" else None,
            target=refset.meta.get("target"),
            aggregation=self.aggregation if self.method in ("lrp", "gradient", "atp") else None,
            refset=str(self.refset),
            refset_kind=refset.meta.get("kind"),
            refset_sha256=refset.meta.get("sha256"),
            refset_seed=refset.meta.get("seed"),
            n_samples=len(refset),
            seed=self.seed,
            batch_size=self.batch_size,
            **placement(model, self.device_map),
            dtype_requested=self.dtype,
            model_dir=str(self.model_dir),
            model_sha256=weights_sha256(self.model_dir),
        )
        save_scores(scores, self.out, meta, storage=self.storage)
        log.info(
            f"{self.method}: {len(scores.weights)} weight, {len(scores.neurons)} neuron, "
            f"{len(scores.heads)} head tensors ({self.storage} per-weight storage) -> {self.out}"
        )
