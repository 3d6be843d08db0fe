"""Compression through the CLI on world-llama: sparsity 0 is the dense model, the measured
sparsity is the requested one, pruning by relevance beats pruning at random, and the token
perplexity (Wanda / SparseGPT protocol) is written beside lm-eval's rows."""

import json

import pytest

from attrprune.cli import main

TASKS = "world_ppl,world_ioi"


@pytest.fixture(scope="module")
def runs(repo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compression")
    model = str(repo_root / "world/models/world-llama")
    data = str(repo_root / "world/data")
    assert (
        main(
            [
                "refset",
                "--kind",
                "general",
                "--model-dir",
                model,
                "--data-dir",
                data,
                "--n",
                "32",
                "--out",
                str(tmp / "g.safetensors"),
            ]
        )
        == 0
    )
    for method in ("lrp", "random"):
        assert (
            main(
                [
                    "scores",
                    "--model-dir",
                    model,
                    "--refset",
                    str(tmp / "g.safetensors"),
                    "--method",
                    method,
                    "--out",
                    str(tmp / f"{method}.safetensors"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "compress",
                    "--method",
                    method,
                    "--model-dir",
                    model,
                    "--scores",
                    str(tmp / f"{method}.safetensors"),
                    "--scope",
                    "row",
                    "--sparsities",
                    "0.0,0.5",
                    "--tasks",
                    TASKS,
                    "--data-dir",
                    data,
                    "--limit",
                    "40",
                    "--ppl-source",
                    "world",
                    "--seqlen",
                    "64",
                    "--out-template",
                    str(tmp / method / "sparsity_{sparsity}" / "metrics.json"),
                ]
            )
            == 0
        )
    return tmp


def _value(path, task, metric):
    m = json.loads(path.read_text())
    return next(r["value"] for r in m["metrics"] if r["task"] == task and r["metric"] == metric)


def test_sparsity_zero_is_the_dense_model(repo_root, runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from attrprune.evaluation.lm import evaluate_lm, flatten_results

    d = repo_root / "world/models/world-llama"
    dense = evaluate_lm(
        AutoModelForCausalLM.from_pretrained(d),
        AutoTokenizer.from_pretrained(d),
        TASKS.split(","),
        data_dir=repo_root / "world/data",
        limit=40,
    )
    for row in flatten_results(dense):
        assert _value(runs / "lrp" / "sparsity_0.00" / "metrics.json", row["task"], row["metric"]) == row["value"]


def test_measured_sparsity_and_provenance(runs):
    m = json.loads((runs / "lrp" / "sparsity_0.50" / "metrics.json").read_text())
    assert m["sparsity_measured"] == pytest.approx(0.5, abs=1e-9)
    assert all(v == pytest.approx(0.5) for v in m["sparsity_per_layer"].values())
    assert m["scores"]["method"] == "lrp" and m["git_commit"] and m["tasks"] == TASKS.split(",")


def test_relevance_pruning_beats_random(runs):
    ppl = {
        m: _value(runs / m / "sparsity_0.50" / "metrics.json", "world_ppl", "word_perplexity")
        for m in ("lrp", "random")
    }
    dense = _value(runs / "lrp" / "sparsity_0.00" / "metrics.json", "world_ppl", "word_perplexity")
    assert dense < ppl["lrp"] < ppl["random"]


def test_export_pruned_model_loads_with_its_sparsity(repo_root, runs, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "pruned"
    assert (
        main(
            [
                "export-pruned",
                "--method",
                "lrp",
                "--model-dir",
                str(repo_root / "world/models/world-llama"),
                "--scores",
                str(runs / "lrp.safetensors"),
                "--scope",
                "row",
                "--sparsity",
                "0.5",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    down = model.model.layers[1].mlp.down_proj.weight
    assert (down == 0).float().mean().item() == pytest.approx(0.5)
    assert torch.equal((down == 0).sum(1), torch.full((down.shape[0],), down.shape[1] // 2))  # row-wise
    assert "50.00% of the weights" in (out / "README.md").read_text()
    assert json.loads((out / "pruning.json").read_text())["sparsity_measured"] == pytest.approx(0.5)


def test_token_perplexity_row(repo_root, runs, world_llama):
    from attrprune.evaluation.perplexity import perplexity_texts, token_perplexity

    model, tokenizer, data = world_llama
    dense = token_perplexity(model, tokenizer, perplexity_texts("world", data), 64, documents=True)["value"]
    ppl = {}
    for method in ("lrp", "random"):
        for s in ("0.00", "0.50"):
            m = json.loads((runs / method / f"sparsity_{s}" / "metrics.json").read_text())
            row = next(r for r in m["metrics"] if r["metric"] == "token_perplexity")
            assert row["task"] == "world_tokens" and row["stderr"] is None
            assert m["token_perplexity"]["seqlen"] == m["seqlen"] == 64
            assert m["token_perplexity"]["source"] == m["ppl_source"] == "world"
            assert m["token_perplexity"]["n_tokens"] == m["token_perplexity"]["n_windows"] * 63
            ppl[method, s] = row["value"]
    assert ppl["lrp", "0.00"] == pytest.approx(dense, rel=1e-6) == ppl["random", "0.00"]  # sparsity 0 = dense
    # Half the weights gone: by lrp a little worse, at random much worse.
    assert dense < ppl["lrp", "0.50"] < 1.1 * dense < 2 * dense < ppl["random", "0.50"]
    # lm-eval's word perplexity is still there, under its own task and metric
    assert _value(runs / "lrp" / "sparsity_0.50" / "metrics.json", "world_ppl", "word_perplexity") > 1


def test_seqlen_beyond_the_context_stops_before_pruning(repo_root, runs, tmp_path):
    with pytest.raises(ValueError, match="--seqlen 128 exceeds .*max_position_embeddings \\(64\\)"):
        main(
            [
                "compress",
                "--method",
                "lrp",
                "--model-dir",
                str(repo_root / "world/models/world-llama"),
                "--scores",
                str(runs / "lrp.safetensors"),
                "--sparsities",
                "0.5",
                "--tasks",
                "world_ppl",
                "--data-dir",
                str(repo_root / "world/data"),
                "--ppl-source",
                "world",
                "--seqlen",
                "128",
                "--out-template",
                str(tmp_path / "{sparsity}.json"),
            ]
        )
    assert not list(tmp_path.iterdir())


def test_dense_job_evaluates_once_as_sparsity_zero_with_lm_evals_results_beside(repo_root, runs, tmp_path, monkeypatch):
    import attrprune.evaluation.lm as lm

    evaluations = []
    evaluate = lm.evaluate_lm

    def counted(*args, **kwargs):
        evaluations.append(kwargs.get("log_samples"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(lm, "evaluate_lm", counted)
    out = tmp_path / "dense" / "metrics.json"
    argv = f"compress --method none --sparsities 0 --tasks {TASKS} --limit 40 --ppl-source world --seqlen 64".split()
    argv.append("--log-samples")
    model, data = repo_root / "world/models/world-llama", repo_root / "world/data"
    assert main([*argv, "--model-dir", str(model), "--data-dir", str(data), "--out-template", str(out)]) == 0
    assert evaluations == [True]  # one evaluation, with lm-eval's per-sample log
    dense, scored = (json.loads(p.read_text()) for p in (out, runs / "lrp" / "sparsity_0.00" / "metrics.json"))
    assert dense["scores"] is None and dense["sparsity"] == 0.0
    assert dense["metrics"] == scored["metrics"]  # the same numbers as a scored run's sparsity 0
    assert dense["sparsity_measured"] == scored["sparsity_measured"]
    results = json.loads(out.with_name("lm_eval.json").read_text())
    assert {"results", "configs", "versions", "n-shot", "config", "samples"} <= set(results)
    assert len(results["samples"]["world_ioi"]) == 40
    beside = json.loads((runs / "lrp" / "sparsity_0.50" / "lm_eval.json").read_text())
    assert "samples" not in beside and set(beside["results"]) == set(TASKS.split(","))


def test_calibrated_pruner_records_what_it_did_and_exports(repo_root, runs, tmp_path):
    model, data = str(repo_root / "world/models/world-llama"), str(repo_root / "world/data")
    calibration = str(runs / "g.safetensors")
    common = ["--model-dir", model, "--method", "sparsegpt", "--calibration", calibration, "--scope", "layer"]
    out = tmp_path / "sparsity_{sparsity}" / "metrics.json"
    argv = ["compress", *common, "--sparsities", "0.5", "--tasks", "world_ppl", "--data-dir", data]
    assert main([*argv, "--limit", "8", "--out-template", str(out)]) == 0
    m = json.loads((tmp_path / "sparsity_0.50" / "metrics.json").read_text())
    assert (m["method"], m["scores"], m["scope"]) == ("sparsegpt", None, "layer")
    assert m["pruning"]["options"]["blocksize"] == 128 and m["pruning"]["options"]["percdamp"] == 0.01
    assert m["pruning"]["calibration"]["n"] == 32 and m["pruning"]["calibration"]["sha256"]
    # SparseGPT's count: everything <= the OBS error at int(0.5 n) of each block of 128 columns,
    # one weight more per block than half (world-llama: 128 x 128 to 512 x 128 layers)
    assert all(0.5 < v <= 0.5 + 4 / (128 * 128) for v in m["sparsity_per_layer"].values()), m["sparsity_per_layer"]
    assert m["pruning"]["count"] == "at_or_below"
    assert (tmp_path / "sparsity_0.50" / "lm_eval.json").exists()

    assert main(["export-pruned", *common, "--sparsity", "0.5", "--out-dir", str(tmp_path / "export")]) == 0
    card = (tmp_path / "export" / "README.md").read_text()
    assert "pruned by `sparsegpt`, calibrated on the reference set `general-s0`" in card
    with pytest.raises(ValueError, match="sparsegpt is a calibrated pruner and reads no scores"):
        main([*argv, "--scores", str(runs / "lrp.safetensors"), "--out-template", str(tmp_path / "x.json")])
