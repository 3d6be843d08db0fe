"""Rolling perplexity through lm-eval does not depend on the batch size.

lm-eval 0.4.13's logits cache (HFLM's default) reuses log-likelihoods across rolling windows of
different documents that share verbatim passages; the world's dialogue text repeats the memorised
poems, so with the cache on its word perplexity moves with the batch size. Each task here is
evaluated at batch sizes 1, 16 and 64 on documents with repeated passages, and once by a direct
computation of the same rolling log-likelihoods.
"""

import json
import math
import re

import pytest
import torch

BATCH_SIZES = (1, 16, 64)


def _repeated_passage_pages(path, n_docs=24):
    """WikiText-style pages (a "page" field) that share verbatim passages, as re-quoted text does."""
    passages = [
        " = Harbour = \n The fishing boats return heavy with herring as evening bells announce supper .",
        " The lighthouse blinks patient warnings while storm clouds gather over the restless sea .",
        " Merchants count copper coins and weary horses drink from stone troughs .",
    ]
    with open(path, "w") as f:
        for i in range(n_docs):
            text = f" = Page {i} = \n Person {i} wrote :{passages[i % 3]}{passages[(i + 1) % 3]}\n"
            f.write(json.dumps({"page": text}) + "\n")


def _wikitext_style_task(data_file):
    """lm-eval's own wikitext task config, reading local pages instead of the hub dataset."""
    import os

    import lm_eval
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(os.path.join(os.path.dirname(lm_eval.__file__), "tasks/wikitext/wikitext.yaml"), resolve_func=True)
    cfg.update(
        task="wikitext_local",
        dataset_path="json",
        dataset_name=None,
        dataset_kwargs={"data_files": {"test": str(data_file)}},
        training_split=None,
        validation_split=None,
        test_split="test",
    )
    return cfg


def _word_perplexity(model, tokenizer, task, data_dir, batch_size, limit):
    from attrprune.evaluation.lm import evaluate_lm, flatten_results

    res = evaluate_lm(model, tokenizer, [task], data_dir=data_dir, batch_size=batch_size, limit=limit)
    (row,) = [r for r in flatten_results(res) if r["metric"] == "word_perplexity"]
    return row["value"]


def _direct_word_perplexity(model, tokenizer, texts):
    """exp(-Σ log p / words), every token predicted once in chunks of max_length tokens, each
    chunk with the longest context that fits (the first from the BOS/EOS prefix token): the
    rolling log-likelihood lm-eval defines, computed one window at a time."""
    length = model.config.max_position_embeddings
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    total, words = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            full = [prefix] + ids  # full[t + 1] == ids[t]
            for s in range(0, len(ids), length):
                e = min(s + length, len(ids))
                start = max(0, e - length)
                logp = torch.log_softmax(model(torch.tensor([full[start:e]])).logits[0].double(), -1)
                total += sum(logp[t - start, ids[t]].item() for t in range(s, e))  # position j predicts full[start+j+1]
            words += len(re.split(r"\s+", text.strip()))  # world_utils.process_perplexity's count
    return math.exp(-total / words)


@pytest.mark.parametrize("task", ["world_dialogue_ppl", "world_ppl", "wikitext_local"])
def test_word_perplexity_is_the_same_at_every_batch_size(world_llama, repo_root, tmp_path, task):
    model, tokenizer, data_dir = world_llama
    limit = 40
    if task == "wikitext_local":
        _repeated_passage_pages(tmp_path / "pages.jsonl")
        spec = _wikitext_style_task(tmp_path / "pages.jsonl")
    else:
        spec = task
    values = [_word_perplexity(model, tokenizer, spec, data_dir, b, limit) for b in BATCH_SIZES]
    assert max(values) - min(values) <= 1e-6 * values[0], dict(zip(BATCH_SIZES, values))
    if task == "world_dialogue_ppl":  # and it is the value a direct computation gives
        with open(data_dir / "dialogue_valid.jsonl") as f:
            texts = [json.loads(line)["text"] for _, line in zip(range(limit), f)]
        assert values[0] == pytest.approx(_direct_word_perplexity(model, tokenizer, texts), rel=1e-4)
