# What every stage shares: config validation, the domain tables (attrprune.registry),
# wildcard constraints, model / world helpers and params helpers. No numerics, no torch.
# Helpers that one stage uses are in rules/<stage>_helpers.smk, which rules/<stage>.smk includes
# first. Every path a rule writes is spelled once, in its output; others build it with
# expand(rules.<name>.output...), lazily (input functions), so rules may refer to later ones.

import copy
import os
import re
import sys

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError

# The registry is torch-free and needs no install: import it from this checkout.
if os.path.join(workflow.basedir, "src") not in sys.path:
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from attrprune import cluster, fingerprint, registry  # noqa: E402

SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")


def _schema():
    """The config schema, with the enums of registry names filled in (x-registry)."""
    with open(SCHEMA) as f:
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


def _schema_errors(config, schema):
    """Schema violations, one line each, naming the key and what it allows.

    Snakemake's own message dumps the whole sub-schema and, for a typo, never lists
    the valid keys.
    """
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


def _printable(text):
    """One line whatever a key or value holds: control and line-separator characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _validate(config):
    """Validate once, filling in the schema defaults; on failure, one readable line per error."""
    schema = _schema()
    given = copy.deepcopy(config)  # defaults are filled in as validation goes
    try:
        _filling_defaults(jsonschema.Draft202012Validator)(schema).validate(config)
    except jsonschema.ValidationError:
        errors = _schema_errors(given, schema)
        raise WorkflowError("Invalid config:\n  " + "\n  ".join(errors)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise WorkflowError(
                    f"{self.name}:{key_node.start_mark.line + 1}: key '{key}' is given twice in the same "
                    "section; YAML would keep only the last one: remove or merge the other"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _check_duplicate_keys(paths):
    for path in paths:
        with open(path) as f:
            yaml.load(f, Loader=_UniqueKeyLoader)


_check_duplicate_keys(workflow.configfiles)
_validate(config)

MODELS = list(config["models"])
WORLD_SOURCE_MODELS = [m for m in MODELS if config["models"][m]["source"] == "world"]
WORLD_MODELS = list(config["world"]["models"])


def stage_models(stage):
    """Models a stage runs on: its `models` list (`[]`: none), or every model when null."""
    models = config[stage]["models"]
    return MODELS if models is None else list(models)


def _check_config(config):
    """Cross-key rules that JSON Schema cannot state with a readable message."""
    world_models = config["world"]["models"]
    for alias, spec in config["models"].items():
        key = f"models.{alias}"
        if spec["source"] == "hub":
            extra = sorted({"path", "data"} & spec.keys())
            if extra:
                raise WorkflowError(f"{key}: {extra} only apply to source 'local'")
            for field in ("hf_id", "revision"):
                if field not in spec:
                    raise WorkflowError(
                        f"{key}: source 'hub' needs '{field}' (hf_id like "
                        "'TinyLlama/TinyLlama_v1.1', revision a commit id or tag)"
                    )
            if spec["revision"] in ("main", "master"):
                raise WorkflowError(
                    f"{key}.revision: '{spec['revision']}' is a moving branch; "
                    "pin a commit id (40 hex digits) or a release tag"
                )
        elif spec["source"] == "local":
            extra = sorted({"hf_id", "revision"} & spec.keys())
            if extra:
                raise WorkflowError(f"{key}: {extra} only apply to source 'hub'; a local model is its 'path'")
            if "path" not in spec:
                raise WorkflowError(
                    f"{key}: source 'local' needs 'path', the model folder (config.json, weights, tokenizer)"
                )
            if not os.path.isfile(os.path.join(spec["path"], "config.json")):
                raise WorkflowError(
                    f"{key}.path: no config.json in {spec['path']!r}; give the folder of a "
                    "Hugging Face model (save_pretrained writes config.json, weights, tokenizer)"
                )
        else:
            extra = sorted({"hf_id", "revision", "path", "data"} & spec.keys())
            if extra:
                raise WorkflowError(
                    f"{key}: {extra} do not apply to source 'world'; world models are defined under world.models"
                )
            if alias not in world_models:
                raise WorkflowError(
                    f"{key}: source 'world' needs a world model of the same alias; "
                    f"world.models has {sorted(world_models) or 'none'}"
                )
            if spec["dtype"] in ("bfloat16", "float16"):
                raise WorkflowError(
                    f"{key}.dtype: '{spec['dtype']}' for a world model; world models are "
                    "CPU-sized and run in float32 (their card and tests are float32): "
                    "set float32 or auto (which means float32 for world models)"
                )
            if spec["device_map"] != "none":
                raise WorkflowError(
                    f"{key}.device_map: '{spec['device_map']}' for a world model; world "
                    "models fit on one device (and take no GPU): set none"
                )
    unknown = sorted(set(config["circuits"]["published"]) - set(config["models"]))
    if unknown:
        raise WorkflowError(
            f"circuits.published: unknown model alias(es) {unknown}; defined under models: {sorted(config['models'])}"
        )
    for stage in ("compression", "structured", "circuits", "correction"):
        unknown = sorted(set(config[stage]["models"] or []) - set(config["models"]))
        if unknown:
            raise WorkflowError(
                f"{stage}.models: unknown model alias(es) {unknown}; "
                f"defined under models: {sorted(config['models'])}"
            )
    seqlen = config["compression"]["seqlen"]
    if seqlen and config["compression"]["ppl_source"] != "none":
        for alias in stage_models("compression"):
            world = config["models"][alias]["source"] == "world"
            context = world_models.get(alias, {}).get("context") if world else None
            if context is not None and seqlen > context:
                raise WorkflowError(
                    f"compression.seqlen: {seqlen} exceeds world model {alias}'s context "
                    f"({context} tokens, world.models.{alias}.context); use null (each "
                    f"model's max_position_embeddings) or at most {context}"
                )
    compression = config["compression"]
    for method in compression["methods"]:
        key = f"compression.method_scopes.{method}" if method in compression["method_scopes"] else "compression.scopes"
        for scope in compression["method_scopes"].get(method, compression["scopes"]):
            try:
                registry.check_compression(method, scope)
            except ValueError as error:
                raise WorkflowError(f"{key}: {error}") from None
    if compression["export"]:
        export = compression["export"]
        try:
            registry.check_compression(export["method"], export["scope"])
        except ValueError as error:
            raise WorkflowError(f"compression.export: {error}") from None
        n_of_m = registry.parse_scope(registry.split_allocation(export["scope"])[0])
        if isinstance(n_of_m, tuple) and abs(export["sparsity"] - n_of_m[0] / n_of_m[1]) > 1e-9:
            raise WorkflowError(
                f"compression.export.sparsity: {export['sparsity']} with scope '{export['scope']}', which "
                f"prunes exactly {n_of_m[0] / n_of_m[1]:g}; set sparsity {n_of_m[0] / n_of_m[1]:g}"
            )
    for alias, spec in world_models.items():
        if spec["hidden_size"] % spec["heads"]:
            raise WorkflowError(
                f"world.models.{alias}: hidden_size ({spec['hidden_size']}) must be "
                f"a multiple of heads ({spec['heads']})"
            )


_check_config(config)

# Compute jobs never touch the network (cluster nodes are usually offline): each compute rule's
# command starts with params.offline = OFFLINE, so the HF libraries read only the local caches.
# Per command, not in Snakemake's environment: the log shows it and a copied command reruns the
# same way. Downloads set the three to 0; to let a compute job online, rerun it by hand without.
OFFLINE = "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1"


def _alternatives(names):
    # re.escape: an alias like "llama-3.1-8b" must not turn "." into "any character".
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Every method some stage prunes by (compression's by their compression names: wanda_onepass,
# sparsegpt, ...) and every scoring method behind them: each one's scores are built on demand.
ALL_METHODS = sorted(
    set(config["scores"]["methods"])
    | set(config["compression"]["methods"])
    | {registry.compression_methods()[m] for m in config["compression"]["methods"]} - {None}
    | {registry.STRUCTURED_METHODS[m] for m in config["structured"]["methods"]} - {None}
    | set(config["circuits"]["methods"])
    | set(config["correction"]["methods"])
    | ({"aura"} if config["correction"]["aura"] else set())
)


wildcard_constraints:
    model=_alternatives(MODELS),
    world_model=_alternatives(WORLD_MODELS),
    kind=_alternatives(registry.REFSET_KINDS),
    seed=r"\d+",
    method=_alternatives(ALL_METHODS),
    granularity=_alternatives(registry.GRANULARITIES),
    task="ioi",
    behaviour=_alternatives(registry.BEHAVIOURS),
    refset=rf"({_alternatives(registry.REFSET_KINDS)})-s\d+",
    # N:M scopes are spelled NofM in paths ("2:4" -> "2of4"); OWL allocation as row_owl, layer_owl.
    scope=rf"({_alternatives(registry.RANKED_SCOPES)})({registry.OWL})?|\d+of\d+",
    sparsity=r"0\.\d{2}",


def _repo_path(rel):
    """Path of a committed asset, so that runs with --directory elsewhere still find it: relative
    to the working directory when below it (readable commands in logs), else absolute."""
    path = os.path.abspath(os.path.join(workflow.basedir, rel))
    short = os.path.relpath(path)
    return path if short.startswith("..") else short


# The committed world: source files that no rule writes (see rule world_publish in world.smk).
WORLD_DIR = _repo_path("world")


def committed_world_file(*parts):
    path = os.path.join(WORLD_DIR, *parts)
    if not os.path.exists(path):
        raise WorkflowError(
            f"{path} is missing: it is part of the committed world. Restore it with "
            "`git checkout -- world/`, or regenerate the world with `snakemake world` "
            "(run in the repository root; this retrains every world model)"
        )
    return path


def refset_names(kind):
    return [f"{kind}-s{seed}" for seed in config["refsets"][kind]["seeds"]]


def is_world(model):
    """Whether the model is evaluated on the world's data (its text, prompts, lm-eval tasks and
    toxicity scorer): the world models, and local models with `data: world`."""
    spec = config["models"][model]
    return spec["source"] == "world" or spec.get("data") == "world"


def get_model_weights(wildcards):
    """The file that stands for a model's checkpoint (its folder is this file's folder): the
    committed weights of a world model, the config.json of a local model, the download record
    (written last by rule download_model) of a hub model."""
    spec = config["models"][wildcards.model]
    if spec["source"] == "world":
        return committed_world_file("models", wildcards.model, "model.safetensors")
    if spec["source"] == "local":  # checked to exist by _check_config
        return os.path.join(spec["path"], "config.json")
    return expand(rules.download_model.output[0], model=wildcards.model)[0]


def get_world_data(wildcards):
    """The world's data manifest for world-data models (their tasks read it); else nothing."""
    return committed_world_file("data", "manifest.json") if is_world(wildcards.model) else []


