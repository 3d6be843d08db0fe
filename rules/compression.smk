# Compression (paper section 4.1): prune by each compression method (scores on general text, or
# a calibrated pruner on the general reference set) at every configured sparsity and evaluate
# each pruned model with lm-eval and by token perplexity (the Wanda / SparseGPT protocol at
# compression.seqlen); then tables and plots.
#
# One job per model x method x scope x reference set x sparsity, and one job per model for the
# dense model (sparsity 0 is the same model for every method): at real scale each evaluation
# takes tens of minutes to hours of GPU time, so per-sparsity jobs run in parallel on a cluster,
# a failed or killed job costs one sparsity, and adding a sparsity to the config runs only its
# jobs. The price is one process start (torch, lm-eval) and one score sort per sparsity.


include: "compression_helpers.smk"


rule compress:
    input:
        model=get_model_weights,
        scores=get_compress_scores,
        calibration=get_calibration,
        data=get_world_data,
    output:
        lm_eval="results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}/lm_eval.json",
        metrics="results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}/metrics.json",
    log:
        "logs/results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}.log",
    benchmark:
        "benchmarks/results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
        mem_mb=cluster_size("compress", "mem_mb"),
        runtime=cluster_size("compress", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("compress"),
        model_dir=input_dir("model"),
        scores=input_or_none("scores"),
        calibration=input_or_none("calibration"),
        data_dir=get_data_dir,
        scope=get_scope_arg,
        pruner_options=get_pruner_options,
        tasks=",".join(config["compression"]["tasks"]),
        limit=or_none(config["compression"]["limit"]),
        ppl_source=get_ppl_source,
        seqlen=or_none(config["compression"]["seqlen"]),
        ppl_windows=or_none(config["compression"]["ppl_windows"]),
        batch_size=config["compression"]["batch_size"],
        log_samples=get_log_samples_flag,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune compress --model-dir {params.model_dir:q} --model-name {wildcards.model:q}"
        " --method {wildcards.method:q} --scores {params.scores:q} --calibration {params.calibration:q}"
        " --scope {params.scope:q} {params.pruner_options:q} --sparsities {wildcards.sparsity:q}"
        " --tasks {params.tasks:q} --data-dir {params.data_dir:q} --limit {params.limit:q}"
        " --ppl-source {params.ppl_source:q} --seqlen {params.seqlen:q}"
        " --ppl-windows {params.ppl_windows:q} --batch-size {params.batch_size:q}"
        " {params.log_samples:q} --dtype {params.dtype:q} --device-map {params.device_map:q} --threads {threads:q}"
        " --out-template {output.metrics:q} > {log:q} 2>&1"


rule compress_dense:
    input:
        model=get_model_weights,
        data=get_world_data,
    output:
        lm_eval="results/{model}/compression/dense/lm_eval.json",
        metrics="results/{model}/compression/dense/metrics.json",
    log:
        "logs/results/{model}/compression/dense.log",
    benchmark:
        "benchmarks/results/{model}/compression/dense.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
        mem_mb=cluster_size("compress_dense", "mem_mb"),
        runtime=cluster_size("compress_dense", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("compress-dense"),
        model_dir=input_dir("model"),
        data_dir=get_data_dir,
        tasks=",".join(config["compression"]["tasks"]),
        limit=or_none(config["compression"]["limit"]),
        ppl_source=get_ppl_source,
        seqlen=or_none(config["compression"]["seqlen"]),
        ppl_windows=or_none(config["compression"]["ppl_windows"]),
        batch_size=config["compression"]["batch_size"],
        log_samples=get_log_samples_flag,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune compress-dense --model-dir {params.model_dir:q}"
        " --model-name {wildcards.model:q} --tasks {params.tasks:q} --data-dir {params.data_dir:q} --limit {params.limit:q}"
        " --ppl-source {params.ppl_source:q} --seqlen {params.seqlen:q}"
        " --ppl-windows {params.ppl_windows:q} --batch-size {params.batch_size:q}"
        " {params.log_samples:q} --dtype {params.dtype:q} --device-map {params.device_map:q} --threads {threads:q}"
        " --out-template {output.metrics:q} > {log:q} 2>&1"


rule compression_tables:
    input:
        get_compression_metrics,
    output:
        csv="results/tables/compression.csv",
        paired="results/tables/compression_paired.csv",
        md="results/tables/compression.md",
        paper="results/tables/compression_paper.md",
        html=report_table(
            "results/tables/compression.html",
            stage_models("compression"),
            "compression",
            "compression_tables.rst",
            "Compression",
            "perplexity and accuracy per method at each sparsity, paired differences",
        ),
        plots=report_plots(
            "compression", "compression_plot.rst", "Compression", "perplexity and accuracy against sparsity"
        ),
        svgs=plot_svgs("compression"),
    log:
        "logs/results/tables/compression.log",
    benchmark:
        "benchmarks/results/tables/compression.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        offline=OFFLINE,
        code=code_fingerprint("compression-tables"),
        metrics=joined_input(),
        at=config["compression"]["at_sparsity"],
        plots_dir=output_dir("plots"),
    shell:
        "{params.offline} python -m attrprune compression-tables --metrics {params.metrics:q} --csv {output.csv:q}"
        " --markdown {output.md:q} --paper-markdown {output.paper:q} --plots-dir {params.plots_dir:q}"
        " --at-sparsity {params.at:q} > {log:q} 2>&1"


rule export_pruned:
    input:
        model=get_model_weights,
        scores=get_compress_scores,
        calibration=get_calibration,
    output:
        directory("results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}"),
    log:
        "logs/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.log",
    benchmark:
        "benchmarks/results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        mem_mb=cluster_size("export_pruned", "mem_mb"),
        runtime=cluster_size("export_pruned", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("export-pruned"),
        model_dir=input_dir("model"),
        scores=input_or_none("scores"),
        calibration=input_or_none("calibration"),
        scope=get_scope_arg,
        pruner_options=get_pruner_options,
        # The card's base_model; the export runs on the CPU in the checkpoint's own dtype.
        base_model=get_base_model,
    shell:
        "{params.offline} python -m attrprune export-pruned --model-dir {params.model_dir:q} --method {wildcards.method:q}"
        " --scores {params.scores:q} --calibration {params.calibration:q} --scope {params.scope:q} {params.pruner_options:q} --sparsity {wildcards.sparsity:q} --base-model {params.base_model:q}"
        " --out-dir {output:q} > {log:q} 2>&1"
