"""IOI prompt generator: single-token names, disjoint splits, balanced orders, and rows the
reference-set builder accepts, on the world's tokenizer and on a GPT-2-like byte-level BPE."""

import json
import re
from collections import Counter

import pytest
from tokenizers import ByteLevelBPETokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from attrprune import ioi
from attrprune.refsets import ioi_refset
from attrprune.tokens import start_ids


@pytest.fixture(scope="module")
def world_tok(repo_root):
    return AutoTokenizer.from_pretrained(repo_root / "world/models/world-llama", local_files_only=True)


# Half the module's names occur in the BPE training text, so exactly those become one token.
BPE_KNOWN = ioi.NAMES[::2]


@pytest.fixture(scope="module")
def bpe_tok():
    text = [f"Then {a} and {b} met at the park." for a, b in zip(BPE_KNOWN, BPE_KNOWN[1:] + BPE_KNOWN[:1])] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        text, vocab_size=1000, min_frequency=2, special_tokens=["<|endoftext|>"], show_progress=False
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")


@pytest.fixture(params=["world", "bpe"])
def tok(request, world_tok, bpe_tok):
    return {"world": world_tok, "bpe": bpe_tok}[request.param]


def _count(word: str, text: str) -> int:
    return len(re.findall(rf"\b{word}\b", text))


def test_single_token_names_world(world_tok):
    kept = ioi.single_token_names(world_tok, ioi.NAMES + ["Zorbulax"])
    assert "Zorbulax" not in kept
    assert len(kept) >= ioi.MIN_NAMES
    for name in kept:
        ids = world_tok.encode(" " + name, add_special_tokens=False)
        assert len(ids) == 1 and world_tok.decode(ids) == " " + name


def test_single_token_names_bpe(bpe_tok):
    kept = ioi.single_token_names(bpe_tok)
    assert kept == BPE_KNOWN  # names never seen in training are split into pieces
    assert len(bpe_tok.encode(" " + ioi.NAMES[1], add_special_tokens=False)) > 1


def test_too_few_single_token_names_names_tokenizer_and_count(world_tok):
    with pytest.raises(ValueError, match=r"world-llama.*only 1 of 3 names"):
        ioi.single_token_names(world_tok, ["Zorbulax", "Mary", "Quexolin"])


def test_templates_are_well_formed():
    assert len(set(ioi.TEMPLATES)) == len(ioi.TEMPLATES) >= 15
    for t in ioi.TEMPLATES:
        for slot in ("{A}", "{B}", "{S}"):
            assert t.count(slot) == 1 and t.count(" " + slot) == 1, (t, slot)  # names follow a space
    words = set(ioi.PLACES) | set(ioi.OBJECTS) | {w for t in ioi.TEMPLATES for w in re.findall(r"\w+", t)}
    assert not words & set(ioi.NAMES)
    assert len(set(ioi.NAMES)) == len(ioi.NAMES) >= 100


def test_rows_have_ioi_structure(tok):
    rows = ioi.ioi_prompts(tok, 200, 0, "reference")
    assert len(rows) == 200 and len({r["prompt"] for r in rows}) == 200
    for r in rows:
        p, io, s = r["prompt"], r["io"], r["s"]
        assert io != s
        assert _count(s, p) == 2 and _count(io, p) == 1
        assert p.split()[-1] == ioi.TEMPLATES[r["template"]].split()[-1] and not p.endswith(" ")
        first = min((p.index(" " + io), io), (p.index(" " + s), s))[1]
        assert first == (io if r["order"] == "ABBA" else s)


def test_world_row_format(repo_root, world_tok):
    world_row = json.loads((repo_root / "world/data/ioi_heldout_names.jsonl").read_text().splitlines()[0])
    row = ioi.ioi_prompts(world_tok, 1, 0, "evaluation")[0]
    assert row.keys() == world_row.keys()
    assert all(type(row[k]) is type(world_row[k]) for k in row)


