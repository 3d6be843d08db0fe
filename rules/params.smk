# Params helpers every stage shares: a rule's params and shell command are generated from its
# stage's dataclass (attrprune.stages.command): stage_params fills each field from the values the
# rule gives, the shared per-model sources, the config section of the same key, or the field's
# default; stage_shell writes one `--flag {params.<field>:q}` per field. A field that lists the
# job's input files comes from the rule's input of its name (`--metrics {input.metrics:q}`), not
# from a param. No numerics, no torch.

import dataclasses
import functools

from attrprune.stages import command  # noqa: E402


def _per_model_sources():
    """Fields that every stage spells the same way, with their per-job values."""
    return {
        "model_dir": input_dir("model"),
        "model_name": wildcard("model"),
        "data_dir": get_data_dir,
        "dtype": get_dtype,
        "device_map": get_device_map,
    }


def _config_values(sections):
    """{key: value} of the config sections ("compression", "correction.sampling"), a nested
    section's keys also as <section>_<key> (circuits.bootstrap.seed -> bootstrap_seed); the
    earlier section wins."""
    values = {}
    for dotted in reversed(sections):
        node = config
        for part in dotted.split("."):
            node = node[part]
        for key, value in node.items():
            values[key] = value
            if isinstance(value, dict):
                values.update({f"{key}_{sub}": v for sub, v in value.items()})
    return values


def stage_params(stage, *sections, **given):
    """The params of a job that runs `python -m attrprune <stage>`: offline prefix and code
    fingerprint, then each field of the stage's dataclass from, in order, `given` (a value or a
    params function), the per-model sources, the config `sections` (a key of the field's name),
    the field's default. So a config key of a stage's section reaches its flag by its name."""
    params = {"offline": OFFLINE, "code": code_fingerprint(stage)}
    shared, configured = _per_model_sources(), _config_values(sections)
    for field in command.fields(stage):
        name = field.name
        if name == "threads":  # the job's own (stage_shell)
            continue
        if command.is_input(field):  # the rule's input of the same name (stage_shell)
            if name in given:
                raise WorkflowError(
                    f"stage {stage}: {command.flag(name)} comes from the rule's input {name}=, not a param"
                )
            continue
        for source in (given, shared, configured):
            if name in source:
                value = source[name]
                break
        else:
            if field.default is dataclasses.MISSING:
                raise WorkflowError(
                    f"stage {stage}: no value for {command.flag(name)}: give it in stage_params or as "
                    f"config key {sections[0] if sections else '<section>'}.{name}"
                )
            value = field.default
        params[name] = _cli(stage, name, value)
    return params


def _cli(stage, name, value):
    """The value, or the params function's value, spelled for the command line."""
    if not callable(value):
        return command.cli_value(stage, name, value)

    @functools.wraps(value)  # Snakemake passes what the wrapped function's signature names
    def get(*args, **kwargs):
        return command.cli_value(stage, name, value(*args, **kwargs))

    return get


def stage_shell(stage):
    """The rule's shell command (attrprune.stages.command.shell_template): quoted flags, log."""
    return command.shell_template(stage)


def wildcard(name):
    """Params function: the job's wildcard `name`."""

    def get(wildcards):
        return wildcards[name]

    return get


def output_file(name=0):
    """Params function: the named (or first) output file."""

    def get(wildcards, output):
        return output[name]

    return get


def optional_output(name):
    """Params function: the named output file, or None (`none`) when the rule has no such output."""

    def get(wildcards, output):
        return getattr(output, name, None)

    return get


def input_file(name=0):
    """Params function: the named (or first) input file."""

    def get(wildcards, input):
        return input[name]

    return get


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


def get_gpu_count(wildcards):
    """GPUs a model's job holds: models.<alias>.gpus, else none for the world models (CPU-sized,
    so they do not queue on the `gpu=1` limit of the workstation profile) and one otherwise."""
    spec = config["models"][wildcards.model]
    return spec.get("gpus", 0 if spec["source"] == "world" else 1)


# The cost model's estimates per preset model, for the jobs' cluster sizes.
CLUSTER_COSTS = cluster.load_estimates(os.path.join(REPO, "bench", "cost_estimates.json"))


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


def model_resources(rule):
    """resources of a job that runs a model (GPUs, and its cluster size: cluster_size)."""
    return dict(gpu=get_gpu_count, mem_mb=cluster_size(rule, "mem_mb"), runtime=cluster_size(rule, "runtime"))
