# Helpers of rules/world.smk (input, params and target functions; Snakemake's linter
# wants functions and rules in separate files). No numerics, no torch.


def world_train_param(key):
    """Params function reading world.models.<alias>.<key> for the job's alias."""
    return lookup(dpath=f"world/models/{{world_model}}/{key}", within=config)


# world-train's fields from world.models.<alias> of the job's world model.
WORLD_TRAIN = {
    key: world_train_param(key)
    for key in ("family", "hidden_size", "intermediate_size", "layers", "heads", "context")
    + ("batch_size", "epochs", "lr", "seed")
}


def get_world_train_models(wildcards):
    return expand(rules.world_train.output[0], world_model=WORLD_MODELS)


def get_world_models_dir(wildcards):
    """--models-dir of world-publish: the folder holding one folder per trained world model."""
    return os.path.dirname(os.path.dirname(rules.world_train.output[0]))


def get_world_card_model(wildcards):
    if config["models"][wildcards.model]["source"] != "world":
        raise WorkflowError(
            f"world cards exist only for source 'world' models: {WORLD_SOURCE_MODELS}; "
            f"{wildcards.model} is a {config['models'][wildcards.model]['source']} model"
        )
    return committed_world_file("models", wildcards.model, "model.safetensors")


def get_world_card_data(wildcards):
    return committed_world_file("data", "manifest.json")


def get_world_cards(wildcards):
    return expand(rules.world_card.output[0], model=WORLD_SOURCE_MODELS)


def world_targets(wildcards):
    """The card of every world model, and their table."""
    if not WORLD_SOURCE_MODELS:
        return []
    return get_world_cards(wildcards) + rules.world_card_table.output


def world_train_params():
    """The params that a job of rule world_train gives; stage_params fills in the rest."""
    return stage_params(
        "world-train",
        corpus_dir=input_dir("corpus"),
        tokenizer_dir=input_dir("tokenizer"),
        out_dir=output_dir(0),
        **WORLD_TRAIN,
    )


def world_publish_params():
    """The params that a job of rule world_publish gives; stage_params fills in the rest."""
    return stage_params(
        "world-publish",
        "world.card",
        corpus_dir=input_dir("corpus"),
        models_dir=get_world_models_dir,
        models=WORLD_MODELS,
        out_dir="world",
        stamp=output_file(),
    )
