"""Compression (rules/compression.smk): prune and evaluate, export one pruned model, tables."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from attrprune.registry import COMPRESSION_SCOPES_HELP, compression_methods
from attrprune.stages.args import (
    Checkpoint,
    EvaluationFlags,
    TableJob,
    arg,
    job_inputs,
    sparsities,
    sparsity,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class EvaluationArgs(EvaluationFlags):
    """How a (pruned) model is evaluated, and where each sparsity's metrics go."""

    out_template: str = arg(
        help="metrics path, {sparsity} standing for each sparsity (out/sparsity_{sparsity}/metrics.json); "
        "lm_eval.json is written beside each"
    )

    def evaluate(
        self,
        method: str | None,
        scores: Path | None,
        calibration: Path | None,
        scope: str,
        sparsities: list[float],
        pruner_options: dict | None = None,
    ) -> None:
        from attrprune.compression import compress_and_evaluate

        self.set_threads()
        compress_and_evaluate(
            self.model_dir, method, scores, calibration, scope, sparsities, self, self.out_template, pruner_options
        )


@dataclass(frozen=True, kw_only=True)
class PruningArgs:
    """Which compression method prunes, by what: scores (score methods) or a calibration set
    (calibrated pruners, and OWL scopes)."""

    method: str = arg(choices=tuple(compression_methods()), help="compression method")
    scores: Path | None = arg(None, help="scores to prune by (score methods)")
    calibration: Path | None = arg(
        None, help="reference set to calibrate on (calibrated pruners, and *_owl scopes): a refset file"
    )
    scope: str = arg("row", help=COMPRESSION_SCOPES_HELP)
    # Pruner hyper-parameters (attrprune.registry.PRUNER_OPTIONS); none = the authors' default.
    sparsegpt_blocksize: int | None = arg(None, help="SparseGPT: columns per block (authors: 128)")
    sparsegpt_percdamp: float | None = arg(None, help="SparseGPT: damping, fraction of mean diag H (authors: 0.01)")
    ria_a: float | None = arg(None, help="RIA: exponent of the activation norm (authors: 0.5)")
    owl_m: float | None = arg(None, help="OWL: outliers are scores above M x the block mean (paper: 5)")
    owl_lambda: float | None = arg(None, help="OWL: block sparsities span 2 lambda around the target (paper: 0.08)")

    def pruner_options(self) -> dict:
        """{PRUNER_OPTIONS key: value} of the options given (the others keep the authors' defaults)."""
        from attrprune.registry import PRUNER_OPTIONS

        return {key: getattr(self, key) for key in PRUNER_OPTIONS if getattr(self, key) is not None}


def compression_method(text: str) -> str:
    """A compression method's name (`none`, the dense model, is read before this)."""
    if text not in compression_methods():
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from none, {', '.join(compression_methods())})"
        )
    return text


@dataclass(frozen=True, kw_only=True)
class CompressStage(PruningArgs, EvaluationArgs):
    """prune by a compression method at one or more sparsities and evaluate each with lm-eval"""

    method: str | None = arg(
        parse=compression_method, help="compression method; none: the dense model (at sparsity 0 alone)"
    )
    sparsities: list[float] = arg(parse=sparsities, help="comma-separated, each in [0, 1)")

    def run(self) -> None:
        if self.method is None:  # the dense model, as each method is evaluated at sparsity 0
            if self.sparsities != [0.0] or self.scores or self.calibration:
                raise ValueError(
                    "--method none evaluates the dense model: give --sparsities 0 and no --scores or --calibration"
                )
            self.evaluate(None, None, None, "row", [0.0])
            return
        self.evaluate(self.method, self.scores, self.calibration, self.scope, self.sparsities, self.pruner_options())


@dataclass(frozen=True, kw_only=True)
class ExportPrunedStage(PruningArgs, Checkpoint):
    """write one pruned model in Hugging Face format (on the CPU: zeroing weights needs no accelerator)"""

    sparsity: float = arg(parse=sparsity)
    base_model: str | None = arg(
        None, help="base_model of the model card: the hub id (e.g. facebook/opt-125m); default --model-dir"
    )
    out_dir: Path = arg()

    def run(self) -> None:
        from attrprune.compression import export_pruned

        info = export_pruned(
            self.model_dir,
            self.method,
            self.scores,
            self.calibration,
            self.scope,
            self.sparsity,
            self.out_dir,
            base_model=self.base_model,
            dtype=self.dtype,
            pruner_options=self.pruner_options(),
        )
        log.info(f"pruned model ({info['sparsity_measured']:.4f} sparse) -> {self.out_dir}")


@dataclass(frozen=True, kw_only=True)
class CompressionTablesStage(TableJob):
    """tidy CSV, paper-style Markdown pivot and plots of compression results"""

    metrics: list[str] = job_inputs(help="comma-separated metrics.json paths")
    at_sparsity: float = arg(0.5, help="sparsity of the pivot table (paper: 0.5)")
    paper_markdown: Path | None = arg(None, help="also write the paper's Table 1 beside ours here")

    def run(self) -> None:
        from attrprune.tables import compression_tables

        compression_tables(self.metrics, self.csv, self.markdown, self.plots_dir, self.at_sparsity, self.paper_markdown)
