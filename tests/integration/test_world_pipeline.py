"""The whole world stage through its CLI, on a tiny corpus and tiny models (about a minute)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from attrprune.cli import main


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    assert main(["world-corpus", "--seed", "3", "--scale", "0.03", "--out-dir", str(root / "corpus")]) == 0
    assert main(["world-tokenizer", "--corpus-dir", str(root / "corpus"), "--out-dir", str(root / "tok")]) == 0
    return root


def _train(root, family, out):
    return main(
        [
            "world-train",
            "--family",
            family,
            "--corpus-dir",
            str(root / "corpus"),
            "--tokenizer-dir",
            str(root / "tok"),
            "--hidden-size",
            "32",
            "--intermediate-size",
            "64",
            "--layers",
            "1",
            "--heads",
            "2",
            "--context",
            "64",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "--seed",
            "0",
            "--out-dir",
            str(out),
        ]
    )


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_training_is_reproducible_and_learns(tiny_world, family):
    a, b = tiny_world / f"{family}-a", tiny_world / f"{family}-b"
    assert _train(tiny_world, family, a) == 0 and _train(tiny_world, family, b) == 0
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    log = json.loads((a / "training.json").read_text())
    curve = log["loss_curve"]
    assert curve[-1] < curve[0] - 1.0, curve  # it learned something
    assert log["spec"]["family"] == family and log["git_commit"]


def test_card_and_publish(tiny_world, tmp_path):
    for family in ("llama", "opt"):
        if not (tiny_world / f"{family}-a" / "model.safetensors").exists():
            _train(tiny_world, family, tiny_world / f"{family}-a")
    models = tiny_world / "models"
    models.mkdir(exist_ok=True)
    for family in ("llama", "opt"):
        (models / f"w-{family}").symlink_to(tiny_world / f"{family}-a")
    out, stamp = tmp_path / "world", tmp_path / "published.json"
    assert (
        main(
            [
                "world-publish",
                "--corpus-dir",
                str(tiny_world / "corpus"),
                "--models-dir",
                str(models),
                "--models",
                "w-llama,w-opt",
                "--out-dir",
                str(out),
                "--n-prompts",
                "16",
                "--stamp",
                str(stamp),
            ]
        )
        == 0
    )
    assert stamp.exists()
    card = json.loads((out / "card.json").read_text())
    assert set(card) == {"w-llama", "w-opt"}
    for entry in card.values():
        c = entry["card"]
        assert 1.0 < c["validation_perplexity"] < 1e4
        assert 0.0 <= c["ioi_heldout_names"]["accuracy"] <= 1.0 and c["ioi_heldout_names"]["n"] == 16
        assert set(c["targets"]) and all(isinstance(v, bool) for v in c["targets"].values())
    text = (out / "CARD.md").read_text()
    assert "w-llama" in text and "IOI accuracy, held-out names" in text
    # a re-measure through the single-model CLI call reproduces the published numbers
    again = tmp_path / "again.json"
    assert (
        main(
            [
                "world-card",
                "--model-dir",
                str(out / "models" / "w-opt"),
                "--data-dir",
                str(out / "data"),
                "--n-prompts",
                "16",
                "--out",
                str(again),
            ]
        )
        == 0
    )
    assert json.loads(again.read_text())["card"] == card["w-opt"]["card"]
