# The built-in world: generated corpus -> tokenizer -> small Llama
# and OPT models -> the committed world/ directory, and the world card of each model.
#
# Training jobs use one thread: these models are so small that two 1-thread jobs in
# parallel finish sooner than one 2-thread job.


include: "world_helpers.smk"


rule world_corpus:
    output:
        "resources/world/corpus/manifest.json",
    log:
        "logs/resources/world/corpus/manifest.log",
    benchmark:
        "benchmarks/resources/world/corpus/manifest.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **stage_params("world-corpus", "world", out_dir=output_dir(0)),
    shell:
        stage_shell("world-corpus")


rule world_tokenizer:
    input:
        corpus=rules.world_corpus.output[0],
    output:
        "resources/world/tokenizer/tokenizer.json",
    log:
        "logs/resources/world/tokenizer/tokenizer.log",
    benchmark:
        "benchmarks/resources/world/tokenizer/tokenizer.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **stage_params("world-tokenizer", "world", corpus_dir=input_dir("corpus"), out_dir=output_dir(0)),
    shell:
        stage_shell("world-tokenizer")


rule world_train:
    input:
        corpus=rules.world_corpus.output[0],
        tokenizer=rules.world_tokenizer.output[0],
    output:
        "resources/world/models/{world_model}/model.safetensors",
    log:
        "logs/resources/world/models/{world_model}/model.log",
    benchmark:
        "benchmarks/resources/world/models/{world_model}/model.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **world_train_params(),
    shell:
        stage_shell("world-train")


# `snakemake world` retrains everything and copies it into the committed world/.
# world/ is deliberately not a declared output: if it were, a fresh clone (no
# resources/) would make the default target retrain every model, and so would any
# checkout whose mtimes make world/ look older than its inputs. The world cards read
# world/ as plain source files instead; published.json (written last) marks completion.
# --out-dir is relative to the working directory, so a run with --directory elsewhere
# publishes there instead of overwriting the repository's world/.
rule world_publish:
    input:
        corpus=rules.world_corpus.output[0],
        tokenizer=rules.world_tokenizer.output[0],
        models=get_world_train_models,
    output:
        "resources/world/published.json",
    log:
        "logs/resources/world/published.log",
    benchmark:
        "benchmarks/resources/world/published.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **world_publish_params(),
    shell:
        stage_shell("world-publish")


# Target only: `snakemake world`.
rule world:
    input:
        rules.world_publish.output,


rule world_card:
    input:
        model=get_world_card_model,
        data=get_world_card_data,
    output:
        "results/world/{model}/card.json",
    log:
        "logs/results/world/{model}/card.log",
    benchmark:
        "benchmarks/results/world/{model}/card.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **stage_params("world-card", "world.card", data_dir=input_dir("data"), out=output_file()),
    shell:
        stage_shell("world-card")


rule world_card_table:
    input:
        cards=get_world_cards,
    output:
        md="results/tables/world_card.md",
        html=report_table(
            "results/tables/world_card.html",
            WORLD_SOURCE_MODELS,
            "world",
            "world_card.rst",
            "World",
            "planted behaviours of each world model, measured",
        ),
    log:
        "logs/results/tables/world_card.log",
    benchmark:
        "benchmarks/results/tables/world_card.tsv"
    conda:
        "../envs/attrprune.yaml"
    threads: 1
    params:
        **stage_params("world-card-table", out=output_file("md")),
    shell:
        stage_shell("world-card-table")
