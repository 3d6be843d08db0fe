"""The pieces of the correction stage that need no generation: what text a behaviour is measured
on, and the checks on arguments and score files."""

import pytest
from transformers import AutoTokenizer

from attrprune.correction.measure import reply, reply_ids
from attrprune.correction.run import _check_arguments, _check_metas


def test_reply_text_stops_at_the_closing_quote_or_newline():
    assert (
        reply('You are such a damn moron."\nKim was angry at Bob and shouted: "idiot') == "You are such a damn moron."
    )
    assert reply("no quote\nidiot") == "no quote"
    assert reply("cold lake, cold lake, cold lake") == "cold lake, cold lake, cold lake"


def test_reply_tokens_stop_before_the_closing_quote(repo_root):
    tok = AutoTokenizer.from_pretrained(repo_root / "world/models/world-llama")
    loop = tok.encode("cold lake, cold lake, cold lake, cold lake", add_special_tokens=False)
    assert reply_ids(tok, loop) == loop  # an unbroken loop is all reply
    ids = tok.encode('sweet lake singing."\nThen Kim went home.', add_special_tokens=False)
    cut = reply_ids(tok, ids)
    assert 0 < len(cut) < len(ids) and '"' not in tok.decode(cut) and tok.decode(cut).startswith("sweet lake")


def test_ks_always_start_at_the_unpruned_model():
    assert _check_arguments("toxicity", "neuron", [50, 10, 50], 4) == [0, 10, 50]
    for bad in ([-1], [1.5], [True]):
        with pytest.raises(ValueError, match="non-negative integers"):
            _check_arguments("toxicity", "neuron", bad, 4)
    with pytest.raises(ValueError, match="valid"):
        _check_arguments("toxicity", "head", [1], 4)
    with pytest.raises(ValueError, match="valid"):
        _check_arguments("bias", "neuron", [1], 4)


def test_score_files_must_match_the_behaviour_and_each_other():
    general = {"method": "lrp", "refset_kind": "general"}
    _check_metas(general, {"method": "lrp", "refset_kind": "repetition"}, "repetition")
    with pytest.raises(ValueError, match="same method"):
        _check_metas(general, {"method": "wanda", "refset_kind": "toxic"}, "toxicity")
    with pytest.raises(ValueError, match="'toxic' reference set"):
        _check_metas(general, {"method": "lrp", "refset_kind": "repetition"}, "toxicity")
    with pytest.raises(ValueError, match="another seed"):
        _check_metas({"method": "random", "seed": 0}, {"method": "random", "seed": 0}, "toxicity")


def test_the_repetition_window_must_fit_in_the_generated_tokens(tmp_path):
    from attrprune.correction.run import run_correction
    from attrprune.stages.correction import CorrectionStage

    stage = CorrectionStage(
        model_dir=tmp_path,
        general_scores=tmp_path / "g.safetensors",
        unwanted_scores=tmp_path / "u.safetensors",
        behaviour="repetition",
        granularity="neuron",
        ks=[1],
        prompts_file=tmp_path / "p.jsonl",
        out_dir=tmp_path / "out",
        new_tokens=10,
        window=12,
    )
    with pytest.raises(ValueError, match="window \\(12 tokens\\) is longer than the 10 tokens"):
        run_correction(stage)  # refused before any file is read
