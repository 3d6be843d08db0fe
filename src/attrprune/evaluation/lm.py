"""Evaluate an in-memory (possibly pruned) model with lm-eval-harness.

World tasks ship with the package (`evaluation/tasks/world_*.yaml`); their data files are
resolved against the world data folder at run time, because lm-eval resolves relative
`data_files` against the working directory. Any other name is an lm-eval task (wikitext,
boolq, ...), looked up in lm-eval's own registry. This module never imports lxt.

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


def evaluate_lm(
    model,
    tokenizer,
    tasks: list[str],
    data_dir: Path | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    seed: int = 0,
    log_samples: bool = False,
) -> dict:
    """lm-eval's results for `tasks` as `simple_evaluate` returns them ("results", "n-samples",
    "versions", "configs", "n-shot", "config", ... and with `log_samples` "samples")."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    world = set(world_task_names())
    specs, needs_registry = [], False
    for task in tasks:
        if task in world:
            if data_dir is None:
                raise ValueError(f"task {task} needs the world data folder (data_dir)")
            specs.append(_world_task_config(task, data_dir))
        else:
            specs.append(task)
            needs_registry = True
    # Indexing lm-eval's ~15k built-in tasks takes ~12 s: only when a built-in task is asked for.
    manager = TaskManager(include_defaults=needs_registry)
    lm = HFLM(
        pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=model.config.max_position_embeddings
    )
    with _brief_env_info():
        return lm_eval.simple_evaluate(
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
