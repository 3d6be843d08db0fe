"""The workflow's config checks: the JSON Schema (with its defaults filled in), keys given twice,
and the cross-key rules that a schema cannot state readably. Torch-free.

The package never reads config.yaml by itself: the Snakefile hands its merged `config` dict (and
the config files it was read from) to `check`, which fills in the schema's defaults in place and
raises `ConfigError` naming the key and the fix. From Python:

    from attrprune.config import check
    check(config, "schemas/config.schema.yaml", ["config.yaml"])
"""

from __future__ import annotations

import copy
import os

import jsonschema
import yaml

from attrprune import registry


class ConfigError(ValueError):
    """A config the workflow refuses: the message names the key and what it allows."""


def load_schema(path) -> dict:
    """The config schema, with the enums of registry names filled in (x-registry)."""
    with open(path) as f:
        return registry.fill_schema_enums(yaml.safe_load(f))


def _filling_defaults(validator_class):
    """The validator class that also fills in each missing key's default (jsonschema's recipe, as
    snakemake.utils.validate does it), so that validating is the only pass over the config."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, sub in props.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Schema violations, one line each, naming the key and what it allows (a typo lists the
    valid keys, where a plain validator would dump the whole sub-schema)."""
    lines = []
    for err in jsonschema.Draft202012Validator(schema).iter_errors(config):
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties" and "properties" in err.schema:
            allowed = sorted(err.schema["properties"])
            for extra in sorted(set(err.instance) - set(allowed)):
                lines.append(f"{key}: unknown key '{extra}'; allowed: {', '.join(allowed)}")
        else:
            lines.append(f"{key}: {err.message}")
    return sorted(_printable(line) for line in lines)


