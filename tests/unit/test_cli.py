"""The CLI parses, range-checks and documents every stage."""

import subprocess
import sys

import pytest

from attrprune.cli import build_parser, main

STAGES = [
    "world-corpus", "world-tokenizer", "world-train", "world-card", "world-card-table", "world-publish",
    "refsets", "scores", "compress", "export-pruned", "tables",
    "ioi-data", "circuit", "circuit-ablation", "circuit-tables", "correction", "correction-tables",
    "behaviour-prompts",
    "download-model", "download-data", "download-detoxify",
]


def test_every_stage_has_help(capsys):
    sub = next(a for a in build_parser()._actions if a.dest == "stage")
    assert sorted(sub.choices) == sorted(STAGES)
    for stage in STAGES:
        with pytest.raises(SystemExit) as e:
            main([stage, "--help"])
        assert e.value.code == 0
        assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["world-train", "--family", "gpt2", "--corpus-dir", "c", "--tokenizer-dir", "t", "--out-dir", "o"], "invalid choice: 'gpt2'"),
        (["world-train", "--family", "llama", "--corpus-dir", "c", "--tokenizer-dir", "t", "--out-dir", "o", "--lr", "-1"], "must be > 0"),
        (["world-tokenizer", "--corpus-dir", "c", "--out-dir", "o", "--vocab-size", "0"], "must be a positive integer"),
        (["world-card", "--model-dir", "m", "--data-dir", "d"], "the following arguments are required: --out"),
        (["no-such-stage"], "invalid choice: 'no-such-stage'"),
        (["circuit", "--model-dir", "m", "--scores", "s", "--eval-file", "e", "--granularity", "edge",
          "--sparsities", "0.5", "--out-dir", "o"], "invalid choice: 'edge'"),
        (["circuit", "--model-dir", "m", "--scores", "s", "--eval-file", "e", "--granularity", "head",
          "--sparsities", "1.0", "--out-dir", "o"], "sparsities must lie in [0, 1)"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "attrprune", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "world-card" in r.stdout


def test_help_does_not_import_torch():
    code = "import sys; from attrprune.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False"
