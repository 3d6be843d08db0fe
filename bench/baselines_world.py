"""Compression baselines side by side on a world model: magnitude per layer, one-pass and
sequential Wanda (with and without OWL allocation), RIA and SparseGPT at 50 % and 80 %.

Prints, per method and sparsity, the world's token perplexity (seqlen 64, document stream) and
the relative squared error of the final hidden states on the calibration tokens against the
dense model (how well the pruned model reproduces what it was calibrated on).

Run: ``python bench/baselines_world.py world-llama`` (about 90 s on 2 CPU cores; world-opt 30 s)
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import torch

from attrprune.architectures import architecture_of
from attrprune.evaluation.perplexity import perplexity_texts, token_perplexity
from attrprune.models import load_model
from attrprune.pruning import MaskBuilder, apply_masks_
from attrprune.pruning.pruners import WandaOptions, prune, weights_restored
from attrprune.refsets import general_refset, general_texts
from attrprune.relevance import ScoreOptions, compute_scores

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def final_hidden(model, calibration) -> torch.Tensor:
    backbone = model.get_submodule(architecture_of(model).backbone)
    return torch.cat(
        [backbone(input_ids=i, attention_mask=m).last_hidden_state for i, m, _, _ in calibration.batches(32)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="world-llama", choices=["world-llama", "world-opt"])
    a = parser.parse_args()
    torch.manual_seed(0)
    data = ROOT / "world" / "data"
    model, tokenizer = load_model(ROOT / "world" / "models" / a.model, dtype="float32")
    calibration = general_refset(tokenizer, general_texts("world", data), n=128, length=64, seed=0)
    texts = perplexity_texts("world", data)
    dense = final_hidden(model, calibration)

    def report(label: str, seconds: float) -> None:
        ppl = token_perplexity(model, tokenizer, texts, seqlen=64, documents=True)["value"]
        err = ((final_hidden(model, calibration) - dense).pow(2).sum() / dense.pow(2).sum()).item()
        print(f"{label:38s} ppl {ppl:9.3f}  final-hidden rel. err {err:.4f}  ({seconds:.1f} s)", flush=True)

    report(f"{a.model} dense", 0.0)
    one_pass = compute_scores("wanda", model, calibration, ScoreOptions(progress=False)).weights
    for s in (0.5, 0.8):
        runs = {
            "magnitude, per layer": partial(prune, "magnitude", model, None, s),
            "wanda one-pass, per row": lambda s=s: apply_masks_(
                model, weight_masks=MaskBuilder(one_pass, "row").masks(s)
            ),
            "wanda sequential, per row": partial(prune, "wanda", model, calibration, s),
            "wanda sequential + OWL, per row": partial(
                prune, "wanda", model, calibration, s, options=WandaOptions(allocation="owl")
            ),
            "ria, per layer": partial(prune, "ria", model, calibration, s),
            "sparsegpt, per layer": partial(prune, "sparsegpt", model, calibration, s),
        }
        for label, run in runs.items():
            with weights_restored(model):
                start = time.perf_counter()
                run()
                report(f"s={s} {label}", time.perf_counter() - start)


if __name__ == "__main__":
    main()
