"""Reference sets: the samples relevance is computed on, and the output each one explains.

A reference set is a batch of token sequences plus an *explained target*, stored as two token
maps over positions: the target of a sequence is Σ_t logit[t, plus[t]] − logit[t, minus[t]]
(−1 = nothing at that position). The kinds:

* ``general``: random windows of general text; target = logits of the real next token at every
  position (the language-modelling objective, explained);
* ``dialogue`` (world data only): the same, on documents of the world's training line kinds
  with quoted control replies (compliments, recited poems) and no planted trigger;
* ``ioi``: IOI prompts; target = logit(IO) − logit(S) at the final position. The set also
  holds a corrupted copy of every prompt (`corrupted_ids`, Wang et al.'s ABC distribution: the
  IO, the first S and the repeated S replaced by three other names of the set), the
  counterfactual that attribution patching (``atp``) patches in; no other method reads it;
* ``toxic`` / ``repetition``: behaviour prompts followed by the model's own greedy continuation,
  teacher-forced; target = logits of the continuation tokens.

Sets are seeded, written as safetensors (tensors + metadata with the sha256 of their contents)
so every score file can name the exact samples it was computed on.

Run: ``python -m attrprune refset --kind ioi --model-dir world/models/world-llama --data-dir world/data --n 128 --seed 0 --out ioi.safetensors``
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attrprune.hub import HUB_TEXT
from attrprune.registry import REFSET_KINDS, TEXT_KINDS

KINDS = REFSET_KINDS
BEHAVIOUR_NEW_TOKENS = 20  # greedy tokens generated and explained per behaviour prompt, unless given
TARGETS = {
    "general": "next-token logits of the real continuation at every position",
    "dialogue": "next-token logits of the real continuation at every position",
    "ioi": "logit(IO) - logit(S) at the final position",
    "toxic": "logits of the model's own greedy continuation, teacher-forced",
    "repetition": "logits of the model's own greedy continuation, teacher-forced",
}
# World data file of each kind's reference prompts (train names; disjoint from evaluation).
WORLD_FILES = {
    "general": "general_ref.jsonl",
    "dialogue": "dialogue_ref.jsonl",
    "ioi": "ioi_ref.jsonl",
    "toxic": "toxic_trigger_ref.jsonl",
    "repetition": "repetition_trigger_ref.jsonl",
}


@dataclass
class RefSet:
    input_ids: torch.Tensor  # [n, L]
    attention_mask: torch.Tensor  # [n, L]
    plus: torch.Tensor  # [n, L] token whose logit counts +1 at each position, -1 = none
    minus: torch.Tensor  # [n, L] token whose logit counts -1, -1 = none
    meta: dict = field(default_factory=dict)
    # [n, L] the same prompts with other names (IOI sets only; padded like input_ids, so
    # attention_mask holds for both), or None.
    corrupted_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batches(self, size: int):
        for i in range(0, len(self), size):
            yield (
                self.input_ids[i : i + size],
                self.attention_mask[i : i + size],
                self.plus[i : i + size],
                self.minus[i : i + size],
            )

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for t in (self.input_ids, self.attention_mask, self.plus, self.minus):
            h.update(t.contiguous().numpy().tobytes())
        # Only where present: sets without corrupted prompts keep the hash they always had.
        if self.corrupted_ids is not None:
            h.update(self.corrupted_ids.contiguous().numpy().tobytes())
        return h.hexdigest()


def explained_target(logits: torch.Tensor, plus: torch.Tensor, minus: torch.Tensor) -> torch.Tensor:
    """Σ over the batch and positions of logit[plus] − logit[minus]: the scalar LRP and the
    gradient methods start from. logits [b, L, V]; plus, minus [b, L]."""
    total = logits.new_zeros(())
    for tokens, sign in ((plus, 1.0), (minus, -1.0)):
        hit = tokens >= 0
        if hit.any():
            total = total + sign * logits[hit].gather(-1, tokens[hit][:, None]).sum()
    return total


def general_refset(tokenizer, texts: list[str], n: int, length: int, seed: int, what: str = "reference text") -> RefSet:
    """n random windows of `length` tokens, each from one document, as the calibration loaders of
    Wanda, SparseGPT and OWL draw C4 samples: a document drawn at random until it has more than
    `length` tokens (after the tokenizer's document separator, `attrprune.tokens`: its BOS, or eos
    where it has none), then a window at a random start within it. Windows never cross a document
    boundary. `what` names the text in the error when no document is long enough."""
    from attrprune.tokens import document_separator_id

    sep = document_separator_id(tokenizer)
    docs = [[sep] + ids for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    longest = max((len(d) for d in docs), default=0)
    if longest <= length:
        raise ValueError(
            f"{what} has no document longer than one window of {length} tokens (the longest has {longest}): "
            "give longer documents, or fewer tokens per window (--length)"
        )
    rng = random.Random(seed)
    windows = []
    for _ in range(n):
        doc = docs[rng.randrange(len(docs))]
        while len(doc) <= length:  # terminates: some document is long enough
            doc = docs[rng.randrange(len(docs))]
        start = rng.randrange(len(doc) - length)
        windows.append(doc[start : start + length])
    ids = torch.tensor(windows)  # [n, L]
    plus = torch.full_like(ids, -1)
    plus[:, :-1] = ids[:, 1:]
    return RefSet(ids, torch.ones_like(ids), plus, torch.full_like(ids, -1))


# Attribution patching's counterfactual, recorded in the set's metadata.
CORRUPTION = "ABC (Wang et al. 2022): IO, first S and repeated S replaced by three other names of the set"
_CORRUPTION_TRIES = 50  # name draws per prompt until the corrupted prompt has the clean one's tokens


def corrupted_prompt(prompt: str, io: str, s: str, new_names: tuple[str, str, str]) -> str:
    """`prompt` with every IO replaced by new_names[0], its first S by new_names[1] and every later
    S by new_names[2] (whole words only): "Then, A and B ... B gave it to" -> "Then, X and Y ... Z
    gave it to", an IOI-shaped prompt in which no name repeats and neither IO nor S occurs."""
    import re

    seen_s = []

    def swap(match: re.Match) -> str:
        if match[0] == io:
            return new_names[0]
        seen_s.append(match[0])
        return new_names[1] if len(seen_s) == 1 else new_names[2]

    return re.sub(rf"\b({re.escape(io)}|{re.escape(s)})\b", swap, prompt)


