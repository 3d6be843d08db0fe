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
        **model_resources("compress"),
    params:
        **compress_params(),
    shell:
        stage_shell("compress")


# The dense model, once per model: the compress stage with no method, at sparsity 0.
use rule compress as compress_dense with:
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
    resources:
        **model_resources("compress_dense"),
    params:
        **DENSE,


rule compression_tables:
    input:
        metrics=get_compression_metrics,
    output:
        **paper_comparison_output(),
        csv="results/tables/compression.csv",
        paired="results/tables/compression_paired.csv",
        md="results/tables/compression.md",
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
        **compression_tables_params(),
    shell:
        stage_shell("compression-tables")


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
        **export_pruned_params(),
    shell:
        stage_shell("export-pruned")
