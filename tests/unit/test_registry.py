"""The registry is the one list of names: the schema's enums, the CLI's choices and the scoring
functions all agree with it, and it stays importable without torch (the workflow imports it)."""

import argparse
import subprocess
import sys

import pytest
import yaml

from attrprune import registry
from attrprune.cli import build_parser


@pytest.fixture(scope="module")
def schema(repo_root):
    raw = yaml.safe_load((repo_root / "schemas" / "config.schema.yaml").read_text())
    return registry.fill_schema_enums(raw)["properties"]


def _node(schema, *keys):
    node = schema
    for key in keys:
        node = node["properties"][key] if "properties" in node else node[key]
    return node.get("items", node)


def _enum(schema, *keys):
    return _node(schema, *keys)["enum"]


def test_schema_enums_of_registered_names_come_from_the_registry(schema):
    # Spelled nowhere in the schema: each such key names its registry table (x-registry).
    for keys in [
        ("scores", "methods"),
        ("scores", "refsets"),
        ("compression", "methods"),
        ("compression", "export", "method"),
        ("circuits", "methods"),
        ("circuits", "granularities"),
        ("correction", "methods"),
        ("correction", "behaviours"),
        ("correction", "granularities"),
    ]:
        assert "x-registry" in _node(schema, *keys), keys
    assert _enum(schema, "scores", "methods") == list(registry.METHODS)
    assert _enum(schema, "scores", "refsets") == list(registry.REFSET_KINDS)
    for stage in ("circuits", "correction"):
        assert _enum(schema, stage, "methods") == registry.methods_for(stage), stage
    assert _enum(schema, "compression", "methods") == list(registry.compression_methods())
    assert _enum(schema, "compression", "export", "method") == list(registry.compression_methods())
    assert _node(schema, "compression", "method_scopes")["propertyNames"]["enum"] == list(
        registry.compression_methods()
    )
    assert _enum(schema, "circuits", "granularities") == list(registry.STAGE_GRANULARITIES["circuits"])
    assert _enum(schema, "correction", "granularities") == list(registry.STAGE_GRANULARITIES["correction"])
    assert _enum(schema, "correction", "behaviours") == list(registry.BEHAVIOURS)
    assert set(_enum(schema, "circuits", "weight_scopes")) <= set(registry.CIRCUIT_SCOPES["weight"])
    with pytest.raises(ValueError, match="unknown registry table 'method'"):
        registry.fill_schema_enums({"x-registry": "method"})


def _choices(stage, flag):
    sub = next(a for a in build_parser()._actions if a.dest == "stage").choices[stage]
    return next(a for a in sub._actions if flag in a.option_strings).choices


def test_cli_choices_are_the_registry():
    assert _choices("scores", "--method") == list(registry.METHODS)
    # compress also takes `none` (the dense model): its parser checks the registry's names
    from attrprune.stages.compression import compression_method

    assert [compression_method(m) for m in registry.compression_methods()] == list(registry.compression_methods())
    with pytest.raises(
        argparse.ArgumentTypeError, match="choose from none, " + ", ".join(registry.compression_methods())
    ):
        compression_method("snip")
    assert _choices("export-pruned", "--method") == list(registry.compression_methods())
    assert _choices("refset", "--kind") == list(registry.REFSET_KINDS)
    assert _choices("circuit", "--granularity") == list(registry.GRANULARITIES)
    assert _choices("correction", "--behaviour") == list(registry.BEHAVIOURS)


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_has_its_function(name):
    fn = registry.score_function(name)
    assert callable(fn) and fn.__module__ == registry.METHODS[name].function.split(":")[0]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown scoring method 'lpr'; valid: lrp, gradient"):
        registry.method("lpr")
    with pytest.raises(ValueError, match="unknown pruning scope '4:2'"):
        registry.parse_scope("4:2")


def test_compression_names_pruners_and_scores_without_clashes():
    table = registry.compression_methods()
    # wanda is Wanda's sequential procedure; its one-pass scores keep an explicit name.
    assert table["wanda"] is None and table["wanda_onepass"] == "wanda"
    assert table["sparsegpt"] is None and table["ria"] is None
    assert table["lrp"] == "lrp" and table["magnitude"] == "magnitude"  # magnitude: scores, any scope
    assert "activation" not in table  # structured only
    for name, scores in table.items():
        if scores is None:
            assert registry.PRUNERS[name].calibrated
        else:
            assert "compression" in registry.METHODS[scores].stages


@pytest.mark.parametrize(
    "method, scope, message",
    [
        ("sparsegpt", "global", "sparsegpt prunes block by block: scope 'global'"),
        ("wanda", "global", "wanda prunes block by block"),
        ("lrp", "2:4_owl", "OWL allocation works with row, layer"),
        ("lrp", "global_owl", "OWL allocation works with row, layer"),
        ("lrp", "4:2", "unknown pruning scope '4:2'"),
        ("sparse_gpt", "layer", "unknown compression method 'sparse_gpt'; valid: lrp, gradient"),
    ],
)
def test_compression_refusals(method, scope, message):
    with pytest.raises(ValueError, match=message):
        registry.check_compression(method, scope)


def test_compression_accepts():
    for method, scope in [
        ("sparsegpt", "layer"),
        ("sparsegpt", "2:4"),
        ("ria", "row_owl"),
        ("lrp", "global"),
        ("lrp", "layer_owl"),
    ]:
        registry.check_compression(method, scope)
    assert registry.split_allocation("row_owl") == ("row", "owl")
    assert registry.split_allocation("2:4") == ("2:4", "uniform")


def test_every_pruner_has_its_function_and_options():
    for name, entry in registry.PRUNERS.items():
        fn, options = registry.pruner_function(name)
        assert callable(fn) and fn.__name__ == entry.function.split(":")[1]
        assert options().__class__.__name__ == entry.options.split(":")[1]


def test_stage_granularities_respect_what_a_method_scores():
    for name, m in registry.METHODS.items():
        for stage, grans in m.stages.items():
            assert set(grans) <= set(m.granularities) & set(registry.STAGE_GRANULARITIES[stage]), (name, stage)


def test_registry_imports_no_torch():
    code = "import sys, attrprune.registry; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_detoxify_choices_match_the_schema(schema):
    from attrprune.stages.correction import DETOXIFY_MODEL_TYPES, SCORER_DEVICES

    assert _enum(schema, "correction", "scorer") == list(DETOXIFY_MODEL_TYPES)
    assert _enum(schema, "correction", "scorer_device") == list(SCORER_DEVICES)
