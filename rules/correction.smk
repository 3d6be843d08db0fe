# Targeted correction (paper section 4.3): one job per model x behaviour x method x
# granularity prunes the k lowest contrastive scores R_general - R_unwanted for every k and
# measures the behaviour on held-out prompts and general perplexity; then tables and plots.


rule behaviour_prompts:
    # Hub models only: the prompts on which the model shows the behaviour (world models have
    # planted triggers), split into disjoint reference and evaluation halves.
    input:
        model=get_model_weights,
    output:
        reference="resources/prompts/{model}/{kind}_reference.jsonl",
        evaluation="resources/prompts/{model}/{kind}_evaluation.jsonl",
    wildcard_constraints:
        kind="toxic|repetition",
    log:
        "logs/resources/prompts/{model}/{kind}.log",
    benchmark:
        "benchmarks/resources/prompts/{model}/{kind}.tsv"
    params:
        model_dir=input_dir("model"),
        flags=get_behaviour_prompts_flags,
        model_flags=get_model_flags,
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune behaviour-prompts --model-dir {params.model_dir:q} {params.flags} {params.model_flags}"
        " --reference-out {output.reference} --evaluation-out {output.evaluation} > {log} 2>&1"


rule correction:
    input:
        unpack(get_correction_scores),
        model=get_model_weights,
        prompts=get_behaviour_prompts,
        data=get_world_data,
    output:
        curve="results/{model}/correction/{behaviour}/{method}/{granularity}/curve.json",
        generations="results/{model}/correction/{behaviour}/{method}/{granularity}/generations.jsonl",
    log:
        "logs/results/{model}/correction/{behaviour}/{method}/{granularity}.log",
    benchmark:
        "benchmarks/results/{model}/correction/{behaviour}/{method}/{granularity}.tsv"
    wildcard_constraints:
        granularity="neuron|weight",
    params:
        model_dir=input_dir("model"),
        flags=get_correction_flags,
        model_flags=get_model_flags,
        out_dir=lambda wildcards, output: os.path.dirname(output.curve),
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune correction --model-dir {params.model_dir:q} --model-name {wildcards.model}"
        " --general-scores {input.general}"
        " --unwanted-scores {input.unwanted} --behaviour {wildcards.behaviour}"
        " --granularity {wildcards.granularity} --prompts-file {input.prompts} {params.flags} {params.model_flags}"
        " --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


rule correction_tables:
    input:
        correction_curves(),
    output:
        csv=report("results/tables/correction.csv", category="Correction"),
        md="results/tables/correction.md",
        examples="results/tables/correction_examples.md",
        plots=report(
            expand("results/plots/correction_{model}.png", model=stage_models("correction")),
            category="Correction",
        ),
    log:
        "logs/results/tables/correction.log",
    benchmark:
        "benchmarks/results/tables/correction.tsv"
    params:
        curves=comma_joined_input,
    threads: 1
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune correction-tables --curves {params.curves} --csv {output.csv}"
        " --markdown {output.md} --plots-dir results/plots --examples-md {output.examples} > {log} 2>&1"
