"""Why SparseGPT does not lead at 90 % on world-llama: variants side by side, one process.

For each variant at each sparsity it prints the token perplexity on the world's held-out text
(seqlen 64, as the compression stage measures it), the token perplexity on the calibration
tokens themselves (what SparseGPT fits), and the relative squared error of the final hidden
states on the calibration tokens against the dense model. Variants: SparseGPT per layer (the
default: block size 128, damping 1 %), per row, with 10 % damping, with SparseGPT's
--true-sequential order; Wanda sequential; and masks of lrp scores per row (the scores of the
same calibration set).

Run: ``python bench/sparsegpt_high_sparsity.py world-llama`` (about 3 min on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from baselines_world import final_hidden  # bench/ is on the path when a script in it runs

from attrprune.evaluation.perplexity import perplexity_texts, token_perplexity
from attrprune.models import load_model
from attrprune.pruning import MaskBuilder, pruned
from attrprune.pruning.pruners import SparseGPTOptions, prune, weights_restored
from attrprune.refsets import build_refset
from attrprune.relevance import ScoreOptions, compute_scores

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def calibration_perplexity(model, calibration) -> float:
    """exp(mean next-token NLL) over the calibration set's real tokens."""
    total, count = 0.0, 0
    for ids, mask, _, _ in calibration.batches(32):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # [b, L-1, V]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # [b, L-1]
        keep = mask[:, 1:].bool()
        total, count = total + nll[keep].sum().item(), count + int(keep.sum())
    return math.exp(total / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="world-llama", choices=["world-llama", "world-opt"])
    a = parser.parse_args()
    model_dir, data = ROOT / "world" / "models" / a.model, ROOT / "world" / "data"
    model, tokenizer = load_model(model_dir, dtype="float32")
    # The compression stage's calibration set: general-s0, 128 samples of 64 tokens.
    calibration = build_refset("general", model_dir, data, n=128, seed=0)
    texts = perplexity_texts("world", data)
    dense = final_hidden(model, calibration)
    lrp = compute_scores("lrp", model, calibration, ScoreOptions(progress=False)).weights

    def report(label: str) -> None:
        held_out = token_perplexity(model, tokenizer, texts, seqlen=64, documents=True)["value"]
        err = ((final_hidden(model, calibration) - dense).pow(2).sum() / dense.pow(2).sum()).item()
        print(
            f"{label:40s} held-out ppl {held_out:9.2f}  calibration ppl {calibration_perplexity(model, calibration):9.2f}"
            f"  final-hidden rel. err {err:.3f}",
            flush=True,
        )

    report(f"{a.model} dense")
    for s in (0.8, 0.9):
        variants = {
            "sparsegpt per layer (default)": ("layer", SparseGPTOptions()),
            "sparsegpt per row": ("row", SparseGPTOptions()),
            "sparsegpt per layer, damping 10 %": ("layer", SparseGPTOptions(percdamp=0.1)),
            "sparsegpt per layer, true sequential": ("layer", SparseGPTOptions(order="sequential")),
        }
        for label, (scope, options) in variants.items():
            with weights_restored(model):
                prune("sparsegpt", model, calibration, s, scope, options)
                report(f"s={s} {label}")
        with weights_restored(model):
            prune("wanda", model, calibration, s)
            report(f"s={s} wanda sequential per row")
        with pruned(model, weight_masks=MaskBuilder(lrp, "row").masks(s)):
            report(f"s={s} lrp scores per row")


if __name__ == "__main__":
    main()
