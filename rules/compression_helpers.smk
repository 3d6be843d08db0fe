# Helpers of rules/compression.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.


# The one spelling of a sparsity in paths: two decimals.
SPARSITIES = [f"{s:.2f}" for s in config["compression"]["sparsities"]]


def path_scope(scope):
    """A pruning scope as paths spell it: N:M -> NofM ("2:4" -> "2of4")."""
    return scope.replace(":", "of")


def get_scope_arg(wildcards):
    return wildcards.scope.replace("of", ":")


def method_scopes(method):
    """The scopes a compression method runs with: compression.method_scopes, else compression.scopes."""
    return config["compression"]["method_scopes"].get(method, config["compression"]["scopes"])


def compression_runs():
    """Wildcards of every compression job. Methods that read no reference set (magnitude, random
    scores in a uniform scope) run on the first general seed only."""
    general = refset_names("general")
    return [
        dict(model=model, method=method, scope=path_scope(scope), refset=refset)
        for model in stage_models("compression")
        for method in config["compression"]["methods"]
        for scope in method_scopes(method)
        for refset in (general if reads_refset(method, scope) else general[:1])
    ]


def reads_refset(method, scope):
    """Whether a compression run depends on the general reference set: as scores (score methods
    that read it) or as calibration set (calibrated pruners, OWL scopes)."""
    scores_method = registry.compression_methods()[method]
    if scores_method is None or registry.split_allocation(scope)[1] == "owl":
        return True
    return registry.METHODS[scores_method].reads_refset


def get_compress_scores(wildcards):
    """The scores a compression method prunes by (wanda_onepass: the wanda scores); none for a
    calibrated pruner."""
    scores_method = registry.compression_methods()[wildcards.method]
    if scores_method is None:
        return []
    return expand(rules.scores.output[0], model=wildcards.model, method=scores_method, refset=wildcards.refset)


def get_calibration(wildcards):
    """The general reference set a calibrated pruner or an OWL scope calibrates on; else none."""
    scores_method = registry.compression_methods()[wildcards.method]
    if scores_method is not None and not wildcards.scope.endswith(registry.OWL):
        return []
    kind, seed = wildcards.refset.rsplit("-s", 1)
    return expand(rules.refset.output[0], model=wildcards.model, kind=kind, seed=seed)


def input_or_none(name):
    """Params function: the named input (possibly absent), or `none`."""

    def get(wildcards, input):
        return input[name] if input.get(name) else "none"

    return get


def run_sparsities(scope):
    """Non-zero sparsities of a run: the configured ones, or N/M alone for an N:M scope (which
    prunes exactly N of every M weights; any other sparsity is meaningless for it)."""
    parsed = registry.parse_scope(registry.split_allocation(scope.replace("of", ":"))[0])
    if isinstance(parsed, tuple):
        n, m = parsed
        return [f"{n / m:.2f}"]
    return [s for s in SPARSITIES if float(s) > 0]


def get_compression_metrics(wildcards):
    """Every metrics file the tables read: per run and non-zero sparsity, and the dense model's
    per model when sparsity 0 is asked for (it stands at sparsity 0 of every run)."""
    pruned = [s for s in SPARSITIES if float(s) > 0]
    files = [
        f
        for run in compression_runs()
        for f in expand(rules.compress.output.metrics, sparsity=run_sparsities(run["scope"]), **run)
    ]
    if len(pruned) < len(SPARSITIES):
        files += expand(rules.compress_dense.output.metrics, model=stage_models("compression"))
    return files


def pruner_option(key):
    """Params function: compression.pruner_options.<key> for the jobs whose method reads it, else
    none (so changing SparseGPT's block size reruns the SparseGPT jobs alone)."""

    def get(wildcards):
        keys = registry.pruner_options_for(wildcards.method, get_scope_arg(wildcards))
        return config["compression"]["pruner_options"][key] if key in keys else None

    return get


# Which compression method prunes, by what: the fields of the compress and export-pruned stages
# that come from the job rather than from the config.
PRUNING = dict(
    method=wildcard("method"),
    scores=input_or_none("scores"),
    calibration=input_or_none("calibration"),
    scope=get_scope_arg,
    **{key: pruner_option(key) for key in registry.PRUNER_OPTIONS},
)
# The dense model, evaluated by the compress stage at sparsity 0 (rule compress_dense).
DENSE = dict(method="none", scope="row", sparsities="0", **{key: "none" for key in registry.PRUNER_OPTIONS})


def ppl_source(model):
    """Text of the compression stage's token perplexity: the world's held-out text for world-data
    models, compression.ppl_source (wikitext2 or none) for hub-data models; none turns it off."""
    source = config["compression"]["ppl_source"]
    return "world" if source != "none" and is_world(model) else source


def get_ppl_source(wildcards):
    return ppl_source(wildcards.model)


def get_base_model(wildcards):
    """base_model of an exported model's card: the hub id of hub models, else the alias."""
    spec = config["models"][wildcards.model]
    return spec["hf_id"] if spec["source"] == "hub" else wildcards.model


def compression_targets(wildcards):
    """The tables, and compression.export: one pruned model per compression model, pruned with the
    first general seed (its scores, or as calibration set)."""
    targets = []
    if compression_runs():
        targets += [rules.compression_tables.output.csv, rules.compression_tables.output.md]
    export = config["compression"]["export"]
    if not export:
        return targets
    return targets + expand(
        str(rules.export_pruned.output[0]),
        model=stage_models("compression"),
        method=export["method"],
        scope=path_scope(export["scope"]),
        refset=refset_names("general")[0],
        sparsity=f"{export['sparsity']:.2f}",
    )


def compress_params():
    """The params that a job of rule compress gives; stage_params fills in the rest."""
    return stage_params(
        "compress",
        "compression",
        **PRUNING,
        ppl_source=get_ppl_source,
        sparsities=wildcard("sparsity"),
        out_template=output_file("metrics"),
    )


def paper_comparison_output():
    """compression_paper.md, the comparison with the paper's Table 1: only when a model of the
    stage is one of the paper's (registry.PAPER_MODELS)."""
    if set(stage_models("compression")) & set(registry.PAPER_MODELS):
        return {"paper": "results/tables/compression_paper.md"}
    return {}


def compression_tables_params():
    """The params that a job of rule compression_tables gives; stage_params fills in the rest."""
    return stage_params(
        "compression-tables",
        "compression",
        csv=output_file("csv"),
        markdown=output_file("md"),
        paper_markdown=optional_output("paper"),
        plots_dir=output_dir("plots"),
    )


def export_pruned_params():
    """The params that a job of rule export_pruned gives; stage_params fills in the rest."""
    return stage_params(
        "export-pruned",
        **PRUNING,
        dtype="auto",  # the export runs on the CPU in the checkpoint's own dtype
        sparsity=wildcard("sparsity"),
        base_model=get_base_model,  # the card's base_model
        out_dir=output_file(),
    )
