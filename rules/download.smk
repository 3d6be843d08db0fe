# Downloads: the only rules that touch the network. On a cluster run
# `snakemake download` on the login node first; compute jobs then read resources/models/ and
# the HF / torch caches with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 (same HF_HOME, TORCH_HOME).


include: "download_helpers.smk"


# Login node: the SLURM executor runs local rules in the submitting process, not on a node.
# Each command sets the offline variables to 0, as every compute rule's sets them to 1
# (OFFLINE in common.smk): the shell that runs snakemake may export them =1.
localrules:
    download,
    download_model,
    download_data,
    download_detoxify,


rule download:
    input:
        get_download_targets,


rule download_model:
    output:
        "resources/models/{model}/download.json",
    log:
        "logs/resources/models/{model}/download.log",
    conda:
        "../envs/attrprune.yaml"
    params:
        **download_params(
            "download-model",
            hf_id=hub_model_param("hf_id"),
            revision=hub_model_param("revision"),
            out_dir=output_dir(0),
        ),
    shell:
        stage_shell("download-model")


rule download_data:
    output:
        "resources/downloads/datasets.json",
    log:
        "logs/resources/downloads/datasets.log",
    conda:
        "../envs/attrprune.yaml"
    params:
        # A param, so that a changed list reruns the rule (Snakemake's params trigger).
        **download_params("download-data", names=get_download_dataset_names, out=output_file()),
    shell:
        stage_shell("download-data")


rule download_detoxify:
    output:
        "resources/downloads/detoxify.json",
    log:
        "logs/resources/downloads/detoxify.log",
    conda:
        "../envs/attrprune.yaml"
    params:
        **download_params(
            "download-detoxify",
            model_type=config.get("download", {}).get("detoxify") or "original",
            out=output_file(),
        ),
    shell:
        stage_shell("download-detoxify")
