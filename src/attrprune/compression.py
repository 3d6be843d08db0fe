"""Compression (paper §4.1): prune by a compression method (the least relevant weights by a
score, or a calibrated pruner such as SparseGPT) at one or more sparsities and evaluate each
pruned model with lm-eval, in memory.

How each method prunes is `attrprune.pruning.plan` (masks sorted once for every sparsity; pruners
run block by block on the calibration set); each pruned model exists only inside
`plan.pruned(...)`, so nothing is written back to the model directory. One metrics JSON per
sparsity records the lm-eval results, each task's per-document values (`per_document`, for the
tables' paired bootstraps over documents), the token perplexity of the Wanda / SparseGPT protocol
(`evaluation.perplexity`; a metrics row of task ``wikitext2_tokens`` or ``world_tokens``, metric
``token_perplexity``, and a ``token_perplexity`` block with its seqlen and window count; always
on the whole text, `limit` is lm-eval's only),
the requested and the measured sparsity (counted as exact zeros in the pruned weights), the
method with its options, block sparsities and calibration set (`pruning`), the scores'
provenance and this run's.

Run: ``python -m attrprune compress --model-dir M --method lrp --scores S --scope row --sparsities 0.30,0.50
--tasks world_ppl,world_ioi --data-dir world/data --ppl-source world --seqlen 64
--out-template 'out/sparsity_{sparsity}/metrics.json'`` (``--method sparsegpt --calibration R
--scope layer`` for a calibrated pruner)
"""

from __future__ import annotations

import contextlib
import errno
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def format_sparsity(s: float) -> str:
    """The one spelling of a sparsity in paths: two decimals ("0.50")."""
    return f"{s:.2f}"


def metrics_paths(out_template: str, sparsities: list[float]) -> list[Path]:
    """The metrics path of each sparsity; a template without a usable {sparsity}, or an output path
    that is a folder, fails here, not after the evaluation."""
    try:
        outs = [Path(out_template.format(sparsity=format_sparsity(s))) for s in sparsities]
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"--out-template {out_template!r} has a placeholder other than {{sparsity}} ({err})") from None
    if len(set(outs)) < len(outs):
        raise ValueError(f"--out-template {out_template!r} gives every sparsity the same path: put {{sparsity}} in it")
    for path in (p for out in outs for p in (out, out.with_name("lm_eval.json"))):
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "the output path is a folder", str(path))
    return outs


def load_plan(
    model, model_dir: Path, method: str | None, scope: str, scores_path, calibration_path, pruner_options=None
):
    """(the `CompressionPlan` of `method` on `model`, the scores' metadata): the scores must be
    finite, of `model_dir`'s checkpoint and of the method's own scoring method. No method: the
    dense model, (None, None). `pruner_options`: {`registry.PRUNER_OPTIONS` key: value}."""
    from attrprune.pruning.plan import CompressionPlan
    from attrprune.refsets import load_refset
    from attrprune.registry import compression_methods
    from attrprune.relevance.store import load_scores

    if method is None:
        return None, None
    scores, scores_meta = load_scores(scores_path, model_dir) if scores_path is not None else (None, None)
    expected = compression_methods().get(method)
    if expected is not None and scores_meta is not None and scores_meta.get("method") != expected:
        raise ValueError(
            f"{method} prunes by {expected} scores; {scores_path} holds {scores_meta.get('method')} scores: "
            f"give {expected} scores (scores --method {expected})"
        )
    calibration = load_refset(calibration_path) if calibration_path is not None else None
    return CompressionPlan(model, method, scope, scores, calibration, pruner_options), scores_meta


