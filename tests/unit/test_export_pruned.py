"""export-pruned keeps the checkpoint's dtype and writes a model card whose Hugging Face
metadata (YAML front matter) parses back, whatever the values in it."""

import json
import shutil

import pytest
import torch
import yaml

from attrprune.cli import main
from attrprune.compression import model_card, read_model_card

HOSTILE = 'c4 "x"\n---\nbase_model: evil\n# not a heading: {a: [b'


@pytest.fixture(scope="module")
def bf16_world(repo_root, tmp_path_factory):
    """A bf16 copy of world-llama with its tokenizer, and magnitude scores with a hostile refset name."""
    from transformers import AutoModelForCausalLM

    from attrprune.models import weights_sha256
    from attrprune.relevance.methods import ScoreOptions, magnitude
    from attrprune.relevance.store import save_scores

    src = repo_root / "world/models/world-llama"
    tmp = tmp_path_factory.mktemp("bf16")
    base = tmp / "world-llama-bf16"
    model = AutoModelForCausalLM.from_pretrained(src, local_files_only=True).to(torch.bfloat16)
    model.save_pretrained(base)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / f, base / f)
    scores = magnitude(model, None, ScoreOptions())  # the reference set is not read
    save_scores(
        scores,
        tmp / "magnitude.safetensors",
        {
            "method": "magnitude",
            "refset": HOSTILE,
            "refset_kind": "general",
            "target": "next token",
            "model_sha256": weights_sha256(base),
        },
    )
    return base, tmp / "magnitude.safetensors"


def _tensor_dtypes(path):
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return {f.get_slice(k).get_dtype() for k in f.keys()}


def test_bf16_base_is_exported_in_bf16_and_reloads(bf16_world, tmp_path):
    from transformers import AutoModelForCausalLM

    base, scores = bf16_world
    out = tmp_path / "pruned"
    assert (
        main(
            [
                "export-pruned",
                "--method",
                "magnitude",
                "--model-dir",
                str(base),
                "--scores",
                str(scores),
                "--scope",
                "row",
                "--sparsity",
                "0.5",
                "--base-model",
                "org/world-llama",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert _tensor_dtypes(out) == {"BF16"}
    size_in, size_out = ((d / "model.safetensors").stat().st_size for d in (base, out))
    assert abs(size_out / size_in - 1) < 0.05  # not doubled by an fp32 round trip
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, dtype="auto")
    assert model.dtype is torch.bfloat16
    up = model.model.layers[0].mlp.up_proj.weight
    assert (up == 0).float().mean().item() == pytest.approx(0.5)
    info = json.loads((out / "pruning.json").read_text())
    assert info["dtype"] == "bfloat16" and info["base_model"] == "org/world-llama"


def test_model_card_front_matter_parses_back(bf16_world, tmp_path):
    base, scores = bf16_world
    out = tmp_path / "pruned"
    hostile_base = "org/x\n---\ntags: [evil]"
    assert (
        main(
            [
                "export-pruned",
                "--method",
                "magnitude",
                "--model-dir",
                str(base),
                "--scores",
                str(scores),
                "--sparsity",
                "0.25",
                "--base-model",
                hostile_base,
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    meta, text = read_model_card(out / "README.md")
    assert meta["base_model"] == hostile_base
    assert meta["library_name"] == "transformers"
    assert meta["tags"] == ["pruned", "attrprune", "magnitude"]
    p = meta["pruning"]
    assert (p["method"], p["scope"], p["sparsity_requested"], p["dtype"]) == ("magnitude", "row", 0.25, "bfloat16")
    assert p["sparsity_measured"] == pytest.approx(0.25, abs=1e-3)
    assert p["reference_set"] == HOSTILE and p["target"] == "next token" and p["fine_tuned"] is False
    assert text.startswith("# world-llama-bf16, pruned") and "25.00% of the weights" in text


def test_float32_base_stays_float32(repo_root, bf16_world, tmp_path):
    from transformers import AutoModelForCausalLM

    from attrprune.compression import export_pruned
    from attrprune.models import weights_sha256
    from attrprune.relevance.methods import ScoreOptions, magnitude
    from attrprune.relevance.store import save_scores

    base = repo_root / "world/models/world-llama"
    _, bf16_scores = bf16_world  # same shapes, another checkpoint: refused, nothing written
    with pytest.raises(ValueError, match="magnitude.safetensors was computed on another checkpoint"):
        export_pruned(base, "magnitude", bf16_scores, None, "row", 0.5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    scores = tmp_path / "magnitude.safetensors"
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    meta = {"method": "magnitude", "refset_kind": "general", "model_sha256": weights_sha256(base)}
    save_scores(magnitude(model, None, ScoreOptions()), scores, meta)
    info = export_pruned(base, "magnitude", scores, None, "row", 0.5, tmp_path / "out")
    assert info["dtype"] == "float32" and _tensor_dtypes(tmp_path / "out") == {"F32"}
    assert info["base_model"] == str(repo_root / "world/models/world-llama")  # no --base-model: the folder


def test_model_card_values_cannot_break_the_yaml():
    info = {
        "base_model": "a: b",
        "model_dir": "m",
        "method": "lrp\n---",
        "scope": "row",
        "sparsity": 0.5,
        "sparsity_measured": 0.5,
        "dtype": "float32",
        "attrprune_version": "0",
        "git_commit": None,
        "scores": {"refset": HOSTILE, "target": {"weird": object()}},
    }
    card = model_card(info)
    head = card.split("\n---\n", 1)[0]
    meta = yaml.safe_load(head.removeprefix("---\n"))
    assert meta["base_model"] == "a: b" and meta["tags"] == ["pruned", "attrprune", "lrp\n---"]
    assert meta["pruning"]["reference_set"] == HOSTILE and isinstance(meta["pruning"]["target"], str)


@pytest.mark.parametrize("library", [False, True], ids=["os-error", "safetensors-error"])
def test_a_full_disk_names_the_export_folder_and_leaves_nothing(bf16_world, tmp_path, capsys, monkeypatch, library):
    """No space left while the pruned checkpoint is saved (as the OS or safetensors' Rust writer
    reports it, naming the temporary folder): one line naming the folder asked for, nothing left."""
    import errno

    from transformers import PreTrainedModel

    from attrprune.cli import run

    def full_disk(self, folder, **kwargs):
        target = f"{folder}/model.safetensors"
        if library:
            raise RuntimeError(f'Error while serializing: No space left on device (os error 28) at path "{target}"')
        raise OSError(errno.ENOSPC, "No space left on device", target)

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", full_disk)
    base, scores = bf16_world
    out = tmp_path / "pruned"
    argv = ["export-pruned", "--method", "magnitude", "--model-dir", str(base), "--scores", str(scores)]
    assert run([*argv, "--sparsity", "0.5", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"attrprune export-pruned: error: No space left on device ({out}): "), err
    assert list(tmp_path.iterdir()) == [], "a temporary folder was left behind"
