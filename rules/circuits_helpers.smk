# Helpers of rules/circuits.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.

CIRCUIT_SPARSITIES = ",".join(f"{s:.4g}" for s in config["circuits"]["sparsities"])
ABLATION = config["circuits"]["ablation"]  # null: no ground truth, no ROC AUC
# Kept fractions of the CPR / CMD areas ("none": no areas).
FAITHFULNESS_SIZES = ",".join(f"{k:g}" for k in config["circuits"]["faithfulness_sizes"]) or "none"


def circuit_runs():
    """Wildcards of every circuit job: each method on the granularities it scores (wanda:
    weights; activation: neurons and heads), weights in every weight scope, structured
    components globally."""
    c = config["circuits"]
    return [
        dict(model=model, task="ioi", method=method, granularity=gran, scope=scope)
        for model in stage_models("circuits")
        for method in c["methods"]
        for gran in c["granularities"]
        if method in registry.methods_for("circuits", gran)
        for scope in (c["weight_scopes"] if gran == "weight" else ["global"])
    ]


def get_circuit_curves(wildcards):
    return [expand(rules.circuit.output.curve, **run)[0] for run in circuit_runs()]


def circuit_targets(wildcards):
    if not circuit_runs():
        return []
    return [rules.circuit_tables.output.csv, rules.circuit_tables.output.md]


def get_circuit_scores(wildcards):
    return expand(
        rules.scores.output[0],
        model=wildcards.model,
        method=wildcards.method,
        refset=refset_names("ioi"),
    )


def get_ioi_eval_file(wildcards):
    """Held-out IOI prompts of the job's model: the world's files for world-data models,
    generated prompts with names disjoint from the reference prompts for hub-data models."""
    if is_world(wildcards.model):
        return committed_world_file("data", f"ioi_{config['circuits']['eval_set']}.jsonl")
    return expand(rules.ioi_data.output[0], model=wildcards.model, split="evaluation")[0]


def get_circuit_ablation(wildcards):
    if ABLATION is None:
        return []
    return expand(rules.circuit_ablation.output[0], **wildcards)[0]


def get_ablation_file(wildcards, input):
    return input.ablation if ABLATION is not None else "none"


def ablation_param(key, unused):
    """circuits.ablation.<key>, or with ablation null the value `unused`, which no job reads
    (circuit_ablation does not run, and circuit gets --ablation none)."""
    return ABLATION[key] if ABLATION is not None else unused


CONVENTIONS = config["circuits"]["conventions"]
if CONVENTIONS == "mib" and config["circuits"]["ablation_value"] != "zero":
    raise ValueError(
        "circuits.conventions mib patches removed heads and neurons from the corrupted prompts; "
        f"leave circuits.ablation_value at zero (it is {config['circuits']['ablation_value']!r}) or use conventions project"
    )
# Components kept at each faithfulness size: the project's rounding or MIB's int(k * n).
SIZE_ROUNDING = "mib" if CONVENTIONS == "mib" else "project"


def circuit_ablation_value(wildcards):
    """circuits.ablation_value (counterfactual patching under MIB's conventions), except for
    weight circuits: a single weight has no activation to average or patch, so weights are always
    zero-ablated (the ground truth's weights too)."""
    if wildcards.get("granularity") == "weight":
        return "zero"
    return "counterfactual" if CONVENTIONS == "mib" else config["circuits"]["ablation_value"]


def get_mean_reference(wildcards):
    """The IOI reference sets of every seed, whose activations mean ablation averages; nothing
    when the job zero-ablates."""
    if circuit_ablation_value(wildcards) != "mean":
        return []
    return expand(rules.refset.output[0], model=wildcards.model, kind="ioi", seed=config["refsets"]["ioi"]["seeds"])


def get_mean_reference_param(wildcards, input):
    return ",".join(input.mean_reference) if input.mean_reference else "none"


def get_published_circuit(wildcards):
    """circuits.published of the model for head circuits (the published circuits are heads), else none."""
    name = config["circuits"]["published"].get(wildcards.model)
    return name if name and wildcards.granularity == "head" else "none"


def ioi_data_params():
    """The params that a job of rule ioi_data gives; stage_params fills in the rest."""
    return stage_params(
        "ioi-data",
        n=config["refsets"]["ioi"]["generated"],
        split=wildcard("split"),
        out=output_file(),
    )


def circuit_ablation_params():
    """The params that a job of rule circuit_ablation gives; stage_params fills in the rest."""
    return stage_params(
        "circuit-ablation",
        "circuits",
        eval_file=input_file("eval"),
        limit=ablation_param("limit", 1),
        n_weights=ablation_param("n_weights", 1),
        ablation_value=circuit_ablation_value,
        mean_reference=get_mean_reference_param,
        out=output_file(),
    )


def circuit_params():
    """The params that a job of rule circuit gives; stage_params fills in the rest."""
    return stage_params(
        "circuit",
        "circuits",
        eval_file=input_file("eval"),
        granularity=wildcard("granularity"),
        scope=wildcard("scope"),
        sparsities=CIRCUIT_SPARSITIES,
        ablation=get_ablation_file,
        top_fraction=ablation_param("top_fraction", 0.1),
        faithfulness_sizes=FAITHFULNESS_SIZES,
        ablation_value=circuit_ablation_value,
        size_rounding=SIZE_ROUNDING,
        mean_reference=get_mean_reference_param,
        published_circuit=get_published_circuit,
        out_dir=output_dir("curve"),
    )


def circuit_tables_params():
    """The params that a job of rule circuit_tables gives; stage_params fills in the rest."""
    return stage_params(
        "circuit-tables",
        csv=output_file("csv"),
        summary_csv=output_file("summary"),
        paired_csv=output_file("paired"),
        markdown=output_file("md"),
        plots_dir=output_dir("plots"),
    )
