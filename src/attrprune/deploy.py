"""Structured compression a user can deploy: remove the same fraction of MLP neurons and attention
heads (key/value groups) in every block (`attrprune.pruning.structured`), save the smaller dense
model in Hugging Face format in the base checkpoint's dtype with a model card, then reload the
saved folder as any user would and evaluate it as the compression stage evaluates a pruned model
(lm-eval tasks and token perplexity), so that the numbers are those of the exported artifact.

Run: ``python -m attrprune structured --model-dir M --method lrp --scores S --ratio 0.25
--tasks world_ppl,world_ioi --data-dir world/data --ppl-source world --model-out out/model
--metrics out/metrics.json`` (``--method flap --calibration R`` for FLAP)
"""

from __future__ import annotations

import logging
from pathlib import Path

from attrprune.registry import STRUCTURED_CALIBRATED as CALIBRATED
from attrprune.registry import STRUCTURED_METHODS

log = logging.getLogger(__name__)


def format_ratio(r: float) -> str:
    """The one spelling of a structured ratio in paths: two decimals ("0.25")."""
    return f"{r:.2f}"


def check_structured(method: str, ratio: float, scores_path, calibration_path) -> None:
    """One line for a method, ratio or input that cannot work, before anything loads."""
    if method not in STRUCTURED_METHODS:
        raise ValueError(f"unknown structured method {method!r}; valid: {', '.join(STRUCTURED_METHODS)}")
    if not 0 < ratio < 1:
        raise ValueError(f"structured ratio {ratio}: give a fraction in (0, 1) of the neurons and heads to remove")
    needs = STRUCTURED_METHODS[method]
    if needs is not None and scores_path is None:
        raise ValueError(f"structured {method} ranks by {needs} scores: give --scores (scores --method {needs})")
    if needs is None and scores_path is not None:
        raise ValueError(f"structured {method} reads no scores file: drop --scores")
    if method in CALIBRATED and calibration_path is None:
        raise ValueError(f"{method} calibrates on a reference set: give --calibration (a general refset file)")


