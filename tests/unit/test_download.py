"""Downloads, checked offline against local stand-ins of the Hub: an HF hub cache laid out as
huggingface_hub lays it out (blobs, snapshots/<commit> symlinks, refs/<tag>) holding a tiny model,
empty datasets caches, and a tiny Detoxify checkpoint in a temporary TORCH_HOME."""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import tiny_llama  # noqa: E402

import attrprune.download as dl  # noqa: E402
from attrprune.hub import require_model  # noqa: E402

SHA = "0123456789abcdef0123456789abcdef01234567"
SHA2 = "fedcba9876543210fedcba9876543210fedcba98"
ROOT = Path(__file__).resolve().parents[2]


def tiny_files(tmp_path: Path, safe: bool = True) -> dict[str, bytes]:
    """The files of a tiny Llama as save_pretrained writes them."""
    d = tmp_path / f"saved-{safe}"
    tiny_llama().save_pretrained(d, safe_serialization=safe)
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def seed_cache(cache: Path, repo_id: str, files: dict[str, bytes], sha: str = SHA, tag: str = "v1.0") -> None:
    """Lay `files` out as the HF hub cache does: content-addressed blobs, a snapshot folder of
    symlinks named by the commit, and a ref from the tag to the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for rel, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / sha / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / tag).write_text(sha)


@pytest.fixture
def hub(tmp_path):
    cache = tmp_path / "hub"
    files = tiny_files(tmp_path)
    extra = {
        "README.md": b"# tiny",
        "original/consolidated.00.pth": b"second copy of the weights",
        "pytorch_model.bin.index.json": b'{"weight_map": {}}',
    }
    seed_cache(cache, "org/tiny", {**files, **extra})
    return cache, files


def test_download_model_lays_out_the_snapshot_with_its_commit(hub, tmp_path):
    from transformers import AutoModelForCausalLM

    cache, files = hub
    out = tmp_path / "resources" / "models" / "tiny"
    out.mkdir(parents=True)  # Snakemake creates the output's folder before the job
    record = dl.download_model("org/tiny", "v1.0", out, cache_dir=cache)

    # Root-level weights, config and tokenizer files only; README, original/ and a bin index stay out.
    assert sorted(p.name for p in out.rglob("*")) == sorted([*files, "download.json"])
    assert json.loads((out / "download.json").read_text()) == record
    assert record["revision"] == "v1.0" and record["commit_sha"] == SHA and record["weights_format"] == "safetensors"
    assert {f["name"]: f["size"] for f in record["files"]} == {n: len(b) for n, b in files.items()}
    loaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    for (name, a), b in zip(tiny_llama().state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_download_json_is_written_last_and_appears_with_the_folder(hub, tmp_path, monkeypatch):
    cache, files = hub
    out = tmp_path / "models" / "tiny"
    seen = {}
    real = dl.write_json

    def spy(path, obj):
        seen["siblings"] = sorted(p.name for p in Path(path).parent.iterdir())
        seen["out_exists"] = out.exists()
        real(path, obj)

    monkeypatch.setattr(dl, "write_json", spy)
    dl.download_model("org/tiny", SHA, out, cache_dir=cache)
    assert seen == {"siblings": sorted(files), "out_exists": False}


def test_killed_download_leaves_nothing_that_looks_complete(hub, tmp_path, monkeypatch):
    cache, _ = hub
    out = tmp_path / "models" / "tiny"
    calls = []
    real = dl._place

    def dies_on_second_file(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a killed job raises in Python
        return real(src, dst)

    monkeypatch.setattr(dl, "_place", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        dl.download_model("org/tiny", SHA, out, cache_dir=cache)
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="snakemake download"):
        require_model(out, "tiny")


def test_rerun_replaces_the_previous_download(hub, tmp_path):
    cache, files = hub
    newer = {**files, "config.json": files["config.json"].replace(b"{", b'{"_note": "v2",', 1)}
    seed_cache(cache, "org/tiny", newer, sha=SHA2, tag="v2.0")
    out = tmp_path / "models" / "tiny"
    dl.download_model("org/tiny", "v1.0", out, cache_dir=cache)
    (out / "download.json").unlink()  # Snakemake removes the old output before rerunning
    record = dl.download_model("org/tiny", "v2.0", out, cache_dir=cache)
    assert record["commit_sha"] == SHA2 and b'"_note": "v2"' in (out / "config.json").read_bytes()
    assert require_model(out, "tiny")["commit_sha"] == SHA2
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]


@pytest.mark.parametrize("revision", ["main", "master", ""])
def test_moving_revision_is_refused(hub, tmp_path, revision):
    cache, _ = hub
    with pytest.raises(ValueError, match="moving branch"):
        dl.download_model("org/tiny", revision, tmp_path / "out", cache_dir=cache)
    assert not (tmp_path / "out").exists()


def test_missing_model_offline_names_snakemake_download(tmp_path):
    with pytest.raises(RuntimeError, match=r"org/absent at revision v1.0.*offline mode is on.*`snakemake download`"):
        dl.download_model("org/absent", "v1.0", tmp_path / "out", cache_dir=tmp_path / "empty")
    assert not (tmp_path / "out").exists()


def test_require_model_fails_before_passes_after_and_catches_truncation(hub, tmp_path):
    cache, _ = hub
    out = tmp_path / "models" / "tiny"
    with pytest.raises(
        FileNotFoundError, match=r"model tiny is not downloaded .*run `snakemake download` on a machine with internet"
    ):
        require_model(out, "tiny")
    dl.download_model("org/tiny", "v1.0", out, cache_dir=cache)
    assert require_model(out, "tiny")["commit_sha"] == SHA
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()  # a hard link to the cache blob: rewrite a new file, leave the cache alone
    weights.write_bytes(data[:100])
    with pytest.raises(FileNotFoundError, match=r"truncated \['model.safetensors'\]"):
        require_model(out, "tiny")


def test_bin_only_repository_falls_back_and_says_so(tmp_path):
    from transformers import AutoModelForCausalLM

    cache = tmp_path / "hub"
    files = tiny_files(tmp_path, safe=False)
    assert "pytorch_model.bin" in files
    seed_cache(cache, "org/old", files)
    out = tmp_path / "models" / "old"
    record = dl.download_model("org/old", SHA, out, cache_dir=cache)
    assert record["weights_format"] == "bin" and "no *.safetensors" in record["note"]
    assert (out / "pytorch_model.bin").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert torch.equal(loaded.lm_head.weight, tiny_llama().lm_head.weight)


def test_partly_cached_sharded_model_is_refused(tmp_path):
    cache = tmp_path / "hub"
    index = {
        "metadata": {},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }
    seed_cache(
        cache,
        "org/big",
        {
            "config.json": b"{}",
            "model.safetensors.index.json": json.dumps(index).encode(),
            "model-00001-of-00002.safetensors": b"shard",
        },
    )
    with pytest.raises(RuntimeError, match=r"incomplete.*model-00002-of-00002.safetensors.*snakemake download"):
        dl.download_model("org/big", SHA, tmp_path / "out", cache_dir=cache)
    assert not (tmp_path / "out").exists()


def _run_offline(code: str, hf_home: Path) -> subprocess.CompletedProcess:
    """Python in a fresh process with HF_HOME at `hf_home`: the cache variables are read at import."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )


