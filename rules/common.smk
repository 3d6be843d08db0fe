# Everything Pythonic that the DAG needs: config validation, wildcard constraints and
# the get_* functions that rules use for input and params. No numerics, no torch.

import json
import os
import re
import shlex

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def _schema_errors(config):
    """Schema violations, one line each, naming the key and what it allows.

    Snakemake's own message dumps the whole sub-schema and, for a typo, never lists
    the valid keys.
    """
    with open(os.path.join(workflow.basedir, "schemas", "config.schema.yaml")) as f:
        schema = yaml.safe_load(f)
    lines = []
    for err in jsonschema.Draft202012Validator(schema).iter_errors(config):
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties" and "properties" in err.schema:
            allowed = sorted(err.schema["properties"])
            for extra in sorted(set(err.instance) - set(allowed)):
                lines.append(
                    f"{key}: unknown key '{extra}'; allowed: {', '.join(allowed)}"
                )
        else:
            lines.append(f"{key}: {err.message}")
    return sorted(lines)


_errors = _schema_errors(config)
if _errors:
    raise WorkflowError("Invalid config:\n  " + "\n  ".join(_errors))
# Passes now; called for its side effect of filling in the schema defaults.
validate(config, "../schemas/config.schema.yaml")


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
                raise WorkflowError(
                    f"{key}: {extra} only apply to source 'hub'; a local model is its 'path'"
                )
            if "path" not in spec:
                raise WorkflowError(
                    f"{key}: source 'local' needs 'path', the model folder (config.json, "
                    "weights, tokenizer)"
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
                    f"{key}: {extra} do not apply to source 'world'; world "
                    "models are defined under world.models"
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
    for stage in ("compression", "circuits", "correction"):
        unknown = sorted(set(config[stage]["models"] or []) - set(config["models"]))
        if unknown:
            raise WorkflowError(
                f"{stage}.models: unknown model alias(es) {unknown}; "
                f"defined under models: {sorted(config['models'])}"
            )
    seqlen = config["compression"]["seqlen"]
    if seqlen and config["compression"]["ppl_source"] != "none":
        for alias in config["compression"]["models"] or config["models"]:
            world = config["models"][alias]["source"] == "world"
            context = world_models.get(alias, {}).get("context") if world else None
            if context is not None and seqlen > context:
                raise WorkflowError(
                    f"compression.seqlen: {seqlen} exceeds world model {alias}'s context "
                    f"({context} tokens, world.models.{alias}.context); use null (each "
                    f"model's max_position_embeddings) or at most {context}"
                )
    for alias, spec in world_models.items():
        if spec["hidden_size"] % spec["heads"]:
            raise WorkflowError(
                f"world.models.{alias}: hidden_size ({spec['hidden_size']}) must be "
                f"a multiple of heads ({spec['heads']})"
            )


_check_config(config)

# Compute jobs never touch the network (cluster nodes are usually offline): the hub and
# datasets libraries read these from the environment that Snakemake (and the SLURM
# executor, which submits with --export=ALL) passes on. Download rules set them back to 0.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def _alternatives(names):
    # re.escape: an alias like "llama-3.1-8b" must not turn "." into "any character".
    return "|".join(re.escape(n) for n in names) or "(?!)"


MODELS = list(config["models"])
WORLD_SOURCE_MODELS = [m for m in MODELS if config["models"][m]["source"] == "world"]
WORLD_MODELS = list(config["world"]["models"])


def stage_models(stage):
    """Models a stage runs on: its own `models` list, or every model."""
    return config[stage]["models"] or MODELS


def _repo_path(rel):
    """Path of a committed asset, so that runs with --directory elsewhere still find it.

    Relative to the working directory when the asset lies below it (readable shell
    commands in logs), absolute otherwise.
    """
    path = os.path.abspath(os.path.join(workflow.basedir, rel))
    short = os.path.relpath(path)
    return path if short.startswith("..") else short


# The committed world. Not an output of any rule: see rule `world` in world.smk.
WORLD_DIR = _repo_path("world")
WORLD_DATA_DIR = os.path.join(WORLD_DIR, "data")


REFSET_KINDS = ["general", "ioi", "toxic", "repetition"]
# The one spelling of a sparsity in paths: two decimals.
SPARSITIES = [f"{s:.2f}" for s in config["compression"]["sparsities"]]
SCOPES = [s.replace(":", "of") for s in config["compression"]["scopes"]]  # "2:4" -> "2of4"
SCORE_METHODS = config["scores"]["methods"]
# Every method some stage prunes by: each one's scores are built on demand.
ALL_METHODS = sorted(
    set(SCORE_METHODS)
    | set(config["compression"]["methods"])
    | set(config["circuits"]["methods"])
    | set(config["correction"]["methods"])
)


wildcard_constraints:
    model=_alternatives(MODELS),
    world_model=_alternatives(WORLD_MODELS),
    kind=_alternatives(REFSET_KINDS),
    seed=r"\d+",
    method=_alternatives(ALL_METHODS),
    granularity="weight|neuron|head",
    task="ioi",
    behaviour="toxicity|repetition",
    refset=rf"({_alternatives(REFSET_KINDS)})-s\d+",
    scope=r"row|layer|global|\d+of\d+",
    sparsity=r"0\.\d{2}",


def model_dir(model):
    """Directory holding the HF-format checkpoint of a model alias."""
    spec = config["models"][model]
    if spec["source"] == "world":
        return os.path.join(WORLD_DIR, "models", model)
    if spec["source"] == "local":
        return spec["path"]
    return f"resources/models/{model}"


def _committed_world_file(path):
    if not os.path.exists(path):
        raise WorkflowError(
            f"{path} is missing: it is part of the committed world. Restore it with "
            "`git checkout -- world/`, or regenerate the world with `snakemake world` "
            "(run in the repository root; this retrains every world model)"
        )
    return path


def world_cards():
    return expand("results/world/{model}/card.json", model=WORLD_SOURCE_MODELS)


def refset_names(kind):
    return [f"{kind}-s{seed}" for seed in config["refsets"][kind]["seeds"]]


def score_files():
    return expand(
        "results/{model}/scores/{method}/{refset}.safetensors",
        model=MODELS,
        method=SCORE_METHODS,
        refset=[r for kind in config["scores"]["refsets"] for r in refset_names(kind)],
    )


# magnitude and random do not read the reference set: one reference seed is enough for them.
SEEDLESS_METHODS = {"magnitude", "random"}


def compression_runs():
    """(model, method, scope, refset) of every compression job."""
    general = refset_names("general")
    return [
        (model, method, scope, refset)
        for model in stage_models("compression")
        for method in config["compression"]["methods"]
        for scope in SCOPES
        for refset in (general[:1] if method in SEEDLESS_METHODS else general)
    ]


def compression_template(wildcards):
    return (
        f"results/{wildcards.model}/compression/{wildcards.method}/{wildcards.scope}/"
        f"{wildcards.refset}/sparsity_{{sparsity}}/metrics.json"
    )


def compression_outputs():
    return expand(
        "results/{{model}}/compression/{{method}}/{{scope}}/{{refset}}/sparsity_{s}/metrics.json",
        s=SPARSITIES,
    )


def get_compression_metrics(wildcards):
    return [
        f"results/{model}/compression/{method}/{scope}/{refset}/sparsity_{s}/metrics.json"
        for model, method, scope, refset in compression_runs()
        for s in SPARSITIES
    ]


def get_scores_seed(wildcards):
    kind, seed = wildcards.refset.rsplit("-s", 1)
    return 1000 * REFSET_KINDS.index(kind) + int(seed)


def get_scope_arg(wildcards):
    return wildcards.scope.replace("of", ":")


def get_limit_flag(wildcards):
    limit = config["compression"]["limit"]
    return f"--limit {limit}" if limit else ""


def get_final_output():
    targets = world_cards()
    if WORLD_SOURCE_MODELS:
        targets.append("results/tables/world_card.md")
    targets += score_files()
    if compression_runs():
        targets += ["results/tables/compression.csv", "results/tables/compression.md"]
    if circuit_runs():
        targets += ["results/tables/circuits.csv", "results/tables/circuits.md"]
    if correction_runs():
        targets += ["results/tables/correction.csv", "results/tables/correction.md"]
    export = config["compression"]["export"]
    if export:
        targets += expand(
            "results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity:.2f}",
            model=stage_models("compression"),
            method=export["method"],
            scope=export["scope"].replace(":", "of"),
            refset=refset_names("general")[0],
            sparsity=export["sparsity"],
        )
    return targets


def get_model_weights(wildcards):
    """The file that stands for a model's checkpoint: the committed weights of a world model,
    the download record (written last by rule download_model) of a hub model."""
    source = config["models"][wildcards.model]["source"]
    if source == "world":
        return _committed_world_file(os.path.join(model_dir(wildcards.model), "model.safetensors"))
    if source == "local":  # checked to exist by _check_config
        return os.path.join(model_dir(wildcards.model), "config.json")
    return f"resources/models/{wildcards.model}/download.json"


def is_world(model):
    """Whether the model is evaluated on the world's data (its text, prompts, lm-eval tasks and
    toxicity scorer): the world models, and local models with `data: world`."""
    spec = config["models"][model]
    return spec["source"] == "world" or spec.get("data") == "world"


def get_gpu_count(wildcards):
    """GPUs a model's job holds: models.<alias>.gpus, else none for the world models (CPU-sized,
    so they do not queue on the `gpu=1` limit of the workstation profile) and one otherwise."""
    spec = config["models"][wildcards.model]
    return spec.get("gpus", 0 if spec["source"] == "world" else 1)


def get_refset_gpu_count(wildcards):
    """Only behaviour reference sets run the model (they explain its own continuation)."""
    return get_gpu_count(wildcards) if wildcards.kind in ("toxic", "repetition") else 0


def get_refset_data(wildcards):
    """What a reference set is drawn from: the world's data for world models; for hub models
    the generated IOI prompts or the selected behaviour prompts (general text comes from the
    datasets cache)."""
    if is_world(wildcards.model):
        return get_world_card_data(wildcards)
    return {
        "general": [],
        "ioi": f"resources/ioi/{wildcards.model}/reference.jsonl",
        "toxic": f"resources/prompts/{wildcards.model}/toxic_reference.jsonl",
        "repetition": f"resources/prompts/{wildcards.model}/repetition_reference.jsonl",
    }[wildcards.kind]


def get_refset_flags(wildcards, input):
    """CLI flags of the reference-set kind in the job's wildcards, from config.refsets."""
    spec = config["refsets"][wildcards.kind]
    flags = f"--n {spec['n']}"
    if spec.get("length"):
        flags += f" --length {spec['length']}"
    if "new_tokens" in spec:
        flags += f" --new-tokens {spec['new_tokens']}"
    if is_world(wildcards.model):
        flags += f" --data-dir {shlex.quote(os.path.dirname(input.data))}"
    elif wildcards.kind == "general":
        flags += f" --source {spec['hub_source']}"
    else:
        flags += f" --prompts-file {input.data}"
    return flags


def get_model_flags(wildcards):
    """--dtype and --device-map of the job's model, from models.<alias>.dtype / .device_map
    (schema enums, safe in a shell). World models always run in float32: `auto` would pick
    bfloat16 for them on a GPU machine and change their committed numbers."""
    spec = config["models"][wildcards.model]
    dtype = "float32" if spec["source"] == "world" else spec["dtype"]
    return f"--dtype {dtype} --device-map {spec['device_map']}"


def get_base_model(wildcards):
    """base_model of an exported model's card: the hub id of hub models, the alias of world models."""
    spec = config["models"][wildcards.model]
    return shlex.quote(spec["hf_id"] if spec["source"] == "hub" else wildcards.model)


def detoxify_options_flag():
    """--scorer-options of the Detoxify scorer (checkpoint type and device), as shell-quoted JSON."""
    c = config["correction"]
    options = {"model_type": c["scorer"], "device": c["scorer_device"]}
    return f"--scorer-options {shlex.quote(json.dumps(options))}"


def get_data_dir_flag(wildcards, input):
    """--data-dir of the world's data (world_* lm-eval tasks), for world models only."""
    return f"--data-dir {shlex.quote(os.path.dirname(input.data))}" if input.data else ""


def ppl_source(model):
    """Text of the compression stage's token perplexity: the world's held-out text for world
    models, compression.ppl_source (wikitext2 or none) for hub models; none turns it off for all."""
    source = config["compression"]["ppl_source"]
    return "world" if source != "none" and is_world(model) else source


def get_ppl_flags(wildcards):
    """--ppl-source and, when compression.seqlen is set, --seqlen of a compress job."""
    flags = f"--ppl-source {ppl_source(wildcards.model)}"
    seqlen = config["compression"]["seqlen"]
    return flags + (f" --seqlen {int(seqlen)}" if seqlen else "")


def get_world_data(wildcards):
    """The world's data manifest for world models (their tasks read it); nothing for hub models."""
    return get_world_card_data(wildcards) if is_world(wildcards.model) else []


def get_world_card_model(wildcards):
    if config["models"][wildcards.model]["source"] != "world":
        raise WorkflowError(
            f"results/world/{wildcards.model}/card.json: world cards exist only for "
            f"source 'world' models: {WORLD_SOURCE_MODELS}"
        )
    return _committed_world_file(
        os.path.join(model_dir(wildcards.model), "model.safetensors")
    )


def get_world_card_data(wildcards):
    return _committed_world_file(os.path.join(WORLD_DATA_DIR, "manifest.json"))


def input_dir(name):
    """Params function: the directory of the named input file."""

    def get(wildcards, input):
        return os.path.dirname(input[name])

    return get


def get_world_card_table_input(wildcards):
    return world_cards()


def get_world_train_models(wildcards):
    return expand(
        "resources/world/models/{world_model}/model.safetensors",
        world_model=WORLD_MODELS,
    )


def world_train_param(key):
    """Params function reading world.models.<alias>.<key> for the job's alias."""
    return lookup(dpath=f"world/models/{{world_model}}/{key}", within=config)


def comma_joined_input(wildcards, input):
    return ",".join(input)


# Granularities each method scores (paper: wanda cannot score heads; activation is
# structured only); methods not listed score all three.
METHOD_GRANULARITIES = {"wanda": ["weight"], "activation": ["neuron", "head"]}


def circuit_runs():
    """(model, method, granularity, scope) of every circuit job."""
    c = config["circuits"]
    return [
        (model, method, gran, scope)
        for model in stage_models("circuits")
        for method in c["methods"]
        for gran in c["granularities"]
        if gran in METHOD_GRANULARITIES.get(method, ["weight", "neuron", "head"])
        for scope in (c["weight_scopes"] if gran == "weight" else ["global"])
    ]


def circuit_curves():
    return [
        f"results/{model}/circuits/ioi/{method}/{gran}/{scope}/curve.json"
        for model, method, gran, scope in circuit_runs()
    ]


def get_circuit_scores(wildcards):
    return expand(
        "results/{model}/scores/{method}/{refset}.safetensors",
        model=wildcards.model,
        method=wildcards.method,
        refset=refset_names("ioi"),
    )


def get_ioi_eval_file(wildcards):
    """Held-out IOI prompts of the job's model: the world's files for world models, generated
    prompts with names disjoint from the reference prompts for hub models."""
    if not is_world(wildcards.model):
        return f"resources/ioi/{wildcards.model}/evaluation.jsonl"
    name = f"ioi_{config['circuits']['eval_set']}.jsonl"
    return _committed_world_file(os.path.join(WORLD_DATA_DIR, name))


def get_circuit_ablation(wildcards):
    if config["circuits"]["ablation"] is None:
        return []
    return f"results/{wildcards.model}/circuits/{wildcards.task}/ablation.safetensors"


def get_circuit_flags(wildcards, input):
    c = config["circuits"]
    flags = f"--threshold {c['threshold']} --weight-modules {c['weight_modules']}"
    if c["limit"]:
        flags += f" --limit {c['limit']}"
    if c["ablation"] is not None:
        flags += f" --ablation {input.ablation} --top-fraction {c['ablation']['top_fraction']}"
    return flags


# Downloads (rules/download.smk): the only network access of the workflow.


def hub_models():
    return [m for m, spec in config["models"].items() if spec["source"] == "hub"]


def download_dataset_names():
    """download.datasets, plus the data of every lm-eval task the compression stage evaluates
    (world_* tasks ship with the package and need none)."""
    names = list(config.get("download", {}).get("datasets", []))
    tasks = config.get("compression", {}).get("tasks", [])
    names += [f"lmeval:{t}" for t in tasks if not t.startswith("world_")]
    # Token perplexity of hub models reads the WikiText-2 test split (load_dataset prepares
    # every split of wikitext-2-raw-v1, so "wikitext2" caches it).
    if any(ppl_source(m) == "wikitext2" for m in stage_models("compression")):
        names.append("wikitext2")
    return list(dict.fromkeys(names))


def download_targets():
    """Every download the config needs: the input of the target rule `download`."""
    targets = expand("resources/models/{model}/download.json", model=hub_models())
    if download_dataset_names():
        targets.append("resources/downloads/datasets.json")
    if config.get("download", {}).get("detoxify"):
        targets.append("resources/downloads/detoxify.json")
    return targets


def hub_model_param(key):
    def get(wildcards):
        spec = config["models"][wildcards.model]
        if spec["source"] != "hub":
            raise WorkflowError(
                f"resources/models/{wildcards.model}: only source 'hub' models are "
                f"downloaded; {wildcards.model} is a {spec['source']} model"
            )
        return spec[key]

    return get


# Targeted correction: the reference-set kind that shows each behaviour.
BEHAVIOUR_KINDS = {"toxicity": "toxic", "repetition": "repetition"}


def correction_runs():
    """(model, behaviour, method, granularity) of every correction job."""
    c = config["correction"]
    return [
        (model, behaviour, method, gran)
        for model in stage_models("correction")
        for behaviour in c["behaviours"]
        for method in c["methods"]
        for gran in c["granularities"]
    ]


def correction_curves():
    return [
        f"results/{model}/correction/{behaviour}/{method}/{gran}/curve.json"
        for model, behaviour, method, gran in correction_runs()
    ]


def get_correction_scores(wildcards):
    kind = BEHAVIOUR_KINDS[wildcards.behaviour]
    pattern = "results/{model}/scores/{method}/{refset}.safetensors"
    return {
        "general": pattern.format(refset=refset_names("general")[0], **wildcards),
        "unwanted": pattern.format(refset=refset_names(kind)[0], **wildcards),
    }


def get_behaviour_prompts(wildcards):
    """Held-out prompts of the behaviour: the world's trigger files for world models, the
    selected evaluation half for hub models."""
    kind = BEHAVIOUR_KINDS[wildcards.behaviour]
    if is_world(wildcards.model):
        return _committed_world_file(os.path.join(WORLD_DATA_DIR, f"{kind}_trigger.jsonl"))
    return f"resources/prompts/{wildcards.model}/{kind}_evaluation.jsonl"


def get_correction_flags(wildcards, input):
    c = config["correction"]
    s = c["sampling"]
    flags = (
        f"--ks {','.join(map(str, c['ks'][wildcards.granularity]))}"
        f" --normalization {c['normalization']} --weight-modules {c['weight_modules']}"
        f" --new-tokens {c['new_tokens'][wildcards.behaviour]}"
        f" --n-samples {s['n'][wildcards.behaviour]} --top-p {s['top_p']} --temperature {s['temperature']} --seed {s['seed']}"
    )
    if c["n_prompts"]:
        flags += f" --n-prompts {c['n_prompts']}"
    if c["ppl_limit"]:
        flags += f" --ppl-limit {c['ppl_limit']}"
    if is_world(wildcards.model):
        return flags + f" --scorer world --ppl-tasks world_ppl --data-dir {shlex.quote(os.path.dirname(input.data))}"
    return flags + f" --scorer detoxify {detoxify_options_flag()} --ppl-tasks {','.join(c['ppl_tasks'])}"


def get_behaviour_prompts_flags(wildcards):
    h = config["correction"]["hub_prompts"]
    behaviour = {v: k for k, v in BEHAVIOUR_KINDS.items()}[wildcards.kind]
    threshold = h[f"{behaviour}_threshold"]
    flags = (
        f"--behaviour {behaviour} --threshold {threshold} --n-reference {h['n_reference']}"
        f" --n-candidates {h['n_candidates']}"
        f" --new-tokens {config['correction']['new_tokens'][behaviour]}"
    )
    if behaviour == "toxicity":
        flags += f" {detoxify_options_flag()}"
    return flags
