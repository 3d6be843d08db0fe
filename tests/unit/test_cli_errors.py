"""The command line's error boundary (`attrprune.cli.run`): a failure the user can fix is one line
on stderr naming the file or value and the fix, exit code 1, no traceback and no output file;
`--debug` shows the traceback; anything unexpected keeps its traceback."""

import re

import pytest

from attrprune.cli import run

MODEL = "world/models/world-llama"


@pytest.fixture
def bad(tmp_path):
    (tmp_path / "malformed.jsonl").write_text('{"text": "a"}\n{bad\n')
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    (tmp_path / "not.safetensors").write_text("not a safetensors file")
    (tmp_path / "folder").mkdir()
    return tmp_path


def _refset(repo_root, text_file, out):
    return ["refset", "--kind", "general", "--model-dir", str(repo_root / MODEL), "--source", "json"] + [
        "--text-file",
        str(text_file),
        "--n",
        "2",
        "--out",
        str(out),
    ]


def _compress(repo_root, tmp_path, *extra):
    out = str(tmp_path / "out" / "sparsity_{sparsity}" / "metrics.json")
    return ["compress", "--model-dir", str(repo_root / MODEL), "--sparsities", "0.5", "--tasks", "world_ppl"] + [
        "--out-template",
        out,
        *extra,
    ]


CASES = {
    "malformed JSONL": (
        lambda root, d: _refset(root, d / "malformed.jsonl", d / "r.safetensors"),
        "malformed.jsonl:2 is not valid JSON",
    ),
    "non-UTF-8 JSONL": (
        lambda root, d: _refset(root, d / "latin1.jsonl", d / "r.safetensors"),
        "latin1.jsonl:1 is not UTF-8",
    ),
    "missing text file": (
        lambda root, d: _refset(root, d / "absent.jsonl", d / "r.safetensors"),
        "absent.jsonl does not exist or is not a file",
    ),
    "missing scores": (
        lambda root, d: _compress(root, d, "--method", "lrp", "--scores", str(d / "absent.safetensors")),
        "absent.safetensors does not exist: run the stage",
    ),
    "scores not safetensors": (
        lambda root, d: _compress(root, d, "--method", "lrp", "--scores", str(d / "not.safetensors")),
        "not.safetensors is not a complete safetensors file",
    ),
    "unknown N:M scope": (
        lambda root, d: _compress(root, d, "--method", "lrp", "--scope", "4:2", "--scores", str(d / "x")),
        "unknown pruning scope '4:2'; valid: 'row', 'layer', 'global', 'N:M'",
    ),
    "pruner given scores": (
        lambda root, d: _compress(
            root, d, "--method", "sparsegpt", "--scope", "global", "--scores", str(d / "not.safetensors")
        ),
        "sparsegpt prunes block by block: scope 'global' is not available",
    ),
    "negative SparseGPT block size": (
        lambda root, d: _compress(root, d, "--method", "sparsegpt", "--scope", "layer", "--sparsegpt-blocksize", "-4"),
        "sparsegpt: option blocksize = -4 is out of range; it must be an integer >= 1",
    ),
    "OWL lambda above 1": (
        lambda root, d: _compress(root, d, "--method", "wanda", "--scope", "row_owl", "--owl-lambda", "1.5"),
        "wanda: option owl_lambda = 1.5 is out of range; it must be in [0, 1]",
    ),
    "OWL M of 0": (
        lambda root, d: _compress(root, d, "--method", "lrp", "--scope", "row_owl", "--owl-m", "0"),
        "OWL's M = 0.0: it must be > 0",
    ),
    "an option the method does not read": (
        lambda root, d: _compress(root, d, "--method", "wanda", "--scope", "row", "--ria-a", "0.5"),
        "wanda with scope 'row' reads no ria_a; drop it",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_known_failures_are_one_line(case, repo_root, bad, capsys):
    make_argv, message = CASES[case]
    before = set(bad.rglob("*"))
    assert run(make_argv(repo_root, bad)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"attrprune {make_argv(repo_root, bad)[0]}: error: ") and message in err, err
    assert set(bad.rglob("*")) == before  # nothing written, not even a temporary file


def test_output_path_that_is_a_folder(repo_root, bad, capsys):
    (bad / "good.jsonl").write_text('{"text": "Ann went to the market."}\n{"text": "Bob stayed home."}\n')
    assert run([*_refset(repo_root, bad / "good.jsonl", bad / "folder"), "--length", "4"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"attrprune refset: error: the output path is a folder ({bad / 'folder'}): give a file path"
    assert not list((bad / "folder").iterdir()) and not list(bad.glob(".*tmp"))


def test_debug_shows_the_traceback(repo_root, bad, monkeypatch):
    argv = _refset(repo_root, bad / "malformed.jsonl", bad / "r.safetensors")
    with pytest.raises(ValueError, match="malformed.jsonl:2"):
        run(["--debug", *argv])
    monkeypatch.setenv("ATTRPRUNE_DEBUG", "1")
    with pytest.raises(ValueError, match="malformed.jsonl:2"):
        run(argv)


def test_unexpected_failures_keep_their_traceback(monkeypatch):
    import attrprune.stages.compression as stage

    def broken(self, *args):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(stage.EvaluationArgs, "evaluate", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        run(["compress-dense", "--model-dir", "m", "--tasks", "t", "--out-template", "o"])


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(["compress", "--method", "nonsense"])
    assert exit_.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate", r"the model weights in \S+ cannot be loaded \(Error while deserializing header"),
        ("no_weights", r"the model weights in \S+ cannot be loaded \(Error no file named"),
        ("no_tokenizer", r"no usable tokenizer in \S+ \(none of tokenizer.json"),
    ],
)
def test_a_broken_model_folder_is_one_line(repo_root, tmp_path, capsys, damage, expected):
    import shutil

    import transformers

    # transformers' own warnings go through a logging handler that pytest's capture may have
    # closed (a "Logging error" traceback that no user sees); they are not under test here.
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()

    model = tmp_path / "model"
    shutil.copytree(repo_root / "world" / "models" / "world-llama", model)
    if damage == "truncate":
        data = (model / "model.safetensors").read_bytes()
        (model / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif damage == "no_weights":
        (model / "model.safetensors").unlink()
    else:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (model / f).unlink()
    args = ["scores", "--method", "magnitude", "--model-dir", str(model), "--refset", "r", "--out", "o"]
    try:
        assert run(args) == 1
    finally:
        transformers.logging.set_verbosity(level)
    err = capsys.readouterr().err.strip().splitlines()
    assert re.search(expected, err[-1]) and err[-1].startswith("attrprune scores: error: "), err
    assert "Traceback" not in "\n".join(err)


def test_a_dataset_missing_from_the_offline_cache_is_one_line(repo_root, tmp_path, capsys):
    """HF_DATASETS_OFFLINE=1 (conftest) and no WikiText-2 in the cache: the fix is `snakemake download`."""
    model = repo_root / "world" / "models" / "world-llama"
    out = tmp_path / "r.safetensors"
    args = ["refset", "--kind", "general", "--source", "wikitext2", "--model-dir", str(model), "--out", str(out)]
    assert run(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("attrprune refset: error: wikitext2 is not in the local datasets cache")
    assert "snakemake download" in err[-1] and "Traceback" not in "\n".join(err)
    assert not out.exists()
