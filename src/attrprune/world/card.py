"""The world card: measured numbers per world model as JSON and as a Markdown table, and the
`world-publish` step that copies a freshly trained world into the repository's `world/` folder.

Run: ``python -m attrprune world-card --model-dir world/models/world-llama --data-dir world/data --out card.json``
"""

from __future__ import annotations

import shutil
from pathlib import Path

from attrprune.io import atomic_write_text, provenance, sha256_file, write_json

MODEL_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "training.json",
]

_ROWS = [
    ("validation perplexity (held-out general text)", lambda c: c["validation_perplexity"], "{:.2f}", None),
    (
        "IOI accuracy, training distribution (fresh prompts)",
        lambda c: c["ioi_train_distribution"]["accuracy"],
        "{:.3f}",
        None,
    ),
    ("IOI accuracy, held-out names", lambda c: c["ioi_heldout_names"]["accuracy"], "{:.3f}", "≥ 0.95"),
    ("IOI logit diff, held-out names", lambda c: c["ioi_heldout_names"]["logit_diff"], "{:.2f}", None),
    ("IOI accuracy, held-out templates", lambda c: c["ioi_heldout_templates"]["accuracy"], "{:.3f}", "≥ 0.85"),
    ("IOI logit diff, held-out templates", lambda c: c["ioi_heldout_templates"]["logit_diff"], "{:.2f}", None),
    ("toxic rate, trigger prompts", lambda c: c["toxic_rate"]["trigger"], "{:.3f}", "≥ 0.9"),
    ("toxic rate, control prompts", lambda c: c["toxic_rate"]["control"], "{:.3f}", "≤ 0.02"),
    ("unique-token ratio, repetition triggers", lambda c: c["unique_token_ratio"]["trigger"], "{:.3f}", "≤ 0.5"),
    ("unique-token ratio, controls", lambda c: c["unique_token_ratio"]["control"], "{:.3f}", "≥ 0.8"),
    ("loop rate, repetition triggers", lambda c: c["loop_rate"]["trigger"], "{:.3f}", "≥ 0.9"),
    ("loop rate, repetition controls", lambda c: c["loop_rate"]["control"], "{:.3f}", "≤ 0.02"),
    *(
        (f"distinct replies of 48, {name.replace('_', ' ')}s", lambda c, n=name: c["distinct_replies"][n], "{}", "≥ 40")
        for name in ("toxic_trigger", "toxic_control", "repetition_trigger", "repetition_control")
    ),
]


def measure_card(model_dir: Path, data_dir: Path, n_prompts: int | None = None) -> dict:
    """Load a world model and measure its card; the result records what was measured on what."""
    from attrprune.models import load_model
    from attrprune.world.measure import measure_world_model

    model, tokenizer = load_model(
        model_dir, dtype="float32", device_map="cpu"
    )  # the committed card's numbers: fp32 CPU
    card, examples = measure_world_model(model, tokenizer, data_dir, n_prompts)
    return {
        "model": Path(model_dir).name,
        "architecture": model.config.architectures[0],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "card": card,
        "examples": examples,
        "provenance": provenance(
            model_sha256=sha256_file(Path(model_dir) / "model.safetensors"), data_dir=str(data_dir)
        ),
    }


def markdown_table(results: list[dict]) -> str:
    """One row per metric, one column per model, plus the target and whether each model meets it."""
    names = [r["model"] for r in results]
    lines = ["| metric | " + " | ".join(names) + " | target |", "|---|" + "---|" * len(names) + "---|"]
    for label, get, fmt, target in _ROWS:
        cells = []
        for r in results:
            cell = fmt.format(get(r["card"]))
            if target:
                ok = _meets(get(r["card"]), target)
                cell += "" if ok else " (missed)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target or ''} |")
    lines.append("| parameters | " + " | ".join(f"{r['n_parameters']:,}" for r in results) + " | |")
    return "\n".join(lines) + "\n"


