"""refsets and scores through the CLI on the committed world models."""

import pytest
import torch

from attrprune.cli import main
from attrprune.relevance.store import load_scores


@pytest.fixture(scope="module")
def ioi_set(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("refsets") / "ioi-s0.safetensors"
    args = [
        "refset",
        "--kind",
        "ioi",
        "--model-dir",
        str(repo_root / "world/models/world-opt"),
        "--data-dir",
        str(repo_root / "world/data"),
        "--n",
        "24",
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out


def _score(repo_root, refset, method, out):
    return main(
        [
            "scores",
            "--model-dir",
            str(repo_root / "world/models/world-opt"),
            "--refset",
            str(refset),
            "--method",
            method,
            "--batch-size",
            "8",
            "--out",
            str(out),
        ]
    )


def test_scores_file_names_shapes_metadata_and_reproducibility(repo_root, ioi_set, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(repo_root / "world/models/world-opt")
    assert _score(repo_root, ioi_set, "lrp", tmp_path / "a.safetensors") == 0
    assert _score(repo_root, ioi_set, "lrp", tmp_path / "b.safetensors") == 0
    a, meta = load_scores(tmp_path / "a.safetensors")
    b, _ = load_scores(tmp_path / "b.safetensors")
    for name, w in a.weights.items():
        assert w.shape == model.get_submodule(name).weight.shape
        assert torch.equal(w, b.weights[name])
    assert "model.decoder.layers.1.fc2" in a.weights and "model.decoder.layers.0.self_attn" in a.heads
    for key in ("method", "target", "refset_sha256", "seed", "n_samples", "attrprune_version", "git_commit"):
        assert meta[key] not in (None, ""), key
    assert meta["target"] == "logit(IO) - logit(S) at the final position" and meta["n_samples"] == 24
    # IOI relevance is concentrated: the top head carries more than all but the top few together
    heads = torch.cat(list(a.heads.values()))
    top = heads.sort(descending=True).values
    assert top[0] > 0.3 * heads.abs().sum()


def test_nan_model_writes_no_file(repo_root, ioi_set, tmp_path, monkeypatch):
    from attrprune.relevance import methods

    magnitude = methods.magnitude

    def broken(model, refset, options):
        scores = magnitude(model, refset, options)
        next(iter(scores.weights.values()))[0, 0] = float("nan")
        return scores

    monkeypatch.setattr(methods, "magnitude", broken)
    with pytest.raises(FloatingPointError, match="non-finite"):
        _score(repo_root, ioi_set, "magnitude", tmp_path / "nan.safetensors")
    assert not list(tmp_path.iterdir())


def test_general_text_from_a_local_file_and_a_clear_error_for_uncached_hub_data(repo_root, tmp_path):
    import json

    from attrprune.refsets import load_refset

    text = tmp_path / "corpus.jsonl"
    text.write_text(
        "".join(
            json.dumps(
                {"text": f"Mary lives in Paris. The old dog {i} slept while the young cat {i} watched the door."}
            )
            + "\n"
            for i in range(200)
        )
    )
    out = tmp_path / "g.safetensors"
    model = str(repo_root / "world/models/world-llama")
    assert (
        main(
            [
                "refset",
                "--kind",
                "general",
                "--model-dir",
                model,
                "--source",
                "json",
                "--text-file",
                str(text),
                "--n",
                "4",
                "--length",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rs = load_refset(out)
    assert rs.input_ids.shape == (4, 16) and rs.meta["source"] == f"json:{text}"
    # HF_DATASETS_OFFLINE=1 (conftest): WikiText-2 is not cached here, and the error says what to do
    with pytest.raises(RuntimeError, match="wikitext2 is not in the local datasets cache.*--source json"):
        main(
            [
                "refset",
                "--kind",
                "general",
                "--model-dir",
                model,
                "--source",
                "wikitext2",
                "--n",
                "4",
                "--out",
                str(tmp_path / "w.safetensors"),
            ]
        )
    assert not (tmp_path / "w.safetensors").exists()
