"""Circuit discovery (rules/circuits.smk): IOI prompts, ablation ground truth, circuits, tables."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from attrprune.registry import GRANULARITIES
from attrprune.stages.args import (
    MODEL_NAME_HELP,
    ModelJob,
    TableJob,
    arg,
    job_inputs,
    paths,
    positive_float,
    positive_int,
    sparsities,
)

log = logging.getLogger(__name__)

WEIGHT_MODULES = ("mlp", "all")
ABLATION_VALUES = ("zero", "mean", "counterfactual")  # attrprune.circuits.intervention (kept torch-free here)
SIZE_ROUNDINGS = ("project", "mib")  # attrprune.circuits.sweep


def sizes(text: str) -> list[float]:
    """Comma-separated circuit sizes (kept fractions) in (0, 1]."""
    values = [float(t) for t in text.split(",") if t]
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"circuit sizes must lie in (0, 1], got {text}")
    return values


@dataclass(frozen=True, kw_only=True)
class IoiDataStage:
    """write seeded IOI prompts (single-token names of a model's tokenizer) as JSONL"""

    model_dir: Path = arg(help="model folder whose tokenizer picks the names")
    n: int = arg(256, parse=positive_int, help="number of prompts")
    seed: int = arg(0)
    split: str = arg(choices=("reference", "evaluation"), help="disjoint name halves")
    out: Path = arg()

    def run(self) -> None:
        from attrprune.ioi import ioi_data

        rows = ioi_data(self.model_dir, self.n, self.seed, self.split, self.out)
        log.info(f"{len(rows)} {self.split} IOI prompts -> {self.out}")


@dataclass(frozen=True, kw_only=True)
class CircuitStage(ModelJob):
    """IOI circuit: prune by task scores over sparsities, find the sparsest circuit above a threshold"""

    model_name: str | None = arg(None, help=MODEL_NAME_HELP)
    scores: list[Path] = job_inputs(
        parse=paths, help="comma-separated score files, one per reference seed (curves per seed, circuit on their mean)"
    )
    eval_file: Path = arg(help="JSONL of held-out IOI prompts (prompt, io, s)")
    granularity: str = arg(choices=GRANULARITIES)
    scope: str = arg("global", help="global or row (weights), global or layer (neurons, heads)")
    weight_modules: str = arg(
        "mlp", choices=WEIGHT_MODULES, help="weights of the MLP projections only, or of every linear layer"
    )
    sparsities: list[float] = arg(parse=sparsities)
    threshold: float = arg(0.9, parse=positive_float, help="normalised logit difference the circuit keeps")
    ablation: Path | None = arg(None, help="circuit-ablation output: score the ranking against it")
    top_fraction: float = arg(0.1, parse=positive_float, help="ablation-important components = this top fraction")
    limit: int | None = arg(None, parse=positive_int, help="first N evaluation prompts")
    batch_size: int = arg(256, parse=positive_int)
    faithfulness_sizes: list[float] | None = arg(
        None, parse=sizes, help="kept fractions for the CPR / CMD areas (MIB: 0.001,...,0.5,1); none: no areas"
    )
    ablation_value: str = arg(
        "zero",
        choices=ABLATION_VALUES,
        help="removed heads / neurons: zeroed, set to their reference mean, or patched from each prompt's "
        "corrupted copy (MIB's counterfactual patching)",
    )
    mean_reference: list[Path] | None = arg(
        None, parse=paths, help="comma-separated IOI reference-set files the means are taken over (mean ablation)"
    )
    size_rounding: str = arg(
        "project",
        choices=SIZE_ROUNDINGS,
        help="components kept at each faithfulness size k: the project's count (sparsity 1 - k, pruning's count rule) "
        "or MIB's int(k * n)",
    )
    published_circuit: str | None = arg(
        None, help="head circuits: score the ranking against this published circuit (e.g. gpt2-small-ioi)"
    )
    bootstrap_resamples: int = arg(1000, parse=positive_int, help="bootstrap resamples of every interval")
    bootstrap_seed: int = arg(0)
    out_dir: Path = arg(help="curve.json (written last), circuit.safetensors/.json/.png")

    def run(self) -> None:
        from attrprune.circuits.export import run_circuit

        self.set_threads()
        run_circuit(
            self.model_dir,
            self.scores,
            self.eval_file,
            self.granularity,
            self.scope,
            self.sparsities,
            self.threshold,
            self.out_dir,
            weight_modules=self.weight_modules,
            ablation_path=self.ablation,
            top_fraction=self.top_fraction,
            limit=self.limit,
            batch_size=self.batch_size,
            dtype=self.dtype,
            device_map=self.device_map,
            model_name=self.model_name,
            sizes=self.faithfulness_sizes,
            ablation_value=self.ablation_value,
            mean_reference=self.mean_reference,
            n_resamples=self.bootstrap_resamples,
            bootstrap_seed=self.bootstrap_seed,
            published_circuit=self.published_circuit,
            size_rounding=self.size_rounding,
        )


@dataclass(frozen=True, kw_only=True)
class CircuitAblationStage(ModelJob):
    """ground truth: IOI drop when each head, neuron and sampled weight is removed alone"""

    eval_file: Path = arg()
    n_weights: int = arg(256, parse=positive_int, help="single weights sampled for ablation")
    weight_modules: str = arg("mlp", choices=WEIGHT_MODULES)
    seed: int = arg(0, help="seed of the weight sample")
    limit: int | None = arg(None, parse=positive_int, help="first N evaluation prompts")
    ablation_value: str = arg(
        "zero",
        choices=ABLATION_VALUES,
        help="heads / neurons zeroed, set to their reference mean or patched from each prompt's corrupted copy "
        "(weights: zero)",
    )
    mean_reference: list[Path] | None = arg(
        None, parse=paths, help="comma-separated IOI reference-set files the means are taken over (mean ablation)"
    )
    out: Path = arg()

    def run(self) -> None:
        from attrprune.circuits.ablation import run_ablation

        self.set_threads()
        run_ablation(
            self.model_dir,
            self.eval_file,
            self.out,
            n_weights=self.n_weights,
            weight_modules=self.weight_modules,
            seed=self.seed,
            limit=self.limit,
            dtype=self.dtype,
            device_map=self.device_map,
            ablation_value=self.ablation_value,
            mean_reference=self.mean_reference,
        )


@dataclass(frozen=True, kw_only=True)
class CircuitTablesStage(TableJob):
    """circuit tables (CSV, Markdown) and plots from curve.json files"""

    curves: list[str] = job_inputs(help="comma-separated curve.json paths")
    summary_csv: Path = arg(help="one row per circuit")
    paired_csv: Path | None = arg(None, help="paired bootstrap of each method's ROC AUC against lrp's")

    def run(self) -> None:
        from attrprune.circuits.tables import circuit_tables

        circuit_tables(self.curves, self.csv, self.summary_csv, self.markdown, self.plots_dir, self.paired_csv)
