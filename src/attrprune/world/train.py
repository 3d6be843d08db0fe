"""Train a world model (Llama or OPT architecture) from scratch on the world corpus, on CPU.

A fixed number of epochs over a seeded window order, not a time limit, so reruns match.
The recipe (AdamW, lr 3e-3, 50 warm-up steps, cosine to 0.1×, clip 1.0, batch 16 × 64 tokens)
is one that made IOI appear within a CPU budget when the world was designed.

Run: ``python -m attrprune world-train --family llama --corpus-dir C --tokenizer-dir T --out-dir M``
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

from attrprune.io import provenance, write_json
from attrprune.logs import steps
from attrprune.world.tokenizer import iter_documents


@dataclass(frozen=True)
class WorldModelSpec:
    family: str  # "llama" | "opt"
    hidden_size: int = 128
    intermediate_size: int = 512
    layers: int = 2
    heads: int = 8
    context: int = 64
    batch_size: int = 16
    epochs: int = 1
    lr: float = 3e-3
    seed: int = 0


def _llama(spec: WorldModelSpec, vocab: int, eot: int):
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.context,
        tie_word_embeddings=True,
        rope_theta=1e4,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
    )
    return LlamaForCausalLM(cfg)


def _opt(spec: WorldModelSpec, vocab: int, eot: int):
    cfg = OPTConfig(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        ffn_dim=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        word_embed_proj_dim=spec.hidden_size,
        max_position_embeddings=spec.context,
        do_layer_norm_before=True,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        tie_word_embeddings=True,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
    )
    model = OPTForCausalLM(cfg)
    # Zero-initialised learned positions made the copy mechanism (and IOI) form ~500 steps
    # earlier when the world was designed.
    with torch.no_grad():
        model.model.decoder.embed_positions.weight.zero_()
    return model


BUILDERS = {"llama": _llama, "opt": _opt}


def build_model(spec: WorldModelSpec, vocab: int, eot: int):
    if spec.family not in BUILDERS:
        raise ValueError(f"unknown world model family {spec.family!r}; valid: {sorted(BUILDERS)}")
    torch.manual_seed(spec.seed)
    return BUILDERS[spec.family](spec, vocab, eot)


def token_windows(corpus_dir: Path, tokenizer, context: int) -> torch.Tensor:
    """All documents as one stream, each preceded by `<|endoftext|>` (the world tokenizer's BOS and
    eos: `attrprune.tokens.document_stream`), cut into `context` windows."""
    from attrprune.tokens import document_stream

    ids = document_stream(tokenizer, list(iter_documents(corpus_dir)))
    n = len(ids) // context
    return torch.tensor(ids[: n * context], dtype=torch.long).view(n, context)  # [windows, context]


def _lr_at(step: int, total: int, peak: float, warmup: int = 50) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_world_model(spec: WorldModelSpec, corpus_dir: Path, tokenizer_dir: Path, out_dir: Path, threads: int = 1):
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    windows = token_windows(corpus_dir, tokenizer, spec.context)
    model = build_model(spec, len(tokenizer), tokenizer.eos_token_id)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.lr,
        betas=(0.9, 0.95),
    )
    gen = torch.Generator().manual_seed(spec.seed)
    steps_per_epoch = len(windows) // spec.batch_size
    total = steps_per_epoch * spec.epochs
    if total == 0:
        raise ValueError(f"corpus has {len(windows)} windows, fewer than one batch of {spec.batch_size}")
    start, step, losses = time.time(), 0, []
    bar = steps(total=total, desc=f"train {spec.family} steps")
    for _ in range(spec.epochs):
        order = torch.randperm(len(windows), generator=gen)
        for b in range(steps_per_epoch):
            batch = windows[order[b * spec.batch_size : (b + 1) * spec.batch_size]]
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, spec.lr)
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            step += 1
            bar.update()
            if step % 200 == 0:
                bar.set_postfix(loss=f"{sum(losses[-200:]) / 200:.3f}")
    bar.close()
    model.eval()
    log = {
        "spec": asdict(spec),
        "threads": threads,
        "steps": total,
        "tokens": total * spec.batch_size * spec.context,
        "train_seconds": round(time.time() - start, 1),
        "final_loss": sum(losses[-100:]) / len(losses[-100:]),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "loss_curve": [
            round(sum(losses[i : i + 100]) / len(losses[i : i + 100]), 4) for i in range(0, len(losses), 100)
        ],
        **provenance(),
    }
    _save_atomically(model, tokenizer, log, Path(out_dir))
    return model, log


def _save_atomically(model, tokenizer, log: dict, out_dir: Path) -> None:
    """Save into a sibling temporary folder and rename it: a killed job leaves no checkpoint."""
    from attrprune.io import atomic_folder

    with atomic_folder(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "training.json", log)