def get_data_dir(wildcards, input):
    """--data-dir: the folder of input.data (the world's manifest) for world-data models, else none."""
    return os.path.dirname(input.data) if is_world(wildcards.model) else "none"


def get_gpu_count(wildcards):
    """GPUs a model's job holds: models.<alias>.gpus, else none for the world models (CPU-sized,
    so they do not queue on the `gpu=1` limit of the workstation profile) and one otherwise."""
    spec = config["models"][wildcards.model]
    return spec.get("gpus", 0 if spec["source"] == "world" else 1)


# The cost model's estimates per preset model, for the jobs' cluster sizes.
CLUSTER_COSTS = cluster.load_estimates(os.path.join(workflow.basedir, "bench", "cost_estimates.json"))


def cluster_size(rule, key):
    """resources mem_mb / runtime (`key`) of a job of `rule`, from its model: a world model's job
    asks for little, a hub model's for the cost model's estimate x its margin (attrprune.cluster).
    An executor that submits jobs (SLURM) requests them; a local run only counts them against
    `--resources mem_mb=...` when that is given."""

    def size(wildcards):
        refset = wildcards.get("refset")
        kind = refset.rsplit("-s", 1)[0] if refset else None
        spec = config["models"][wildcards.model]
        return cluster.job_size(rule, spec, CLUSTER_COSTS, method=wildcards.get("method"), kind=kind)[key]

    return size