def _corrupted_encodings(tokenizer, rows: list[dict], encs: list[list[int]], names: list[str], seed: int):
    """Token ids of each row's ABC-corrupted prompt, of the same length as its clean ids, or None
    when the set has fewer than five names (IO, S and three others). Names are redrawn until the
    lengths match (a name at the start of a prompt follows no space and may be two tokens)."""
    from attrprune.tokens import encode_prompt

    if len(names) < 5:
        return None
    # Its own generator, so that the clean prompts (drawn with `seed`) are what they always were.
    rng = random.Random(f"ioi-corrupted:{seed}")
    out = []
    for r, clean in zip(rows, encs):
        others = [x for x in names if x not in (r["io"], r["s"])]
        for _ in range(_CORRUPTION_TRIES):
            ids = encode_prompt(tokenizer, corrupted_prompt(r["prompt"], r["io"], r["s"], tuple(rng.sample(others, 3))))
            if len(ids) == len(clean):
                break
        else:
            raise ValueError(
                f"no corrupted prompt of {len(clean)} tokens in {_CORRUPTION_TRIES} name draws for {r['prompt']!r}; "
                "IOI names must be single tokens"
            )
        out.append(ids)
    return out


def ioi_refset(tokenizer, examples: list[dict], n: int, seed: int) -> RefSet:
    """n IOI prompts drawn with `seed`, explaining logit(IO) − logit(S) at the last token, and
    their ABC-corrupted copies (names from all `examples`, so from the same split)."""
    from attrprune.text import pad_rows, single_token_id
    from attrprune.tokens import encode_prompts

    rows = random.Random(seed).sample(examples, min(n, len(examples)))
    encs = encode_prompts(tokenizer, [r["prompt"] for r in rows])
    ids, mask = pad_rows(encs, tokenizer.eos_token_id)
    plus, minus = torch.full_like(ids, -1), torch.full_like(ids, -1)
    for i, (r, e) in enumerate(zip(rows, encs)):
        plus[i, len(e) - 1] = single_token_id(tokenizer, r["io"])
        minus[i, len(e) - 1] = single_token_id(tokenizer, r["s"])
    names = sorted({r[k] for r in examples for k in ("io", "s")})
    corrupted = _corrupted_encodings(tokenizer, rows, encs, names, seed)
    corrupted_ids = None if corrupted is None else pad_rows(corrupted, tokenizer.eos_token_id)[0]  # [n, L]
    return RefSet(ids, mask, plus, minus, corrupted_ids=corrupted_ids)


