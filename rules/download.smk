# Downloads (DESIGN.md section 6): the only rules that touch the network. On a cluster run
# `snakemake download` on the login node first; compute jobs then read resources/models/ and
# the HF / torch caches with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 (same HF_HOME, TORCH_HOME).

# Login node: the SLURM executor runs local rules in the submitting process, not on a node.
# Each command sets the offline variables to 0: the login shell may export them =1 for the
# compute jobs (SLURM passes the environment on), and downloads must not inherit that.
localrules:
    download,
    download_model,
    download_data,
    download_detoxify,


rule download:
    input:
        download_targets(),


rule download_model:
    output:
        "resources/models/{model}/download.json",
    log:
        "logs/resources/models/{model}/download.log",
    params:
        hf_id=hub_model_param("hf_id"),
        revision=hub_model_param("revision"),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    conda:
        "../envs/attrprune.yaml"
    shell:
        "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 python -m attrprune download-model --hf-id {params.hf_id}"
        " --revision {params.revision} --out-dir {params.out_dir} > {log} 2>&1"


rule download_data:
    output:
        "resources/downloads/datasets.json",
    log:
        "logs/resources/downloads/datasets.log",
    params:
        # A param, so that a changed list reruns the rule (Snakemake's params trigger).
        names=",".join(download_dataset_names()),
    conda:
        "../envs/attrprune.yaml"
    shell:
        "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 python -m attrprune download-data --names {params.names}"
        " --out {output} > {log} 2>&1"


rule download_detoxify:
    output:
        "resources/downloads/detoxify.json",
    log:
        "logs/resources/downloads/detoxify.log",
    params:
        model_type=config.get("download", {}).get("detoxify") or "original",
    conda:
        "../envs/attrprune.yaml"
    shell:
        "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 python -m attrprune download-detoxify --model-type {params.model_type}"
        " --out {output} > {log} 2>&1"