def parameter_count(model) -> int:
    """Distinct parameters (tied embeddings once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def model_card(info: dict) -> str:
    """README.md of a structured model: Hugging Face metadata and what was removed."""
    import yaml

    s = info["structure"]
    front = {
        "base_model": info["base_model"],
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": list(dict.fromkeys(["pruned", "structured-pruning", "attrprune", info["method"]])),
        "pruning": {
            "kind": "structured",
            "method": info["method"],
            "ratio": info["ratio"],
            "neurons_per_block": f"{s['neurons_per_block'] - s['blocks'][0]['neurons_removed']} of {s['neurons_per_block']}",
            "heads_per_block": (
                f"{s['heads_per_block'] - s['blocks'][0].get('heads_removed', 0)} of {s['heads_per_block']}"
            ),
            "bias_compensation": bool(s["bias_compensation"]),
            "reference_set": info["reference_set"],
            "parameters": info["parameters"],
            "parameters_base": info["parameters_base"],
            "dtype": info["dtype"],
            "fine_tuned": False,
            "attrprune_version": info["attrprune_version"],
            "git_commit": info["git_commit"],
        },
    }
    how = {
        "flap": "by FLAP's fluctuation metric (variance of each channel's input × squared norm of its weight "
        "column), with FLAP's bias compensation",
        "wanda": "by Wanda-sp (Wanda's |W|·‖X‖ of the output projection, averaged over its rows)",
        "magnitude": "by the summed magnitude of each unit's weights",
    }.get(info["method"], f"by `{info['method']}` neuron and head scores")
    ref = f" on the reference set `{info['reference_set']}`" if info["reference_set"] else ""
    heads = (
        s["heads_note"]
        if s["heads_note"]
        else (
            f"{s['blocks'][0]['heads_removed']} of {s['heads_per_block']} attention heads "
            f"({s['kv_heads_per_block']} key/value heads; key/value heads removed with their query group)"
        )
    )
    name = Path(str(info["model_dir"])).name
    text = (
        f"# {name}, structured-pruned\n\n"
        f"`{info['base_model']}` with {s['blocks'][0]['neurons_removed']} of {s['neurons_per_block']} MLP neurons "
        f"and {heads} removed in every decoder block (ratio {info['ratio']:.2f}), ranked {how}{ref}. "
        f"A smaller dense model: {info['parameters']:,} parameters against {info['parameters_base']:,}, "
        "a standard config that loads with `AutoModelForCausalLM.from_pretrained`. No fine-tuning; weights in "
        f"{info['dtype']}. Written by attrprune {info['attrprune_version']} at commit {info['git_commit']}; "
        "the kept neurons and heads per block are in structured.json.\n"
    )
    if s["compensation_note"]:
        text += f"\nNote: {s['compensation_note']}.\n"
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + text


def export_structured(
    model_dir: Path,
    method: str,
    ratio: float,
    scores_path: Path | None,
    calibration_path: Path | None,
    out_dir: Path,
    base_model: str | None = None,
    dtype: str = "auto",
    device_map: str = "none",
    batch_size: int = 16,
) -> dict:
    """Prune `model_dir` by structured `method` at `ratio` and save the smaller model in `out_dir`
    (config, weights in the checkpoint's own dtype, tokenizer, README.md card, structured.json).
    FLAP's channel statistics are taken with the model in `dtype` / `device_map`; slicing and
    saving run on the CPU in the checkpoint's dtype. Returns structured.json's content."""
    import torch

    from attrprune.io import atomic_folder, provenance, write_json
    from attrprune.models import load_checkpoint_on_cpu, load_model
    from attrprune.pruning.structured import plan_structured, shrink
    from attrprune.pruning.unit_scores import channel_stats
    from attrprune.refsets import load_refset
    from attrprune.relevance.store import load_scores

    check_structured(method, ratio, scores_path, calibration_path)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the output folder {out_dir} is a file: delete it, or give another --model-out")
    scores, scores_meta = (None, None)
    if scores_path is not None:
        scores, scores_meta = load_scores(scores_path, model_dir)
        expected = STRUCTURED_METHODS[method]
        if scores_meta.get("method") != expected:
            raise ValueError(
                f"structured {method} ranks by {expected} scores; {scores_path} holds "
                f"{scores_meta.get('method')} scores: give {expected} scores (scores --method {expected})"
            )
    stats, calibration_meta = None, None
    if calibration_path is not None:
        calibration = load_refset(calibration_path)
        model, _ = load_model(model_dir, dtype=dtype, device_map=device_map)
        stats = channel_stats(model, calibration, batch_size)
        calibration_meta = {
            "path": str(calibration_path),
            "n": len(calibration),
            "tokens": next(iter(stats.values())).n,
        }
        del model
    base, tokenizer = load_checkpoint_on_cpu(model_dir, "auto")
    plan = plan_structured(base, method, ratio, scores=scores, stats=stats)
    small = shrink(base, plan)
    refset = (scores_meta or {}).get("refset") or (Path(calibration_path).stem if calibration_path else None)
    info = {
        "base_model": base_model or str(model_dir),
        "model_dir": str(model_dir),
        "method": method,
        "ratio": ratio,
        "reference_set": refset,
        "parameters": parameter_count(small),
        "parameters_base": parameter_count(base),
        "dtype": str(small.dtype).removeprefix("torch."),
        "structure": plan.summary(base),
        "calibration": calibration_meta,
        "scores": scores_meta,
        **provenance(),
    }
    with atomic_folder(out_dir) as tmp:
        small.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "structured.json", info)
        (tmp / "README.md").write_text(model_card(info))
    del base, small
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return info


def structured_compress(
    model_dir: Path,
    method: str,
    ratio: float,
    scores_path: Path | None,
    calibration_path: Path | None,
    model_out: Path,
    metrics_out: Path,
    flags,
    base_model: str | None = None,
) -> dict:
    """`export_structured`, then the saved model reloaded and evaluated as `flags` say (the
    stage's `attrprune.stages.args.EvaluationFlags`: lm-eval tasks and the token perplexity, as
    `attrprune.compression` evaluates); writes `metrics_out` and lm_eval.json beside it."""
    from attrprune.compression import metrics_paths
    from attrprune.evaluation.lm import write_lm_eval_json
    from attrprune.evaluation.perplexity import perplexity_texts
    from attrprune.evaluation.suite import evaluate_model
    from attrprune.io import provenance, removed_on_failure, write_json
    from attrprune.models import load_model, placement

    ppl_source, seqlen, dtype, device_map = flags.ppl(), flags.seqlen, flags.dtype, flags.device_map
    check_structured(method, ratio, scores_path, calibration_path)
    (metrics_out,) = metrics_paths(str(metrics_out), [ratio])
    texts = perplexity_texts(ppl_source, flags.data_dir) if ppl_source is not None else None
    with removed_on_failure():
        info = export_structured(
            model_dir,
            method,
            ratio,
            scores_path,
            calibration_path,
            model_out,
            base_model=base_model,
            dtype=dtype,
            device_map=device_map,
            batch_size=flags.batch_size,
        )
        model, tokenizer = load_model(model_out, dtype=dtype, device_map=device_map)  # what a user loads
        ev = evaluate_model(model, tokenizer, flags, model_dir=model_out, texts=texts)
        seqlen = seqlen or model.config.max_position_embeddings
        write_lm_eval_json(metrics_out.with_name("lm_eval.json"), ev.results)
        structure = {k: v for k, v in info["structure"].items() if k != "blocks"}
        first = info["structure"]["blocks"][0]
        structure |= {
            "neurons_removed_per_block": first["neurons_removed"],
            "heads_removed_per_block": first.get("heads_removed", 0),
        }
        record = {
            "method": method,
            "ratio": ratio,
            "reference_set": info["reference_set"],
            "structure": structure,
            "parameters": info["parameters"],
            "parameters_base": info["parameters_base"],
            "model_out": str(model_out),
            "metrics": ev.rows,
            "token_perplexity": ev.token_perplexity,
            "per_document": ev.per_document,
            "n_samples": ev.results.get("n-samples"),
            "task_versions": ev.results.get("versions"),
            "scores": info["scores"],
            "calibration": info["calibration"],
            "lm_eval_results": "lm_eval.json",
            **provenance(
                seed=flags.seed,
                limit=flags.limit,
                tasks=flags.tasks,
                model_dir=str(model_dir),
                model=flags.model_name or Path(model_dir).name,
                ppl_source=ppl_source,
                seqlen=seqlen if ppl_source is not None else None,
                **placement(model, device_map),
            ),
        }
        write_json(metrics_out, record)
    ppl = ev.token_perplexity
    token = "" if ppl is None else f", token perplexity {ppl['value']:.3f}"
    log.info(
        f"{method} ratio {ratio:.2f}: {info['parameters']:,} of {info['parameters_base']:,} parameters{token} "
        f"-> {model_out}, {metrics_out}"
    )
    return record