def behaviour_refset(model, tokenizer, prompts: list[str], n: int, seed: int, new_tokens: int) -> RefSet:
    """Prompts followed by the model's greedy continuation; the continuation is explained."""
    from attrprune.generation import generate
    from attrprune.text import pad_rows
    from attrprune.tokens import encode_prompts

    chosen = random.Random(seed).sample(prompts, min(n, len(prompts)))
    conts = [c for (c,) in generate(model, tokenizer, chosen, new_tokens, batch_size=100)]
    rows, spans = [], []
    for head, cont in zip(encode_prompts(tokenizer, chosen), conts):
        rows.append(head + cont)
        spans.append((len(head), len(head) + len(cont)))
    ids, mask = pad_rows(rows, tokenizer.eos_token_id)
    plus = torch.full_like(ids, -1)
    for i, (a, b) in enumerate(spans):
        plus[i, a - 1 : b - 1] = ids[i, a:b]  # position t predicts token t + 1
    if not (plus >= 0).any():
        raise ValueError("every greedy continuation was empty: nothing to explain")
    return RefSet(ids, mask, plus, torch.full_like(ids, -1))


def world_file(data_dir: Path | None, kind: str) -> Path:
    """The world's data file of reference-set `kind`; no data folder is a one-line error."""
    if data_dir is None:
        other = "--source" if kind in TEXT_KINDS else "--prompts-file"
        raise ValueError(f"the world's {kind} reference data needs its data folder: give --data-dir (or {other})")
    return Path(data_dir) / WORLD_FILES[kind]


# General-text sources: the world's, a local JSONL file, or a hub dataset (`attrprune.hub.HUB_TEXT`).
SOURCES = ("world", *HUB_TEXT, "json")


def general_texts(
    source: str, data_dir: Path | None = None, text_file: Path | None = None, kind: str = "general"
) -> list[str]:
    """Documents of a general-text source: the world's reference text of `kind` (general or
    dialogue), a local JSONL file with a "text" field, or WikiText-2 / C4 from the local `datasets`
    cache (compute nodes are offline)."""
    from attrprune.text import read_jsonl

    if source == "world":
        return [r["text"] for r in read_jsonl(world_file(data_dir, kind), ("text",), allow_empty=False)]
    if kind != "general":
        raise ValueError(f"{kind} reference text exists for world data only; hub and local text is 'general'")
    if source == "json":
        if text_file is None:
            raise ValueError("source 'json' needs a text file (--text-file, JSONL with a \"text\" field)")
        return [r["text"] for r in read_jsonl(text_file, ("text",), allow_empty=False)]
    if source not in HUB_TEXT:
        raise ValueError(f"unknown general-text source {source!r}; valid: {list(SOURCES)}")
    from attrprune.io import cached_dataset

    texts = cached_dataset(
        HUB_TEXT[source],
        source,
        "wikitext2 and c4 when download.datasets lists them",
        "use --source json --text-file FILE",
    )["text"]
    # WikiText is one text split into lines; SparseGPT / Wanda join it with blank lines.
    return ["\n\n".join(texts)] if source == "wikitext2" else list(texts)


