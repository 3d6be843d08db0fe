"""Every stage on a tiny random-init model of every family, saved as a local HF folder with the
world's tokenizer (no BOS for the Qwen stand-ins): reference sets with the family's BOS policy,
scores of every method, masks at every scope applied through the family's weight layout,
circuit components, correction neurons, export and reload. (The Snakemake run over the same
models is tests/e2e/test_family_workflow.py.)"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import FAMILIES, NO_BOS, save_tiny_family  # noqa: E402

from attrprune.architectures import architecture_of  # noqa: E402
from attrprune.circuits.components import component_names, select  # noqa: E402
from attrprune.models import load_model  # noqa: E402
from attrprune.pruning import MaskBuilder, lowest_k, model_sparsity, pruned, unit_masks  # noqa: E402
from attrprune.refsets import build_refset, save_refset  # noqa: E402
from attrprune.relevance import METHODS, ScoreOptions, compute_scores  # noqa: E402
from attrprune.relevance.store import save_scores  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORLD_DATA = ROOT / "world" / "data"


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    family = request.param
    model_dir = save_tiny_family(family, tmp_path_factory.mktemp(family) / "model", ROOT / "world/models/world-llama")
    model, tokenizer = load_model(model_dir)
    return family, model_dir, model, tokenizer


def test_refsets_follow_the_bos_policy(family_model):
    family, model_dir, model, tokenizer = family_model
    ioi = build_refset("ioi", model_dir, WORLD_DATA, n=4, seed=0)
    policy = ioi.meta["bos_policy"]
    if family in NO_BOS:
        assert policy["policy"] == "none" and (ioi.input_ids[:, 0] != tokenizer.eos_token_id).all()
    else:
        assert policy == {"policy": "bos", "token": "<|endoftext|>", "id": tokenizer.bos_token_id}
        assert (ioi.input_ids[:, 0] == tokenizer.bos_token_id).all()


def test_every_stage_runs_through_the_family_entry(family_model, tmp_path):
    family, model_dir, model, tokenizer = family_model
    arch = architecture_of(model)
    refset = build_refset("general", model_dir, WORLD_DATA, n=4, seed=0, length=16)
    save_refset(refset, tmp_path / "general.safetensors")
    options = ScoreOptions(batch_size=4, progress=False)
    scores = {m: compute_scores(m, model, refset, options) for m in METHODS if m != "atp"}
    # atp patches in an IOI set's corrupted prompts: heads and the neurons the circuits prune.
    atp = compute_scores("atp", model, build_refset("ioi", model_dir, WORLD_DATA, n=4, seed=0), options)
    assert set(atp.heads) == set(component_names(model, "head"))
    assert set(atp.neurons) == set(component_names(model, "neuron"))
    names = list(arch.linear_names(model))
    for method in (m for m in scores if "weight" in METHODS[m].granularities):
        assert {n: tuple(t.shape) for n, t in scores[method].weights.items()} == {
            n: tuple(arch.weight(model.get_submodule(n)).shape) for n in names
        }

    # Weight masks at every scope: the lowest scores go, in [out, in] orientation whatever the
    # storage layout (GPT-2's Conv1D is [in, out]).
    lrp = scores["lrp"]
    for scope in ("row", "layer", "global", "2:4"):
        masks = MaskBuilder(lrp.weights, scope).masks(0.5)
        with pruned(model, weight_masks=masks):
            assert model_sparsity(model, names)["overall"] == pytest.approx(0.5, abs=1e-3)
            for name in names:
                zero = arch.weight(model.get_submodule(name)) == 0  # [out, in]
                assert torch.equal(zero, ~masks[name]), (scope, name)
                if scope == "row":
                    assert (zero.float().mean(1) == 0.5).all()
        assert model_sparsity(model, names)["overall"] == 0.0  # restored

    # Circuit components and correction neurons: k neurons, one head.
    neurons = select(lrp, component_names(model, "neuron"), "neuron", "lrp")
    keep = lowest_k(neurons, 5)
    heads = select(lrp, component_names(model, "head"), "head", "lrp")
    with pruned(model, neuron_masks=keep, head_masks=unit_masks(heads, 1)):
        zero_rows = sum(int((arch.weight(model.get_submodule(n)) == 0).all(1).sum()) for n in neurons)
        assert zero_rows == 5
        outs = [arch.weight(model.get_submodule(n)) for n in arch.names_with_roles(model, (arch.head_out,))]
        head_dim = outs[0].shape[1] // arch.n_heads(model)
        assert sum(int((w == 0).all(0).sum()) for w in outs) == head_dim  # one head's input columns
    assert component_names(model, "weight", "all") == names

    # Export and reload: the saved model equals the in-memory pruned one.
    from attrprune.compression import export_pruned
    from attrprune.models import weights_sha256

    meta = {"method": "lrp", "refset": "general.safetensors", "model_sha256": weights_sha256(model_dir)}
    save_scores(lrp, tmp_path / "lrp.safetensors", meta)
    export_pruned(model_dir, "lrp", tmp_path / "lrp.safetensors", None, "row", 0.5, tmp_path / "export")
    reloaded, _ = load_model(tmp_path / "export")
    assert type(reloaded) is type(model)
    assert model_sparsity(reloaded, names)["overall"] == pytest.approx(0.5, abs=1e-3)
    ids = refset.input_ids[:2]
    with pruned(model, weight_masks=MaskBuilder(lrp.weights, "row").masks(0.5)), torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)
