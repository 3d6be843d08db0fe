# Reference sets and component scores (DESIGN.md sections 1 and 7). Scores are the durable
# artifact: every application prunes by them, recomputing masks from them as needed.


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
    params:
        model_dir=input_dir("model"),
        flags=get_refset_flags,
        model_flags=get_model_flags,
    threads: 1
    resources:
        gpu=get_refset_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune refsets --kind {wildcards.kind} --model-dir {params.model_dir:q}"
        " {params.flags} {params.model_flags} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"


rule scores:
    input:
        model=get_model_weights,
        refset="resources/refsets/{model}/{refset}.safetensors",
    output:
        "results/{model}/scores/{method}/{refset}.safetensors",
    log:
        "logs/results/{model}/scores/{method}/{refset}.log",
    benchmark:
        "benchmarks/results/{model}/scores/{method}/{refset}.tsv"
    params:
        model_dir=input_dir("model"),
        lrp_variant=config["scores"]["lrp_variant"],
        aggregation=config["scores"]["aggregation"],
        batch_size=config["scores"]["batch_size"],
        # Seeds the random method: independent draws per reference set (general-sN -> N,
        # ioi-sN -> 1000 + N, ...), so random contrastive scores do not cancel to zero.
        seed=get_scores_seed,
        model_flags=get_model_flags,
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune scores --model-dir {params.model_dir:q} --refset {input.refset}"
        " --method {wildcards.method} --lrp-variant {params.lrp_variant}"
        " --aggregation {params.aggregation} --seed {params.seed}"
        " --batch-size {params.batch_size} {params.model_flags} --threads {threads} --out {output} > {log} 2>&1"
