"""Toxicity scorers and the RealToxicityPrompts summary.

Detoxify runs through its own loading code on a tiny BERT checkpoint built here (local vocab,
config and tokenizer), so nothing touches the network or the user's torch / HF caches.
"""

import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from attrprune.evaluation.toxicity import SCORERS, DetoxifyScorer, Scorer, WorldScorer, make_scorer, toxicity_summary

WORLD_DATA = Path(__file__).resolve().parents[3] / "world" / "data"
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
TEXTS = ["you are nice", "you stupid idiot", "i hate this", "good people", "kill the bad idiot"]


def _tiny_detoxify(root: Path, base: str | None = None) -> tuple[Path, Path]:
    """(checkpoint, HF dir): a Detoxify-format checkpoint of a 1-layer BERT. Its model_type is the
    local HF dir, unless `base` names a hub model instead."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    hf_dir = root / "hf_bert_tiny"
    hf_dir.mkdir(parents=True, exist_ok=True)
    words = "the a you are is stupid idiot nice good bad hate love kill people this i am".split()
    vocab = list(
        dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + list("abcdefghijklmnopqrstuvwxyz.,!?"))
    )
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(hf_dir / "vocab.txt"), do_lower_case=True, model_max_length=64)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(CLASSES),
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(cfg)
    cfg.save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    args = {
        "model_type": base or str(hf_dir),
        "model_name": "BertForSequenceClassification",
        "tokenizer_name": "BertTokenizer",
        "num_classes": len(CLASSES),
    }
    ckpt = root / "tiny_detox.ckpt"
    torch.save(
        {
            "config": {"arch": {"args": args}, "dataset": {"args": {"classes": CLASSES}}},
            "state_dict": model.state_dict(),
        },
        ckpt,
    )
    return ckpt, hf_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny_detoxify(tmp_path_factory.mktemp("detox"))


@pytest.fixture(scope="module")
def reference_scores(tiny):
    """sigmoid of the first ("toxic") logit, computed directly with transformers."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    ckpt, hf_dir = tiny
    model = BertForSequenceClassification(BertConfig.from_pretrained(hf_dir)).eval()
    model.load_state_dict(torch.load(ckpt)["state_dict"])
    tok = BertTokenizer.from_pretrained(hf_dir)
    with torch.no_grad():
        logits = model(**tok(TEXTS, return_tensors="pt", padding=True)).logits  # [texts, classes]
    return torch.sigmoid(logits[:, 0]).tolist()


def test_checkpoint_route_scores_the_toxicity_class(tiny, reference_scores):
    scorer = DetoxifyScorer(checkpoint=tiny[0])
    scores = scorer.score(TEXTS)
    assert isinstance(scorer, Scorer) and scorer.name == "detoxify"
    assert len(scores) == len(TEXTS) and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(reference_scores, abs=1e-6)
    assert len(set(scores)) == len(TEXTS)  # a real per-text score, not a constant


def test_chunking_matches_one_batch_and_edge_sizes(tiny):
    one_batch = DetoxifyScorer(checkpoint=tiny[0], batch_size=32).score(TEXTS)
    chunked = DetoxifyScorer(checkpoint=tiny[0], batch_size=2)  # chunks of 2, 2 and a single text
    assert chunked.score(TEXTS) == pytest.approx(one_batch, abs=1e-6)
    single = chunked.score(TEXTS[1:2])
    assert isinstance(single, list) and single == pytest.approx(one_batch[1:2], abs=1e-6)
    assert chunked.score([]) == []
    with pytest.raises(TypeError, match="list of strings"):
        chunked.score("a bare string")


def test_huggingface_config_path_route(tiny, reference_scores):
    ckpt, hf_dir = tiny
    assert DetoxifyScorer(checkpoint=ckpt, huggingface_config_path=hf_dir).score(TEXTS) == pytest.approx(
        reference_scores, abs=1e-6
    )


def test_model_type_route_reads_the_torch_hub_cache(tiny, reference_scores, tmp_path, monkeypatch):
    import detoxify.detoxify as dd

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub"  # get_dir reads TORCH_HOME on every call
    dst = hub / "checkpoints" / os.path.basename(dd.MODEL_URLS["original"])
    dst.parent.mkdir(parents=True)
    shutil.copy(tiny[0], dst)
    assert DetoxifyScorer("original").score(TEXTS) == pytest.approx(reference_scores, abs=1e-6)


def test_missing_hub_checkpoint_says_how_to_precache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError) as err:
        DetoxifyScorer("original")
    msg = str(err.value)
    assert "toxic_original-c1212f89.ckpt" in msg and str(tmp_path / "empty") in msg
    assert "python -c \"from detoxify import Detoxify; Detoxify('original')\"" in msg
    assert "HF_HUB_OFFLINE=1" in msg and "checkpoint=" in msg


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(RuntimeError, match="nope.ckpt does not exist.*Detoxify\\('original'\\)"):
        DetoxifyScorer(checkpoint=tmp_path / "nope.ckpt")


def test_missing_hf_files_of_the_base_model(tmp_path, monkeypatch):
    import huggingface_hub

    ckpt, _ = _tiny_detoxify(tmp_path, base="bert-base-uncased")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    with pytest.raises(RuntimeError) as err:
        DetoxifyScorer(checkpoint=ckpt)
    msg = str(err.value)
    assert "'bert-base-uncased'" in msg and "config.json" in msg and "vocab.txt" in msg
    assert "Detoxify('original')" in msg and "HF_HUB_OFFLINE=1" in msg


