"""The whole workflow offline on one tiny random-init model of every supported family.

Each model is a local Hugging Face folder (`source: local`) with the world's tokenizer (no BOS
for the Qwen stand-ins, as Qwen's tokenizers have none), evaluated on the world's data
(`data: world`): reference sets, lrp scores, compression with lm-eval and token perplexity,
export, IOI head circuits, toxicity correction of MLP neurons, and every table.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from test_workflow import ROOT, snakemake  # noqa: E402
from tiny_models import FAMILIES, NO_BOS, save_tiny_family  # noqa: E402


def families_config(models_dir: Path) -> dict:
    models = {}
    for family in FAMILIES:
        path = save_tiny_family(family, models_dir / family, ROOT / "world" / "models" / "world-llama")
        models[f"tiny-{family}"] = {
            "source": "local",
            "path": str(path),
            "data": "world",
            "gpus": 0,
            "dtype": "float32",
        }
    return {
        "models": models,
        "refsets": {
            "general": {"n": 4, "seeds": [0]},
            "ioi": {"n": 4, "seeds": [0]},
            "toxic": {"n": 4, "new_tokens": 8, "seeds": [0]},
        },
        "scores": {"methods": [], "refsets": [], "batch_size": 4},
        "compression": {
            "methods": ["lrp"],
            "sparsities": [0.0, 0.5],
            "tasks": ["world_ppl"],
            "limit": 4,
            "export": {"method": "lrp", "scope": "row", "sparsity": 0.5},
        },
        # Heads: the family's head layout; neurons are pruned by correction below.
        "circuits": {
            "methods": ["lrp"],
            "granularities": ["head"],
            "sparsities": [0.0, 0.5],
            "limit": 8,
            "ablation": None,
        },
        "correction": {
            "methods": ["lrp"],
            "behaviours": ["toxicity"],
            "granularities": ["neuron"],
            "ks": {"neuron": [5]},
            "n_prompts": 4,
            "new_tokens": {"toxicity": 8},
            "sampling": {"n": {"toxicity": 0}},
            "ppl_limit": 4,
        },
    }


@pytest.mark.slow
def test_every_family_runs_the_whole_workflow(tmp_path):
    configfile = tmp_path / "families.yaml"
    configfile.write_text(yaml.safe_dump(families_config(tmp_path / "models")))
    work = tmp_path / "work"
    work.mkdir()
    r = snakemake(work, configfile, "--cores", "2", timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]

    from attrprune.relevance.store import load_scores

    results = work / "results"
    for family in FAMILIES:
        model = f"tiny-{family}"
        scores, meta = load_scores(results / model / "scores" / "lrp" / "ioi-s0.safetensors")
        assert meta["method"] == "lrp" and scores.weights and scores.neurons and scores.heads
        metrics = json.loads(
            (
                results / model / "compression" / "lrp" / "row" / "general-s0" / "sparsity_0.50" / "metrics.json"
            ).read_text()
        )
        assert metrics["sparsity_measured"] == pytest.approx(0.5, abs=1e-3)
        assert {r["task"] for r in metrics["metrics"]} == {"world_ppl", "world_tokens"}
        export = results / model / "compression" / "export" / "lrp_row_general-s0_sparsity_0.50"
        assert (
            json.loads((export / "config.json").read_text())["model_type"]
            == json.loads((tmp_path / "models" / family / "config.json").read_text())["model_type"]
        )
        assert (results / model / "circuits" / "ioi" / "lrp" / "head" / "global" / "curve.json").exists()
        assert (results / model / "correction" / "toxicity" / "lrp" / "neuron" / "curve.json").exists()
    from safetensors import safe_open

    for family in FAMILIES:
        with safe_open(str(work / "resources" / "refsets" / f"tiny-{family}" / "ioi-s0.safetensors"), "pt") as f:
            policy = json.loads(f.metadata()["refset"])["bos_policy"]["policy"]
        assert policy == ("none" if family in NO_BOS else "bos")
    tables = (results / "tables" / "compression.csv").read_text()
    assert all(f"tiny-{family}" in tables for family in FAMILIES)