def test_hf_home_is_where_the_download_looks(tmp_path):
    """The cluster set-up: no cache_dir argument, HF_HOME on shared storage, offline."""
    seed_cache(tmp_path / "hf" / "hub", "org/tiny", {"config.json": b"{}", "model.safetensors": b"w"})
    proc = _run_offline(
        f"""
        from attrprune.download import download_model
        print(download_model("org/tiny", "v1.0", "{tmp_path / "out"}")["commit_sha"])
    """,
        tmp_path / "hf",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == SHA and (tmp_path / "out" / "model.safetensors").read_bytes() == b"w"


def test_unknown_dataset_names_list_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown dataset name\(s\) \['c5', 'lmeval:'\]; valid: \['wikitext2', 'c4', 'realtoxicityprompts', 'lmeval:<task>'\]",
    ):
        dl.download_datasets(["wikitext2", "c5", "lmeval:"])


def test_hub_datasets_reuse_the_refset_specs():
    from attrprune.refsets import HUB_TEXT

    assert all(dl.HUB_DATASETS[k] is v for k, v in HUB_TEXT.items())


def test_uncached_datasets_offline_name_the_fix(tmp_path):
    proc = _run_offline(
        """
        import json
        from attrprune.download import download_datasets
        from attrprune.refsets import general_texts
        out = {}
        for name, call in (("download", lambda: download_datasets(["wikitext2"])), ("refsets", lambda: general_texts("wikitext2"))):
            try:
                call()
            except RuntimeError as err:
                out[name] = str(err)
        print(json.dumps(out))
    """,
        tmp_path / "empty-hf",
    )
    assert proc.returncode == 0, proc.stderr
    msgs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "dataset wikitext2 (wikitext) could not be fetched" in msgs["download"]
    assert "offline mode is on" in msgs["download"] and "`snakemake download`" in msgs["download"]
    assert "wikitext2 is not in the local datasets cache" in msgs["refsets"]
    assert "Run `snakemake download` on a machine with internet" in msgs["refsets"]