@pytest.mark.parametrize("n", [1, 7, 8, 101])
def test_orders_balanced(world_tok, n):
    counts = Counter(r["order"] for r in ioi.ioi_prompts(world_tok, n, 5, "evaluation"))
    assert set(counts) <= set(ioi.ORDERS) and sum(counts.values()) == n
    assert abs(counts["ABBA"] - counts["BABA"]) <= 1


def test_splits_disjoint_across_seeds(tok):
    used = {split: set() for split in ioi.SPLITS}
    prompts = {split: set() for split in ioi.SPLITS}
    for seed in range(20):
        for split in ioi.SPLITS:
            rows = ioi.ioi_prompts(tok, 64, seed, split)
            used[split] |= {r["io"] for r in rows} | {r["s"] for r in rows}
            prompts[split] |= {r["prompt"] for r in rows}
    assert not used["reference"] & used["evaluation"]
    assert not prompts["reference"] & prompts["evaluation"]
    # Each split draws on its whole pool, not a few names.
    kept = ioi.single_token_names(tok)
    for split in ioi.SPLITS:
        assert used[split] == {x for x in kept if ioi.name_split(x) == split}


def test_seeded(world_tok):
    a = ioi.ioi_prompts(world_tok, 50, 1, "reference")
    assert a == ioi.ioi_prompts(world_tok, 50, 1, "reference")
    assert a != ioi.ioi_prompts(world_tok, 50, 2, "reference")
    assert ioi.ioi_prompts(world_tok, 50, 1, "evaluation") != ioi.ioi_prompts(world_tok, 50, 2, "evaluation")


def test_names_parameter(world_tok):
    names = ioi.NAMES[:60]
    rows = ioi.ioi_prompts(world_tok, 100, 0, "evaluation", names=names)
    assert {r["io"] for r in rows} | {r["s"] for r in rows} <= set(names)


def test_bad_inputs(world_tok):
    with pytest.raises(ValueError, match="at least one prompt"):
        ioi.ioi_prompts(world_tok, 0, 0, "reference")
    with pytest.raises(ValueError, match="unknown IOI split 'train'"):
        ioi.ioi_prompts(world_tok, 10, 0, "train")
    only_reference = [x for x in ioi.NAMES if ioi.name_split(x) == "reference"]
    with pytest.raises(ValueError, match="only 0 single-token names .* evaluation split"):
        ioi.ioi_prompts(world_tok, 10, 0, "evaluation", names=only_reference)
    with pytest.raises(ValueError, match="cannot draw 10000000 distinct"):
        ioi.ioi_prompts(world_tok, 10**7, 0, "evaluation", names=ioi.NAMES[:20])


def test_refset_targets_io_and_s_at_last_position(tok):
    rows = ioi.ioi_prompts(tok, 24, 3, "evaluation")
    by_prompt = {r["prompt"]: r for r in rows}
    refset = ioi_refset(tok, rows, len(rows), seed=0)
    assert len(refset) == len(rows)
    for i in range(len(refset)):
        last = int(refset.attention_mask[i].sum()) - 1
        start = len(start_ids(tok))  # the BOS policy: <|endoftext|> for the world, nothing for this BPE
        row = by_prompt[tok.decode(refset.input_ids[i, start : last + 1])]
        assert refset.plus[i, last] == tok.encode(" " + row["io"], add_special_tokens=False)[0]
        assert refset.minus[i, last] == tok.encode(" " + row["s"], add_special_tokens=False)[0]
        assert (refset.plus[i] >= 0).sum() == 1 and (refset.minus[i] >= 0).sum() == 1


def test_ioi_data_writes_jsonl(repo_root, world_tok, tmp_path):
    out = tmp_path / "sub" / "ioi_eval.jsonl"
    rows = ioi.ioi_data(repo_root / "world/models/world-llama", 12, 3, "evaluation", out)
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    assert rows == ioi.ioi_prompts(world_tok, 12, 3, "evaluation")
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left behind
