# Reference sets and component scores. Scores are the durable
# artifact: every application prunes by them, recomputing masks from them as needed.


include: "relevance_helpers.smk"


rule refset:
    input:
        model=get_model_weights,
        data=get_refset_data,
    output:
        "resources/refsets/{model}/{kind}-s{seed}.safetensors",
    log:
        "logs/resources/refsets/{model}/{kind}-s{seed}.log",
    benchmark:
        "benchmarks/resources/refsets/{model}/{kind}-s{seed}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_refset_gpu_count,
        mem_mb=cluster_size("refset", "mem_mb"),
        runtime=cluster_size("refset", "runtime"),
    params:
        **refset_params(),
    shell:
        stage_shell("refset")


rule scores:
    input:
        model=get_model_weights,
        refset=get_scores_refset,
    output:
        "results/{model}/scores/{method}/{refset}.safetensors",
    log:
        "logs/results/{model}/scores/{method}/{refset}.log",
    benchmark:
        "benchmarks/results/{model}/scores/{method}/{refset}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        **model_resources("scores"),
    params:
        **scores_params(),
    shell:
        stage_shell("scores")