@pytest.mark.slow  # lm-eval indexes its ~15k task configs (about 15 s) before anything else
def test_lm_eval_task_names_are_checked_and_uncached_data_names_the_fix(tmp_path):
    proc = _run_offline(
        """
        import json
        from attrprune.download import download_datasets
        out = {}
        for names in (["lmeval:arc_easyy"], ["lmeval:world_ppl"], ["lmeval:arc_easy"]):
            try:
                download_datasets(names)
            except (ValueError, RuntimeError) as err:
                out[names[0]] = [type(err).__name__, str(err)]
        print(json.dumps(out))
    """,
        tmp_path / "empty-hf",
    )
    assert proc.returncode == 0, proc.stderr
    msgs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert msgs["lmeval:arc_easyy"][0] == "ValueError" and "'arc_easy'" in msgs["lmeval:arc_easyy"][1]
    assert msgs["lmeval:world_ppl"] == [
        "ValueError",
        "lmeval:world_ppl: world tasks ship with the package and need no download",
    ]
    kind, text = msgs["lmeval:arc_easy"]
    assert kind == "NotCachedError" and "lm-eval task arc_easy" in text and "`snakemake download`" in text


def make_tiny_detoxify(root: Path) -> Path:
    """A Detoxify checkpoint whose base model is a local folder (no hub access): a 1-layer BERT."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    base = root / "bert"
    base.mkdir(parents=True)
    (base / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "test", "sentence", "another", "one"]) + "\n"
    )
    BertTokenizer(str(base / "vocab.txt"), model_max_length=32).save_pretrained(base)
    cfg = BertConfig(
        vocab_size=10,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
        num_labels=len(classes),
    )
    cfg.save_pretrained(base)
    args = {
        "model_type": str(base),
        "model_name": "BertForSequenceClassification",
        "tokenizer_name": "BertTokenizer",
        "num_classes": len(classes),
    }
    ckpt = root / "tiny.ckpt"
    torch.manual_seed(0)
    torch.save(
        {
            "config": {"arch": {"args": args}, "dataset": {"args": {"classes": classes}}},
            "state_dict": BertForSequenceClassification(cfg).state_dict(),
        },
        ckpt,
    )
    return ckpt


def test_detoxify_is_loaded_from_the_torch_hub_cache_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target = dl.detoxify_checkpoint("original")
    assert target.parent == tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(RuntimeError, match=r"missing and offline mode is on .*`snakemake download`"):
        dl.download_detoxify("original")  # no network attempt: conftest sets the offline variables
    target.parent.mkdir(parents=True)
    os.replace(make_tiny_detoxify(tmp_path), target)
    record = dl.download_detoxify("original")
    assert record["checkpoint"] == str(target) and record["checkpoint_size"] == target.stat().st_size
    assert record["classes"] == sorted(
        ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
    )
    marker = tmp_path / "resources" / "downloads" / "detoxify.json"
    dl.write_marker(marker, "detoxify", record)
    written = json.loads(marker.read_text())
    assert written["fetched"] == record and written["what"] == "detoxify"
    assert written["caches"]["torch_hub_dir"] == str(tmp_path / "torch" / "hub")
    assert written["caches"]["env"]["TORCH_HOME"] == str(tmp_path / "torch")
    with pytest.raises(ValueError, match=r"unknown Detoxify model type 'orginal'; valid: \[.*'original'"):
        dl.download_detoxify("orginal")


def test_download_rules_fetch_what_the_config_needs(tmp_path):
    """Dry run of the target `download` with a hub model: hub models only, lm-eval data of
    non-world tasks, WikiText-2 for the hub model's token perplexity, every rule local and
    forced online."""
    config = {
        "models": {"tiny": {"source": "hub", "hf_id": "org/tiny", "revision": SHA}},
        "compression": {"tasks": ["world_ppl", "arc_easy"]},
        "download": {"datasets": ["c4"], "detoxify": "original"},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "-p",
            "--cores",
            "1",
            "--workflow-profile",
            "none",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "download",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "resources/models/tiny/download.json" in out and "world-llama/download.json" not in out
    assert (
        f"HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 python -m attrprune download-model "
        f"--hf-id org/tiny --revision {SHA} --out-dir resources/models/tiny > logs/resources/models/tiny/download.log 2>&1"
    ) in out
    assert "download-data --names c4,lmeval:arc_easy,wikitext2 --out resources/downloads/datasets.json" in out
    assert "download-detoxify --model-type original --out resources/downloads/detoxify.json" in out
    # the SLURM executor runs these in the submitting process (login node, with internet)
    block = re.search(r"localrules:(.*?)\n\n", (ROOT / "rules" / "download.smk").read_text(), re.S)[1]
    assert sorted(block.replace(",", " ").split()) == [
        "download",
        "download_data",
        "download_detoxify",
        "download_model",
    ]