def build_refset(
    kind: str,
    model_dir: Path,
    data_dir: Path | None,
    n: int,
    seed: int,
    length: int | None = None,
    new_tokens: int | None = None,
    source: str = "world",
    text_file: Path | None = None,
    prompts_file: Path | None = None,
    dtype: str = "auto",
    device_map: str = "none",
) -> RefSet:
    """A reference set of `kind` for the model in `model_dir`. General text comes from `source`;
    IOI and behaviour prompts from `prompts_file` (JSONL rows as in the world's files, e.g. the
    `ioi-data` stage's output) or else from the world's data files."""
    from transformers import AutoConfig

    from attrprune.models import load_tokenizer
    from attrprune.text import read_jsonl
    from attrprune.tokens import bos_policy

    if kind not in KINDS:
        raise ValueError(f"unknown reference set kind {kind!r}; valid: {list(KINDS)}")
    if n < 1:
        raise ValueError(f"a reference set needs at least one sample, got n={n}")
    if kind not in TEXT_KINDS and source != "world":
        raise ValueError(
            f"source {source!r} is for general text; {kind} prompts come from --prompts-file or the world's files"
        )
    if kind in TEXT_KINDS and prompts_file is not None:
        raise ValueError("--prompts-file is for ioi / toxic / repetition prompts; general text comes from --source")
    tokenizer = load_tokenizer(model_dir)  # a missing folder or tokenizer: one line naming it
    if kind in TEXT_KINDS:
        length = length or AutoConfig.from_pretrained(model_dir, local_files_only=True).max_position_embeddings
        texts = general_texts(source, data_dir, text_file, kind)
        what = str(text_file) if source == "json" else f"the {source} {kind} text"
        refset = general_refset(tokenizer, texts, n, length, seed, what=what)
    else:
        fields = ("prompt", "io", "s") if kind == "ioi" else ("prompt",)
        path = prompts_file if prompts_file is not None else world_file(data_dir, kind)
        rows = read_jsonl(path, fields, allow_empty=False)
        if kind == "ioi":
            refset = ioi_refset(tokenizer, rows, n, seed)
        else:
            from attrprune.models import load_model

            model, _ = load_model(model_dir, dtype=dtype, device_map=device_map)  # generates the continuations
            refset = behaviour_refset(
                model, tokenizer, [r["prompt"] for r in rows], n, seed, new_tokens or BEHAVIOUR_NEW_TOKENS
            )
    if prompts_file is not None:
        origin = f"file:{prompts_file}"
    else:
        origin = {"world": f"world:{WORLD_FILES[kind]}", "json": f"json:{text_file}"}.get(source, source)
    refset.meta = {
        "kind": kind,
        "target": TARGETS[kind],
        "seed": seed,
        "n": len(refset),
        "source": origin,
        "model_dir": str(model_dir),
        "bos_policy": bos_policy(tokenizer),
    }
    if refset.corrupted_ids is not None:
        refset.meta["corrupted"] = CORRUPTION
    return refset


def save_refset(refset: RefSet, path: Path) -> None:
    from attrprune.store import save_tensors

    meta = {**refset.meta, "sha256": refset.content_hash()}
    tensors = {
        "input_ids": refset.input_ids,
        "attention_mask": refset.attention_mask,
        "plus": refset.plus,
        "minus": refset.minus,
    }
    if refset.corrupted_ids is not None:
        tensors["corrupted_ids"] = refset.corrupted_ids
    save_tensors(path, tensors, meta, key="refset")


def load_refset(path: Path) -> RefSet:
    from attrprune.store import load_tensors

    tensors, meta = load_tensors(path, key="refset", names=("input_ids", "attention_mask", "plus", "minus"))
    refset = RefSet(
        tensors["input_ids"],
        tensors["attention_mask"],
        tensors["plus"],
        tensors["minus"],
        meta,
        corrupted_ids=tensors.get("corrupted_ids"),
    )
    if len(refset) == 0:
        raise ValueError(f"reference set {path} is empty; rebuild it with `python -m attrprune refset`")
    return refset
