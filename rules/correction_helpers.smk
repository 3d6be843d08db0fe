# Helpers of rules/correction.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.

KIND_BEHAVIOURS = {kind: behaviour for behaviour, kind in registry.BEHAVIOURS.items()}


def correction_runs():
    """Wildcards of every correction job: each method on the granularities it prunes here, and
    AurA (correction.aura) on toxicity neurons."""
    c = config["correction"]
    runs = [
        dict(model=model, behaviour=behaviour, method=method, granularity=gran)
        for model in stage_models("correction")
        for behaviour in c["behaviours"]
        for method in c["methods"]
        for gran in c["granularities"]
        if method in registry.methods_for("correction", gran)
    ]
    if c["aura"] and "toxicity" in c["behaviours"]:
        runs += [
            dict(model=model, behaviour="toxicity", method="aura", granularity="neuron")
            for model in stage_models("correction")
        ]
    return runs


def get_correction_curves(wildcards):
    return [expand(rules.correction.output.curve, **run)[0] for run in correction_runs()]


def get_correction_generations(wildcards):
    """Each curve's generations.jsonl, whose per-prompt values the tables' intervals resample."""
    return [expand(rules.correction.output.generations, **run)[0] for run in correction_runs()]


def correction_targets(wildcards):
    if not correction_runs():
        return []
    return [rules.correction_tables.output.csv, rules.correction_tables.output.md]


def get_correction_scores(wildcards):
    """Scores of the job's method on the first seed of the general side (correction.general_refset
    for world-data models, general text for hub-data ones) and of the behaviour's reference set;
    for AurA its labelled sentences instead: the toxicity reference prompts and non-toxic text (the
    world's reference dialogue text; a hub model's control prompts)."""
    kind = registry.BEHAVIOURS[wildcards.behaviour]
    if wildcards.method == "aura":
        if wildcards.behaviour != "toxicity" or wildcards.granularity != "neuron":
            raise WorkflowError("AurA corrects toxicity by dampening neurons: toxicity/aura/neuron only")
        if is_world(wildcards.model):
            return {
                "aura_reference": committed_world_file("data", "toxic_trigger_ref.jsonl"),
                "aura_neutral": committed_world_file("data", "dialogue_ref.jsonl"),
            }
        prompts = rules.behaviour_prompts.output
        return {
            "aura_reference": expand(prompts.reference, model=wildcards.model, kind=kind)[0],
            "aura_neutral": expand(prompts.control, model=wildcards.model, kind=kind)[0],
        }
    general = config["correction"]["general_refset"] if is_world(wildcards.model) else "general"
    return {
        side: expand(rules.scores.output[0], model=wildcards.model, method=wildcards.method, refset=refset)[0]
        for side, refset in (("general", refset_names(general)[0]), ("unwanted", refset_names(kind)[0]))
    }


def get_behaviour_prompts(wildcards):
    """Held-out prompts of the behaviour: the world's trigger files for world-data models, the
    selected evaluation half for hub-data models."""
    kind = registry.BEHAVIOURS[wildcards.behaviour]
    if is_world(wildcards.model):
        return committed_world_file("data", f"{kind}_trigger.jsonl")
    return expand(rules.behaviour_prompts.output.evaluation, model=wildcards.model, kind=kind)[0]


def get_control_prompts(wildcards):
    """Control prompts of the behaviour (same form, no behaviour expected): the world's control
    files for world-data models, the behaviour_prompts job's control split for hub-data models."""
    kind = registry.BEHAVIOURS[wildcards.behaviour]
    if is_world(wildcards.model):
        return committed_world_file("data", f"{kind}_control.jsonl")
    return expand(rules.behaviour_prompts.output.control, model=wildcards.model, kind=kind)[0]


def behaviour_param(key):
    """Params function: correction.<key>.<behaviour> of the job (behaviour or prompt kind)."""

    def get(wildcards):
        behaviour = wildcards.get("behaviour") or KIND_BEHAVIOURS[wildcards.kind]
        return config["correction"][key][behaviour]

    return get


def get_prompts_behaviour(wildcards):
    return KIND_BEHAVIOURS[wildcards.kind]


def get_prompts_threshold(wildcards):
    return or_none(config["correction"]["hub_prompts"][f"{KIND_BEHAVIOURS[wildcards.kind]}_threshold"])


def get_ks(wildcards):
    return ",".join(map(str, config["correction"]["ks"][wildcards.granularity]))


def get_n_samples(wildcards):
    return config["correction"]["sampling"]["n"][wildcards.behaviour]


def get_scorer(wildcards):
    """The world's planted-insult scorer for world-data models, Detoxify for hub-data models."""
    return "world" if is_world(wildcards.model) else "detoxify"


def get_ppl_tasks(wildcards):
    return "world_dialogue_ppl,world_ppl" if is_world(wildcards.model) else ",".join(config["correction"]["ppl_tasks"])


def get_intervention(wildcards):
    """The correction's intervention: AurA (dampening) or pruning by contrastive scores."""
    return "aura" if wildcards.method == "aura" else "prune"


def correction_input(key):
    """Params function: the job's input file `key` (score files, AurA's sentences), else none."""

    def get(wildcards, input):
        return input[key] if key in input.keys() else "none"

    return get


def get_side_effects(wildcards):
    """World models: every behaviour set, IOI and facts measured at every k (per_prompt.jsonl)."""
    return is_world(wildcards.model)


def get_reply_only(wildcards):
    """The behaviour measured on the quoted reply alone: with the world's scorer (world prompts
    end in an opening quote), else on the whole continuation."""
    return get_scorer(wildcards) == "world"


def correction_params():
    """The params of a correction job: the stage's fields from the job, else the config's
    correction.* and correction.sampling.* keys."""
    return stage_params(
        "correction",
        "correction",
        "correction.sampling",
        scorer=get_scorer,
        reply_only=get_reply_only,
        scorer_model_type=config["correction"]["scorer"],
        intervention=get_intervention,
        general_scores=correction_input("general"),
        unwanted_scores=correction_input("unwanted"),
        aura_reference=correction_input("aura_reference"),
        aura_neutral=correction_input("aura_neutral"),
        behaviour=wildcard("behaviour"),
        granularity=wildcard("granularity"),
        ks=get_ks,
        prompts_file=input_file("prompts"),
        control_file=input_file("control"),
        new_tokens=behaviour_param("new_tokens"),
        n_samples=get_n_samples,
        ppl_tasks=get_ppl_tasks,
        side_effects=get_side_effects,
        out_dir=output_dir("curve"),
    )


def behaviour_prompts_params():
    """The params that a job of rule behaviour_prompts gives; stage_params fills in the rest."""
    return stage_params(
        "behaviour-prompts",
        "correction",
        "correction.hub_prompts",
        scorer="detoxify",  # hub models' prompts (correction.scorer is Detoxify's model type)
        scorer_model_type=config["correction"]["scorer"],
        behaviour=get_prompts_behaviour,
        threshold=get_prompts_threshold,
        new_tokens=behaviour_param("new_tokens"),
        reference_out=output_file("reference"),
        evaluation_out=output_file("evaluation"),
        control_out=output_file("control"),
    )


def correction_tables_params():
    """The params that a job of rule correction_tables gives; stage_params fills in the rest."""
    return stage_params(
        "correction-tables",
        "correction",
        csv=output_file("csv"),
        markdown=output_file("md"),
        examples_md=output_file("examples"),
        plots_dir=output_dir("plots"),
    )
