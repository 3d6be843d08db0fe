"""A head ranking against a published circuit: ROC AUC and top-k recall per class, by hand, on
tiny random-init GPT-2 models with stand-in circuits; the GPT-2 small IOI circuit as data."""

import sys
from pathlib import Path

import pytest
import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tiny_models import calibration, tiny_family  # noqa: E402

from attrprune.circuits.published import PUBLISHED, PublishedCircuit, published_agreement  # noqa: E402
from attrprune.relevance import ScoreOptions, compute_scores  # noqa: E402

STAND_IN = PublishedCircuit(
    model="tiny GPT-2",
    source="test",
    n_layers=2,
    n_heads=4,
    classes={"movers": ((0, 1),), "inhibition": ((1, 0), (1, 3))},
)


def test_auc_and_recall_by_hand():
    model = tiny_family("gpt2")  # 2 layers x 4 heads
    scores = {
        "transformer.h.0.attn": torch.tensor([0.1, 0.9, 0.3, 0.2]),
        "transformer.h.1.attn": torch.tensor([0.8, 0.0, 0.5, 0.4]),
    }
    # Circuit heads score 0.9, 0.8, 0.4; the others 0.1, 0.3, 0.2, 0.0, 0.5. Of the 15 pairs the
    # circuit head wins 5 + 5 + 4.
    result = published_agreement(model, scores, circuit=STAND_IN)
    assert result["roc_auc"] == pytest.approx(14 / 15)
    # Top 3 (the circuit's size): 0.9, 0.8, 0.5 -> 2 of 3 circuit heads; movers 1/1, inhibition 1/2.
    assert result["k"] == 3 and result["n_circuit"] == 3 and result["n_components"] == 8
    assert result["recall"] == pytest.approx(2 / 3) and result["precision"] == pytest.approx(2 / 3)
    assert result["recall_by_class"] == pytest.approx({"movers": 1.0, "inhibition": 0.5})
    wider = published_agreement(model, scores, k=4, circuit=STAND_IN)  # + 0.4
    assert wider["recall"] == 1.0 and wider["precision"] == pytest.approx(3 / 4)
    # A ranking that puts the circuit last.
    flipped = published_agreement(model, {m: -s for m, s in scores.items()}, circuit=STAND_IN)
    assert flipped["roc_auc"] == pytest.approx(1 / 15) and flipped["recall_by_class"]["movers"] == 0.0


def test_ties_at_the_cut_count_by_their_chance():
    model = tiny_family("gpt2")
    flat = {f"transformer.h.{i}.attn": torch.ones(4) for i in range(2)}
    result = published_agreement(model, flat, circuit=STAND_IN)
    # All 8 tied, 3 slots: every head is in the top 3 with chance 3/8.
    assert result["roc_auc"] == 0.5 and result["recall"] == pytest.approx(3 / 8)
    assert result["recall_by_class"] == pytest.approx({"movers": 3 / 8, "inhibition": 3 / 8})


def test_the_gpt2_small_ioi_circuit_on_a_model_of_its_shape():
    circuit = PUBLISHED["gpt2-small-ioi"]
    sizes = {c: len(h) for c, h in circuit.classes.items()}
    assert sizes == {
        "name mover": 3,
        "negative name mover": 2,
        "s-inhibition": 4,
        "induction": 4,
        "duplicate token": 3,
        "previous token": 2,
        "backup name mover": 8,
    }
    assert len(set(circuit.heads)) == 26 and (9, 9) in circuit.classes["name mover"]
    # 12 layers x 12 heads like GPT-2 small, two dimensions per head.
    model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=50, n_embd=24, n_layer=12, n_head=12, n_positions=16))
    name_movers = {f"transformer.h.{layer}.attn": torch.zeros(12) for layer in range(12)}
    for layer, head in circuit.classes["name mover"]:
        name_movers[f"transformer.h.{layer}.attn"][head] = 1.0
    result = published_agreement(model, name_movers)
    # 3 name movers on top, 141 heads tied at 0 for the other 23 of 26 slots.
    assert result["circuit"] == "gpt2-small-ioi" and result["k"] == 26
    assert result["recall_by_class"]["name mover"] == 1.0
    assert result["recall_by_class"]["induction"] == pytest.approx(23 / 141)
    assert result["roc_auc"] == pytest.approx((3 * 118 + 23 * 118 * 0.5) / (26 * 118))


