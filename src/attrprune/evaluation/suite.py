"""The suite's evaluation of one (pruned) model, the same for every track that evaluates one
(compression, structured compression): token perplexity by the Wanda / SparseGPT protocol
(`evaluation.perplexity`), then lm-eval's tasks (`evaluation.lm`), each task's per-document values
(for paired bootstraps over documents), and the metric rows of a metrics.json.

Use: ``ev = evaluate_model(model, tokenizer, ["world_ppl"], data_dir, texts=texts, ppl_source="world", seqlen=64)``;
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
    model,
    tokenizer,
    tasks: list[str],
    data_dir: Path | None,
    batch_size: int = 32,
    limit: int | None = None,
    seed: int = 0,
    log_samples: bool = False,
    model_dir: Path | None = None,
    texts: list[str] | None = None,
    ppl_source: str | None = None,
    seqlen: int | None = None,
    ppl_windows: int | None = None,
) -> Evaluation:
    """Evaluate `model` as it is now. The token perplexity (of `texts`, from `ppl_source`, at
    `seqlen` tokens per window, over the first `ppl_windows`) comes first, so that a text shorter
    than one window stops the job before lm-eval runs; `texts` None skips it."""
    from attrprune.evaluation.lm import evaluate_lm, flatten_results, per_document
    from attrprune.evaluation.perplexity import METRIC, metric_task, token_perplexity

    ppl = None
    if texts is not None:
        ppl = {
            "source": ppl_source,
            "task": metric_task(ppl_source),
            **token_perplexity(
                model,
                tokenizer,
                texts,
                seqlen or model.config.max_position_embeddings,
                batch_size=batch_size,
                progress=True,
                documents=ppl_source == "world",
                max_windows=ppl_windows,
            ),
        }
    res = evaluate_lm(
        model,
        tokenizer,
        tasks,
        data_dir=data_dir,
        batch_size=batch_size,
        limit=limit,
        seed=seed,
        log_samples=True,  # per-document values for paired intervals; the log itself only if asked
        model_dir=model_dir,
    )
    documents = per_document(res)
    if not log_samples:
        res.pop("samples", None)
    rows = flatten_results(res)
    if ppl is not None:
        rows.append({"task": ppl["task"], "metric": METRIC, "value": ppl["value"], "stderr": None})
    return Evaluation(res, rows, ppl, documents)
