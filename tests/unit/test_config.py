"""attrprune.config: the workflow's config checks as the Snakefile runs them (schema with its
defaults filled in, keys given twice, cross-key rules), without Snakemake."""

import copy
from pathlib import Path

import pytest
import yaml

from attrprune.config import ConfigError, check, check_cross_keys, check_duplicate_keys, load_schema, validate

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def shipped():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, attrprune.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_minimal_config_gets_every_default_and_passes():
    config = {"models": {"world-llama": {"source": "world"}}, "world": {"models": {"world-llama": {"family": "llama"}}}}
    check(config, SCHEMA)
    default = shipped()
    assert config["world"]["models"]["world-llama"] == default["world"]["models"]["world-llama"]
    schema = load_schema(SCHEMA)["properties"]
    assert config["compression"]["ppl_windows"] == schema["compression"]["properties"]["ppl_windows"]["default"]
    assert set(config) == set(schema)  # every section filled in


def test_a_typo_lists_the_allowed_keys():
    config = shipped()
    config["compression"]["sparsitys"] = [0.5]
    with pytest.raises(ConfigError) as err:
        validate(config, load_schema(SCHEMA))
    lines = str(err.value).splitlines()
    assert lines[0] == "Invalid config:"
    assert lines[1].startswith("  compression: unknown key 'sparsitys'; allowed: ") and "sparsities" in lines[1]


def test_registry_names_are_the_enums():
    config = shipped()
    config["scores"]["methods"] = ["lrp", "lrpp"]
    with pytest.raises(ConfigError, match=r"scores\.methods\.1: 'lrpp' is not one of \[.*'lrp'"):
        validate(config, load_schema(SCHEMA))


def test_every_error_is_reported_on_its_own_line_with_control_characters_escaped():
    config = shipped()
    config["scores"]["storage"] = "a\nb"
    config["world"]["seed"] = "x"
    with pytest.raises(ConfigError) as err:
        validate(config, load_schema(SCHEMA))
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and lines[1].startswith("  scores.storage: 'a\\nb'") and lines[2].startswith("  world.seed")


def test_a_key_given_twice_names_file_line_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scores:\n  storage: auto\n  storage: float16\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:3: key 'storage' is given twice"):
        check_duplicate_keys([path])
    path.write_text("scores:\n  storage: auto\ncompression:\n  storage: x\n")  # another section: fine
    check_duplicate_keys([path])


def _checked(config):
    validate(config, load_schema(SCHEMA))
    return config


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["models"].update(m={"source": "hub", "hf_id": "a/b", "revision": "main"}), "models.m.revision"),
        (lambda c: c["models"].update(m={"source": "hub", "hf_id": "a/b"}), "source 'hub' needs 'revision'"),
        (lambda c: c["models"].update(m={"source": "local", "path": "/nonexistent"}), "no config.json in"),
        (lambda c: c["models"].update(m={"source": "world"}), "world.models has"),
        (lambda c: c["models"]["world-llama"].update(dtype="float16"), "models.world-llama.dtype"),
        (lambda c: c["circuits"].update(models=["nope"]), "circuits.models: unknown model alias(es) ['nope']"),
        (lambda c: c["compression"].update(seqlen=10**6, ppl_source="wikitext2"), "compression.seqlen: 1000000"),
        (lambda c: c["world"]["models"]["world-llama"].update(hidden_size=100, heads=8), "multiple of heads"),
    ],
)
def test_cross_key_rules_name_the_key(mutate, expected):
    config = shipped()
    mutate(config)
    with pytest.raises(ConfigError) as err:
        check_cross_keys(_checked(config))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_configs_pass_unchanged_but_for_defaults():
    for rel in ("config.yaml", "tests/e2e/config.yaml"):
        config = yaml.safe_load((ROOT / rel).read_text())
        given = copy.deepcopy(config)
        check(config, SCHEMA, [ROOT / rel])
        assert all(config[key] == value or isinstance(value, dict) for key, value in given.items())
