# Targeted correction (paper section 4.3): one job per model x behaviour x method x
# granularity prunes the k lowest contrastive scores R_general - R_unwanted for every k and
# measures the behaviour on held-out prompts and general perplexity; then tables and plots.


include: "correction_helpers.smk"


rule behaviour_prompts:
    # Hub-data models only: the prompts on which the model shows the behaviour (world models
    # have planted triggers), split into disjoint reference and evaluation halves, and control
    # prompts on which it does not (the correction's collateral damage; world: *_control.jsonl).
    input:
        model=get_model_weights,
    output:
        reference="resources/prompts/{model}/{kind}_reference.jsonl",
        evaluation="resources/prompts/{model}/{kind}_evaluation.jsonl",
        control="resources/prompts/{model}/{kind}_control.jsonl",
    log:
        "logs/resources/prompts/{model}/{kind}.log",
    benchmark:
        "benchmarks/resources/prompts/{model}/{kind}.tsv"
    wildcard_constraints:
        kind=_alternatives(registry.GENERATED_KINDS),
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        **model_resources("behaviour_prompts"),
    params:
        **behaviour_prompts_params(),
    shell:
        stage_shell("behaviour-prompts")


rule correction:
    input:
        unpack(get_correction_scores),
        model=get_model_weights,
        prompts=get_behaviour_prompts,
        control=get_control_prompts,
        data=get_world_data,
    output:
        curve="results/{model}/correction/{behaviour}/{method}/{granularity}/curve.json",
        generations="results/{model}/correction/{behaviour}/{method}/{granularity}/generations.jsonl",
        per_prompt="results/{model}/correction/{behaviour}/{method}/{granularity}/per_prompt.jsonl",
    log:
        "logs/results/{model}/correction/{behaviour}/{method}/{granularity}.log",
    benchmark:
        "benchmarks/results/{model}/correction/{behaviour}/{method}/{granularity}.tsv"
    wildcard_constraints:
        granularity=_alternatives(registry.STAGE_GRANULARITIES["correction"]),
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        **model_resources("correction"),
    params:
        **correction_params(),
    shell:
        stage_shell("correction")


rule correction_tables:
    input:
        curves=get_correction_curves,
        generations=get_correction_generations,
    output:
        csv="results/tables/correction.csv",
        md="results/tables/correction.md",
        examples="results/tables/correction_examples.md",
        html=report_table(
            "results/tables/correction.html",
            stage_models("correction"),
            "correction",
            "correction_tables.rst",
            "Correction",
            "operating points, side effects, every k",
        ),
        examples_html=report_table(
            "results/tables/correction_examples.html",
            stage_models("correction"),
            "correction",
            "correction_examples.rst",
            "Correction",
            "generations before and after pruning",
            subcategory="Examples",
        ),
        plots=report_plots("correction", "correction_plot.rst", "Correction", "behaviour and side effects against k"),
        svgs=plot_svgs("correction"),
    log:
        "logs/results/tables/correction.log",
    benchmark:
        "benchmarks/results/tables/correction.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **correction_tables_params(),
    shell:
        stage_shell("correction-tables")