def compress_and_evaluate(
    model_dir: Path,
    method: str | None,
    scores_path: Path | None,
    calibration_path: Path | None,
    scope: str,
    sparsities: list[float],
    flags,
    out_template: str,
    pruner_options: dict | None = None,
) -> list[Path]:
    """Prune by compression method `method` (scores from `scores_path` for score methods, the
    reference set at `calibration_path` for calibrated pruners and OWL scopes; see
    `attrprune.pruning.plan`) at each sparsity, evaluate, write one metrics JSON each, and beside
    it lm-eval's own results (`lm_eval.json`: task configs, n-shot, versions, model arguments, and
    with `log_samples` every prompt and response). `method` None evaluates the dense model (only
    sparsity 0; the workflow does that once per model). `ppl_source` (world, wikitext2 or None =
    skip) adds the token perplexity at `seqlen` tokens per window (None = the model's
    max_position_embeddings), over the first `ppl_windows` windows (None: all). `flags`: how the
    model is loaded and evaluated (the stage's `attrprune.stages.args.EvaluationFlags`: tasks,
    data_dir, ppl_source, seqlen, ... ; dtype, device_map: `attrprune.models.load_model`).
    `pruner_options`: {`registry.PRUNER_OPTIONS` key: value}, checked before the model loads."""
    from attrprune.evaluation.lm import write_lm_eval_json
    from attrprune.evaluation.perplexity import perplexity_texts
    from attrprune.evaluation.suite import evaluate_model
    from attrprune.io import provenance, removed_on_failure, write_json
    from attrprune.models import load_model, placement
    from attrprune.pruning.plan import check_pruner_options
    from attrprune.registry import check_compression

    ppl_source, seqlen, data_dir = flags.ppl(), flags.seqlen, flags.data_dir
    if method is not None:
        check_compression(method, scope)  # before loading anything: a typo fails in a second
        check_pruner_options(method, scope, pruner_options or {})
    if method is None and any(sparsities):
        raise ValueError(f"sparsities {sparsities}: without a method only the dense model (sparsity 0) is evaluated")
    outs = metrics_paths(out_template, sparsities)  # before loading anything, as the checks above
    model, tokenizer = load_model(model_dir, dtype=flags.dtype, device_map=flags.device_map)
    plan, scores_meta = load_plan(model, model_dir, method, scope, scores_path, calibration_path, pruner_options)
    texts = None
    if ppl_source is not None:
        # Checked before any pruning: a seqlen the model cannot take, or text missing from an
        # offline cache, must fail in seconds, not after the first sparsity's lm-eval run.
        max_positions = model.config.max_position_embeddings
        seqlen = seqlen or max_positions
        if seqlen > max_positions:
            raise ValueError(
                f"--seqlen {seqlen} exceeds {model_dir}'s max_position_embeddings ({max_positions}); "
                f"use at most {max_positions} (compression.seqlen in the config; null = the model's)"
            )
        texts = perplexity_texts(ppl_source, data_dir)  # loaded once, reused at every sparsity
    # What was written is removed again if a later sparsity fails: no half-finished job.
    with removed_on_failure():
        for s, out in zip(sparsities, outs):
            with plan.pruned(s) if plan is not None else _dense(model) as pruning:
                ev = evaluate_model(model, tokenizer, flags, model_dir=model_dir, texts=texts)
            measured = pruning.pop("measured")
            write_lm_eval_json(out.with_name("lm_eval.json"), ev.results)
            write_json(
                out,
                {
                    "method": method,  # None: the dense model
                    "sparsity": s,
                    "scope": scope,
                    "sparsity_requested_masks": pruning.pop("sparsity_requested_masks", None),
                    "sparsity_measured": measured["overall"],
                    "sparsity_per_layer": measured["per_layer"],
                    "metrics": ev.rows,
                    "token_perplexity": ev.token_perplexity,
                    "per_document": ev.per_document,
                    "n_samples": ev.results.get("n-samples"),
                    "task_versions": ev.results.get("versions"),
                    "pruning": pruning if plan is not None else None,
                    "scores": scores_meta,  # None: a calibrated pruner, or the dense model
                    "lm_eval_results": "lm_eval.json",
                    **provenance(
                        seed=flags.seed,
                        limit=flags.limit,
                        tasks=flags.tasks,
                        model_dir=str(model_dir),
                        model=flags.model_name or Path(model_dir).name,
                        ppl_source=ppl_source,
                        seqlen=seqlen if ppl_source is not None else None,
                        **placement(model, flags.device_map),
                    ),
                },
            )
            ppl = ev.token_perplexity
            token = "" if ppl is None else f", token perplexity {ppl['value']:.3f} (seqlen {seqlen}, {ppl_source})"
            log.info(f"sparsity {s:.2f}: measured {measured['overall']:.4f}{token} -> {out}")
    return outs


@contextlib.contextmanager
def _dense(model):
    """The dense model's counterpart of `CompressionPlan.pruned`: nothing pruned, zeros counted."""
    from attrprune.pruning import model_sparsity

    yield {"measured": model_sparsity(model), "sparsity_requested_masks": 0.0}