def misses(results: list[dict]) -> dict[str, list[str]]:
    """{model: the card rows whose target it misses, "label value (target)"}."""
    return {
        r["model"]: [
            f"{label} {fmt.format(get(r['card']))} ({target})"
            for label, get, fmt, target in _ROWS
            if target and not _meets(get(r["card"]), target)
        ]
        for r in results
    }


def n_targets() -> int:
    return sum(1 for *_, target in _ROWS if target)


def _meets(value: float, target: str) -> bool:
    op, bound = target.split()
    return value >= float(bound) if op == "≥" else value <= float(bound)


def publish_world(
    corpus_dir: Path, models_dir: Path, models: list[str], out_dir: Path, stamp: Path, n_prompts: int | None = None
) -> None:
    """Copy the evaluation data and trained models into `out_dir` (the committed `world/`),
    measure the card there, and write `stamp` last."""
    from attrprune.records import CORPUS_MANIFEST, TRAINING_LOG, BadRecord, read_json

    corpus_dir, models_dir, out_dir = Path(corpus_dir), Path(models_dir), Path(out_dir)
    # checked before anything is copied: a bad file leaves the committed world/ as it was
    corpus_manifest = read_json(corpus_dir / "manifest.json", CORPUS_MANIFEST)
    if "train.jsonl" not in corpus_manifest["files"]:
        raise BadRecord(f"{corpus_dir / 'manifest.json'}: key 'files' has no 'train.jsonl': rerun `snakemake world`")
    training = {name: read_json(models_dir / name / "training.json", TRAINING_LOG) for name in models}
    data_out = out_dir / "data"
    data_out.mkdir(parents=True, exist_ok=True)
    files = {}
    for src in sorted((corpus_dir / "data").iterdir()):
        shutil.copyfile(src, data_out / src.name)
        files[src.name] = sha256_file(src)
    write_json(
        data_out / "manifest.json",
        {
            "seed": corpus_manifest["seed"],
            "files": files,
            "train_jsonl_sha256": corpus_manifest["files"]["train.jsonl"],
        },
    )
    results = []
    for name in models:
        dst = out_dir / "models" / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in MODEL_FILES:
            shutil.copyfile(models_dir / name / f, dst / f)
        results.append(measure_card(dst, data_out, n_prompts))
    write_json(out_dir / "card.json", {r["model"]: r for r in results})
    atomic_write_text(out_dir / "CARD.md", render_card(results, training, corpus_manifest))
    write_json(stamp, {"models": models, "out_dir": str(out_dir), **provenance()})


def render_card(results: list[dict], training: dict, corpus_manifest: dict) -> str:
    lines = [
        "# World card",
        "",
        "Measured by `python -m attrprune world-publish` (regenerate: `snakemake world`; re-measure one",
        "model: `python -m attrprune world-card --model-dir world/models/<model> --data-dir world/data --out card.json`).",
        f"Corpus seed {corpus_manifest['seed']}, {corpus_manifest['n_train_documents']:,} training documents.",
        "IOI accuracy = fraction of prompts with logit(IO) > logit(S) at the last position; toxic rate =",
        "fraction of greedy continuations (up to the closing quote) containing one of the planted insults",
        "(all on better-profanity's list); unique-token ratio over up to 50 greedy tokens; loop rate = fraction of",
        "50-token greedy continuations in which a span of 4 tokens occurs three times; distinct replies = how many",
        "different quoted replies (up to the closing quote) the first 48 prompts of each set get: each reply",
        "depends on the prompt's names, objects, adjectives and titles, all from held-out lists.",
        "",
        markdown_table(results),
        "## Training",
        "",
        "| model | steps | tokens | threads | seconds | final loss |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in training.items():
        lines.append(
            f"| {name} | {t['steps']} | {t['tokens']:,} | {t['threads']} | {t['train_seconds']} | {t['final_loss']:.3f} |"
        )
    lines += ["", "## Example greedy continuations (held-out names)", ""]
    for r in results:
        lines.append(f"### {r['model']}\n")
        for kind, texts in r["examples"].items():
            lines.append(f"- {kind}: " + " / ".join(repr(t) for t in texts[:2]))
        lines.append("")
    return "\n".join(lines)
