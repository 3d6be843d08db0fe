# Attribution-guided pruning benchmark (Hatefi et al., arXiv:2506.13727). See DESIGN.md.
#
# Path grammar: every file the workflow reads or writes has one of these shapes.
#
#   resources/world/corpus/manifest.json     generated corpus; manifest written last
#   resources/world/tokenizer/tokenizer.json
#   resources/world/models/{world_model}/model.safetensors
#   resources/world/published.json           written last by `snakemake world`
#   world/models/{model}/  world/data/       committed world: source files, never a
#                                            declared output (see rule `world`)
#   resources/models/{model}/                hub snapshot at a pinned revision
#   resources/refsets/{model}/{refset}.safetensors   refset = {kind}-s{seed}: samples + target
#   results/world/{model}/card.json          the planted behaviours, measured
#   results/{model}/scores/{method}/{refset}.safetensors
#   results/{model}/compression/{method}/{scope}/{refset}/sparsity_{sparsity}/metrics.json
#                                            scope: row, layer, global, NofM (N:M)
#   results/{model}/circuits/{task}/{method}/{granularity}/sparsity_{sparsity}/metrics.json
#   results/{model}/correction/{behaviour}/{method}/{granularity}/k_{k}/metrics.json
#   results/tables/{table}.csv (+ .md)       results/plots/{plot}.png
#   logs/<output path>.log                   benchmarks/<output path>.tsv
#                                            (output extension dropped)
#
# {model} and {world_model} are config aliases ([a-z0-9.-]); {sparsity} always has two
# decimals (0.50).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/world.smk"
include: "rules/relevance.smk"
include: "rules/compression.smk"
include: "rules/circuits.smk"
include: "rules/correction.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
