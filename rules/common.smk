# What every stage shares: the config checks (attrprune.config), the domain tables
# (attrprune.registry), wildcard constraints, model / world helpers (params and resources
# helpers: rules/params.smk). No numerics, no torch.
# Helpers that one stage uses are in rules/<stage>_helpers.smk, which rules/<stage>.smk includes
# first. Every path a rule writes is spelled once, in its output; others build it with
# expand(rules.<name>.output...), lazily (input functions), so rules may refer to later ones.

import os
import re
import sys

from snakemake.exceptions import WorkflowError

# Paths of the workflow's own files, from this file's folder (not workflow.basedir, which is the
# importing workflow's folder when this one is used as a Snakemake module).
REPO = os.path.dirname(os.path.abspath(str(workflow.current_basedir)))

# The package's torch-free modules need no install: import them from this checkout.
if os.path.join(REPO, "src") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "src"))
from attrprune import cluster, fingerprint, registry  # noqa: E402
from attrprune.config import ConfigError, check  # noqa: E402
from attrprune.config import stage_models as config_stage_models  # noqa: E402

# The config checks (attrprune.config) fill in the schema's defaults. A bad config is one line
# per problem and exit code 1, before any job and without a traceback.
try:
    check(config, os.path.join(REPO, "schemas", "config.schema.yaml"), workflow.configfiles)
except ConfigError as error:
    print(f"attrprune: {error}", file=sys.stderr)
    sys.exit(1)

MODELS = list(config["models"])
WORLD_SOURCE_MODELS = [m for m in MODELS if config["models"][m]["source"] == "world"]
WORLD_MODELS = list(config["world"]["models"])


def stage_models(stage):
    """Models a stage runs on: its `models` list (`[]`: none), or every model when null."""
    return config_stage_models(config, stage)


# Compute jobs never touch the network (cluster nodes are usually offline): each compute rule's
# command starts with params.offline = OFFLINE, so the HF libraries read only the local caches.
# Per command, not in Snakemake's environment: the log shows it and a copied command reruns the
# same way. Downloads set the three to 0; to let a compute job online, rerun it by hand without.
OFFLINE = "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1"


def _alternatives(names):
    # re.escape: an alias like "llama-3.1-8b" must not turn "." into "any character".
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Every method some stage prunes by (compression's by their compression names: wanda_onepass,
# sparsegpt, ...) and every scoring method behind them: each one's scores are built on demand.
ALL_METHODS = sorted(
    set(config["scores"]["methods"])
    | set(config["compression"]["methods"])
    | {registry.compression_methods()[m] for m in config["compression"]["methods"]} - {None}
    | {registry.STRUCTURED_METHODS[m] for m in config["structured"]["methods"]} - {None}
    | set(config["circuits"]["methods"])
    | set(config["correction"]["methods"])
    | ({"aura"} if config["correction"]["aura"] else set())
)


wildcard_constraints:
    model=_alternatives(MODELS),
    world_model=_alternatives(WORLD_MODELS),
    kind=_alternatives(registry.REFSET_KINDS),
    seed=r"\d+",
    method=_alternatives(ALL_METHODS),
    granularity=_alternatives(registry.GRANULARITIES),
    task="ioi",
    behaviour=_alternatives(registry.BEHAVIOURS),
    refset=rf"({_alternatives(registry.REFSET_KINDS)})-s\d+",
    # N:M scopes are spelled NofM in paths ("2:4" -> "2of4"); OWL allocation as row_owl, layer_owl.
    scope=rf"({_alternatives(registry.RANKED_SCOPES)})({registry.OWL})?|\d+of\d+",
    sparsity=r"0\.\d{2}",


def _repo_path(rel):
    """Path of a committed asset, so that runs with --directory elsewhere still find it: relative
    to the working directory when below it (readable commands in logs), else absolute."""
    path = os.path.abspath(os.path.join(REPO, rel))
    short = os.path.relpath(path)
    return path if short.startswith("..") else short


# The committed world: source files that no rule writes (see rule world_publish in world.smk).
WORLD_DIR = _repo_path("world")


def committed_world_file(*parts):
    path = os.path.join(WORLD_DIR, *parts)
    if not os.path.exists(path):
        raise WorkflowError(
            f"{path} is missing: it is part of the committed world. Restore it with "
            "`git checkout -- world/`, or regenerate the world with `snakemake world` "
            "(run in the repository root; this retrains every world model)"
        )
    return path


def refset_names(kind):
    return [f"{kind}-s{seed}" for seed in config["refsets"][kind]["seeds"]]


def is_world(model):
    """Whether the model is evaluated on the world's data (its text, prompts, lm-eval tasks and
    toxicity scorer): the world models, and local models with `data: world`."""
    spec = config["models"][model]
    return spec["source"] == "world" or spec.get("data") == "world"


def get_model_weights(wildcards):
    """The file that stands for a model's checkpoint (its folder is this file's folder): the
    committed weights of a world model, the config.json of a local model, the download record
    (written last by rule download_model) of a hub model."""
    spec = config["models"][wildcards.model]
    if spec["source"] == "world":
        return committed_world_file("models", wildcards.model, "model.safetensors")
    if spec["source"] == "local":  # checked to exist by attrprune.config.check_cross_keys
        return os.path.join(spec["path"], "config.json")
    return expand(rules.download_model.output[0], model=wildcards.model)[0]


def get_world_data(wildcards):
    """The world's data manifest for world-data models (their tasks read it); else nothing."""
    return committed_world_file("data", "manifest.json") if is_world(wildcards.model) else []


def get_data_dir(wildcards, input):
    """--data-dir: the folder of input.data (the world's manifest) for world-data models, else none."""
    return os.path.dirname(input.data) if is_world(wildcards.model) else "none"
