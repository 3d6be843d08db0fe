"""Evaluate an in-memory (possibly pruned) model with lm-eval-harness.

World tasks ship with the package (`evaluation/tasks/world_*.yaml`); their data files are
resolved against the world data folder at run time, because lm-eval resolves relative
`data_files` against the working directory. Any other name is an lm-eval task (wikitext,
boolq, ...), looked up in lm-eval's own registry. This module never imports lxt.

lm-eval's HFLM caches logits by default (`logits_cache=True`) and, in 0.4.13, reuses them across
requests that share a context and continuation; rolling-perplexity windows of different documents
that share verbatim passages then get another window's log-likelihoods, so word perplexity depends
on the batch size (2.57 at batch size 1, 3.59 at 64 on the world's dialogue text). Every
evaluation here runs with the cache off: the same value at every batch size.

`lm_eval.json` records the `model_args` that rerun an evaluation with lm-eval's own command line
(``lm_eval --model hf --model_args pretrained=...,revision=...,dtype=...,logits_cache=False``;
`model_args_for`), the hub revision and commit of a downloaded model, and the pruning is ours.

Use: ``evaluate_lm(model, tokenizer, ["world_ppl", "world_ioi"], data_dir="world/data")``
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

TASKS_DIR = Path(__file__).parent / "tasks"


def world_task_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("world_*.yaml"))


def _world_task_config(name: str, data_dir: Path) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(TASKS_DIR / f"{name}.yaml", resolve_func=True)
    files = cfg["dataset_kwargs"]["data_files"]
    for split, rel in files.items():
        path = (Path(data_dir) / rel).resolve()
        if not path.exists():
            raise FileNotFoundError(f"task {name}: {path} is missing; is --data-dir the world's data folder?")
        files[split] = str(path)
    return cfg


def _download_record(model_dir: Path | None) -> dict:
    """download.json of a model laid out by `download-model` (hub id, revision, commit); {} otherwise."""
    import json

    record = Path(model_dir) / "download.json" if model_dir is not None else None
    return json.loads(record.read_text()) if record is not None and record.is_file() else {}


def model_args_for(model_dir: Path | None, model, max_length: int) -> dict:
    """lm-eval's `model_args` that load what was evaluated (the dense checkpoint: pruning is not
    among them): a downloaded model by hub id at its commit, any other by its folder."""
    record = _download_record(model_dir)
    args: dict = {}
    if record.get("hf_id"):
        args["pretrained"] = record["hf_id"]
        args["revision"] = record.get("commit_sha") or record["revision"]
    elif model_dir is not None:
        args["pretrained"] = str(Path(model_dir).resolve())
    args["dtype"] = str(model.dtype).removeprefix("torch.")
    args["max_length"] = max_length
    args["logits_cache"] = False
    return args


def evaluate_lm(
    model,
    tokenizer,
    tasks: list[str | dict],
    data_dir: Path | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    seed: int = 0,
    log_samples: bool = False,
    model_dir: Path | None = None,
) -> dict:
    """lm-eval's results for `tasks` as `simple_evaluate` returns them ("results", "n-samples",
    "versions", "configs", "n-shot", "config", ... and with `log_samples` "samples"). A task is a
    name or an lm-eval task config (a dict, as lm-eval takes it). `model_dir`: the checkpoint
    folder, recorded in ``config.model_args`` with its hub revision."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    world = set(world_task_names())
    specs, needs_registry = [], False
    for task in tasks:
        if isinstance(task, dict):
            specs.append(task)
        elif task in world:
            if data_dir is None:
                raise ValueError(f"task {task} needs the world data folder (data_dir)")
            specs.append(_world_task_config(task, data_dir))
        else:
            specs.append(task)
            needs_registry = True
    # Indexing lm-eval's ~15k built-in tasks takes ~12 s: only when a built-in task is asked for.
    manager = TaskManager(include_defaults=needs_registry)
    max_length = model.config.max_position_embeddings
    # logits_cache=False: see the module docstring (the cache makes perplexity batch-size dependent).
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, logits_cache=False)
    with _brief_env_info():
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=specs,
            task_manager=manager,
            limit=limit,
            bootstrap_iters=100,
            log_samples=log_samples,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    if model_dir is None:
        return results
    args = model_args_for(model_dir, model, max_length)
    record = _download_record(model_dir)
    # HFLM was handed a model object, so lm-eval recorded no arguments and the revision "main"
    results["config"].update(
        model=args.get("pretrained", results["config"].get("model")),
        model_args=",".join(f"{k}={v}" for k, v in args.items()),
        model_revision=record.get("revision", ""),
        model_sha=record.get("commit_sha", ""),
    )
    return results


@contextlib.contextmanager
def _brief_env_info():
    """lm-eval records torch's environment report in its results, and that report runs `pip list`
    twice (2-3 s, more than a world model's whole evaluation): for the call, the versions that
    matter instead (`python -m torch.utils.collect_env` prints the full report)."""
    import platform

    import torch
    import torch.utils.collect_env as collect_env

    full = collect_env.get_pretty_env_info
    collect_env.get_pretty_env_info = lambda: (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), Python {platform.python_version()}, "
        f"{platform.platform()}; full report: python -m torch.utils.collect_env"
    )
    try:
        yield
    finally:
        collect_env.get_pretty_env_info = full


def write_lm_eval_json(path: Path, results: dict) -> None:
    """lm-eval's results as its own tooling writes them (values JSON cannot hold become strings,
    by lm-eval's `handle_non_serializable`), atomically."""
    import json

    from lm_eval.utils import handle_non_serializable

    from attrprune.io import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=1, default=handle_non_serializable, ensure_ascii=False))


def per_document(res: dict) -> dict[str, dict[str, list]]:
    """{task: {metric: per-document values in document order}} from lm-eval's sample log: a
    number per document (accuracy), or [log-likelihood, count] for the perplexities, whose
    aggregate is exp(-Σ ll / Σ count). What paired bootstraps over documents resample."""
    out: dict[str, dict[str, list]] = {}
    for task, samples in (res.get("samples") or {}).items():
        metrics: dict[str, list] = {}
        for sample in sorted(samples, key=lambda x: x["doc_id"]):
            for metric in sample.get("metrics", []):
                value = sample.get(metric)
                if isinstance(value, (tuple, list)) and len(value) == 2:
                    metrics.setdefault(metric, []).append([float(value[0]), float(value[1])])
                elif isinstance(value, (int, float)):
                    metrics.setdefault(metric, []).append(float(value))
        out[task] = metrics
    return out


def flatten_results(res: dict) -> list[dict]:
    """One row per task × metric: {task, metric, value, stderr}; lm-eval's "metric,filter" keys
    and "N/A" stderrs are parsed here and nowhere else."""
    rows = []
    for task, metrics in res["results"].items():
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filt = key.split(",", 1)
            se = metrics.get(f"{metric}_stderr,{filt}")
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "value": float(value),
                    "stderr": float(se) if isinstance(se, (int, float)) and not math.isnan(se) else None,
                }
            )
    return rows
