"""IOI metrics on a fixed evaluation split: accuracy, logit difference, normalised logit difference.

The prompts are tokenised once (`IOIBatch.encode`) and re-evaluated for every pruned model of a
sweep, so a circuit search costs forward passes only.

* accuracy: fraction of prompts where logit(IO) > logit(S) at the last prompt position;
* logit difference: mean of logit(IO) − logit(S) (Wang et al. 2022);
* normalised logit difference: (LD − LD_ablated) / (LD_dense − LD_ablated), 1 for the dense
  model and 0 with every component of the granularity removed.

Use::

    batch = IOIBatch.encode(tokenizer, rows)  # rows: {"prompt", "io", "s"} dicts
    ld = logit_differences(model, batch)      # [n]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attrprune.architectures import architecture_of
from attrprune.models import input_device


@dataclass
class IOIBatch:
    input_ids: torch.Tensor  # [n, L], right-padded
    attention_mask: torch.Tensor  # [n, L]
    last: torch.Tensor  # [n] index of the last prompt token
    io: torch.Tensor  # [n] token id of the indirect object
    s: torch.Tensor  # [n] token id of the subject
    # [n, L] each prompt's ABC-corrupted copy (same token count, padded alike), or None
    corrupted_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.last)

    def __getitem__(self, sl: slice) -> IOIBatch:
        c = None if self.corrupted_ids is None else self.corrupted_ids[sl]
        return IOIBatch(self.input_ids[sl], self.attention_mask[sl], self.last[sl], self.io[sl], self.s[sl], c)

    @classmethod
    def encode(
        cls, tokenizer, rows: list[dict], corrupt: bool = False, names_from: list[dict] | None = None, seed: int = 0
    ) -> IOIBatch:
        """Each prompt encoded by the BOS policy of `attrprune.tokens`, names as the single token
        of " Name". `corrupt`: also each prompt's corrupted copy, by the IOI reference sets' ABC
        corruption (IO, first S and repeated S replaced by three other names of `names_from`,
        default `rows`, redrawn until the token count matches; seeded)."""
        from attrprune.refsets import _corrupted_encodings
        from attrprune.text import pad_rows, single_token_id
        from attrprune.tokens import encode_prompts

        if not rows:
            raise ValueError("the IOI evaluation split is empty")
        encs = encode_prompts(tokenizer, [r["prompt"] for r in rows])
        ids, mask = pad_rows(encs, tokenizer.eos_token_id)
        corrupted_ids = None
        if corrupt:
            names = sorted({r[k] for r in names_from or rows for k in ("io", "s")})
            corrupted = _corrupted_encodings(tokenizer, rows, encs, names, seed)
            if corrupted is None:
                raise ValueError(
                    f"counterfactual patching needs corrupted prompts, and the IOI prompts have {len(names)} names: "
                    "at least 5 (IO, S and three others)"
                )
            corrupted_ids = pad_rows(corrupted, tokenizer.eos_token_id)[0]
        return cls(
            ids,
            mask,
            torch.tensor([len(e) - 1 for e in encs]),
            torch.tensor([single_token_id(tokenizer, r["io"]) for r in rows]),
            torch.tensor([single_token_id(tokenizer, r["s"]) for r in rows]),
            corrupted_ids,
        )


@torch.no_grad()
def logit_differences(model, batch: IOIBatch, batch_size: int = 256, full_logits: bool = False) -> torch.Tensor:
    """logit(IO) − logit(S) at the last prompt position, one value per prompt ([n], float32, CPU).

    Runs the base model and applies the output embedding to the last prompt position only (a
    third of the world models' cost is the vocabulary projection of every position).

    `full_logits`: read the two logits off the model's full output instead (every position, the
    whole vocabulary), as the world card has always measured them. The two agree up to float
    round-off (at most 4e-6 on the world models) but not bit for bit, so each caller keeps its
    own: the card's committed numbers and the circuit stage's outputs stay unchanged."""
    if full_logits:
        return _full_logit_differences(model, batch, batch_size)
    head = model.get_output_embeddings()
    backbone = model.get_submodule(architecture_of(model).backbone)
    # Inputs go where the embedding is, the rest where the output head is (the two differ when
    # accelerate spreads the model over GPUs, whose output hook the backbone does not run).
    device, out_device = input_device(model), head.weight.device
    out = []
    for i in range(0, len(batch), batch_size):
        sl = slice(i, i + batch_size)
        hidden = backbone(
            input_ids=batch.input_ids[sl].to(device), attention_mask=batch.attention_mask[sl].to(device)
        ).last_hidden_state  # [b, L, d]
        hidden, device = hidden.to(out_device), out_device
        rows = torch.arange(hidden.shape[0], device=device)
        io, s = batch.io[sl].to(device), batch.s[sl].to(device)
        w = head.weight[torch.stack([io, s], 1)]  # [b, 2, d]: only the two names' output rows
        logits = torch.einsum("bd,bkd->bk", hidden[rows, batch.last[sl].to(device)], w).float()  # [b, 2]
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[torch.stack([io, s], 1)].float()
        out.append((logits[:, 0] - logits[:, 1]).cpu())
    return torch.cat(out)


def _full_logit_differences(model, batch: IOIBatch, batch_size: int) -> torch.Tensor:
    device = input_device(model)
    out = []
    for i in range(0, len(batch), batch_size):
        sl = slice(i, i + batch_size)
        logits = model(
            input_ids=batch.input_ids[sl].to(device), attention_mask=batch.attention_mask[sl].to(device)
        ).logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        last = logits[rows, batch.last[sl].to(logits.device)].float()  # [b, vocab]
        io, s = batch.io[sl].to(logits.device), batch.s[sl].to(logits.device)
        out.append((last.gather(1, io[:, None])[:, 0] - last.gather(1, s[:, None])[:, 0]).cpu())
    return torch.cat(out)


def summarize(ld: torch.Tensor, dense: float, ablated: float) -> dict:
    """accuracy, mean logit difference and normalised logit difference of per-prompt `ld`."""
    mean = ld.mean().item()
    span = dense - ablated
    return {
        "accuracy": (ld > 0).float().mean().item(),
        "logit_diff": mean,
        "normalized_logit_diff": (mean - ablated) / span if span else float("nan"),
    }
