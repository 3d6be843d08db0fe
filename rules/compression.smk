# Compression (paper section 4.1): prune by the general-text scores at every configured
# sparsity and evaluate each pruned model with lm-eval and by token perplexity (the Wanda /
# SparseGPT protocol at compression.seqlen); then tables and plots.
#
# One job per model x method x scope x reference set evaluates all sparsities: the scores are
# sorted once and thresholded per sparsity (DESIGN.md section 7), and the per-job start-up of
# torch and lm-eval is paid once instead of once per sparsity.


rule compress:
    input:
        model=get_model_weights,
        scores="results/{model}/scores/{method}/{refset}.safetensors",
        data=get_world_data,
    output:
        compression_outputs(),
    log:
        "logs/results/{model}/compression/{method}/{scope}/{refset}.log",
    benchmark:
        "benchmarks/results/{model}/compression/{method}/{scope}/{refset}.tsv"
    params:
        model_dir=input_dir("model"),
        data_dir=get_data_dir_flag,
        scope=get_scope_arg,
        sparsities=",".join(SPARSITIES),
        tasks=",".join(config["compression"]["tasks"]),
        limit=get_limit_flag,
        ppl=get_ppl_flags,
        batch_size=config["compression"]["batch_size"],
        template=compression_template,
        model_flags=get_model_flags,
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune compress --model-dir {params.model_dir:q} --model-name {wildcards.model} --scores {input.scores}"
        " --scope {params.scope} --sparsities {params.sparsities} --tasks {params.tasks}"
        " {params.data_dir} {params.limit} {params.ppl} --batch-size {params.batch_size}"
        " {params.model_flags} --threads {threads} --out-template '{params.template}' > {log} 2>&1"


rule compression_tables:
    input:
        get_compression_metrics,
    output:
        csv=report("results/tables/compression.csv", category="Compression"),
        md="results/tables/compression.md",
        paper="results/tables/compression_paper.md",
        html=report("results/tables/compression.html", category="Compression"),
        plots=report(
            expand("results/plots/compression_{model}.png", model=stage_models("compression")),
            category="Compression",
        ),
    log:
        "logs/results/tables/compression.log",
    benchmark:
        "benchmarks/results/tables/compression.tsv"
    params:
        metrics=comma_joined_input,
        at=config["compression"]["at_sparsity"],
    threads: 1
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune tables --metrics {params.metrics} --csv {output.csv}"
        " --markdown {output.md} --paper-markdown {output.paper} --plots-dir results/plots --at-sparsity {params.at} > {log} 2>&1"


rule export_pruned:
    input:
        model=get_model_weights,
        scores="results/{model}/scores/{method}/{refset}.safetensors",
    output:
        directory("results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}"),
    log:
        "logs/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.log",
    benchmark:
        "benchmarks/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.tsv"
    params:
        model_dir=input_dir("model"),
        scope=get_scope_arg,
        # The card's base_model; the export runs on the CPU in the checkpoint's own dtype.
        base_model=get_base_model,
    threads: 1
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune export-pruned --model-dir {params.model_dir:q} --scores {input.scores}"
        " --scope {params.scope} --sparsity {wildcards.sparsity} --base-model {params.base_model}"
        " --out-dir {output} > {log} 2>&1"
