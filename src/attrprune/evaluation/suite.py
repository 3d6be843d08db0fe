"""The suite's evaluation of one (pruned) model, the same for every track that evaluates one
(compression, structured compression): token perplexity by the Wanda / SparseGPT protocol
(`evaluation.perplexity`), then lm-eval's tasks (`evaluation.lm`), each task's per-document values
(for paired bootstraps over documents), and the metric rows of a metrics.json.

Use: ``ev = evaluate_model(model, tokenizer, stage, texts=texts)`` (`stage`: a stage with the evaluation flags);
``ev.rows``, ``ev.token_perplexity``, ``ev.per_document``, ``ev.results`` (lm-eval's, for lm_eval.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Evaluation:
    results: dict  # lm-eval's results (without the sample log unless it was asked for)
    rows: list[dict]  # {task, metric, value, stderr}: lm-eval's, then the token perplexity's
    token_perplexity: dict | None  # {source, task, value, seqlen, ...}; None when not measured
    per_document: dict  # {task: {metric: per-document values}}


def evaluate_model(
    model, tokenizer, flags, *, model_dir: Path | None = None, texts: list[str] | None = None
) -> Evaluation:
    """Evaluate `model` as it is now, as `flags` say (the evaluation flags of a stage,
    `attrprune.stages.args.EvaluationFlags`: tasks, data_dir, batch_size, limit, seed,
    log_samples, ppl_source, seqlen, ppl_windows). The token perplexity (of `texts`, from the
    flags' ppl_source, at seqlen tokens per window, over the first ppl_windows) comes first, so
    that a text shorter than one window stops the job before lm-eval runs; `texts` None skips it."""
    from attrprune.evaluation.lm import evaluate_lm, flatten_results, per_document
    from attrprune.evaluation.perplexity import METRIC, metric_task, token_perplexity

    ppl = None
    if texts is not None:
        ppl = {
            "source": flags.ppl(),
            "task": metric_task(flags.ppl()),
            **token_perplexity(
                model,
                tokenizer,
                texts,
                flags.seqlen or model.config.max_position_embeddings,
                batch_size=flags.batch_size,
                progress=True,
                documents=flags.ppl() == "world",
                max_windows=flags.ppl_windows,
            ),
        }
    res = evaluate_lm(
        model,
        tokenizer,
        flags.tasks,
        data_dir=flags.data_dir,
        batch_size=flags.batch_size,
        limit=flags.limit,
        seed=flags.seed,
        log_samples=True,  # per-document values for paired intervals; the log itself only if asked
        model_dir=model_dir,
    )
    documents = per_document(res)
    if not flags.log_samples:
        res.pop("samples", None)
    rows = flatten_results(res)
    if ppl is not None:
        rows.append({"task": ppl["task"], "metric": METRIC, "value": ppl["value"], "stderr": None})
    return Evaluation(res, rows, ppl, documents)