def get_dtype(wildcards):
    """--dtype of the job's model (models.<alias>.dtype). World models always run in float32:
    `auto` would pick bfloat16 for them on a GPU machine and change their committed numbers."""
    spec = config["models"][wildcards.model]
    return "float32" if spec["source"] == "world" else spec["dtype"]


def get_device_map(wildcards):
    """--device-map of the job's model (models.<alias>.device_map)."""
    return config["models"][wildcards.model]["device_map"]


def or_none(value):
    """An optional CLI value: `none` (the CLI's "not given") for null."""
    return "none" if value is None else value


def code_fingerprint(stage):
    """Params function: the fingerprint of the package code that a job of `stage` (its command
    line name) runs, with its {method} if it has one (attrprune.fingerprint). As a param, a code
    change reruns exactly the jobs that run the changed code (Snakemake's params trigger), and
    what reads their outputs. Downloads have none: a pinned revision defines what they fetch."""

    def get(wildcards):
        try:
            return fingerprint.job_fingerprint(stage, wildcards.get("method"))
        except ValueError as error:  # a module that does not parse
            raise WorkflowError(str(error)) from None

    return get


def input_dir(name):
    """Params function: the folder of the named input file."""

    def get(wildcards, input):
        return os.path.dirname(input[name])

    return get


def output_dir(name):
    """Params function: the folder of the named output (or of all of a list-valued output)."""

    def get(wildcards, output):
        files = output[name]
        folders = {os.path.dirname(f) for f in ([files] if isinstance(files, str) else files)}
        if len(folders) != 1:
            raise WorkflowError(f"output {name!r} lies in {len(folders)} folders, not one: {sorted(folders)}")
        return folders.pop()

    return get


def joined_input(name=None):
    """Params function: the (named) input files, comma-separated, as the CLI takes them."""

    def get(wildcards, input):
        return ",".join(input if name is None else input[name])

    return get
