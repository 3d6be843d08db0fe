"""The core text primitives: JSON Lines reading with errors that name the line, padding, IOI names."""

import pytest
import torch

from attrprune.text import pad_rows, read_jsonl, single_token_id


def test_read_jsonl_skips_blank_lines_and_names_bad_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    assert read_jsonl(good) == [{"a": 1}, {"a": 2}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2 is not valid JSON"):
        read_jsonl(bad)
    listed = tmp_path / "list.jsonl"
    listed.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"list\.jsonl:2 is a JSON list, not an object"):
        read_jsonl(listed)
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        read_jsonl(tmp_path)


def test_pad_rows_right_and_left():
    ids, mask = pad_rows([[1, 2, 3], [4]], pad=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_rows([[1, 2, 3], [4]], pad=9, left=True)
    assert ids.tolist() == [[1, 2, 3], [9, 9, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long


def test_single_token_id_needs_one_token():
    class Tok:
        def encode(self, text, add_special_tokens=False):
            return [len(w) for w in text.split()] if " " in text.strip() else [7]

    assert single_token_id(Tok(), "Mary") == 7
    with pytest.raises(ValueError, match="is 2 tokens"):
        single_token_id(Tok(), "Mary Ann")
