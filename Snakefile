# Attribution-guided pruning benchmark (Hatefi et al., arXiv:2506.13727). docs/architecture.md explains the workflow.
#
# Path grammar: every file the workflow writes, and every file it reads that no rule writes,
# has one of these shapes. {name} is a wildcard (one path segment or part of one), {a,b} one
# of the listed spellings, a trailing / a folder and everything in it.
# tests/unit/test_path_grammar.py checks every job's outputs, logs, benchmarks and inputs
# against it (a dry run of the e2e config with a hub model, `world` and `download`).
#
#   world/models/{model}/                    committed world (read, never a declared output;
#   world/data/                              see rule world_publish): weights, tokenizer, data
#   resources/world/corpus/manifest.json     `snakemake world`: generated corpus, manifest last
#   resources/world/tokenizer/tokenizer.json
#   resources/world/models/{world_model}/model.safetensors
#   resources/world/published.json           written last when world/ has been republished
#   resources/models/{model}/download.json   hub snapshot at a pinned revision (the folder),
#                                            download.json written last (`snakemake download`)
#   resources/downloads/{datasets,detoxify}.json     datasets / Detoxify caches filled
#   resources/ioi/{model}/{split}.jsonl      hub models' IOI prompts; split: reference, evaluation
#   resources/prompts/{model}/{kind}_{reference,evaluation,control}.jsonl    hub models'
#                                            behaviour prompts (control: prompts without the
#                                            behaviour); kind: toxic, repetition
#   resources/refsets/{model}/{kind}-s{seed}.safetensors    a reference set ({refset} below):
#                                            samples + explained target; kind: general, ioi,
#                                            toxic, repetition, dialogue (world data only)
#   results/world/{model}/card.json          a world model's planted behaviours, measured
#   results/{model}/scores/{method}/{refset}.safetensors
#   results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}/{metrics,lm_eval}.json
#   results/{model}/compression/dense/{metrics,lm_eval}.json   the dense model, once per model
#                                            scope: row, layer, global, NofM (N:M)
#   results/{model}/compression/export/{method}_{scope}_{refset}_sparsity_{sparsity}/
#   results/{model}/structured/{method}/{refset}/ratio_{ratio}/{metrics,lm_eval}.json
#   results/{model}/structured/{method}/{refset}/ratio_{ratio}/model/   the smaller model (HF format)
#   results/{model}/structured/speed.json    dense and smaller models measured side by side
#   results/{model}/circuits/{task}/ablation.safetensors
#   results/{model}/circuits/{task}/{method}/{granularity}/{scope}/curve.json
#   results/{model}/circuits/{task}/{method}/{granularity}/{scope}/circuit.{safetensors,json,png,svg}
#   results/{model}/correction/{behaviour}/{method}/{granularity}/{curve.json,generations.jsonl,per_prompt.jsonl}
#   results/tables/world_card.{md,html}
#   results/tables/{compression,circuits,correction,structured}.{csv,md,html}   .html: the
#                                            Markdown rendered, what the report shows
#   results/tables/compression_paired.csv
#   results/tables/{circuits_summary.csv,circuits_paired.csv}
#   results/tables/compression_paper.md      with a paper model in the run (registry.PAPER_MODELS)
#   results/tables/correction_examples.{md,html}
#   results/plots/{compression,circuits,correction,structured}_{model}.{png,svg}
#   logs/{job}.log                           {job}: the job's output path without its extension
#   benchmarks/{job}.tsv                     (a folder: the folder), or the folder or name prefix
#                                            its outputs share (downloads have no benchmark)
#
# {model} and {world_model} are config aliases ([a-z0-9.-]); {sparsity} always has two
# decimals (0.50), and so has {ratio}; {task} is ioi; {granularity} weight, neuron or head; {behaviour} toxicity or
# repetition. A local model's folder (models.<alias>.path) is read where it lies.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/params.smk"
include: "rules/report_helpers.smk"
include: "rules/forkserver.smk"
include: "rules/download.smk"
include: "rules/world.smk"
include: "rules/relevance.smk"
include: "rules/compression.smk"
include: "rules/structured.smk"
include: "rules/circuits.smk"
include: "rules/correction.smk"


# Each stage's targets: what its config section asks for (nothing for a stage without models).
rule all:
    default_target: True
    input:
        world_targets,
        score_targets,
        compression_targets,
        structured_targets,
        circuit_targets,
        correction_targets,
