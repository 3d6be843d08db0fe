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
        offline=OFFLINE,
        code=code_fingerprint("refset"),
        model_dir=input_dir("model"),
        n=refset_param("n"),
        length=refset_param("length"),
        new_tokens=refset_param("new_tokens"),
        data_dir=get_data_dir,
        source=get_refset_source,
        prompts_file=get_refset_prompts_file,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune refset --kind {wildcards.kind:q} --model-dir {params.model_dir:q}"
        " --n {params.n:q} --length {params.length:q} --new-tokens {params.new_tokens:q}"
        " --data-dir {params.data_dir:q} --source {params.source:q} --prompts-file {params.prompts_file:q}"
        " --dtype {params.dtype:q} --device-map {params.device_map:q} --seed {wildcards.seed:q}"
        " --out {output:q} > {log:q} 2>&1"


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
        gpu=get_gpu_count,
        mem_mb=cluster_size("scores", "mem_mb"),
        runtime=cluster_size("scores", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("scores"),
        model_dir=input_dir("model"),
        lrp_variant=config["scores"]["lrp_variant"],
        aggregation=config["scores"]["aggregation"],
        batch_size=config["scores"]["batch_size"],
        storage=get_scores_storage,
        seed=get_scores_seed,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune scores --model-dir {params.model_dir:q} --refset {input.refset:q}"
        " --method {wildcards.method:q} --lrp-variant {params.lrp_variant:q}"
        " --aggregation {params.aggregation:q} --seed {params.seed:q} --batch-size {params.batch_size:q}"
        " --storage {params.storage:q} --dtype {params.dtype:q} --device-map {params.device_map:q}"
        " --threads {threads:q}"
        " --out {output:q} > {log:q} 2>&1"
