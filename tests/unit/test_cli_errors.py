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
        run(
            [
                "compress",
                "--method",
                "none",
                "--sparsities",
                "0",
                "--model-dir",
                "m",
                "--tasks",
                "t",
                "--out-template",
                "o",
            ]
        )


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


# ---- writers: a real write error inside safetensors ----------------------------------------------

_FSIZE = """import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
from attrprune.cli import run
sys.exit(run(sys.argv[1:]))
"""


def test_a_tensor_file_write_that_fails_inside_safetensors_is_one_line(repo_root, tmp_path):
    """The file system refuses the scores file half-way (a file-size limit: the same path through
    safetensors' Rust writer as a full disk): one line naming the scores file and the fix, exit 1,
    no temporary file left (safetensors wraps the OSError in its own SafetensorError)."""
    import subprocess
    import sys

    text = tmp_path / "in" / "text.jsonl"
    text.parent.mkdir()
    text.write_text('{"text": "Ann went home. Bob stayed at the farm and fed the goats."}\n' * 3)
    refset = tmp_path / "in" / "r.safetensors"
    assert run([*_refset(repo_root, text, refset)[:-2], "--length", "8", "--out", str(refset)]) == 0
    out = tmp_path / "out" / "scores.safetensors"
    argv = ["scores", "--method", "magnitude", "--model-dir", str(repo_root / MODEL), "--refset", str(refset)]
    done = subprocess.run(
        [sys.executable, "-c", _FSIZE, *argv, "--dtype", "float32", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "SafetensorError" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"attrprune scores: error: File too large ({out}): "), last
    assert last.endswith("write elsewhere"), last
    assert list((tmp_path / "out").iterdir()) == []


# ---- a hub model that is not downloaded ------------------------------------------------------------


def test_the_download_stage_offline_is_one_line(tmp_path, capsys, monkeypatch):
    """download-model with the Hub unreachable (offline here): one line naming the model and
    `snakemake download` on a machine with internet, no traceback, no model folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "models" / "tinyllama-1.1b"
    argv = ["download-model", "--hf-id", "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"]
    assert run([*argv, "--revision", "036fa4651240b9a1487f709833b9e4b96b4c1574", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("attrprune download-model: error: model TinyLlama/TinyLlama-1.1B"), err
    assert "could not be fetched" in last and "snakemake download" in last and "Traceback" not in err
    assert not out.exists()


# ---- a fork server killed during a run --------------------------------------------------------------


def test_a_killed_fork_server_is_named_and_its_jobs_finish_or_say_so(repo_root, tmp_path):
    """Two jobs run in the fork server when it is killed (SIGKILL, no clean-up): the one whose
    child lives on finishes with exit 0 and keeps its output; the one whose child dies too fails
    with one line saying the server died and that a rerun runs it fresh; a later job runs in its
    own process, saying why in one line."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sock = tmp_path / "server.sock"
    env = {**os.environ, **offline}
    env.pop("ATTRPRUNE_FORKSERVER", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "attrprune.forkserver", "--socket", str(sock), "--parent", str(os.getpid())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def children() -> list[int]:
        return [int(p) for p in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()]

    refset = ["refset", "--kind", "general", "--model-dir", str(repo_root / MODEL), "--n", "400", "--length", "32"]
    refset += ["--data-dir", str(repo_root / "world" / "data"), "--source", "world"]
    assert run([*refset, "--out", str(tmp_path / "r.safetensors")]) == 0

    def job(out: str, method: str = "lrp"):  # LRP over 400 samples: seconds, so both jobs run when the server dies
        argv = ["scores", "--method", method, "--model-dir", str(repo_root / MODEL), "--refset", "r.safetensors"]
        argv += ["--out", out]
        return subprocess.Popen(
            [sys.executable, "-m", "attrprune", *argv],
            cwd=tmp_path,
            env={**env, "ATTRPRUNE_FORKSERVER": str(sock)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            assert server.poll() is None and time.monotonic() < deadline, "the fork server did not start"
            time.sleep(0.1)
        survivor = job("survivor.safetensors")
        while len(children()) < 1:
            assert time.monotonic() < deadline, "no child started"
            time.sleep(0.01)
        (first,) = children()
        victim = job("victim.safetensors")
        while len(children()) < 2:
            assert time.monotonic() < deadline, "no second child started"
            time.sleep(0.01)
        (second,) = set(children()) - {first}  # the victim's
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        os.kill(second, signal.SIGKILL)
        _, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, err
        assert (tmp_path / "survivor.safetensors").is_file()
        _, err = victim.communicate(timeout=60)
        assert victim.returncode == 1, err
        lines = err.strip().splitlines()
        assert "Traceback" not in err and len(lines) == 1, err
        assert lines[0].startswith("attrprune: error: the fork server") and "died while this job ran" in lines[0]
        assert "rerun it (a rerun runs it fresh" in lines[0]
        assert not (tmp_path / "victim.safetensors").exists()
        later = job("later.safetensors", "magnitude")
        _, err = later.communicate(timeout=300)
        assert later.returncode == 0, err
        assert f"fork server {sock} not reachable (Connection refused; it died or was stopped)" in err, err
        assert (tmp_path / "later.safetensors").is_file()
    finally:
        server.kill()
        server.wait(timeout=10)
