"""IOI metrics: the fast last-position path, and a hand-built model whose answer is known."""

from types import SimpleNamespace

import pytest
import torch
from tiny_models import FAMILIES, tiny_family

import attrprune.circuits.metrics as metrics
from attrprune.circuits.metrics import IOIBatch, logit_differences, summarize


class EchoModel(torch.nn.Module):
    """logits[t] = 3 * one-hot(input token t): the model 'predicts' the token it just read."""

    def __init__(self, vocab: int = 10):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, vocab)
        self.head = torch.nn.Linear(vocab, vocab, bias=True)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(vocab))
            self.head.weight.copy_(3 * torch.eye(vocab))
            self.head.bias.zero_()

    def backbone(self, input_ids, attention_mask):
        return SimpleNamespace(last_hidden_state=self.embed(input_ids))

    def get_submodule(self, target):  # the family entry's backbone path, see below
        return self.backbone

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head


def test_known_answer_of_a_hand_built_model(monkeypatch):
    monkeypatch.setattr(metrics, "architecture_of", lambda model: SimpleNamespace(backbone="backbone"))
    # prompt i ends on token last[i]; IO = 5, S = 6: LD is +3 when the prompt ends on IO,
    # -3 when on S, 0 otherwise
    ids = torch.tensor([[1, 5, 0], [1, 2, 6], [1, 2, 3]])
    batch = IOIBatch(
        ids, torch.ones_like(ids), torch.tensor([1, 2, 2]), torch.tensor([5, 5, 5]), torch.tensor([6, 6, 6])
    )
    ld = logit_differences(EchoModel(), batch, batch_size=2)
    assert ld.tolist() == [3.0, -3.0, 0.0]
    m = summarize(ld, dense=2.0, ablated=-1.0)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["logit_diff"] == pytest.approx(0.0)
    assert m["normalized_logit_diff"] == pytest.approx((0.0 + 1.0) / 3.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_path_equals_full_logits(family):
    model = tiny_family(family)
    ids = torch.randint(3, 100, (5, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # right padding: the last real token is not the last column
    last = mask.sum(1) - 1
    io, s = torch.randint(3, 100, (5,)), torch.randint(3, 100, (5,))
    logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(5), last]
    expected = logits.gather(1, io[:, None])[:, 0] - logits.gather(1, s[:, None])[:, 0]
    got = logit_differences(model, IOIBatch(ids, mask, last, io, s), batch_size=2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_the_names_projection_matches_the_full_logits_of_the_world_card(world_llama):
    from attrprune.text import read_jsonl

    model, tok, data = world_llama
    batch = IOIBatch.encode(tok, read_jsonl(data / "ioi_heldout_names.jsonl")[:20])
    full = logit_differences(model, batch, batch_size=8, full_logits=True)
    torch.testing.assert_close(logit_differences(model, batch), full, atol=1e-4, rtol=1e-4)
    # the full-logits path by hand: the model's logits at the last prompt token, IO minus S
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[
        torch.arange(len(batch)), batch.last
    ]
    expected = logits.gather(1, batch.io[:, None])[:, 0] - logits.gather(1, batch.s[:, None])[:, 0]
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
