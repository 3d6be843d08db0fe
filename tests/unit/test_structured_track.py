"""The structured track around the pruning: the stage on a world model (export, reload, metrics),
bad input in one line, the side-by-side measurement, and the tables."""

import json

import pytest
import torch

from attrprune.cli import run


def test_structured_stage_exports_reloads_and_evaluates(repo_root, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "magnitude"
    argv = [
        "structured",
        "--model-dir", str(repo_root / "world/models/world-llama"),
        "--method", "magnitude", "--ratio", "0.5",
        "--tasks", "world_ioi", "--data-dir", str(repo_root / "world/data"), "--limit", "4",
        "--ppl-source", "world", "--ppl-windows", "2", "--dtype", "float32",
        "--model-out", str(out / "model"), "--metrics", str(out / "metrics.json"),
    ]  # fmt: skip
    assert run(argv) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert (
        record["structure"]["neurons_removed_per_block"] == 256 and record["structure"]["heads_removed_per_block"] == 4
    )
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.intermediate_size == 256 and model.config.num_attention_heads == 4
    assert record["parameters"] == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    assert {r["task"] for r in record["metrics"]} == {"world_ioi", "world_tokens"}
    assert (out / "lm_eval.json").is_file() and (out / "model/README.md").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "flap"], "flap calibrates on a reference set: give --calibration"),
        (["--method", "lrp"], "structured lrp ranks by lrp scores: give --scores"),
    ],
)
def test_bad_input_is_one_line(repo_root, tmp_path, capsys, extra, message):
    argv = ["structured", "--model-dir", str(repo_root / "world/models/world-llama"), "--ratio", "0.5"]
    argv += [*extra, "--tasks", "world_ioi", "--model-out", str(tmp_path / "m"), "--metrics", str(tmp_path / "x.json")]
    assert run(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "m").exists()


def test_ratio_outside_zero_one_is_refused(repo_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(["structured", "--model-dir", "m", "--method", "magnitude", "--ratio", "1.0", "--tasks", "t",
             "--model-out", "o", "--metrics", "x"])  # fmt: skip
    assert "must be in (0, 1)" in capsys.readouterr().err


def test_side_by_side_measurement(tmp_path):
    from tiny_models import tiny_family

    from attrprune.pruning.structured import plan_structured, shrink
    from attrprune.speed import measure_models

    model = tiny_family("llama")
    model.save_pretrained(tmp_path / "dense")
    small = shrink(model, plan_structured(model, "magnitude", 0.5))
    small.save_pretrained(tmp_path / "small")
    res = measure_models(
        {"dense": tmp_path / "dense", "small": tmp_path / "small"}, batch=2, new_tokens=4, repeats=1, rounds=1
    )
    d, s = res["models"]["dense"], res["models"]["small"]
    assert s["parameters"] == sum(p.numel() for p in {id(p): p for p in small.parameters()}.values())
    assert s["ratios"]["parameters"] == pytest.approx(s["parameters"] / d["parameters"])
    sizes = [(tmp_path / f / "model.safetensors").stat().st_size for f in ("dense", "small")]
    assert s["ratios"]["file_bytes"] == pytest.approx(sizes[1] / sizes[0])
    assert d["forward_s"] > 0 and d["generate_tokens_per_s"] > 0 and d["ratios"]["forward_s"] == 1
    assert res["settings"]["device"] == "cpu" and res["settings"]["seqlen"] == 64
    with pytest.raises(ValueError, match="no 'dense' model"):
        measure_models({"small": tmp_path / "small"})
    torch.set_num_threads(torch.get_num_threads())


def _record(model, method, ratio, refset, ppl, accs, heads_note=None):
    return {
        "model": model,
        "method": method,
        "ratio": ratio,
        "reference_set": refset,
        "parameters": 100,
        "structure": {
            "neurons_per_block": 8,
            "heads_per_block": 4,
            "neurons_removed_per_block": 4,
            "heads_removed_per_block": 0 if heads_note else 2,
            "heads_note": heads_note,
        },
        "metrics": [
            {"task": "world_tokens", "metric": "token_perplexity", "value": ppl, "stderr": None},
            {"task": "world_ioi", "metric": "acc", "value": sum(accs) / len(accs), "stderr": 0.1},
        ],
        "per_document": {"world_ioi": {"acc": accs}},
    }


def test_tables(tmp_path):
    from attrprune.deploy_tables import structured_tables

    records = [
        _record("m", "lrp", 0.5, "general-s0", 6.0, [1, 1, 0, 1]),
        _record("m", "lrp", 0.5, "general-s1", 8.0, [1, 1, 0, 1]),
        _record("m", "magnitude", 0.5, "general-s0", 9.0, [0, 0, 0, 1]),
        _record("o", "lrp", 0.5, "general-s0", 6.0, [1, 1], heads_note="opt: heads kept"),
    ]
    dense = [{**_record("m", None, 0, None, 5.0, [1, 1, 1, 1]), "model": "m"}]
    speed = {
        "model_name": "m",
        "settings": {"device": "cpu", "device_name": "x", "threads": 1, "torch": "t", "batch": 2, "seqlen": 8,
                     "repeats": 1, "new_tokens": 4, "prompt": 2},
        "models": {
            label: {k: 1.0 for k in ("parameters", "file_bytes", "peak_memory_bytes", "forward_s", "generate_tokens_per_s")}
            | {"ratios": {k: r for k in ("parameters", "file_bytes", "peak_memory_bytes", "forward_s", "generate_tokens_per_s")}}
            for label, r in (("dense", 1.0), ("lrp@0.50", 0.5), ("magnitude@0.50", 0.5))
        },
    }  # fmt: skip
    paths = []
    for i, r in enumerate([*records, *dense, speed]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    structured_tables(paths[:4], paths[4:5], paths[5:], tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "plots")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "structured_m.png",
        "structured_m.svg",
        "structured_o.png",
        "structured_o.svg",
    ]
    md = (tmp_path / "t.md").read_text()
    assert "| lrp | 0.50 | 4 of 8 | 2 of 4 | 100 | 7.00 ± 1.00 |" in md  # mean ± s.e. over the two seeds
    assert "| magnitude | 0.50 |" in md and "-0.500 [" in md  # accuracy difference against lrp, paired
    assert "Note: opt: heads kept." in md and "Speed and memory on cpu" in md
    csv = (tmp_path / "t.csv").read_text()
    assert "m,magnitude,0.50,,vs_lrp_acc_diff,-0.5" in csv and "speed_forward_s_ratio,0.5" in csv
