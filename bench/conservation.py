"""How much of the explained output each LRP variant conserves, per model family.

Conservation = (relevance entering the first block) / (explained target), summed over one batch
(`attrprune.relevance.lrp.block_input_relevance`); 1.0 means every unit of the target is passed
down to the embeddings. Biases and the softmax rule absorb some relevance, so only CP-LRP on a
bias-free model is exact.

Conservation depends on what is explained: the relevance that the biases and the softmax rule
absorb does not scale with the target, so the world models are measured on both the targets the
suite explains (IOI logit difference; next-token logits of general text, every position).

Models: one tiny random-init model per family with its real config features
(tests/tiny_models.py::tiny_family), its matrices scaled by 5 so that the logits are O(1) as in a
trained model (at the default init they are ~0 and every ratio is noise), explaining the top
logit at the last position of 8 random sequences; and the two trained world models explaining
logit(IO) - logit(S) on 64 held-out IOI prompts, and the real next token at every position of
32 windows of 64 tokens of the held-out general text (general_valid) and of the held-out
dialogue text (dialogue_valid).

Run: ``python bench/conservation.py`` (CPU, about 30 s); prints a Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_models import FAMILIES, tiny_family  # noqa: E402

from attrprune.refsets import RefSet, general_refset, ioi_refset  # noqa: E402
from attrprune.relevance.lrp import block_input_relevance  # noqa: E402


def top_logit_refset(model, n: int = 8, length: int = 16) -> RefSet:
    ids = torch.randint(3, model.config.vocab_size, (n, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        top = model(input_ids=ids).logits[:, -1].argmax(-1)  # [n]
    plus = torch.full_like(ids, -1)
    plus[:, -1] = top
    return RefSet(ids, torch.ones_like(ids), plus, torch.full_like(ids, -1))


def ratio(model, refset, variant) -> str:
    target, relevance = block_input_relevance(model, refset, variant)
    return f"{relevance / target:.3f}"


def main() -> None:
    print("| model | CP-LRP, biases zeroed | CP-LRP | AttnLRP |")
    print("|---|---|---|---|")
    for family in FAMILIES:
        row = []
        for bias_free in (True, False):
            model = tiny_family(family, bias_free=bias_free)
            with torch.no_grad():
                for p in model.parameters():
                    if p.dim() == 2:
                        p.mul_(5)
            refset = top_logit_refset(model)
            row.append(ratio(model, refset, "cp"))
        row.append(ratio(model, refset, "attnlrp"))
        print(f"| {family} (tiny, random init) | {' | '.join(row)} |")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attrprune.text import read_jsonl

    data = ROOT / "world" / "data"
    rows = read_jsonl(data / "ioi_heldout_names.jsonl")
    for name in ("world-llama", "world-opt"):
        model_dir = ROOT / "world" / "models" / name
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        refsets = {
            "IOI": ioi_refset(tokenizer, rows, 64, seed=0),
            **{
                f"{text} text": general_refset(
                    tokenizer, [r["text"] for r in read_jsonl(data / f"{text}_valid.jsonl")], 32, 64, seed=0
                )
                for text in ("general", "dialogue")
            },
        }
        for target, refset in refsets.items():
            cells = f"{ratio(model, refset, 'cp')} | {ratio(model, refset, 'attnlrp')}"
            print(f"| {name} (trained, {target}) | n/a | {cells} |")


if __name__ == "__main__":
    main()
