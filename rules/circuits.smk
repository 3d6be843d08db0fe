# Circuit discovery (paper section 4.2): one job per model x method x granularity x scope
# prunes by the IOI scores of every reference seed, measures IOI on held-out prompts over the
# sparsity sweep (plus the sizes of the CPR / CMD areas), and writes the sparsest circuit above
# the threshold. One ablation job per model gives the ground truth the rankings are scored
# against. With circuits.ablation_value mean, both also read the model's IOI reference sets,
# over which the ablated heads' and neurons' means are taken; with circuits.conventions mib, both
# patch removed heads and neurons from each evaluation prompt's corrupted copy instead.


include: "circuits_helpers.smk"


rule ioi_data:
    # Hub-data models: IOI prompts with names that are single tokens for the model's tokenizer;
    # reference and evaluation prompts use disjoint names (attrprune.ioi).
    input:
        model=get_model_weights,
    output:
        "resources/ioi/{model}/{split}.jsonl",
    log:
        "logs/resources/ioi/{model}/{split}.log",
    benchmark:
        "benchmarks/resources/ioi/{model}/{split}.tsv"
    wildcard_constraints:
        split="reference|evaluation",
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        mem_mb=cluster_size("ioi_data", "mem_mb"),
        runtime=cluster_size("ioi_data", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("ioi-data"),
        model_dir=input_dir("model"),
        n=config["refsets"]["ioi"]["generated"],
    shell:
        "{params.offline} python -m attrprune ioi-data --model-dir {params.model_dir:q} --n {params.n:q} --seed 0"
        " --split {wildcards.split:q} --out {output:q} > {log:q} 2>&1"


rule circuit_ablation:
    input:
        model=get_model_weights,
        eval=get_ioi_eval_file,
        mean_reference=get_mean_reference,
    output:
        "results/{model}/circuits/{task}/ablation.safetensors",
    log:
        "logs/results/{model}/circuits/{task}/ablation.log",
    benchmark:
        "benchmarks/results/{model}/circuits/{task}/ablation.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
        mem_mb=cluster_size("circuit_ablation", "mem_mb"),
        runtime=cluster_size("circuit_ablation", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("circuit-ablation"),
        model_dir=input_dir("model"),
        limit=ablation_param("limit", 1),
        n_weights=ablation_param("n_weights", 1),
        weight_modules=config["circuits"]["weight_modules"],
        ablation_value=circuit_ablation_value,
        mean_reference=get_mean_reference_param,
        dtype=get_dtype,
        device_map=get_device_map,
    shell:
        "{params.offline} python -m attrprune circuit-ablation --model-dir {params.model_dir:q} --eval-file {input.eval:q}"
        " --limit {params.limit:q} --n-weights {params.n_weights:q} --weight-modules {params.weight_modules:q}"
        " --ablation-value {params.ablation_value:q} --mean-reference {params.mean_reference:q}"
        " --dtype {params.dtype:q} --device-map {params.device_map:q} --threads {threads:q}"
        " --out {output:q} > {log:q} 2>&1"


rule circuit:
    input:
        model=get_model_weights,
        scores=get_circuit_scores,
        eval=get_ioi_eval_file,
        ablation=get_circuit_ablation,
        mean_reference=get_mean_reference,
    output:
        curve="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/curve.json",
        masks="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.safetensors",
        summary="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.json",
        heatmap=report(
            "results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.png",
            caption="../report/circuit_heatmap.rst",
            category="Circuits",
            subcategory="Circuit maps",
            labels={"model": "{model}", "stage": "circuits", "shows": "{method}, {granularity}s, {scope}"},
        ),
    log:
        "logs/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.log",
    benchmark:
        "benchmarks/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        gpu=get_gpu_count,
        mem_mb=cluster_size("circuit", "mem_mb"),
        runtime=cluster_size("circuit", "runtime"),
    params:
        offline=OFFLINE,
        code=code_fingerprint("circuit"),
        model_dir=input_dir("model"),
        scores=joined_input("scores"),
        sparsities=CIRCUIT_SPARSITIES,
        threshold=config["circuits"]["threshold"],
        weight_modules=config["circuits"]["weight_modules"],
        limit=or_none(config["circuits"]["limit"]),
        ablation=get_ablation_file,
        top_fraction=ablation_param("top_fraction", 0.1),
        sizes=FAITHFULNESS_SIZES,
        ablation_value=circuit_ablation_value,
        size_rounding=SIZE_ROUNDING,
        mean_reference=get_mean_reference_param,
        resamples=config["circuits"]["bootstrap"]["resamples"],
        bootstrap_seed=config["circuits"]["bootstrap"]["seed"],
        published=get_published_circuit,
        dtype=get_dtype,
        device_map=get_device_map,
        out_dir=output_dir("curve"),
    shell:
        "{params.offline} python -m attrprune circuit --model-dir {params.model_dir:q} --model-name {wildcards.model:q}"
        " --scores {params.scores:q} --eval-file {input.eval:q} --granularity {wildcards.granularity:q}"
        " --scope {wildcards.scope:q} --sparsities {params.sparsities:q} --threshold {params.threshold:q}"
        " --weight-modules {params.weight_modules:q} --limit {params.limit:q} --ablation {params.ablation:q}"
        " --top-fraction {params.top_fraction:q} --faithfulness-sizes {params.sizes:q}"
        " --ablation-value {params.ablation_value:q} --size-rounding {params.size_rounding:q}"
        " --mean-reference {params.mean_reference:q} --bootstrap-resamples {params.resamples:q}"
        " --bootstrap-seed {params.bootstrap_seed:q} --published-circuit {params.published:q}"
        " --dtype {params.dtype:q} --device-map {params.device_map:q}"
        " --threads {threads:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule circuit_tables:
    input:
        get_circuit_curves,
    output:
        csv="results/tables/circuits.csv",
        summary="results/tables/circuits_summary.csv",
        paired="results/tables/circuits_paired.csv",
        md="results/tables/circuits.md",
        html=report_table(
            "results/tables/circuits.html",
            stage_models("circuits"),
            "circuits",
            "circuits_tables.rst",
            "Circuits",
            "circuit sizes, agreement with ablation, paired tests",
        ),
        plots=report_plots("circuits", "circuits_plot.rst", "Circuits", "IOI faithfulness against the kept fraction"),
        svgs=plot_svgs("circuits"),
    log:
        "logs/results/tables/circuits.log",
    benchmark:
        "benchmarks/results/tables/circuits.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        offline=OFFLINE,
        code=code_fingerprint("circuit-tables"),
        curves=joined_input(),
        plots_dir=output_dir("plots"),
    shell:
        "{params.offline} python -m attrprune circuit-tables --curves {params.curves:q} --csv {output.csv:q}"
        " --summary-csv {output.summary:q} --paired-csv {output.paired:q} --markdown {output.md:q}"
        " --plots-dir {params.plots_dir:q} > {log:q} 2>&1"
