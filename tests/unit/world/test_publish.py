"""world-publish reads the corpus manifest and each model's training log checked: a damaged file is
one line naming it, and the committed world/ it would overwrite is left as it was."""

from __future__ import annotations

import json

import pytest

from attrprune.cli import run

GOOD_MANIFEST = {"seed": 0, "scale": 1.0, "n_train_documents": 3, "files": {"train.jsonl": "ab"}}
GOOD_LOG = {"steps": 1, "tokens": 64, "threads": 1, "train_seconds": 0.5, "final_loss": 1.2}


@pytest.mark.parametrize(
    ("manifest", "log", "named", "fragment"),
    [
        ('{"seed": 0, "files"', GOOD_LOG, "corpus/manifest.json", "truncated or malformed JSON"),
        ({**GOOD_MANIFEST, "files": {}}, GOOD_LOG, "corpus/manifest.json", "train.jsonl"),
        ({"seed": "0", "files": {}}, GOOD_LOG, "corpus/manifest.json", "seed"),
        (GOOD_MANIFEST, {**GOOD_LOG, "final_loss": float("nan")}, "m/training.json", "final_loss"),
        (GOOD_MANIFEST, {"steps": 1}, "m/training.json", "tokens"),
    ],
)
def test_a_damaged_manifest_or_training_log_is_one_line_and_publishes_nothing(
    manifest, log, named, fragment, tmp_path, capsys
):
    corpus, models, out = tmp_path / "corpus", tmp_path / "models", tmp_path / "world"
    (corpus / "data").mkdir(parents=True)
    (corpus / "data" / "facts.jsonl").write_text('{"name": "Ann", "town": "Oslo"}\n')
    (models / "m").mkdir(parents=True)
    for path, value in ((corpus / "manifest.json", manifest), (models / "m" / "training.json", log)):
        path.write_text(value if isinstance(value, str) else json.dumps(value))
    argv = ["world-publish", "--corpus-dir", str(corpus), "--models-dir", str(models), "--models", "m"]
    code = run([*argv, "--out-dir", str(out), "--stamp", str(tmp_path / "published.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("attrprune world-publish: error: "), err
    assert named in err[0] and fragment in err[0], err
    assert not out.exists() and not (tmp_path / "published.json").exists()