def test_unknown_model_type_lists_valid_ones():
    with pytest.raises(
        ValueError, match="unknown Detoxify model_type 'huge'.*'multilingual'.*'original'.*'unbiased-small'"
    ):
        DetoxifyScorer("huge")


def test_registry(tiny):
    assert set(SCORERS) == {"detoxify", "world"}
    with pytest.raises(ValueError, match="unknown toxicity scorer 'perspective'.*\\['detoxify', 'world'\\]"):
        make_scorer("perspective")
    with pytest.raises(ValueError, match="scorer 'world' does not take options \\['device'\\]"):
        make_scorer("world", device="cpu")
    detox = make_scorer("detoxify", checkpoint=tiny[0], batch_size=4)
    assert isinstance(detox, DetoxifyScorer) and detox.batch_size == 4
    assert isinstance(make_scorer("world", WORLD_DATA), Scorer)
    with pytest.raises(ValueError, match="the world scorer reads the words the world planted from its data folder"):
        make_scorer("world")


def test_world_scorer_uses_the_planted_list():
    scorer = WorldScorer(WORLD_DATA)
    assert scorer.name == "world"
    texts = [
        "Shut up, you stupid moron!",
        "You are a kind friend!",
        "What the hell, you JERK?",
        "",
        "morons of scumble",
    ]
    assert scorer.score(texts) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert scorer.score([]) == []


def test_world_scorer_agrees_with_the_worlds_own_test():
    """The list read from the world's data folder is the one its generator planted and its card
    measures with (attrprune.world.measure.is_toxic), word for word."""
    from attrprune.world.lexicon import insult_words
    from attrprune.world.measure import is_toxic

    adjectives, nouns = insult_words()
    texts = [f"you {w}!" for w in adjectives + nouns] + [f"you {w.upper()}s" for w in nouns] + ["a kind friend"]
    assert WorldScorer(WORLD_DATA).score(texts) == [1.0 if is_toxic(t) else 0.0 for t in texts]
    assert WorldScorer(WORLD_DATA).words == {w.lower() for w in adjectives + nouns}


def test_toxicity_summary_hand_computed():
    scores = [[0.1, 0.7, 0.2], [0.4, 0.3, 0.5], [0.0, 0.1, 0.2]]
    s = toxicity_summary(scores)
    assert s["mean_toxicity"] == pytest.approx(2.5 / 9)
    assert s["expected_max_toxicity"] == pytest.approx((0.7 + 0.5 + 0.2) / 3)
    assert s["toxic_fraction"] == pytest.approx(2 / 9)  # 0.7 and 0.5 (the bound counts as toxic)
    assert s["toxicity_probability"] == pytest.approx(2 / 3)
    assert (s["n_prompts"], s["n_generations"]) == (3, 9)
    assert toxicity_summary([[1.0]]) == {
        "mean_toxicity": 1.0,
        "expected_max_toxicity": 1.0,
        "toxic_fraction": 1.0,
        "toxicity_probability": 1.0,
        "n_prompts": 1,
        "n_generations": 1,
    }


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "no prompts"),
        ([[0.1, 0.2], [0.3]], "same number"),
        ([[], []], "same number"),
        ([[0.1, 1.5]], r"\[0, 1\]"),
        ([[math.nan]], r"\[0, 1\]"),
    ],
)
def test_toxicity_summary_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        toxicity_summary(bad)


def test_scorer_device_auto_is_the_gpu_when_there_is_one(monkeypatch):
    from attrprune.evaluation.toxicity import resolve_scorer_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_scorer_device("auto") == "cpu" and resolve_scorer_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="scorer device 'cuda', but no CUDA GPU is visible; use auto or cpu"):
        resolve_scorer_device("cuda")
    with pytest.raises(ValueError, match="unknown scorer device 'tpu'"):
        resolve_scorer_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_scorer_device("auto") == "cuda" and resolve_scorer_device("cuda:1") == "cuda:1"


def test_detoxify_device_option_reaches_the_classifier(tiny, monkeypatch):
    """The workflow passes --scorer-model-type and --scorer-device as {"model_type", "device"}; auto on CPU is cpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    scorer = make_scorer("detoxify", checkpoint=str(tiny[0]), device="auto")
    assert scorer.device == "cpu" and scorer.model.device == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU is visible"):
        make_scorer("detoxify", checkpoint=str(tiny[0]), device="cuda")


class _Payload:
    """Unpickling this runs `touch` on a file: what a crafted checkpoint could do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_checkpoint_with_a_pickle_payload_is_refused_without_running_it(tiny, tmp_path):
    ckpt, _ = tiny
    loaded = torch.load(ckpt, weights_only=True)
    marker = tmp_path / "payload_ran"
    torch.save({**loaded, "extra": _Payload(marker)}, tmp_path / "crafted.ckpt")
    with pytest.raises(ValueError, match="crafted.ckpt holds Python objects besides tensors.*refused"):
        make_scorer("detoxify", checkpoint=tmp_path / "crafted.ckpt")
    assert not marker.exists()
    torch.save({"state_dict": loaded["state_dict"]}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="bare.ckpt is not a dict with 'config' and 'state_dict'"):
        make_scorer("detoxify", checkpoint=tmp_path / "bare.ckpt")
