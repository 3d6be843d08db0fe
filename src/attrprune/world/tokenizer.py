"""Train the world's byte-level BPE tokenizer on the generated training corpus.

Run: ``python -m attrprune world-tokenizer --corpus-dir resources/world/corpus --vocab-size 4096 --out-dir DIR``
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOT = "<|endoftext|>"


def iter_documents(corpus_dir: Path):
    with open(Path(corpus_dir) / "train.jsonl") as f:
        for line in f:
            yield json.loads(line)["text"]


def train_tokenizer(corpus_dir: Path, vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE with `<|endoftext|>` as bos / eos / pad / unk (GPT-2 style, no auto-BOS).

    Raises if any name of the world is not a single token: IOI scores one logit per name.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,
    )
    tok.train_from_iterator(iter_documents(corpus_dir), trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT, unk_token=EOT)
    lexicon = json.loads((Path(corpus_dir) / "data" / "lexicon.json").read_text())
    names = lexicon["train_names"] + lexicon["heldout_names"]
    split = [n for n in names if len(hf.encode(" " + n)) != 1]
    if split:
        raise RuntimeError(
            f"{len(split)} names are not single tokens at vocab_size={vocab_size} (e.g. {split[:5]}); "
            "raise the vocabulary size, or the corpus scale if the corpus is so small that names are rare "
            "(the default corpus at vocab 4096 works)"
        )
    hf.save_pretrained(out_dir)
    return hf
