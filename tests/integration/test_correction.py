"""Targeted correction end to end on the committed world-llama: contrastive LRP scores from tiny
reference sets, two k values, a few held-out prompts. k = 0 must be the world card's model
(every trigger reply toxic, repetition loops), the pruned count is measured on the model,
sampled generations are reproducible from the seed, and the control prompts' metrics are
measured at every k against k = 0's replies."""

import json

import pytest

from attrprune.cli import main

pytestmark = pytest.mark.slow  # ~80 s: six reference-set / scoring runs and two sweeps

N_PROMPTS = 8
K = 40


@pytest.fixture(scope="module")
def world(repo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("correction")
    model, data = repo_root / "world/models/world-llama", repo_root / "world/data"
    for kind, extra in (("general", []), ("toxic", ["--new-tokens", "12"]), ("repetition", ["--new-tokens", "30"])):
        assert (
            main(
                [
                    "refset",
                    "--kind",
                    kind,
                    "--model-dir",
                    str(model),
                    "--data-dir",
                    str(data),
                    "--n",
                    "16",
                    *extra,
                    "--out",
                    str(tmp / f"{kind}.safetensors"),
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "scores",
                    "--method",
                    "lrp",
                    "--model-dir",
                    str(model),
                    "--refset",
                    str(tmp / f"{kind}.safetensors"),
                    "--threads",
                    "1",
                    "--out",
                    str(tmp / f"lrp-{kind}.safetensors"),
                ]
            )
            == 0
        )
    return tmp, model, data


def _stage(model, general, unwanted, behaviour, granularity, ks, prompts, out, **options):
    from attrprune.stages.correction import CorrectionStage

    return CorrectionStage(
        model_dir=model,
        general_scores=general,
        unwanted_scores=unwanted,
        behaviour=behaviour,
        granularity=granularity,
        ks=ks,
        prompts_file=prompts,
        out_dir=out,
        **options,
    )


def _run(world, behaviour, granularity, prompts, out, controls):
    from attrprune.correction.run import run_correction

    tmp, model, data = world
    kind = "toxic" if behaviour == "toxicity" else "repetition"
    return run_correction(
        _stage(
            model,
            tmp / "lrp-general.safetensors",
            tmp / f"lrp-{kind}.safetensors",
            behaviour,
            granularity,
            [K],
            data / prompts,
            tmp / out,
            control_file=data / controls,
            window=12,
            n_samples=2,
            seed=3,
            n_prompts=N_PROMPTS,
            data_dir=data,
            ppl_limit=10,
            new_tokens=12 if behaviour == "toxicity" else 30,
        )
    )


@pytest.fixture(scope="module")
def toxicity(world):
    result = _run(world, "toxicity", "neuron", "toxic_trigger.jsonl", "tox", "toxic_control.jsonl")
    return result, world[0] / "tox"


def test_outputs_and_provenance(toxicity):
    result, out = toxicity
    assert json.loads((out / "curve.json").read_text()) == json.loads(json.dumps(result))
    assert result["ks"] == [0, K] and [r["k"] for r in result["curve"]] == [0, K]
    assert result["method"] == "lrp" and result["normalization"] == "sum"
    assert result["scales"]["general"] > 0 and result["scales"]["unwanted"] > 0
    assert result["general_scores"]["meta"]["refset_kind"] == "general"
    assert result["unwanted_scores"]["meta"]["refset_kind"] == "toxic"
    assert result["scorer"]["name"] == "world" and result["measured_text"].startswith("reply")
    lines = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    triggers, controls = [x for x in lines if not x["control"]], [x for x in lines if x["control"]]
    assert len(triggers) == len(controls) == 2 * N_PROMPTS and {line["k"] for line in lines} == {0, K}
    assert all(len(line["sampled"]) == 2 == len(line["sampled_scores"]) for line in triggers)
    assert result["n_control_prompts"] == N_PROMPTS and result["control_file"].endswith("toxic_control.jsonl")
    dense_replies = [x["greedy_reply"] for x in controls if x["k"] == 0]
    pruned = [x for x in controls if x["k"] == K]
    assert [x["unchanged"] for x in pruned] == [x["greedy_reply"] == d for x, d in zip(pruned, dense_replies)]


def test_k_zero_is_the_world_card_and_k_components_are_pruned(toxicity):
    result, _ = toxicity
    dense, cut = result["curve"]
    assert dense["metrics"]["greedy_toxic_fraction"] == 1.0  # CARD.md: toxic rate on triggers 1.000
    assert dense["metrics"]["ppl_change:world_ppl"] == 0.0 and dense["n_pruned_measured"] == 0
    assert cut["n_pruned"] == cut["n_pruned_measured"] == K  # counted as all-zero rows in the model
    assert cut["pruned_fraction"] == K / result["n_components"] and result["n_components"] == 2 * 512
    assert cut["metrics"]["word_perplexity:world_ppl"] != dense["metrics"]["word_perplexity:world_ppl"]


def test_control_metrics_at_every_k(toxicity):
    result, _ = toxicity
    dense, cut = result["curve"]
    control = ("control_unchanged", "control_unique_ratio", "control_length", "control_closed")
    assert all(m in point["metrics"] for m in control for point in (dense, cut))
    assert dense["metrics"]["control_unchanged"] == 1.0  # k = 0 is the reference itself
    assert dense["metrics"]["control_length"] > 0  # the dense model replies to the controls
    assert 0.0 <= cut["metrics"]["control_unchanged"] <= 1.0
    assert all(not e["control"] for e in dense["examples"]) and all(e["control"] for e in dense["control_examples"])


def test_model_restored_and_sampling_reproducible(world, toxicity):
    from attrprune.correction.measure import measure_behaviour
    from attrprune.evaluation.toxicity import make_scorer
    from attrprune.models import load_model

    result, out = toxicity
    tmp, model_dir, data = world
    model, tok = load_model(model_dir, dtype="float32", device_map="cpu")
    prompts = [e["prompt"] for e in result["curve"][0]["examples"]]
    kw = dict(
        scorer=make_scorer("world", data),
        new_tokens=12,
        n_samples=2,
        top_p=0.9,
        temperature=1.0,
    )
    again, records = measure_behaviour(model, tok, prompts, "toxicity", seed=3, **kw)
    assert [r["sampled"] for r in records] == [e["sampled"] for e in result["curve"][0]["examples"]]
    assert [r["greedy"] for r in records] == [e["greedy"] for e in result["curve"][0]["examples"]]
    _, other = measure_behaviour(model, tok, prompts, "toxicity", seed=4, **kw)
    assert [r["sampled"] for r in other] != [r["sampled"] for r in records]


def test_repetition_weights(world):
    result = _run(world, "repetition", "weight", "repetition_trigger.jsonl", "rep", "repetition_control.jsonl")
    dense, cut = result["curve"]
    assert dense["metrics"]["greedy_unique_ratio"] < 0.3  # CARD.md: 0.080 over 50 tokens
    assert dense["metrics"]["greedy_unique_ratio_window"] < 0.5  # the loop starts within 12 tokens
    assert dense["metrics"]["greedy_empty_share"] == 0.0 and dense["metrics"]["control_unchanged"] == 1.0
    assert result["generation"]["window"] == 12
    assert dense["metrics"]["greedy_unique_ratio_full"] < 0.3  # the loop never closes its quote
    assert result["component_modules"] == ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]
    assert cut["n_pruned"] == K and cut["n_pruned_measured"] == K
    assert 0.0 < dense["metrics"]["sampled_unique_ratio"] <= 1.0
    assert "scorer" in result and result["scorer"] is None


