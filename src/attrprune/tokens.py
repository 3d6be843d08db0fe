"""Text to token ids the same way in every stage: the start-of-sequence (BOS) policy.

Every stage that encodes a prompt or a document (reference sets, IOI batches, generation,
behaviour prompts, token perplexity) goes through this module, so a model always sees the start
token it was trained with. The policy is read off the tokenizer and recorded in every reference
set's metadata (`bos_policy`):

* ``bos``: the tokenizer has a BOS token, and every prompt and every document starts with it:
  ``<s>`` for Llama and Mistral, ``<bos>`` for Gemma, ``</s>`` for OPT (OPT's BOS *is* its
  ``</s>``, as it was trained), ``<|endoftext|>`` for GPT-2 and for the built-in world (its
  models were trained on ``<|endoftext|>`` + text, and its tokenizer names that token BOS);
* ``none``: no BOS (Qwen2, Qwen3): a prompt starts with its first text token; in a stream of
  documents, each document is preceded by the eos token (Qwen's document separator).

Use: ``ids = encode_prompt(tokenizer, 'When Mary and John went to the store,')``
"""

from __future__ import annotations


def bos_policy(tokenizer) -> dict:
    """``{"policy": "bos" | "none", "token": str | None, "id": int | None}`` of `tokenizer`."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return {"policy": "none", "token": None, "id": None}
    return {"policy": "bos", "token": tokenizer.bos_token, "id": int(bos)}


def start_ids(tokenizer) -> list[int]:
    """The tokens every prompt starts with: [bos], or nothing for tokenizers without one."""
    bos = tokenizer.bos_token_id
    return [] if bos is None else [int(bos)]


def encode_prompts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text as start tokens + its tokens (never the tokenizer's own special-token template)."""
    start = start_ids(tokenizer)
    return [start + ids for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def encode_prompt(tokenizer, text: str) -> list[int]:
    return encode_prompts(tokenizer, [text])[0]


def document_separator_id(tokenizer) -> int:
    """The token before every document of a token stream: BOS, or eos where there is none."""
    sep = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if sep is None:
        raise ValueError("the tokenizer has neither a bos nor an eos token; documents cannot be separated")
    return int(sep)


def document_stream(tokenizer, texts: list[str]) -> list[int]:
    """The documents as one token stream, each preceded by `document_separator_id`."""
    sep = document_separator_id(tokenizer)
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += [sep] + ids
    return stream