def _printable(text: str) -> str:
    """One line whatever a key or value holds: control and line-separator characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def validate(config: dict, schema: dict) -> None:
    """Validate once, filling in the schema defaults; on failure, one readable line per error."""
    given = copy.deepcopy(config)  # defaults are filled in as validation goes
    try:
        _filling_defaults(jsonschema.Draft202012Validator)(schema).validate(config)
    except jsonschema.ValidationError:
        raise ConfigError("Invalid config:\n  " + "\n  ".join(schema_errors(given, schema))) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{self.name}:{key_node.start_mark.line + 1}: key '{key}' is given twice in the same "
                    "section; YAML would keep only the last one: remove or merge the other"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_duplicate_keys(paths) -> None:
    """Refuse a config file that gives a key twice in one section."""
    for path in paths:
        with open(path) as f:
            yaml.load(f, Loader=_UniqueKeyLoader)


def stage_models(config: dict, stage: str) -> list[str]:
    """Models a stage runs on: its `models` list (`[]`: none), or every model when null."""
    models = config[stage]["models"]
    return list(config["models"]) if models is None else list(models)


def _check_hub(key: str, spec: dict) -> None:
    extra = sorted({"path", "data"} & spec.keys())
    if extra:
        raise ConfigError(f"{key}: {extra} only apply to source 'local'")
    for field in ("hf_id", "revision"):
        if field not in spec:
            raise ConfigError(
                f"{key}: source 'hub' needs '{field}' (hf_id like "
                "'TinyLlama/TinyLlama_v1.1', revision a commit id or tag)"
            )
    if spec["revision"] in ("main", "master"):
        raise ConfigError(
            f"{key}.revision: '{spec['revision']}' is a moving branch; pin a commit id (40 hex digits) or a release tag"
        )


def _check_local(key: str, spec: dict) -> None:
    extra = sorted({"hf_id", "revision"} & spec.keys())
    if extra:
        raise ConfigError(f"{key}: {extra} only apply to source 'hub'; a local model is its 'path'")
    if "path" not in spec:
        raise ConfigError(f"{key}: source 'local' needs 'path', the model folder (config.json, weights, tokenizer)")
    if not os.path.isfile(os.path.join(spec["path"], "config.json")):
        raise ConfigError(
            f"{key}.path: no config.json in {spec['path']!r}; give the folder of a "
            "Hugging Face model (save_pretrained writes config.json, weights, tokenizer)"
        )


def _check_world(key: str, alias: str, spec: dict, world_models: dict) -> None:
    extra = sorted({"hf_id", "revision", "path", "data"} & spec.keys())
    if extra:
        raise ConfigError(f"{key}: {extra} do not apply to source 'world'; world models are defined under world.models")
    if alias not in world_models:
        raise ConfigError(
            f"{key}: source 'world' needs a world model of the same alias; "
            f"world.models has {sorted(world_models) or 'none'}"
        )
    if spec["dtype"] in ("bfloat16", "float16"):
        raise ConfigError(
            f"{key}.dtype: '{spec['dtype']}' for a world model; world models are "
            "CPU-sized and run in float32 (their card and tests are float32): "
            "set float32 or auto (which means float32 for world models)"
        )
    if spec["device_map"] != "none":
        raise ConfigError(
            f"{key}.device_map: '{spec['device_map']}' for a world model; world "
            "models fit on one device (and take no GPU): set none"
        )


def _check_aliases(config: dict) -> None:
    defined = sorted(config["models"])
    unknown = sorted(set(config["circuits"]["published"]) - set(defined))
    if unknown:
        raise ConfigError(f"circuits.published: unknown model alias(es) {unknown}; defined under models: {defined}")
    for stage in ("compression", "structured", "circuits", "correction"):
        unknown = sorted(set(config[stage]["models"] or []) - set(defined))
        if unknown:
            raise ConfigError(f"{stage}.models: unknown model alias(es) {unknown}; defined under models: {defined}")


def _check_compression(config: dict) -> None:
    compression, world_models = config["compression"], config["world"]["models"]
    seqlen = compression["seqlen"]
    if seqlen and compression["ppl_source"] != "none":
        for alias in stage_models(config, "compression"):
            world = config["models"][alias]["source"] == "world"
            context = world_models.get(alias, {}).get("context") if world else None
            if context is not None and seqlen > context:
                raise ConfigError(
                    f"compression.seqlen: {seqlen} exceeds world model {alias}'s context "
                    f"({context} tokens, world.models.{alias}.context); use null (each "
                    f"model's max_position_embeddings) or at most {context}"
                )
    for method in compression["methods"]:
        key = f"compression.method_scopes.{method}" if method in compression["method_scopes"] else "compression.scopes"
        for scope in compression["method_scopes"].get(method, compression["scopes"]):
            try:
                registry.check_compression(method, scope)
            except ValueError as error:
                raise ConfigError(f"{key}: {error}") from None
    export = compression["export"]
    if export:
        try:
            registry.check_compression(export["method"], export["scope"])
        except ValueError as error:
            raise ConfigError(f"compression.export: {error}") from None
        n_of_m = registry.parse_scope(registry.split_allocation(export["scope"])[0])
        if isinstance(n_of_m, tuple) and abs(export["sparsity"] - n_of_m[0] / n_of_m[1]) > 1e-9:
            raise ConfigError(
                f"compression.export.sparsity: {export['sparsity']} with scope '{export['scope']}', which "
                f"prunes exactly {n_of_m[0] / n_of_m[1]:g}; set sparsity {n_of_m[0] / n_of_m[1]:g}"
            )


def check_cross_keys(config: dict) -> None:
    """Cross-key rules that JSON Schema cannot state with a readable message (on a validated config)."""
    world_models = config["world"]["models"]
    for alias, spec in config["models"].items():
        key = f"models.{alias}"
        if spec["source"] == "hub":
            _check_hub(key, spec)
        elif spec["source"] == "local":
            _check_local(key, spec)
        else:
            _check_world(key, alias, spec, world_models)
    _check_aliases(config)
    _check_compression(config)
    for alias, spec in world_models.items():
        if spec["hidden_size"] % spec["heads"]:
            raise ConfigError(
                f"world.models.{alias}: hidden_size ({spec['hidden_size']}) must be a multiple of heads ({spec['heads']})"
            )


def check(config: dict, schema_path, config_files=()) -> dict:
    """Every check, in order: keys given twice in the files, the schema (filling in its defaults
    in `config`, in place), the cross-key rules. Returns `config`; raises ConfigError."""
    check_duplicate_keys(config_files)
    validate(config, load_schema(schema_path))
    check_cross_keys(config)
    return config
