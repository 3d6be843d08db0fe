# Helpers of rules/download.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.


def hub_models():
    return [m for m, spec in config["models"].items() if spec["source"] == "hub"]


def download_dataset_names():
    """download.datasets, plus the data of every lm-eval task the compression stage evaluates
    (world_* tasks ship with the package and need none)."""
    names = list(config.get("download", {}).get("datasets", []))
    tasks = config.get("compression", {}).get("tasks", [])
    names += [f"lmeval:{t}" for t in tasks if not t.startswith("world_")]
    # Token perplexity of hub models reads the WikiText-2 test split (load_dataset prepares
    # every split of wikitext-2-raw-v1, so "wikitext2" caches it).
    if any(ppl_source(m) == "wikitext2" for m in stage_models("compression")):
        names.append("wikitext2")
    return list(dict.fromkeys(names))


def get_download_dataset_names(wildcards):
    return ",".join(download_dataset_names())


def get_download_targets(wildcards):
    """Every download the config needs: the input of the target rule `download`."""
    targets = expand(rules.download_model.output[0], model=hub_models())
    if download_dataset_names():
        targets += rules.download_data.output
    if config.get("download", {}).get("detoxify"):
        targets += rules.download_detoxify.output
    return targets


def hub_model_param(key):
    def get(wildcards):
        spec = config["models"][wildcards.model]
        if spec["source"] != "hub":
            raise WorkflowError(
                f"only source 'hub' models are downloaded; {wildcards.model} is a " f"{spec['source']} model"
            )
        return spec[key]

    return get


def download_params(stage, **given):
    """params of a download rule: online (the one kind of job that is), no code fingerprint
    (a pinned revision defines what a download fetches)."""
    params = stage_params(stage, **given)
    del params["code"]
    return {**params, "offline": "HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0"}
