# Compression (paper section 4.1): prune by the general-text scores at every configured
# sparsity and evaluate each pruned model with lm-eval and by token perplexity (the Wanda /
# SparseGPT protocol at compression.seqlen); then tables and plots.
#
# One job per model x method x scope x reference set evaluates all sparsities: the scores are
# sorted once and thresholded per sparsity (DESIGN.md section 7), and the per-job start-up of
# torch and lm-eval is paid once instead of once per sparsity.


include: "compression_helpers.smk"


# The compress job's outputs (one per sparsity), and its --out-template.
COMPRESSION_METRICS = "results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}/metrics.json"


rule compress:
    input:
        model=get_model_weights,
        scores=rules.scores.output[0],
        data=get_world_data,
    output:
        expand(COMPRESSION_METRICS, sparsity=SPARSITIES, allow_missing=True),
    log:
        "logs/results/{model}/compression/{method}/{scope}/{refset}.log",
    benchmark:
        "benchmarks/results/{model}/compression/{method}/{scope}/{refset}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
    params:
        offline=OFFLINE,
        model_dir=input_dir("model"),
        data_dir=get_data_dir,
        scope=get_scope_arg,
        sparsities=",".join(SPARSITIES),
        tasks=",".join(config["compression"]["tasks"]),
        limit=or_none(config["compression"]["limit"]),
        ppl_source=get_ppl_source,
        seqlen=or_none(config["compression"]["seqlen"]),
        batch_size=config["compression"]["batch_size"],
        template=get_compression_template,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune compress --model-dir {params.model_dir:q} --model-name {wildcards.model}"
        " --scores {input.scores:q} --scope {params.scope} --sparsities {params.sparsities}"
        " --tasks {params.tasks} --data-dir {params.data_dir:q} --limit {params.limit}"
        " --ppl-source {params.ppl_source} --seqlen {params.seqlen} --batch-size {params.batch_size}"
        " --dtype {params.dtype} --device-map {params.device_map} --threads {threads}"
        " --out-template {params.template:q} > {log:q} 2>&1"


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
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        offline=OFFLINE,
        metrics=joined_input(),
        at=config["compression"]["at_sparsity"],
        plots_dir=output_dir("plots"),
    shell:
        "{params.offline} python -m attrprune compression-tables --metrics {params.metrics:q} --csv {output.csv:q}"
        " --markdown {output.md:q} --paper-markdown {output.paper:q} --plots-dir {params.plots_dir:q}"
        " --at-sparsity {params.at} > {log:q} 2>&1"


rule export_pruned:
    input:
        model=get_model_weights,
        scores=rules.scores.output[0],
    output:
        directory("results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}"),
    log:
        "logs/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.log",
    benchmark:
        "benchmarks/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        offline=OFFLINE,
        model_dir=input_dir("model"),
        scope=get_scope_arg,
        # The card's base_model; the export runs on the CPU in the checkpoint's own dtype.
        base_model=get_base_model,
    shell:
        "{params.offline} python -m attrprune export-pruned --model-dir {params.model_dir:q} --scores {input.scores:q}"
        " --scope {params.scope} --sparsity {wildcards.sparsity} --base-model {params.base_model:q}"
        " --out-dir {output:q} > {log:q} 2>&1"
