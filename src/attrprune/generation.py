"""Continuations of prompts, greedy or sampled with a seed, as token ids; and the repetition
measures of a continuation: the paper's Response Uniqueness Ratio (whole, or over a fixed window
of the first N tokens) and distinct-n.

Targeted correction (paper §4.3) scores what a model *generates*: toxicity of sampled
continuations of toxic prompts, repetition of greedy continuations of repetitive prompts.
This module only produces the token ids; scoring lives in `attrprune.evaluation.toxicity`
and here (`response_uniqueness_ratio`, `window_uniqueness_ratio`, `distinct_n`).

Sampling is reproducible and independent of `batch_size` and of the global torch RNG: every
(prompt, sample) row owns a `torch.Generator` seeded from (seed, prompt index, sample index), and
a token is drawn by the Gumbel-max trick (argmax of the temperature / top-p-warped logits plus
Gumbel noise from that row's generator), which is an exact draw from the warped softmax. No
top-k is applied (Hugging Face's sampler would add top_k=50 by default).

Use::

    from attrprune.models import load_model
    model, tok = load_model("world/models/world-llama")
    ids = generate(model, tok, ['Kim was angry at Bob and shouted: "'], 12, do_sample=True, n=5, top_p=0.9, seed=1)
    texts = [[tok.decode(c) for c in per_prompt] for per_prompt in ids]
"""

from __future__ import annotations

import hashlib

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from attrprune.models import input_device
from attrprune.text import pad_rows
from attrprune.tokens import encode_prompts


def response_uniqueness_ratio(ids: list[int]) -> float:
    """Response Uniqueness Ratio RUR(T) = |unique(T)| / |T| of a continuation T (paper Eq. 11);
    0.0 for an empty continuation, which has no unique tokens.

    The one unique-token ratio of the suite (the world card's repetition numbers use it too).
    Why 0.0 and not 1.0 ("nothing was repeated", the card's old variant): it is the choice that
    leaves every output unchanged. The correction stage always used 0.0, and its ratios do see
    empty inputs (a reply cut at its first closing quote can be empty, and an empty continuation
    counts as repetitive when prompts are selected); the card's 50-token greedy continuations of
    the committed world models are never empty, so its numbers are the same either way.
    """
    return len(set(ids)) / len(ids) if ids else 0.0


def window_uniqueness_ratio(ids: list[int], window: int) -> float:
    """Response Uniqueness Ratio of the first `window` tokens of a continuation.

    Why a fixed window: a ratio over a reply of any length rewards short replies (a 3-token reply
    of distinct tokens scores 1.0, a 50-token loop 0.08), so pruning that merely cuts replies
    short looks like a cure; over the same first N tokens every model is judged on as much text.
    A continuation shorter than the window (it stopped at eos) is measured on what there is.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive number of tokens, got {window!r}")
    return response_uniqueness_ratio(list(ids)[:window])


def distinct_n(ids: list[int], n: int = 2) -> float:
    """Distinct-n (Li et al. 2016) of one token sequence: distinct n-grams / all n-grams; 0.0 when
    it has fewer than n tokens (no n-gram at all), as `response_uniqueness_ratio` scores an empty
    continuation. A loop of period p over many tokens tends to p / (number of n-grams)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive n-gram order, got {n!r}")
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    # A hash, not seed + index, so that (seed=0, prompt 1) and (seed=1, prompt 0) do not share noise.
    digest = hashlib.blake2b(f"{seed}/{prompt_index}/{sample_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class _SeededGumbelSampler(LogitsProcessor):
    """Turns greedy decoding into sampling: warps the logits (temperature, then top-p) and adds
    Gumbel noise drawn from one generator per row, so argmax is a draw from the warped softmax."""

    def __init__(self, row_seeds: list[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(s) for s in row_seeds]
        self.warpers = LogitsProcessorList()
        if temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"sampler built for {len(self.generators)} rows got {scores.shape[0]}")
        warped = self.warpers(input_ids, scores.float())  # [rows, vocab]; filtered tokens are -inf
        vocab = scores.shape[1]
        # One vocab-sized draw per row and step: a row's noise depends only on its own generator.
        u = torch.stack([torch.rand(vocab, generator=g) for g in self.generators])  # [rows, vocab]
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        return warped + gumbel.to(warped.device)


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    *,
    do_sample: bool = False,
    n: int = 1,
    top_p: float = 1.0,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
) -> list[list[list[int]]]:
    """Per prompt, `n` continuations as token-id lists, each cut at the first eos token.

    Prompts are encoded by the BOS policy of `attrprune.tokens` (the tokenizer's BOS + tokens) and
    left-padded with eos (also the pad id). Greedy decoding
    (`do_sample=False`) needs n == 1 and ignores `top_p`, `temperature` and `seed`. Sampling
    draws from softmax(logits / temperature) restricted to the top-p nucleus; the same `seed`
    gives the same tokens whatever `batch_size` (up to float round-off between padded batches
    of different widths). `batch_size` counts rows, i.e. (prompt, sample) pairs.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")
    if not do_sample and n != 1:
        raise ValueError(f"greedy decoding gives one continuation per prompt; got n={n} (set do_sample=True)")
    if do_sample and not (temperature > 0):
        raise ValueError(f"temperature must be > 0, got {temperature} (use do_sample=False for greedy)")
    if do_sample and not (0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; generation needs it to pad and to stop")

    encoded = encode_prompts(tokenizer, prompts)  # the BOS policy of attrprune.tokens
    empty = [i for i, e in enumerate(encoded) if not e]
    if empty:
        raise ValueError(f"prompts {empty[:5]} encode to no tokens (the tokenizer has no BOS); use non-empty prompts")
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(map(len, encoded))
    if limit is not None and longest + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({longest} tokens) + {max_new_tokens} new tokens exceeds the model's "
            f"{limit} positions; use shorter prompts or fewer new tokens"
        )

    rows = [(p, s) for p in range(len(prompts)) for s in range(n)]  # row order: prompt-major
    out: list[list[list[int]]] = [[None] * n for _ in prompts]
    device = input_device(model)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        ids, mask = pad_rows([encoded[p] for p, _ in batch], eos, left=True)  # [rows, width]
        extra = {}
        if do_sample:
            sampler = _SeededGumbelSampler([_row_seed(seed, p, s) for p, s in batch], temperature, top_p)
            extra["logits_processor"] = LogitsProcessorList([sampler])
        # do_sample=False even when sampling: the sampler's noise makes HF's argmax a draw.
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=eos,
            eos_token_id=eos,
            **extra,
        )[:, ids.shape[1] :]  # [rows, new tokens]
        for (p, s), row in zip(batch, gen.tolist()):
            out[p][s] = row[: row.index(eos)] if eos in row else row
    return out
