# Circuit discovery (paper section 4.2): one job per model x method x granularity x scope
# prunes by the IOI scores of every reference seed, measures IOI on held-out prompts over the
# sparsity sweep, and writes the sparsest circuit above the threshold. One ablation job per
# model gives the ground truth the rankings are scored against.

CIRCUIT_SPARSITIES = ",".join(f"{s:.4g}" for s in config["circuits"]["sparsities"])


rule ioi_data:
    # Hub models: IOI prompts with names that are single tokens for the model's tokenizer;
    # reference and evaluation prompts use disjoint names (attrprune.ioi).
    input:
        model=get_model_weights,
    output:
        "resources/ioi/{model}/{split}.jsonl",
    wildcard_constraints:
        split="reference|evaluation",
    log:
        "logs/resources/ioi/{model}/{split}.log",
    benchmark:
        "benchmarks/resources/ioi/{model}/{split}.tsv"
    params:
        model_dir=input_dir("model"),
        n=config["refsets"]["ioi"]["generated"],
    threads: 1
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune ioi-data --model-dir {params.model_dir:q} --n {params.n} --seed 0"
        " --split {wildcards.split} --out {output} > {log} 2>&1"


rule circuit_ablation:
    input:
        model=get_model_weights,
        eval=get_ioi_eval_file,
    output:
        "results/{model}/circuits/{task}/ablation.safetensors",
    log:
        "logs/results/{model}/circuits/{task}/ablation.log",
    benchmark:
        "benchmarks/results/{model}/circuits/{task}/ablation.tsv"
    params:
        model_dir=input_dir("model"),
        limit=config["circuits"]["ablation"]["limit"] if config["circuits"]["ablation"] else 1,
        n_weights=config["circuits"]["ablation"]["n_weights"] if config["circuits"]["ablation"] else 1,
        weight_modules=config["circuits"]["weight_modules"],
        model_flags=get_model_flags,
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune circuit-ablation --model-dir {params.model_dir:q} --eval-file {input.eval}"
        " --limit {params.limit} --n-weights {params.n_weights} --weight-modules {params.weight_modules}"
        " {params.model_flags} --threads {threads} --out {output} > {log} 2>&1"


rule circuit:
    input:
        model=get_model_weights,
        scores=get_circuit_scores,
        eval=get_ioi_eval_file,
        ablation=get_circuit_ablation,
    output:
        curve="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/curve.json",
        masks="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.safetensors",
        summary="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.json",
        heatmap="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.png",
    log:
        "logs/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.log",
    benchmark:
        "benchmarks/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.tsv"
    params:
        model_dir=input_dir("model"),
        scores=lambda wildcards, input: ",".join(input.scores),
        sparsities=CIRCUIT_SPARSITIES,
        flags=get_circuit_flags,
        model_flags=get_model_flags,
        out_dir=lambda wildcards, output: os.path.dirname(output.curve),
    threads: 1
    resources:
        gpu=get_gpu_count,
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune circuit --model-dir {params.model_dir:q} --model-name {wildcards.model} --scores {params.scores}"
        " --eval-file {input.eval} --granularity {wildcards.granularity} --scope {wildcards.scope}"
        " --sparsities {params.sparsities} {params.flags} {params.model_flags} --threads {threads}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule circuit_tables:
    input:
        circuit_curves(),
    output:
        csv=report("results/tables/circuits.csv", category="Circuits"),
        summary="results/tables/circuits_summary.csv",
        md="results/tables/circuits.md",
        plots=report(
            expand("results/plots/circuits_{model}.png", model=stage_models("circuits")),
            category="Circuits",
        ),
    log:
        "logs/results/tables/circuits.log",
    benchmark:
        "benchmarks/results/tables/circuits.tsv"
    params:
        curves=comma_joined_input,
    threads: 1
    conda:
        "../envs/attrprune.yaml"
    shell:
        "python -m attrprune circuit-tables --curves {params.curves} --csv {output.csv}"
        " --summary-csv {output.summary} --markdown {output.md} --plots-dir results/plots > {log} 2>&1"
