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
        **ioi_data_params(),
    shell:
        stage_shell("ioi-data")


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
        **model_resources("circuit_ablation"),
    params:
        **circuit_ablation_params(),
    shell:
        stage_shell("circuit-ablation")


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
        heatmap_svg="results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.svg",
    log:
        "logs/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.log",
    benchmark:
        "benchmarks/results/{model}/circuits/{task}/{method}/{granularity}/{scope}.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    resources:
        **model_resources("circuit"),
    params:
        **circuit_params(),
    shell:
        stage_shell("circuit")


rule circuit_tables:
    input:
        curves=get_circuit_curves,
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
        **circuit_tables_params(),
    shell:
        stage_shell("circuit-tables")
