"""The CLI parses, range-checks and documents every stage."""

import subprocess
import sys

import pytest

from attrprune.cli import build_parser, main

STAGES = [
    "world-corpus",
    "world-tokenizer",
    "world-train",
    "world-card",
    "world-card-table",
    "world-publish",
    "refset",
    "scores",
    "compress",
    "export-pruned",
    "compression-tables",
    "structured",
    "structured-speed",
    "structured-tables",
    "ioi-data",
    "circuit",
    "circuit-ablation",
    "circuit-tables",
    "correction",
    "correction-tables",
    "behaviour-prompts",
    "download-model",
    "download-data",
    "download-detoxify",
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
        (
            ["world-train", "--family", "gpt2", "--corpus-dir", "c", "--tokenizer-dir", "t", "--out-dir", "o"],
            "invalid choice: 'gpt2'",
        ),
        (
            [
                "world-train",
                "--family",
                "llama",
                "--corpus-dir",
                "c",
                "--tokenizer-dir",
                "t",
                "--out-dir",
                "o",
                "--lr",
                "-1",
            ],
            "must be > 0",
        ),
        (["world-tokenizer", "--corpus-dir", "c", "--out-dir", "o", "--vocab-size", "0"], "must be a positive integer"),
        (["world-card", "--model-dir", "m", "--data-dir", "d"], "the following arguments are required: --out"),
        (["no-such-stage"], "invalid choice: 'no-such-stage'"),
        (
            [
                "circuit",
                "--model-dir",
                "m",
                "--scores",
                "s",
                "--eval-file",
                "e",
                "--granularity",
                "edge",
                "--sparsities",
                "0.5",
                "--out-dir",
                "o",
            ],
            "invalid choice: 'edge'",
        ),
        (
            [
                "circuit",
                "--model-dir",
                "m",
                "--scores",
                "s",
                "--eval-file",
                "e",
                "--granularity",
                "head",
                "--sparsities",
                "1.0",
                "--out-dir",
                "o",
            ],
            "sparsities must lie in [0, 1)",
        ),
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


# Every stage that loads a model for compute, with its required arguments.
MODEL_STAGES = {
    "refset": ["--kind", "toxic", "--model-dir", "m", "--out", "o"],
    "scores": ["--model-dir", "m", "--refset", "r", "--method", "lrp", "--out", "o"],
    "compress": "--model-dir m --method lrp --scores s --sparsities 0.5 --tasks t --out-template o".split(),
    "circuit": [
        "--model-dir",
        "m",
        "--scores",
        "s",
        "--eval-file",
        "e",
        "--granularity",
        "head",
        "--sparsities",
        "0.5",
        "--out-dir",
        "o",
    ],
    "circuit-ablation": ["--model-dir", "m", "--eval-file", "e", "--out", "o"],
    "correction": [
        "--model-dir",
        "m",
        "--general-scores",
        "g",
        "--unwanted-scores",
        "u",
        "--behaviour",
        "toxicity",
        "--granularity",
        "neuron",
        "--ks",
        "1",
        "--prompts-file",
        "p",
        "--out-dir",
        "o",
    ],
    "behaviour-prompts": [
        "--behaviour",
        "toxicity",
        "--model-dir",
        "m",
        "--reference-out",
        "r",
        "--evaluation-out",
        "e",
    ],
}


@pytest.mark.parametrize("stage", sorted(MODEL_STAGES))
def test_model_stages_take_dtype_and_device_map(stage):
    parser = build_parser()
    a = parser.parse_args([stage, *MODEL_STAGES[stage]])
    assert (a.dtype, a.device_map) == ("auto", "none")
    for dtype in ("auto", "bfloat16", "float16", "float32"):
        for device_map in ("none", "auto"):
            a = parser.parse_args([stage, *MODEL_STAGES[stage], "--dtype", dtype, "--device-map", device_map])
            assert (a.dtype, a.device_map) == (dtype, device_map)


@pytest.mark.parametrize("stage", sorted(MODEL_STAGES))
def test_model_stages_reject_unknown_dtypes(capsys, stage):
    with pytest.raises(SystemExit) as e:
        main([stage, *MODEL_STAGES[stage], "--dtype", "fp16"])
    assert e.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([stage, *MODEL_STAGES[stage], "--device-map", "balanced"])
    assert "invalid choice: 'balanced'" in capsys.readouterr().err


def test_export_pruned_takes_dtype_and_base_model_but_runs_on_cpu(capsys):
    argv = "export-pruned --model-dir m --method lrp --scores s --sparsity 0.5 --out-dir o".split()
    a = build_parser().parse_args(argv)
    assert (a.dtype, a.base_model) == ("auto", None)
    a = build_parser().parse_args([*argv, "--dtype", "bfloat16", "--base-model", "org/name"])
    assert (a.dtype, a.base_model) == ("bfloat16", "org/name")
    with pytest.raises(SystemExit):
        main([*argv, "--device-map", "auto"])
    assert "unrecognized arguments: --device-map" in capsys.readouterr().err


class _Loaded(Exception):
    """Raised by the stand-in load_model: the stage got as far as loading, with these arguments."""


@pytest.mark.parametrize("stage", sorted(MODEL_STAGES))
def test_model_stages_pass_dtype_and_device_map_to_the_loader(monkeypatch, repo_root, tmp_path, stage):
    import attrprune.models
    from attrprune.models import weights_sha256
    from attrprune.relevance.methods import Scores
    from attrprune.relevance.store import save_scores

    def fake_load_model(model_dir, dtype="auto", device_map="none"):
        raise _Loaded(dtype, device_map)

    monkeypatch.setattr(attrprune.models, "load_model", fake_load_model)
    world = repo_root / "world"
    args = list(MODEL_STAGES[stage])
    args[args.index("--model-dir") + 1] = str(world / "models" / "world-llama")
    if stage == "refset":
        args += ["--data-dir", str(world / "data")]
    if stage == "correction":  # reads its two score files before the model
        for flag, kind in (("--general-scores", "general"), ("--unwanted-scores", "toxic")):
            meta = {
                "method": "lrp",
                "refset_kind": kind,
                "model_sha256": weights_sha256(world / "models" / "world-llama"),
            }
            save_scores(Scores(), tmp_path / f"{kind}.safetensors", meta)
            args[args.index(flag) + 1] = str(tmp_path / f"{kind}.safetensors")
    with pytest.raises(_Loaded) as loaded:
        main([stage, *args, "--dtype", "bfloat16", "--device-map", "auto"])
    assert loaded.value.args == ("bfloat16", "auto")


def test_optional_flags_take_none_so_rules_can_spell_every_flag(capsys):
    argv = ["compress", *MODEL_STAGES["compress"]]
    a = build_parser().parse_args([*argv, "--limit", "none", "--seqlen", "none", "--data-dir", "none"])
    assert (a.limit, a.seqlen, a.data_dir) == (None, None, None)
    a = build_parser().parse_args([*argv, "--limit", "5", "--data-dir", "d"])
    assert (a.limit, str(a.data_dir)) == (5, "d")
    with pytest.raises(SystemExit) as e:
        main([*argv, "--limit", "0"])  # the range check still applies to a given value
    assert e.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


def test_stages_are_frozen_configs_built_from_the_flags():
    import dataclasses

    from attrprune.cli import STAGES

    for name, stage in STAGES.items():
        assert stage.__dataclass_params__.frozen, name
        flags = {a.dest for a in next(a for a in build_parser()._actions if a.dest == "stage").choices[name]._actions}
        assert {f.name for f in dataclasses.fields(stage)} == flags - {"help"}, name


def test_the_console_script_is_python_m_attrprune(tmp_path):
    """`attrprune` and `python -m attrprune` run the same entry point: one line per failure a user
    can fix (no traceback), exit code 1, and the fork server when one runs."""
    import shutil
    import subprocess
    import sys
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "attrprune"]
    assert script.value == "attrprune.entry:console"
    argv = ["scores", "--model-dir", str(tmp_path / "absent"), "--method", "lrp", "--refset", "x", "--out", "y"]
    runs = [subprocess.run([sys.executable, "-m", "attrprune", *argv], capture_output=True, text=True)]
    # what the installed script runs, whichever copy of the package an install points at
    code = f"import sys; from {script.value.replace(':', ' import ')}; sys.exit(console())"
    runs.append(subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True))
    if shutil.which("attrprune"):
        runs.append(subprocess.run(["attrprune", *argv], capture_output=True, text=True))
    for r in runs:
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert len({r.stderr for r in runs}) == 1


def test_a_list_of_input_files_reads_as_words_or_commas():
    """The workflow writes a job's input files space-separated (`{input.metrics:q}`); by hand they
    may be comma-separated too: either way one list."""
    from attrprune.cli import build_parser

    parser = build_parser()
    words = ["compression-tables", "--csv", "c.csv", "--markdown", "m.md", "--plots-dir", "p"]
    spaced = parser.parse_args([*words, "--metrics", "a.json", "b c.json", "d.json"])
    commas = parser.parse_args([*words, "--metrics", "a.json,b c.json,d.json"])
    assert spaced.metrics == commas.metrics == ["a.json", "b c.json", "d.json"]