def model_card(info: dict) -> str:
    """README.md of an exported model: Hugging Face model-card metadata (YAML front matter, written
    with yaml.safe_dump so that no value can break out of it) and a paragraph saying what was done."""
    import yaml

    # The reference set the method read: the scores' (score methods) or the calibration set's.
    scores = info.get("scores") or {}
    calibration = (info.get("pruning") or {}).get("calibration") or {}
    refset = scores.get("refset") or (f"{calibration['kind']}-s{calibration['seed']}" if calibration else None)
    pruning = {
        "method": info["method"],
        "scope": info["scope"],
        "sparsity_requested": info["sparsity"],
        "sparsity_measured": info["sparsity_measured"],
        "reference_set": refset,
        "reference_set_kind": scores.get("refset_kind") or calibration.get("kind"),
        "reference_set_sha256": scores.get("refset_sha256") or calibration.get("sha256"),
        "target": scores.get("target"),
        "dtype": info["dtype"],
        "fine_tuned": False,
        "attrprune_version": info["attrprune_version"],
        "git_commit": info["git_commit"],
    }
    front = {
        "base_model": info["base_model"],
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": list(dict.fromkeys(["pruned", "attrprune", str(info["method"])])),
        "pruning": {
            k: v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for k, v in pruning.items()
        },
    }
    if scores:
        how = f"ranked by `{info['method']}` scores on the reference set `{refset}` (target: {pruning['target']})"
    else:
        how = f"pruned by `{info['method']}`, calibrated on the reference set `{refset}`"
    name = Path(str(info["model_dir"])).name
    text = (
        f"# {name}, pruned\n\n"
        f"`{info['base_model']}` with {info['sparsity_measured']:.2%} of the weights of its decoder-block linear layers "
        f"set to zero (requested {info['sparsity']:.2%}, {info['scope']} scope), {how}. No fine-tuning; weights in "
        f"{info['dtype']}. Written by attrprune {info['attrprune_version']} at commit {info['git_commit']}; "
        "details in pruning.json.\n"
    )
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + text


def read_model_card(path: Path) -> tuple[dict, str]:
    """(front-matter metadata, Markdown text) of a README.md written by `model_card`."""
    import yaml

    text = Path(path).read_text()
    if not text.startswith("---\n"):
        return {}, text
    head, sep, body = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError(f"{path}: front matter opened with --- but never closed")
    return yaml.safe_load(head) or {}, body.lstrip("\n")


def export_pruned(
    model_dir: Path,
    method: str,
    scores_path: Path | None,
    calibration_path: Path | None,
    scope: str,
    sparsity: float,
    out_dir: Path,
    base_model: str | None = None,
    dtype: str = "auto",
    pruner_options: dict | None = None,
) -> dict:
    """Write the model pruned by compression method `method` at one sparsity in HF format
    (loadable with `AutoModelForCausalLM.from_pretrained`), with a model card (README.md with
    Hugging Face metadata) stating its measured sparsity, and pruning.json.

    Runs on the CPU (zeroing weights needs no accelerator; SparseGPT's reconstruction is slow
    there but exact) in the checkpoint's own dtype (`dtype` "auto", from its config.json) and
    saves in it, so a bf16 base stays bf16; another `dtype` casts. `base_model`: the hub id for
    the card (default: `model_dir`)."""
    from attrprune.io import atomic_folder, provenance, write_json
    from attrprune.models import load_checkpoint_on_cpu

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the output folder {out_dir} is a file: delete it, or give another --out-dir")
    model, tokenizer = load_checkpoint_on_cpu(model_dir, dtype)
    plan, scores_meta = load_plan(model, model_dir, method, scope, scores_path, calibration_path, pruner_options)
    with atomic_folder(out_dir) as tmp:
        with plan.pruned(sparsity) as pruning:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        measured = pruning.pop("measured")
        info = {
            "base_model": base_model or str(model_dir),
            "model_dir": str(model_dir),
            "method": method,
            "scope": scope,
            "sparsity": sparsity,
            "sparsity_measured": measured["overall"],
            "dtype": str(model.dtype).removeprefix("torch."),
            "pruning": pruning,
            "scores": scores_meta,
            **provenance(),
        }
        write_json(tmp / "pruning.json", info)
        (tmp / "README.md").write_text(model_card(info))
    return info