def test_method_scores_fit_and_bad_input_is_refused():
    model = tiny_family("gpt2")
    heads = compute_scores("random", model, calibration(), ScoreOptions(progress=False)).heads
    assert 0 <= published_agreement(model, heads, circuit=STAND_IN)["roc_auc"] <= 1
    with pytest.raises(
        ValueError, match=r"'gpt2-small-ioi' is of GPT-2 small \(12 layers x 12 heads\); .*2 layers x 4 heads"
    ):
        published_agreement(model, heads)
    with pytest.raises(ValueError, match="unknown published circuit 'acdc'; valid: gpt2-small-ioi"):
        published_agreement(model, heads, circuit_name="acdc")
    with pytest.raises(ValueError, match="lack attention modules"):
        published_agreement(model, {"transformer.h.0.attn": heads["transformer.h.0.attn"]}, circuit=STAND_IN)
    with pytest.raises(ValueError, match=r"have shape \(3,\), not \(4,\)"):
        published_agreement(model, {**heads, "transformer.h.1.attn": torch.ones(3)}, circuit=STAND_IN)
    with pytest.raises(ValueError, match="k must be between 1 and the 8 heads"):
        published_agreement(model, heads, k=9, circuit=STAND_IN)
    with pytest.raises(ValueError, match="listed in two classes"):
        PublishedCircuit("m", "s", 2, 4, {"a": ((0, 1),), "b": ((0, 1),)})
    with pytest.raises(ValueError, match=r"outside 2 layers x 4 heads"):
        PublishedCircuit("m", "s", 2, 4, {"a": ((2, 0),)})


def test_the_circuit_stage_scores_head_rankings_against_a_published_circuit(repo_root, tmp_path, monkeypatch):
    """Wiring: `circuit --published-circuit NAME` on head circuits adds the agreement at the
    circuit's own size and at the size the threshold keeps (world-llama: 2 layers x 8 heads)."""
    import json

    from attrprune.circuits.export import run_circuit
    from attrprune.models import weights_sha256
    from attrprune.relevance.methods import Scores
    from attrprune.relevance.store import save_scores

    stand_in = PublishedCircuit("world-llama", "test", 2, 8, {"movers": ((1, 0), (1, 1)), "early": ((0, 2),)})
    monkeypatch.setitem(PUBLISHED, "stand-in", stand_in)
    model_dir = repo_root / "world/models/world-llama"
    heads = {"model.layers.0.self_attn": torch.arange(8.0), "model.layers.1.self_attn": torch.arange(8.0, 16.0)}
    save_scores(
        Scores(heads=heads), tmp_path / "s.safetensors", {"method": "x", "model_sha256": weights_sha256(model_dir)}
    )
    common = (model_dir, [tmp_path / "s.safetensors"], repo_root / "world/data/ioi_heldout_names.jsonl", "head")
    result = run_circuit(
        *common, "global", [0.0, 0.5], 0.5, tmp_path / "out", limit=16, sizes=None, published_circuit="stand-in"
    )
    expected = published_agreement(
        _loaded(model_dir), {n: t.clone() for n, t in heads.items()}, circuit=stand_in
    )  # the stage passes the pooled scores of its one seed: the same ranking
    assert result["published"]["circuit_size"]["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert result["published"]["circuit_size"]["k"] == 3
    assert result["published"]["threshold_circuit"]["k"] == result["circuit"]["n_kept"]
    assert json.loads((tmp_path / "out" / "curve.json").read_text())["published"] == result["published"]
    with pytest.raises(ValueError, match="published circuits are head circuits"):
        run_circuit(*common[:3], "neuron", "global", [0.0], 0.5, tmp_path / "o2", published_circuit="stand-in")


def _loaded(model_dir):
    from attrprune.models import load_model

    return load_model(model_dir)[0]
