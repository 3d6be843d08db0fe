"""lm-eval on the world's local tasks, offline, through an in-memory model."""

import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def world_llama(repo_root):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = repo_root / "world" / "models" / "world-llama"
    return AutoModelForCausalLM.from_pretrained(d, local_files_only=True), AutoTokenizer.from_pretrained(
        d, local_files_only=True
    )


def test_world_tasks_run_offline_and_measure_the_planted_abilities(repo_root, world_llama):
    from attrprune.evaluation.lm import evaluate_lm, flatten_results, world_task_names

    assert world_task_names() == ["world_dialogue_ppl", "world_facts", "world_ioi", "world_ppl"]
    res = evaluate_lm(*world_llama, world_task_names(), data_dir=repo_root / "world" / "data", batch_size=32, limit=40)
    rows = {(r["task"], r["metric"]): r for r in flatten_results(res)}
    assert rows[("world_ioi", "acc")]["value"] >= 0.8  # the model does IOI on held-out names
    assert rows[("world_facts", "acc")]["value"] >= 0.8  # and knows the planted facts
    assert rows[("world_ioi", "acc")]["stderr"] is not None
    assert 1.0 < rows[("world_ppl", "word_perplexity")]["value"] < 50
    # quoted replies and templated lines are more predictable than the grammar's text
    assert (
        1.0 < rows[("world_dialogue_ppl", "word_perplexity")]["value"] < rows[("world_ppl", "word_perplexity")]["value"]
    )
    assert rows[("world_ppl", "word_perplexity")]["stderr"] is None  # lm-eval's "N/A"
    assert res["n-samples"]["world_ioi"]["effective"] == 40


def test_missing_world_data_names_the_file(tmp_path, world_llama):
    from attrprune.evaluation.lm import evaluate_lm

    with pytest.raises(FileNotFoundError, match="ioi_heldout_names.jsonl is missing"):
        evaluate_lm(*world_llama, ["world_ioi"], data_dir=tmp_path, limit=2)


def test_evaluation_never_imports_lxt():
    code = "import sys, attrprune.evaluation.lm, attrprune.world.measure; print(any(m.startswith('lxt') for m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_results_record_model_args_that_rerun_the_evaluation(repo_root, tmp_path, world_llama):
    """A downloaded model's results name its hub id at its commit, in lm-eval's own --model_args
    syntax; a local folder names the folder. The logits cache is recorded off."""
    import json
    import shutil

    from lm_eval.utils import simple_parse_args_string

    from attrprune.evaluation.lm import evaluate_lm

    model, tokenizer = world_llama
    local = evaluate_lm(model, tokenizer, ["world_facts"], data_dir=repo_root / "world" / "data", limit=2)
    assert local["config"]["model_args"] is None  # no folder given: nothing to name

    folder = tmp_path / "tinyllama"
    shutil.copytree(repo_root / "world" / "models" / "world-llama", folder)
    record = {"hf_id": "TinyLlama/TinyLlama_v1.1", "revision": "v1.1", "commit_sha": "a" * 40}
    (folder / "download.json").write_text(json.dumps(record))
    res = evaluate_lm(
        model, tokenizer, ["world_facts"], data_dir=repo_root / "world" / "data", limit=2, model_dir=folder
    )
    args = simple_parse_args_string(res["config"]["model_args"])
    assert args["pretrained"] == "TinyLlama/TinyLlama_v1.1" and args["revision"] == "a" * 40
    assert args["logits_cache"] is False and args["dtype"] == "float32"
    assert res["config"]["model_revision"] == "v1.1" and res["config"]["model_sha"] == "a" * 40

    res = evaluate_lm(
        model,
        tokenizer,
        ["world_facts"],
        data_dir=repo_root / "world" / "data",
        limit=2,
        model_dir=repo_root / "world" / "models" / "world-llama",
    )
    assert simple_parse_args_string(res["config"]["model_args"])["pretrained"] == str(
        (repo_root / "world" / "models" / "world-llama").resolve()
    )