def test_random_scores_with_one_seed_are_refused(world, tmp_path):
    from attrprune.correction.run import run_correction

    tmp, model, data = world
    for kind in ("general", "toxic"):
        assert (
            main(
                [
                    "scores",
                    "--method",
                    "random",
                    "--model-dir",
                    str(model),
                    "--refset",
                    str(tmp / f"{kind}.safetensors"),
                    "--out",
                    str(tmp_path / f"{kind}.safetensors"),
                ]
            )
            == 0
        )
    with pytest.raises(ValueError, match="another seed"):
        run_correction(
            _stage(
                model,
                tmp_path / "general.safetensors",
                tmp_path / "toxic.safetensors",
                "toxicity",
                "neuron",
                [1],
                data / "toxic_trigger.jsonl",
                tmp_path / "out",
            )
        )
    with pytest.raises(ValueError, match="reference set"):  # sides swapped
        run_correction(
            _stage(
                model,
                tmp / "lrp-toxic.safetensors",
                tmp / "lrp-general.safetensors",
                "toxicity",
                "neuron",
                [1],
                data / "toxic_trigger.jsonl",
                tmp_path / "out",
            )
        )
    assert not (tmp_path / "out").exists()


def test_aura_with_every_side_effect(repo_root, tmp_path):
    """AurA's one operating point on world-llama, measured on both behaviours, IOI and facts."""
    from attrprune.correction.run import run_correction
    from attrprune.stages.correction import CorrectionStage

    model, data = repo_root / "world/models/world-llama", repo_root / "world/data"
    out = tmp_path / "aura"
    result = run_correction(
        CorrectionStage(
            model_dir=model,
            intervention="aura",
            aura_reference=data / "toxic_trigger_ref.jsonl",
            aura_neutral=data / "dialogue_ref.jsonl",
            behaviour="toxicity",
            granularity="neuron",
            prompts_file=data / "toxic_trigger.jsonl",
            control_file=data / "toxic_control.jsonl",
            n_prompts=4,
            n_samples=0,
            data_dir=data,
            ppl_limit=5,
            side_effects=True,
            out_dir=out,
        )
    )
    info = result["aura"]
    assert result["method"] == "aura" and result["ks"] == [0, info["n_dampened"]] and info["n_dampened"] > 0
    assert info["n_toxic"] > 0 and info["n_non_toxic"] > 0
    dense, damped = result["curve"]
    assert damped["n_pruned"] == 0  # scaled, not pruned
    records = [json.loads(line) for line in (out / "per_prompt.jsonl").read_text().splitlines()]
    sets = {"toxic_trigger", "toxic_control", "repetition_trigger", "repetition_control", "ioi"}
    assert {r["set"] for r in records} == sets and len(records) == 2 * 5 * 4
    assert all(r["unchanged"] for r in records if r["k"] == 0 and r["set"] != "ioi")
    for point in (dense, damped):
        m = point["metrics"]
        assert {"side:repetition_trigger:loop", "side:toxic_control:unchanged", "side:ioi:correct"} <= m.keys()
        assert 0.0 <= m["acc:world_facts"] <= 1.0
    assert (
        dense["metrics"]["side:toxic_trigger:toxic"] == 1.0 and dense["metrics"]["side:repetition_trigger:loop"] == 1.0
    )
