"""Token perplexity as pruning papers report it (Wanda, SparseGPT, the seed paper's Table 1).

The protocol of the Wanda and SparseGPT evaluation code: the lines of
WikiText-2 joined with "\\n\\n" and tokenised once (with the tokenizer's BOS once at the start of
the stream, `attrprune.tokens.encode_prompt`); the token stream cut into non-overlapping
windows of `seqlen` tokens, the trailing partial window dropped; perplexity = exp(mean next-token
NLL over every predicted token of every window). This is *not* lm-eval's `wikitext` number (word
perplexity over document-level rolling windows, about 1.6x larger for Llama-2-7B), which the
compression stage reports beside it under its own name.

Texts (`perplexity_texts`): ``wikitext2`` = the WikiText-2 raw test split from the local `datasets`
cache (cached by `snakemake download`); ``world`` = the built-in world's held-out general text, the
file the lm-eval task ``world_ppl`` reads, as a stream of documents each preceded by the
tokenizer's document separator (`attrprune.tokens.document_stream`; ``documents=True``). The world's
documents contain no newlines and its models were trained on ``<|endoftext|>`` + document: joined
with blank lines instead, the separators (3 % of the tokens) are text they never saw (dense
world-llama: 8.11 at seqlen 64 against 5.68 with the documents' own separator), and pruning can
*lower* that perplexity by making the unseen separators easier to predict.

Use::

    from attrprune.evaluation.perplexity import perplexity_texts, token_perplexity
    texts = perplexity_texts("world", data_dir="world/data")
    token_perplexity(model, tokenizer, texts, seqlen=64)  # {"value": ..., "n_windows": ..., ...}

The compress stage runs it for every sparsity: ``python -m attrprune compress ... --ppl-source
wikitext2 --seqlen 2048`` (``--ppl-source world`` for the world models).
"""

from __future__ import annotations

import math
from pathlib import Path

PPL_SOURCES = ("world", "wikitext2")
# The file `evaluation/tasks/world_ppl.yaml` reads (a test checks they agree), so the world's
# token perplexity and lm-eval's world_ppl word perplexity are measured on the same documents.
WORLD_TEXT_FILE = "general_valid.jsonl"
WIKITEXT2_TEST = {"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "test"}
# Task name of the metrics rows: "<source>_tokens". Distinct from every lm-eval task name
# (`wikitext`, `world_ppl`), so a row of ours never reads as one of lm-eval's.
METRIC = "token_perplexity"


def metric_task(source: str) -> str:
    """Task column of the token-perplexity row of `source`: wikitext2_tokens or world_tokens."""
    return f"{source}_tokens"


def perplexity_texts(source: str, data_dir: Path | None = None) -> list[str]:
    """The documents of `source` (to be joined with "\\n\\n" by `token_perplexity`)."""
    if source == "world":
        from attrprune.text import read_jsonl

        if data_dir is None:
            raise ValueError("token perplexity on source 'world' needs the world's data folder (--data-dir world/data)")
        path = Path(data_dir) / WORLD_TEXT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; is --data-dir the world's data folder?")
        return [r["text"] for r in read_jsonl(path)]
    if source != "wikitext2":
        raise ValueError(f"unknown token-perplexity source {source!r}; valid: {list(PPL_SOURCES)}")
    from attrprune.io import cached_dataset

    # One list item per line of WikiText (blank lines included), as Wanda / SparseGPT read it.
    return list(
        cached_dataset(
            WIKITEXT2_TEST,
            "wikitext2 (test split)",
            "wikitext2 when download.datasets lists it or a hub model's compression measures token perplexity",
            "pass --ppl-source none",
        )["text"]
    )


def token_perplexity(
    model,
    tokenizer,
    texts: list[str],
    seqlen: int,
    batch_size: int = 8,
    progress: bool = False,
    documents: bool = False,
    max_windows: int | None = None,
) -> dict:
    """Token perplexity of `model` on `texts` by the Wanda / SparseGPT protocol: texts joined with
    "\\n\\n" after one BOS, or with `documents`, each text preceded by the document separator.

    `max_windows`: only the first that many windows (None: every whole window of the text).

    Returns {"value", "n_windows", "n_tokens" (predicted tokens: n_windows x (seqlen - 1)),
    "seqlen", "n_text_tokens" (the whole stream, BOS included), "bos" (the id prepended or None)}.
    """
    import torch
    import torch.nn.functional as F

    from attrprune.logs import steps
    from attrprune.models import input_device
    from attrprune.tokens import document_stream, encode_prompt, start_ids

    if seqlen < 2:
        raise ValueError(f"seqlen must be at least 2 (one token predicted per window), got {seqlen}")
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions is not None and seqlen > max_positions:
        raise ValueError(
            f"seqlen {seqlen} exceeds the model's max_position_embeddings ({max_positions}); "
            f"use --seqlen {max_positions} or less (compression.seqlen in the config)"
        )
    ids = document_stream(tokenizer, texts) if documents else encode_prompt(tokenizer, "\n\n".join(texts))
    n_windows = len(ids) // seqlen
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows == 0:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than one window of seqlen {seqlen}")
    # The trailing partial window is dropped, as in the papers' code.
    windows = torch.tensor(ids[: n_windows * seqlen], dtype=torch.long).view(n_windows, seqlen)
    device = input_device(model)
    nll = 0.0  # Python float (double): summing ~10^5-10^6 token losses in fp32 would lose digits
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            starts = range(0, n_windows, batch_size)
            for i in steps(starts, desc=f"token perplexity (seqlen {seqlen}) batches", enabled=progress):
                batch = windows[i : i + batch_size].to(device)
                logits = model(input_ids=batch, use_cache=False).logits  # [b, seqlen, vocab], model dtype
                for row, target in zip(logits, batch):
                    # float32 log-softmax one window at a time: a bf16 loss is off in the 2nd-3rd
                    # digit, and a whole batch in fp32 is several GB at a 128k vocabulary.
                    nll += F.cross_entropy(row[:-1].float(), target[1:], reduction="sum").item()
    finally:
        model.train(was_training)
    n_tokens = n_windows * (seqlen - 1)
    start = start_ids(tokenizer)
    return {
        "value": math.exp(nll / n_tokens),
        "n_windows": n_windows,
        "n_tokens": n_tokens,
        "seqlen": seqlen,
        "n_text_tokens": len(ids),
        "bos": start[0] if start else None,
    }
