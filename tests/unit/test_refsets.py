"""Reference sets: the explained targets are where they should be, and files round-trip."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import tiny_llama  # noqa: E402

from attrprune.refsets import (  # noqa: E402
    RefSet,
    behaviour_refset,
    explained_target,
    general_refset,
    ioi_refset,
    load_refset,
    save_refset,
)


class CharTokenizer:
    """Whitespace 'tokenizer' over a fixed vocabulary: enough to test the set builders."""

    eos_token_id = 0
    bos_token_id, bos_token = 0, "<eos>"  # the world's convention: documents and prompts start with <eos>

    def __init__(self):
        self.vocab = {"<eos>": 0}

    def encode(self, text, add_special_tokens=False):
        return [self.vocab.setdefault(w, len(self.vocab)) for w in text.split()]

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [self.encode(t) for t in texts]}

    def decode(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return " ".join(inverse[i] for i in ids)


def test_explained_target_sums_plus_minus_logits():
    logits = torch.arange(2 * 3 * 5, dtype=torch.float).view(2, 3, 5)
    plus = torch.tensor([[1, -1, 4], [-1, -1, 0]])
    minus = torch.tensor([[-1, -1, 2], [-1, -1, -1]])
    expected = logits[0, 0, 1] + logits[0, 2, 4] - logits[0, 2, 2] + logits[1, 2, 0]
    assert explained_target(logits, plus, minus) == expected


def test_general_windows_explain_the_next_token():
    tok = CharTokenizer()
    texts = [" ".join(f"w{i}_{j}" for j in range(30)) for i in range(5)]
    rs = general_refset(tok, texts, n=7, length=10, seed=3)
    assert rs.input_ids.shape == (7, 10) and bool(rs.attention_mask.all())
    assert torch.equal(rs.plus[:, :-1], rs.input_ids[:, 1:]) and bool((rs.plus[:, -1] == -1).all())
    assert bool((rs.minus == -1).all())
    assert torch.equal(general_refset(tok, texts, n=7, length=10, seed=3).input_ids, rs.input_ids)
    assert not torch.equal(general_refset(tok, texts, n=7, length=10, seed=4).input_ids, rs.input_ids)
    with pytest.raises(ValueError, match="no document longer than one window of 10 tokens"):
        general_refset(tok, ["a b"], n=1, length=10, seed=0)


def test_general_windows_never_cross_a_document_boundary():
    """As the authors' C4 loaders: each window lies inside one document (with its separator),
    documents too short for a window are never drawn."""
    tok = CharTokenizer()
    texts = [" ".join([w] * k) for w, k in (("x", 4), ("a", 30), ("y", 5), ("b", 25), ("z", 3))]  # a, b fit 10
    rs = general_refset(tok, texts, n=40, length=10, seed=0)
    from attrprune.tokens import document_separator_id

    sep = document_separator_id(tok)
    for row in rs.input_ids.tolist():
        body = {t for t in row if t != sep}
        assert body in ({tok.encode("a")[0]}, {tok.encode("b")[0]}), row  # one document's tokens only
        assert sep not in row[1:]  # a separator only where a document starts
    assert any(row[0] == sep for row in rs.input_ids.tolist())  # windows may start at the separator


def test_ioi_target_is_io_minus_s_at_the_last_real_token(monkeypatch):
    tok = CharTokenizer()
    from attrprune import text

    monkeypatch.setattr(text, "single_token_id", lambda t, name: t.encode(name)[0])
    rows = [
        {"prompt": "When Ann and Bob went , Bob gave it to", "io": "Ann", "s": "Bob"},
        {"prompt": "Then Cy and Di sat . Cy gave to", "io": "Di", "s": "Cy"},
    ]
    rs = ioi_refset(tok, rows, n=2, seed=0)
    for i in range(2):
        last = int(rs.attention_mask[i].sum()) - 1
        prompt = next(r for r in rows if tok.encode(r["prompt"]) == rs.input_ids[i, 1 : last + 1].tolist())
        assert rs.plus[i, last] == tok.encode(prompt["io"])[0] and rs.minus[i, last] == tok.encode(prompt["s"])[0]
        assert int((rs.plus[i] >= 0).sum()) == 1 and int((rs.minus[i] >= 0).sum()) == 1


def test_behaviour_set_explains_exactly_the_greedy_continuation():
    from transformers import AutoTokenizer

    root = Path(__file__).resolve().parents[2]
    tok = AutoTokenizer.from_pretrained(root / "world" / "models" / "world-llama")
    model = tiny_llama(vocab=len(tok))
    model.config.max_position_embeddings = 64
    rs = behaviour_refset(
        model,
        tok,
        ['Anna was furious with Bob and shouted: "', 'Tom glared at Ann and snapped: "'],
        n=2,
        seed=0,
        new_tokens=5,
    )
    for i in range(2):
        targets = rs.plus[i][rs.plus[i] >= 0]
        assert 1 <= len(targets) <= 5
        first = int((rs.plus[i] >= 0).nonzero()[0])
        assert torch.equal(targets, rs.input_ids[i, first + 1 : first + 1 + len(targets)])


def test_save_load_roundtrip_with_hash(tmp_path):
    ids = torch.arange(12).view(3, 4)
    rs = RefSet(ids, torch.ones_like(ids), ids.clone(), torch.full_like(ids, -1), {"kind": "general", "seed": 1})
    save_refset(rs, tmp_path / "r.safetensors")
    back = load_refset(tmp_path / "r.safetensors")
    assert torch.equal(back.input_ids, ids) and back.meta["sha256"] == rs.content_hash()
    assert back.meta["kind"] == "general" and not list(tmp_path.glob("*.tmp"))
    empty = RefSet(*(torch.zeros(0, 4, dtype=torch.long) for _ in range(4)), {"kind": "general"})
    save_refset(empty, tmp_path / "empty.safetensors")
    with pytest.raises(ValueError, match="is empty"):
        load_refset(tmp_path / "empty.safetensors")


def test_ioi_refset_from_a_generated_prompts_file(tmp_path, repo_root):
    """Hub models: IOI reference prompts come from the ioi-data stage's JSONL, not the world."""
    from transformers import AutoTokenizer

    from attrprune.ioi import ioi_prompts, write_ioi_file
    from attrprune.refsets import build_refset

    model_dir = repo_root / "world" / "models" / "world-llama"
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    rows = ioi_prompts(tok, 20, seed=0, split="reference")
    write_ioi_file(rows, tmp_path / "reference.jsonl")
    refset = build_refset("ioi", model_dir, None, n=8, seed=1, prompts_file=tmp_path / "reference.jsonl")
    assert len(refset) == 8 and refset.meta["source"] == f"file:{tmp_path / 'reference.jsonl'}"
    io_ids = {tok.encode(" " + r["io"], add_special_tokens=False)[0] for r in rows}
    assert set(refset.plus[refset.plus >= 0].tolist()) <= io_ids
    with pytest.raises(ValueError, match="--prompts-file is for ioi"):
        build_refset("general", model_dir, None, n=2, seed=0, prompts_file=tmp_path / "reference.jsonl")


def test_dialogue_refset_reads_the_worlds_dialogue_text(repo_root):
    """Correction's general side on the world: windows of the dialogue text, explained like
    general text; other sources have no dialogue text."""
    from transformers import AutoTokenizer

    from attrprune.refsets import build_refset, general_texts
    from attrprune.tokens import document_stream

    model_dir, data = repo_root / "world" / "models" / "world-llama", repo_root / "world" / "data"
    refset = build_refset("dialogue", model_dir, data, n=4, seed=0)
    assert refset.meta["kind"] == "dialogue" and refset.meta["source"] == "world:dialogue_ref.jsonl"
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    stream = document_stream(tok, general_texts("world", data, kind="dialogue"))
    joined = " ".join(map(str, stream))
    assert all(" ".join(map(str, row.tolist())) in joined for row in refset.input_ids)
    assert torch.equal(refset.plus[:, :-1], refset.input_ids[:, 1:])
    assert '"' in tok.decode(refset.input_ids.flatten())
    with pytest.raises(ValueError, match="dialogue reference text exists for world data only"):
        general_texts("wikitext2", kind="dialogue")
