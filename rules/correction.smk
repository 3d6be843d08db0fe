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
        gpu=get_gpu_count,
        mem_mb=cluster_size("behaviour_prompts", "mem_mb"),
        runtime=cluster_size("behaviour_prompts", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("behaviour-prompts"),
        model_dir=input_dir("model"),
        behaviour=get_prompts_behaviour,
        threshold=get_prompts_threshold,
        n_reference=config["correction"]["hub_prompts"]["n_reference"],
        n_candidates=config["correction"]["hub_prompts"]["n_candidates"],
        new_tokens=behaviour_param("new_tokens"),
        scorer_model_type=config["correction"]["scorer"],
        scorer_device=config["correction"]["scorer_device"],
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune behaviour-prompts --model-dir {params.model_dir:q}"
        " --behaviour {params.behaviour:q} --threshold {params.threshold:q} --n-reference {params.n_reference:q}"
        " --n-candidates {params.n_candidates:q} --new-tokens {params.new_tokens:q}"
        " --scorer-model-type {params.scorer_model_type:q} --scorer-device {params.scorer_device:q}"
        " --dtype {params.dtype:q} --device-map {params.device_map:q}"
        " --reference-out {output.reference:q} --evaluation-out {output.evaluation:q}"
        " --control-out {output.control:q} > {log:q} 2>&1"


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
        gpu=get_gpu_count,
        mem_mb=cluster_size("correction", "mem_mb"),
        runtime=cluster_size("correction", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("correction"),
        model_dir=input_dir("model"),
        intervention=get_intervention,
        general=correction_input("general"),
        unwanted=correction_input("unwanted"),
        aura_reference=correction_input("aura_reference"),
        aura_neutral=correction_input("aura_neutral"),
        side_effects=get_side_effects_flag,
        loop_span=config["correction"]["loop_span"],
        ks=get_ks,
        normalization=config["correction"]["normalization"],
        weight_modules=config["correction"]["weight_modules"],
        n_prompts=or_none(config["correction"]["n_prompts"]),
        new_tokens=behaviour_param("new_tokens"),
        window=config["correction"]["window"],
        n_samples=get_n_samples,
        top_p=config["correction"]["sampling"]["top_p"],
        temperature=config["correction"]["sampling"]["temperature"],
        seed=config["correction"]["sampling"]["seed"],
        scorer=get_scorer,
        scorer_model_type=config["correction"]["scorer"],
        scorer_device=config["correction"]["scorer_device"],
        ppl_tasks=get_ppl_tasks,
        ppl_limit=or_none(config["correction"]["ppl_limit"]),
        data_dir=get_data_dir,
        dtype=get_dtype,
        device_map=get_device_map,
        out_dir=output_dir("curve"),
    shell:
        "{params.offline} python -m attrprune correction --model-dir {params.model_dir:q} --model-name {wildcards.model:q}"
        " --intervention {params.intervention:q} --general-scores {params.general:q}"
        " --unwanted-scores {params.unwanted:q} --aura-reference {params.aura_reference:q}"
        " --aura-neutral {params.aura_neutral:q} {params.side_effects:q} --loop-span {params.loop_span:q}"
        " --behaviour {wildcards.behaviour:q} --granularity {wildcards.granularity:q} --ks {params.ks:q}"
        " --normalization {params.normalization:q} --weight-modules {params.weight_modules:q}"
        " --prompts-file {input.prompts:q} --control-file {input.control:q} --n-prompts {params.n_prompts:q}"
        " --new-tokens {params.new_tokens:q} --window {params.window:q}"
        " --n-samples {params.n_samples:q} --top-p {params.top_p:q} --temperature {params.temperature:q}"
        " --seed {params.seed:q} --scorer {params.scorer:q} --scorer-model-type {params.scorer_model_type:q}"
        " --scorer-device {params.scorer_device:q} --ppl-tasks {params.ppl_tasks:q} --ppl-limit {params.ppl_limit:q}"
        " --data-dir {params.data_dir:q} --dtype {params.dtype:q} --device-map {params.device_map:q}"
        " --threads {threads:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("correction-tables"),
        curves=joined_input("curves"),
        plots_dir=output_dir("plots"),
        max_ppl_change=config["correction"]["max_ppl_change"],
        min_control_unchanged=config["correction"]["min_control_unchanged"],
    shell:
        "{params.offline} python -m attrprune correction-tables --curves {params.curves:q} --csv {output.csv:q}"
        " --markdown {output.md:q} --plots-dir {params.plots_dir:q} --examples-md {output.examples:q}"
        " --max-ppl-change {params.max_ppl_change:q} --min-control-unchanged {params.min_control_unchanged:q}"
        " > {log:q} 2>&1"
