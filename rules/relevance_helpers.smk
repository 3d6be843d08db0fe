# Helpers of rules/relevance.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.


def refset_param(key):
    """Params function: refsets.<kind>.<key> of the job's kind (`none` where the kind has none)."""

    def get(wildcards):
        return or_none(config["refsets"][wildcards.kind].get(key))

    return get


def get_refset_data(wildcards):
    """What a reference set is drawn from: the world's data for world-data models; for hub-data
    models the generated IOI prompts or the selected behaviour prompts (general text comes from
    the datasets cache)."""
    if is_world(wildcards.model):
        return committed_world_file("data", "manifest.json")
    if wildcards.kind in registry.TEXT_KINDS:
        return []
    if wildcards.kind == "ioi":
        return expand(rules.ioi_data.output[0], model=wildcards.model, split="reference")[0]
    return expand(rules.behaviour_prompts.output.reference, model=wildcards.model, kind=wildcards.kind)[0]


def get_refset_source(wildcards):
    """--source of general text: refsets.general.hub_source for hub-data models, else world."""
    if wildcards.kind == "general" and not is_world(wildcards.model):
        return config["refsets"]["general"]["hub_source"]
    return "world"


def get_refset_prompts_file(wildcards, input):
    """--prompts-file: the generated / selected prompts of hub-data models (not general text)."""
    return "none" if is_world(wildcards.model) or wildcards.kind in registry.TEXT_KINDS else input.data


def get_refset_gpu_count(wildcards):
    """Only behaviour reference sets run the model (they explain its own continuation)."""
    return get_gpu_count(wildcards) if wildcards.kind in registry.GENERATED_KINDS else 0


def get_scores_refset(wildcards):
    kind, seed = wildcards.refset.rsplit("-s", 1)
    return expand(rules.refset.output[0], model=wildcards.model, kind=kind, seed=seed)[0]


def get_scores_seed(wildcards):
    """Seeds the random method: independent draws per reference set (general-sN -> N,
    ioi-sN -> 1000 + N, ...), so random contrastive scores do not cancel to zero."""
    kind, seed = wildcards.refset.rsplit("-s", 1)
    return 1000 * registry.REFSET_KINDS.index(kind) + int(seed)


def get_scores_storage(wildcards):
    """--storage of the per-weight scores: scores.storage; auto = float32 for world models (tiny
    files, and their committed results were computed so) and float16 for hub and local models
    (half the file; bench/compact_scores.py measured the masks it changes)."""
    value = config["scores"]["storage"]
    if value != "auto":
        return value
    return "float32" if config["models"][wildcards.model]["source"] == "world" else "float16"


def score_targets(wildcards):
    """scores.methods x scores.refsets of every model (the stages request their own)."""
    return expand(
        rules.scores.output[0],
        model=MODELS,
        method=config["scores"]["methods"],
        refset=[r for kind in config["scores"]["refsets"] for r in refset_names(kind)],
    )


def refset_params():
    """The params that a job of rule refset gives; stage_params fills in the rest."""
    return stage_params(
        "refset",
        kind=wildcard("kind"),
        n=refset_param("n"),
        length=refset_param("length"),
        new_tokens=refset_param("new_tokens"),
        source=get_refset_source,
        prompts_file=get_refset_prompts_file,
        seed=wildcard("seed"),
        out=output_file(),
    )


def scores_params():
    """The params that a job of rule scores gives; stage_params fills in the rest."""
    return stage_params(
        "scores",
        "scores",
        refset=input_file("refset"),
        method=wildcard("method"),
        **{"storage": get_scores_storage},  # "storage=" would start a Snakemake directive
        seed=get_scores_seed,
        out=output_file(),
    )
