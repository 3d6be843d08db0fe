"""Token perplexity by the Wanda / SparseGPT protocol: the same number as an explicit loop over
windows, the trailing partial window dropped, BOS once at the start, clear errors."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import tiny_llama  # noqa: E402

from attrprune.evaluation.perplexity import (  # noqa: E402
    METRIC,
    WORLD_TEXT_FILE,
    metric_task,
    perplexity_texts,
    token_perplexity,
)
from attrprune.tokens import encode_prompt  # noqa: E402


@pytest.fixture(scope="module")
def world_texts(repo_root):
    return perplexity_texts("world", repo_root / "world" / "data")[:30]


def _by_hand(model, tokenizer, texts, seqlen, documents=False, max_windows=None):
    """exp(mean NLL) with one window at a time and a per-token log-softmax lookup."""
    if documents:  # every document after the separator it was trained with (<|endoftext|> here)
        ids = [i for t in texts for i in [tokenizer.eos_token_id] + tokenizer.encode(t, add_special_tokens=False)]
    else:
        ids = encode_prompt(tokenizer, "\n\n".join(texts))
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in list(range(0, len(ids) - seqlen + 1, seqlen))[:max_windows]:
            window = torch.tensor(ids[start : start + seqlen])
            logp = torch.log_softmax(model(input_ids=window[None]).logits[0].double(), dim=-1)
            nll -= logp[torch.arange(seqlen - 1), window[1:]].sum().item()  # log p(next token)
            count += seqlen - 1
    return math.exp(nll / count), count


@pytest.mark.parametrize("seqlen, batch_size, documents", [(64, 7, False), (32, 1, False), (64, 5, True)])
def test_matches_an_explicit_loop_over_windows(world_llama, world_texts, seqlen, batch_size, documents):
    model, tokenizer, _ = world_llama
    expected, count = _by_hand(model, tokenizer, world_texts, seqlen, documents)
    got = token_perplexity(model, tokenizer, world_texts, seqlen, batch_size=batch_size, documents=documents)
    assert got["value"] == pytest.approx(expected, rel=1e-5)
    assert got["n_tokens"] == count == got["n_windows"] * (seqlen - 1) and got["seqlen"] == seqlen


def test_max_windows_is_the_first_windows_of_the_same_stream(world_llama, world_texts):
    model, tokenizer, _ = world_llama
    expected, count = _by_hand(model, tokenizer, world_texts, 32, documents=True, max_windows=5)
    got = token_perplexity(model, tokenizer, world_texts, 32, batch_size=3, documents=True, max_windows=5)
    assert got["n_windows"] == 5 and got["n_tokens"] == count == 5 * 31
    assert got["value"] == pytest.approx(expected, rel=1e-5)
    everything = token_perplexity(model, tokenizer, world_texts, 32, batch_size=3, documents=True)
    assert everything["n_windows"] > 5 and everything["value"] != pytest.approx(got["value"], rel=1e-3)
    more_than_there_are = token_perplexity(model, tokenizer, world_texts, 32, documents=True, max_windows=10**6)
    assert more_than_there_are == everything


def test_tiny_random_llama_matches_the_loop(world_llama, world_texts):
    """A random-init Llama (max_position_embeddings 32) with the world tokenizer's vocabulary."""
    _, tokenizer, _ = world_llama
    model = tiny_llama(vocab=len(tokenizer))
    expected, _ = _by_hand(model, tokenizer, world_texts, 16)
    assert token_perplexity(model, tokenizer, world_texts, 16, batch_size=5)["value"] == pytest.approx(
        expected, rel=1e-5
    )


def test_windows_are_the_stream_with_one_bos_and_no_trailing_part(world_llama, world_texts):
    model, tokenizer, _ = world_llama
    seqlen = 64
    ids = encode_prompt(tokenizer, "\n\n".join(world_texts))
    assert len(ids) % seqlen, "pick texts whose stream does not end on a window boundary"
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    try:
        out = token_perplexity(model, tokenizer, world_texts, seqlen, batch_size=4)
    finally:
        hook.remove()
    fed = torch.cat(seen).reshape(-1).tolist()
    n = len(ids) // seqlen
    assert out["n_windows"] == n and out["n_text_tokens"] == len(ids)
    assert fed == ids[: n * seqlen]  # contiguous, non-overlapping, the partial tail never evaluated
    bos = tokenizer.bos_token_id
    assert out["bos"] == bos is not None and fed[0] == bos and fed.count(bos) == 1
    # one stream: BOS, then the documents joined with blank lines (no BOS / EOS between them)
    assert ids == [bos] + tokenizer("\n\n".join(world_texts), add_special_tokens=False)["input_ids"]


def test_text_shorter_than_one_window_is_an_error(world_llama):
    model, tokenizer, _ = world_llama
    with pytest.raises(ValueError, match="fewer than one window of seqlen 64"):
        token_perplexity(model, tokenizer, ["Mary smiled."], 64)


def test_seqlen_beyond_the_models_positions_is_an_error(world_llama, world_texts):
    model, tokenizer, _ = world_llama
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings \\(64\\)"):
        token_perplexity(model, tokenizer, world_texts, 128)


def test_world_text_is_the_file_world_ppl_reads(repo_root):
    from attrprune.evaluation.lm import _world_task_config

    cfg = _world_task_config("world_ppl", repo_root / "world" / "data")
    assert Path(cfg["dataset_kwargs"]["data_files"]["test"]).name == WORLD_TEXT_FILE
    assert len(perplexity_texts("world", repo_root / "world" / "data")) == 600


def test_wikitext2_not_cached_names_the_fix(monkeypatch):
    import datasets

    def offline(**kwargs):
        assert kwargs == {"path": "wikitext", "name": "wikitext-2-raw-v1", "split": "test"}
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        RuntimeError, match="wikitext2 \\(test split\\) is not in the local datasets cache.*snakemake download"
    ):
        perplexity_texts("wikitext2")


def test_sources_and_task_names():
    with pytest.raises(ValueError, match="unknown token-perplexity source 'c4'"):
        perplexity_texts("c4")
    with pytest.raises(ValueError, match="needs the world's data folder"):
        perplexity_texts("world")
    # never one of lm-eval's task names (wikitext, world_ppl)
    assert (metric_task("wikitext2"), metric_task("world"), METRIC) == (
        "wikitext2_tokens",
        "world_tokens",
        "token_perplexity",
    )
