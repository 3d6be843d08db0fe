# Structured compression: remove the same fraction of MLP neurons and attention heads (key/value
# groups) in every block, save the smaller dense model (a standard Hugging Face config), reload it
# and evaluate it as compression evaluates; measure the dense and every smaller model side by side
# (parameters, file size, peak memory, forward latency, generation speed); then tables. The dense
# model's quality is compression's compress_dense job (same tasks and limits).


include: "structured_helpers.smk"


rule structured:
    input:
        model=get_model_weights,
        scores=get_structured_scores,
        calibration=get_structured_calibration,
        data=get_world_data,
    output:
        model=directory("results/{model}/structured/{method}/{refset}/ratio_{ratio}/model"),
        lm_eval="results/{model}/structured/{method}/{refset}/ratio_{ratio}/lm_eval.json",
        metrics="results/{model}/structured/{method}/{refset}/ratio_{ratio}/metrics.json",
    log:
        "logs/results/{model}/structured/{method}/{refset}/ratio_{ratio}.log",
    benchmark:
        "benchmarks/results/{model}/structured/{method}/{refset}/ratio_{ratio}.tsv"
    wildcard_constraints:
        method=_alternatives(registry.STRUCTURED_METHODS),
        ratio=r"0\.\d{2}",
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        **model_resources("compress"),
    params:
        **structured_params(),
    shell:
        stage_shell("structured")


rule structured_speed:
    input:
        model=get_model_weights,
        models=get_structured_speed_models,
    output:
        "results/{model}/structured/speed.json",
    log:
        "logs/results/{model}/structured/speed.log",
    benchmark:
        "benchmarks/results/{model}/structured/speed.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=lambda wildcards: 1 if config["structured"]["speed"]["device"] == "cuda" else 0,
        mem_mb=cluster_size("compress_dense", "mem_mb"),
        runtime=cluster_size("compress_dense", "runtime"),
    params:
        **structured_speed_params(),
    shell:
        stage_shell("structured-speed")


rule structured_tables:
    input:
        metrics=get_structured_metrics,
        dense=expand(rules.compress_dense.output.metrics, model=stage_models("structured")),
        speed=expand("results/{model}/structured/speed.json", model=stage_models("structured")),
    output:
        csv="results/tables/structured.csv",
        md="results/tables/structured.md",
        html=report_table(
            "results/tables/structured.html",
            stage_models("structured"),
            "structured",
            "structured_tables.rst",
            "Structured compression",
            "quality, size and speed of the smaller models",
        ),
        plots=report_plots(
            "structured",
            "structured_plot.rst",
            "Structured compression",
            "perplexity and accuracy against the removed fraction",
        ),
        svgs=plot_svgs("structured"),
    log:
        "logs/results/tables/structured.log",
    benchmark:
        "benchmarks/results/tables/structured.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        # A CPU rule, small at any model size (as the profiles size the other tables).
        mem_mb=4000,
        runtime=15,
    params:
        **structured_tables_params(),
    shell:
        stage_shell("structured-tables")
