"""Field declarations of stage arguments, value parsers, and the flag groups stages share.

A field's type says how its flag is parsed (Path, int, float, str, bool as --x/--no-x, and
`X | None`, which also accepts the literal `none` so that a workflow rule can spell out every
flag); `arg(parse=...)` overrides it with a checking parser such as `positive_int`; `job_inputs` declares
a list of the job's input files.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from attrprune.models import DEVICE_MAPS, DTYPES  # torch-free constants


def arg(default=dataclasses.MISSING, *, help: str = "", choices=None, parse=None):
    """A stage argument: no default means the flag is required."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "parse": parse})


def job_inputs(*, help: str, parse=None):
    """A required list of files that the workflow gives from the job's input of the field's name
    (`--metrics {input.metrics:q}`, attrprune.stages.command): on the command line one or more
    words, each comma-separated. The list never becomes a rule param, so it stays out of the
    report's job info."""
    return dataclasses.field(metadata={"help": help, "choices": None, "parse": parse or names, "input": True})


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names (tasks, files)."""
    return [t for t in text.split(",") if t]


def paths(text: str) -> list[Path]:
    return [Path(t) for t in names(text)]


def sparsities(text: str) -> list[float]:
    values = [float(t) for t in text.split(",") if t]
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"sparsities must lie in [0, 1), got {text}")
    return values


def sparsity(text: str) -> float:
    values = sparsities(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"one sparsity in [0, 1), got {text}")
    return values[0]


def ks(text: str) -> list[int]:
    values = [int(t) for t in text.split(",") if t]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"ks must be comma-separated non-negative integers, got {text}")
    return values


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A stage that reads a model folder, in a dtype of choice."""

    model_dir: Path = arg(help="Hugging Face model folder (config.json, weights, tokenizer)")
    dtype: str = arg(
        "auto", choices=DTYPES, help="auto: the checkpoint's own dtype (config.json); otherwise cast to this dtype"
    )


@dataclass(frozen=True, kw_only=True)
class ModelJob(Checkpoint):
    """A stage that runs a model: dtype, placement and CPU threads (attrprune.models.load_model)."""

    dtype: str = arg(
        "auto",
        choices=DTYPES,
        help="auto: bfloat16 on GPUs that support it, float16 on older GPUs, float32 on CPU; float16 is refused on CPU",
    )
    device_map: str = arg(
        "none",
        choices=DEVICE_MAPS,
        help="none: the whole model on one device (the GPU if any, else CPU); "
        "auto: spread over all visible GPUs with accelerate (needs CUDA)",
    )
    threads: int | None = arg(None, parse=positive_int, help="torch CPU threads")

    def set_threads(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)


@dataclass(frozen=True, kw_only=True)
class TableJob:
    """A stage that tabulates results: a tidy CSV, a Markdown table and plots."""

    csv: Path = arg(help="tidy CSV, one row per measurement")
    markdown: Path = arg(help="Markdown table")
    plots_dir: Path = arg(help="folder of the plots")


MODEL_NAME_HELP = "the model's name in outputs and tables (default: the folder name)"


@dataclass(frozen=True, kw_only=True)
class EvaluationFlags(ModelJob):
    """How a model is evaluated (`attrprune.evaluation.suite`): lm-eval tasks and the token perplexity."""

    model_name: str | None = arg(None, help=MODEL_NAME_HELP)
    tasks: list[str] = arg(parse=names, help="comma-separated lm-eval task names (world_* ship with the package)")
    data_dir: Path | None = arg(None, help="the world's data folder (for world_* tasks)")
    batch_size: int = arg(32, parse=positive_int, help="lm-eval batch size; also windows per token-perplexity pass")
    limit: int | None = arg(None, parse=positive_int, help="evaluate only the first N documents per task")
    ppl_source: str = arg(
        "none",
        choices=("world", "wikitext2", "none"),
        help="token perplexity (Wanda/SparseGPT protocol) on the world's held-out text (needs "
        "--data-dir) or the WikiText-2 test split; none: skip it",
    )
    seqlen: int | None = arg(
        None,
        parse=positive_int,
        help="tokens per token-perplexity window (default: the model's max_position_embeddings)",
    )
    ppl_windows: int | None = arg(
        None, parse=positive_int, help="token perplexity over the first N windows only (default: the whole text)"
    )
    seed: int = arg(0)
    log_samples: bool = arg(
        False, help="also keep lm-eval's per-sample log (every prompt and response) in lm_eval.json"
    )

    def ppl(self) -> str | None:
        """The token-perplexity source, None to skip it."""
        return None if self.ppl_source == "none" else self.ppl_source
