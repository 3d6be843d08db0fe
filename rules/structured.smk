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
        gpu=get_gpu_count,
        mem_mb=cluster_size("compress", "mem_mb"),
        runtime=cluster_size("compress", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("structured"),
        model_dir=input_dir("model"),
        scores=input_or_none("scores"),
        calibration=input_or_none("calibration"),
        data_dir=get_data_dir,
        base_model=get_base_model,
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
        "{params.offline} python -m attrprune structured --model-dir {params.model_dir:q} --model-name {wildcards.model:q}"
        " --method {wildcards.method:q} --ratio {wildcards.ratio:q} --scores {params.scores:q}"
        " --calibration {params.calibration:q} --base-model {params.base_model:q}"
        " --tasks {params.tasks:q} --data-dir {params.data_dir:q} --limit {params.limit:q}"
        " --ppl-source {params.ppl_source:q} --seqlen {params.seqlen:q}"
        " --ppl-windows {params.ppl_windows:q} --batch-size {params.batch_size:q}"
        " {params.log_samples:q} --dtype {params.dtype:q} --device-map {params.device_map:q} --threads {threads:q}"
        " --model-out {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"


rule structured_speed:
    input:
        model=get_model_weights,
        small=get_structured_speed_models,
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
        offline=OFFLINE,
        code=code_fingerprint("structured-speed"),
        model_dir=input_dir("model"),
        small=joined_input("small"),
        device=config["structured"]["speed"]["device"],
        batch=config["structured"]["speed"]["batch"],
        new_tokens=config["structured"]["speed"]["new_tokens"],
        repeats=config["structured"]["speed"]["repeats"],
        rounds=config["structured"]["speed"]["rounds"],
    shell:
        "{params.offline} python -m attrprune structured-speed --model-name {wildcards.model:q} --dense {params.model_dir:q}"
        " --models {params.small:q} --device {params.device:q} --threads {threads:q} --batch {params.batch:q}"
        " --new-tokens {params.new_tokens:q} --repeats {params.repeats:q} --rounds {params.rounds:q}"
        " --out {output:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("structured-tables"),
        metrics=joined_input("metrics"),
        dense=joined_input("dense"),
        speed=joined_input("speed"),
        plots_dir=output_dir("plots"),
    shell:
        "{params.offline} python -m attrprune structured-tables --metrics {params.metrics:q} --dense {params.dense:q}"
        " --speed {params.speed:q} --csv {output.csv:q} --markdown {output.md:q} --plots-dir {params.plots_dir:q}"
        " > {log:q} 2>&1"
