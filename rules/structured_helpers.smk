# Helpers of rules/structured.smk (input, params and target functions). No numerics, no torch.


# The one spelling of a structured ratio in paths: two decimals.
STRUCTURED_RATIOS = [f"{r:.2f}" for r in config["structured"]["ratios"]]


def structured_refsets(method):
    """The general reference sets a structured method reads (structured.seeds, default every
    general seed); magnitude reads none and runs once, on the first general seed's name."""
    seeds = config["structured"]["seeds"]
    names = refset_names("general") if seeds is None else [f"general-s{s}" for s in seeds]
    scores_method = registry.STRUCTURED_METHODS[method]
    reads = method in registry.STRUCTURED_CALIBRATED or (
        scores_method is not None and registry.METHODS[scores_method].reads_refset
    )
    return names if reads else names[:1]


def structured_runs():
    """Wildcards of every structured job but the ratio."""
    return [
        dict(model=model, method=method, refset=refset)
        for model in stage_models("structured")
        for method in config["structured"]["methods"]
        for refset in structured_refsets(method)
    ]


def get_structured_scores(wildcards):
    """The scores file a structured method ranks by; none for magnitude and flap."""
    scores_method = registry.STRUCTURED_METHODS[wildcards.method]
    if scores_method is None:
        return []
    return expand(rules.scores.output[0], model=wildcards.model, method=scores_method, refset=wildcards.refset)


def get_structured_calibration(wildcards):
    """The general reference set FLAP calibrates on; else none."""
    if wildcards.method not in registry.STRUCTURED_CALIBRATED:
        return []
    kind, seed = wildcards.refset.rsplit("-s", 1)
    return expand(rules.refset.output[0], model=wildcards.model, kind=kind, seed=seed)


def get_structured_metrics(wildcards):
    return [
        f for run in structured_runs() for f in expand(rules.structured.output.metrics, ratio=STRUCTURED_RATIOS, **run)
    ]


def get_structured_speed_models(wildcards):
    """The smaller models of the first reference set of every method and ratio of one model: the
    shapes, and so the speed, are those of every seed."""
    first = {}
    for run in structured_runs():
        if run["model"] == wildcards.model:
            first.setdefault(run["method"], run)
    return [f for run in first.values() for f in expand(rules.structured.output.model, ratio=STRUCTURED_RATIOS, **run)]


def structured_targets(wildcards):
    """The structured tables, when any model runs the stage."""
    if not structured_runs():
        return []
    return [rules.structured_tables.output.csv, rules.structured_tables.output.md]


def structured_params():
    """The params that a job of rule structured gives; stage_params fills in the rest."""
    return stage_params(
        "structured",
        "compression",
        method=wildcard("method"),
        ratio=wildcard("ratio"),
        scores=input_or_none("scores"),
        calibration=input_or_none("calibration"),
        base_model=get_base_model,
        ppl_source=get_ppl_source,
        model_out=output_file("model"),
        metrics=output_file("metrics"),
    )


def structured_speed_params():
    """The params that a job of rule structured_speed gives; stage_params fills in the rest."""
    return stage_params(
        "structured-speed",
        "structured.speed",
        dense=input_dir("model"),
        out=output_file(),
    )


def structured_tables_params():
    """The params that a job of rule structured_tables gives; stage_params fills in the rest."""
    return stage_params(
        "structured-tables",
        csv=output_file("csv"),
        markdown=output_file("md"),
        plots_dir=output_dir("plots"),
    )
