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
        offline=OFFLINE,
        code=code_fingerprint("world-corpus"),
        seed=config["world"]["seed"],
        scale=config["world"]["scale"],
        out_dir=output_dir(0),
    shell:
        "{params.offline} python -m attrprune world-corpus --seed {params.seed:q}"
        " --scale {params.scale:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("world-tokenizer"),
        corpus_dir=input_dir("corpus"),
        vocab_size=config["world"]["vocab_size"],
        out_dir=output_dir(0),
    shell:
        "{params.offline} python -m attrprune world-tokenizer --corpus-dir {params.corpus_dir:q}"
        " --vocab-size {params.vocab_size:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("world-train"),
        corpus_dir=input_dir("corpus"),
        tokenizer_dir=input_dir("tokenizer"),
        family=world_train_param("family"),
        hidden_size=world_train_param("hidden_size"),
        intermediate_size=world_train_param("intermediate_size"),
        layers=world_train_param("layers"),
        heads=world_train_param("heads"),
        context=world_train_param("context"),
        batch_size=world_train_param("batch_size"),
        epochs=world_train_param("epochs"),
        lr=world_train_param("lr"),
        seed=world_train_param("seed"),
        out_dir=output_dir(0),
    shell:
        "{params.offline} python -m attrprune world-train --family {params.family:q}"
        " --corpus-dir {params.corpus_dir:q} --tokenizer-dir {params.tokenizer_dir:q}"
        " --hidden-size {params.hidden_size:q}"
        " --intermediate-size {params.intermediate_size:q}"
        " --layers {params.layers:q} --heads {params.heads:q} --context {params.context:q}"
        " --batch-size {params.batch_size:q} --epochs {params.epochs:q} --lr {params.lr:q}"
        " --seed {params.seed:q} --threads {threads:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("world-publish"),
        corpus_dir=input_dir("corpus"),
        models_dir=get_world_models_dir,
        models=",".join(WORLD_MODELS),
        n_prompts=config["world"]["card"]["n_prompts"],
    shell:
        "{params.offline} python -m attrprune world-publish --corpus-dir {params.corpus_dir:q}"
        " --models-dir {params.models_dir:q} --models {params.models:q}"
        " --n-prompts {params.n_prompts:q} --out-dir world --stamp {output:q} > {log:q} 2>&1"


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
        offline=OFFLINE,
        code=code_fingerprint("world-card"),
        model_dir=input_dir("model"),
        data_dir=input_dir("data"),
        n_prompts=config["world"]["card"]["n_prompts"],
    shell:
        "{params.offline} python -m attrprune world-card --model-dir {params.model_dir:q}"
        " --data-dir {params.data_dir:q} --n-prompts {params.n_prompts:q}"
        " --out {output:q} > {log:q} 2>&1"


rule world_card_table:
    input:
        get_world_cards,
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
        offline=OFFLINE,
        code=code_fingerprint("world-card-table"),
        cards=joined_input(),
    shell:
        "{params.offline} python -m attrprune world-card-table --cards {params.cards:q}"
        " --out {output.md:q} > {log:q} 2>&1"
