"""Structured compression (rules/structured.smk): a smaller dense model per method and ratio,
exported and evaluated; its speed and memory beside the dense model's; tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from attrprune.registry import STRUCTURED_METHODS
from attrprune.stages.args import EvaluationFlags, arg, job_inputs, positive_int


def _ratio(text: str) -> float:
    import argparse

    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


@dataclass(frozen=True, kw_only=True)
class StructuredStage(EvaluationFlags):
    """remove a fraction of MLP neurons and attention heads in every block, save the smaller model, reload and evaluate it"""

    method: str = arg(
        choices=tuple(STRUCTURED_METHODS), help="neuron / head ranking (flap: FLAP, with its compensation)"
    )
    ratio: float = arg(parse=_ratio, help="fraction of the neurons and of the key/value groups removed per block")
    scores: Path | None = arg(None, help="scores file of the method's scoring method (not for magnitude, flap)")
    calibration: Path | None = arg(None, help="reference set FLAP calibrates on (a general refset file)")
    base_model: str | None = arg(None, help="base_model of the model card (the hub id); default --model-dir")
    model_out: Path = arg(help="folder of the smaller model (Hugging Face format)")
    metrics: Path = arg(help="metrics JSON of the reloaded model; lm_eval.json is written beside it")

    def run(self) -> None:
        from attrprune.deploy import structured_compress

        self.set_threads()
        structured_compress(
            self.model_dir,
            self.method,
            self.ratio,
            self.scores,
            self.calibration,
            self.model_out,
            self.metrics,
            self,
            base_model=self.base_model,
        )


@dataclass(frozen=True, kw_only=True)
class StructuredSpeedStage:
    """parameters, file size, peak memory, forward latency and generation speed of the dense and each smaller model, side by side"""

    model_name: str = arg(help="the model's name in the tables")
    dense: Path = arg(help="the dense model folder")
    models: list[str] = job_inputs(help="comma-separated smaller model folders (structured stage outputs)")
    device: str = arg("cpu", choices=("cpu", "cuda"), help="where the models run")
    threads: int = arg(1, parse=positive_int, help="torch CPU threads")
    batch: int = arg(8, parse=positive_int, help="sequences per forward pass")
    new_tokens: int = arg(32, parse=positive_int, help="greedy tokens generated per measurement")
    repeats: int = arg(10, parse=positive_int, help="forward passes timed (median)")
    rounds: int = arg(3, parse=positive_int, help="every model measured once per round; medians over rounds")
    out: Path = arg(help="speed JSON")

    def run(self) -> None:
        from attrprune.io import provenance, write_json
        from attrprune.speed import measure_models

        labels = {}
        for folder in map(Path, self.models):
            info = json.loads((folder / "structured.json").read_text())
            labels[f"{info['method']}@{info['ratio']:.2f}"] = folder
        res = measure_models(
            {"dense": self.dense, **labels},
            device=self.device,
            threads=self.threads,
            batch=self.batch,
            new_tokens=self.new_tokens,
            repeats=self.repeats,
            rounds=self.rounds,
        )
        write_json(self.out, {"model_name": self.model_name} | res | provenance())


@dataclass(frozen=True, kw_only=True)
class StructuredTablesStage:
    """tidy CSV and Markdown tables of structured compression: quality, and speed and memory ratios"""

    metrics: list[str] = job_inputs(help="comma-separated structured metrics.json paths")
    dense: list[str] = job_inputs(help="comma-separated dense metrics.json paths (rule compress_dense)")
    speed: list[str] = job_inputs(help="comma-separated speed JSON paths (structured-speed outputs)")
    csv: Path = arg(help="tidy CSV")
    markdown: Path = arg(help="Markdown tables")
    plots_dir: Path | None = arg(None, help="folder of the plots (structured_<model>.png); none: no plots")

    def run(self) -> None:
        from attrprune.deploy_tables import structured_tables

        structured_tables(self.metrics, self.dense, self.speed, self.csv, self.markdown, self.plots_dir)
