"""Every name the suite knows, in one torch-free table: scoring methods, pruners, compression
methods, reference-set kinds, granularities, pruning scopes and behaviours.

The CLI's choices, the workflow's wildcards and job lists (`rules/common.smk` imports this
module) and the config schema's enums (`x-registry:` in schemas/config.schema.yaml, filled in by
`fill_schema_enums`) all come from here. Adding a scoring method is its function plus one entry
in `METHODS`:

    "taylor": Method("attrprune.relevance.methods:taylor", GRANULARITIES, reads_refset=True),

Run: ``python -m attrprune.registry`` prints the table.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

GRANULARITIES = ("weight", "neuron", "head")

# Reference-set kinds, in the order that seeds the random method (kind index x 1000 + seed, so
# random scores of two kinds are independent draws and contrastive random scores never cancel).
# Behaviour kinds explain the model's own continuation, so building them runs the model.
# ``dialogue`` (world data only) is general text with quoted control replies, correction's
# general side; it comes last so that the other kinds keep their random seeds.
REFSET_KINDS = ("general", "ioi", "toxic", "repetition", "dialogue")
GENERATED_KINDS = ("toxic", "repetition")
TEXT_KINDS = ("general", "dialogue")  # windows of text explaining every next token

# How a scores file stores its per-weight scores (attrprune.relevance.store): float32, or float16
# rescaled per tensor (half the file). Neuron and head scores are always float32.
SCORE_STORAGES = ("float32", "float16")

# Targeted correction: each behaviour and the reference-set kind that shows it.
BEHAVIOURS = {"toxicity": "toxic", "repetition": "repetition"}

# What each stage prunes: compression weights, circuits any component, correction MLP neurons
# (up/fc1) or weight elements.
STAGE_GRANULARITIES = {"compression": ("weight",), "circuits": GRANULARITIES, "correction": ("neuron", "weight")}


def _everywhere(granularities: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {
        stage: tuple(g for g in granularities if g in allowed)
        for stage, allowed in STAGE_GRANULARITIES.items()
        if set(granularities) & set(allowed)
    }


@dataclass(frozen=True)
class Method:
    """A scoring method: `function` ("module:name", signature (model, refset, options) -> Scores),
    the granularities its scores cover, whether they depend on the reference set (magnitude and
    random do not: one reference seed is enough for them) and, per stage that may prune by it,
    the granularities it prunes there."""

    function: str
    granularities: tuple[str, ...]
    reads_refset: bool
    stages: dict[str, tuple[str, ...]]


_SCORES = "attrprune.relevance.methods"
_ROWS = ("weight", "neuron")  # per-weight scores, and their row sums for the neurons

METHODS: dict[str, Method] = {
    "lrp": Method(f"{_SCORES}:lrp", GRANULARITIES, True, _everywhere(GRANULARITIES)),
    "gradient": Method(f"{_SCORES}:gradient", GRANULARITIES, True, _everywhere(GRANULARITIES)),
    # Wanda has no head scores; circuits compare it on weights only, as the paper does.
    "wanda": Method(f"{_SCORES}:wanda", _ROWS, True, {**_everywhere(_ROWS), "circuits": ("weight",)}),
    # Magnitude ignores the reference set: no task circuit, and R_general - R_unwanted is 0.
    "magnitude": Method(f"{_SCORES}:magnitude", _ROWS, False, {"compression": ("weight",)}),
    # Activations are structured only (neurons, heads), and not contrastive.
    "activation": Method(f"{_SCORES}:activation", ("neuron", "head"), True, {"circuits": ("neuron", "head")}),
    # Attribution patching: structured only, and only on IOI sets (it patches in their corrupted
    # prompts), so it scores circuits alone.
    "atp": Method(f"{_SCORES}:atp", ("neuron", "head"), True, {"circuits": ("neuron", "head")}),
    "random": Method(f"{_SCORES}:random_scores", GRANULARITIES, False, _everywhere(GRANULARITIES)),
}


@dataclass(frozen=True)
class Pruner:
    """A pruner as its authors run it (`attrprune.pruning.pruners`): `function` ("module:name",
    signature (model, calibration, sparsity, scope, options) -> stats), `options` ("module:name"
    of the dataclass holding the authors' defaults), the scope it prunes with when none is given,
    the ranked scopes it accepts (every pruner also takes N:M), whether it reads a calibration
    set (block by block, through the already pruned blocks), and the scopes in which its authors'
    code prunes every weight at or below the value at sorted index int(s·n) (``W_metric <=
    thresh``) rather than exactly int(s·n) weights (`attrprune.pruning.masks`, count rules)."""

    function: str
    options: str
    default_scope: str
    scopes: tuple[str, ...]
    calibrated: bool
    threshold_scopes: tuple[str, ...] = ()


_PRUNE = "attrprune.pruning.pruners"
PRUNERS: dict[str, Pruner] = {
    # The Wanda repository's magnitude baseline ranks per layer; compression's `magnitude` prunes
    # by magnitude scores in any scope (row and layer give the same masks as this pruner).
    "magnitude": Pruner(
        f"{_PRUNE}:magnitude", f"{_PRUNE}:MagnitudeOptions", "layer", ("layer", "row", "global"), False, ("layer",)
    ),
    "wanda": Pruner(f"{_PRUNE}:wanda", f"{_PRUNE}:WandaOptions", "row", ("row", "layer"), True),
    "ria": Pruner(f"{_PRUNE}:ria", f"{_PRUNE}:RiaOptions", "layer", ("layer", "row"), True, ("layer",)),
    # SparseGPT thresholds within each block of columns of a layer (its "layer" scope)
    "sparsegpt": Pruner(
        f"{_PRUNE}:sparsegpt", f"{_PRUNE}:SparseGPTOptions", "layer", ("layer", "row"), True, ("layer",)
    ),
}


# Pruner hyper-parameters that are config keys (compression.pruner_options) and options of the
# compress and export-pruned stages: key -> (field of the pruner's options, the compression
# methods it applies to; "_owl" = every method pruning with an _owl scope). A job is given only
# the keys that apply to it, so changing one reruns only the jobs that read it.
PRUNER_OPTIONS = {
    "sparsegpt_blocksize": ("blocksize", ("sparsegpt",)),
    "sparsegpt_percdamp": ("percdamp", ("sparsegpt",)),
    "ria_a": ("a", ("ria",)),
    "owl_m": ("owl_m", ("_owl",)),
    "owl_lambda": ("owl_lambda", ("_owl",)),
}


def pruner_options_for(method: str, scope: str) -> list[str]:
    """The `PRUNER_OPTIONS` keys a compression job of `method` with `scope` reads."""
    owl = scope.endswith(OWL)
    return [key for key, (_, users) in PRUNER_OPTIONS.items() if method in users or (owl and "_owl" in users)]


def count_rule(method: str, scope: str) -> str:
    """How many weights compression method or pruner `method` prunes per group in `scope` (a
    ranked scope): ``"at_or_below"`` where its authors threshold with ``<=`` (magnitude, RIA and
    SparseGPT per layer; `magnitude` scores too, being the same baseline), else ``"floor"``,
    exactly int(s·n) as Wanda's code does, also for this suite's own scores."""
    name = compression_methods().get(method) or method
    entry = PRUNERS.get(name)
    return "at_or_below" if entry is not None and scope in entry.threshold_scopes else "floor"


# Compression methods: every calibrated pruner under its own name, and every scoring method that
# compression may prune by under its own name, or with this suffix where a pruner has that name
# (`wanda` is Wanda's sequential procedure; `wanda_onepass` prunes by one-pass wanda scores).
ONEPASS = "_onepass"


def compression_methods() -> dict[str, str | None]:
    """{compression method: the scoring method whose scores it prunes by, None for a calibrated pruner}."""
    pruners = [name for name, p in PRUNERS.items() if p.calibrated]
    table: dict[str, str | None] = {
        name + ONEPASS if name in pruners else name: name for name in methods_for("compression")
    }
    return table | dict.fromkeys(pruners)


# Pruning scopes: rank within each output row, each layer, or the whole model; or N:M (prune the
# N lowest of every M consecutive inputs of a row, 0 < N < M). Paths spell N:M as NofM. A ranked
# scope with the suffix `_owl` prunes each decoder block at its OWL sparsity (more outliers, less
# pruning; the mean is the requested sparsity) instead of the same sparsity everywhere.
# Structured compression (attrprune.pruning.structured): each method and the scoring method whose
# scores file it ranks neurons and heads by (None: from the weights, or from the calibration set).
STRUCTURED_METHODS = {
    "lrp": "lrp",
    "gradient": "gradient",
    "activation": "activation",
    "wanda": "wanda",
    "random": "random",
    "magnitude": None,
    "flap": None,
}
STRUCTURED_CALIBRATED = ("flap",)  # read the general reference set (FLAP's channel statistics)

RANKED_SCOPES = ("row", "layer", "global")
NM_SCOPE = re.compile(r"(\d+):(\d+)")
OWL = "_owl"
OWL_SCOPES = ("row", "layer")
SCOPES_HELP = "'row', 'layer', 'global', or 'N:M' with 0 < N < M (e.g. '2:4')"
COMPRESSION_SCOPES_HELP = SCOPES_HELP.replace(", or", ",") + ", or 'row_owl' / 'layer_owl' (OWL allocation)"
# Circuit scopes per granularity: structured components are ranked per layer or globally.
CIRCUIT_SCOPES = {"weight": ("global", "row", "layer"), "neuron": ("global", "layer"), "head": ("global", "layer")}


def method(name: str) -> Method:
    """The registry entry of a scoring method; an unknown name lists the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown scoring method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def methods_for(stage: str, granularity: str | None = None) -> list[str]:
    """Methods a stage may prune by (and, given a granularity, that score it)."""
    return [
        name
        for name, m in METHODS.items()
        if stage in m.stages and (granularity is None or granularity in m.stages[stage])
    ]


def _resolve(spec: str):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def score_function(name: str):
    """The scoring function of a method (imports its module, and with it torch)."""
    return _resolve(method(name).function)


def pruner(name: str) -> Pruner:
    """The registry entry of a pruner; an unknown name lists the valid ones."""
    if name not in PRUNERS:
        raise ValueError(f"unknown pruner {name!r}; valid: {', '.join(PRUNERS)}")
    return PRUNERS[name]


def pruner_function(name: str):
    """(function, options dataclass) of a pruner (imports torch)."""
    entry = pruner(name)
    return _resolve(entry.function), _resolve(entry.options)


def implementations(name: str) -> tuple[str, ...]:
    """The "module:name" specs a job of method `name` may dispatch to: the scoring function of a
    scoring method, the function and options of a pruner (both, for `magnitude`); nothing for a
    name that is neither (one-pass compression names prune by scores read from a file).
    `attrprune.fingerprint` follows these, not the whole tables."""
    specs = []
    if name in METHODS:
        specs.append(METHODS[name].function)
    if name in PRUNERS:
        specs += [PRUNERS[name].function, PRUNERS[name].options]
    return tuple(specs)


def parse_scope(scope: str) -> str | tuple[int, int]:
    """``"row" | "layer" | "global"`` as is, ``"N:M"`` as ``(N, M)``; anything else raises."""
    if scope in RANKED_SCOPES:
        return scope
    match = NM_SCOPE.fullmatch(str(scope))
    if match:
        n, m = int(match[1]), int(match[2])
        if 0 < n < m:
            return n, m
    raise ValueError(f"unknown pruning scope {scope!r}; valid: {SCOPES_HELP}")


def split_allocation(scope: str) -> tuple[str, str]:
    """(ranked scope or N:M, "uniform" | "owl"): ``"row_owl"`` -> ``("row", "owl")``; checks the scope."""
    base, owl = (scope[: -len(OWL)], True) if scope.endswith(OWL) else (scope, False)
    if owl and base not in OWL_SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}: OWL allocation works with {', '.join(OWL_SCOPES)}")
    try:
        parse_scope(base)
    except ValueError:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {COMPRESSION_SCOPES_HELP}") from None
    return base, "owl" if owl else "uniform"


def check_compression(name: str, scope: str) -> None:
    """Raise ValueError unless compression method `name` can prune with `scope` (one line each)."""
    table = compression_methods()
    if name not in table:
        raise ValueError(f"unknown compression method {name!r}; valid: {', '.join(table)}")
    base, _ = split_allocation(scope)
    if table[name] is None and base in RANKED_SCOPES and base not in PRUNERS[name].scopes:
        raise ValueError(
            f"{name} prunes block by block: scope {scope!r} is not available; valid: "
            f"{', '.join(PRUNERS[name].scopes)}, their _owl forms, or N:M"
        )


def enum(table: str) -> list[str]:
    """The names of a registry table, as the config schema's `x-registry: <table>` refers to it:
    methods[.<stage>], compression, structured, refset_kinds, behaviours, published_circuits, granularities[.<stage>]."""
    kind, _, stage = table.partition(".")
    if kind == "compression" and not stage:
        return list(compression_methods())
    if kind == "structured" and not stage:
        return list(STRUCTURED_METHODS)
    if kind == "methods":
        return methods_for(stage) if stage else list(METHODS)
    if kind == "granularities":
        return list(STAGE_GRANULARITIES[stage] if stage else GRANULARITIES)
    if kind == "refset_kinds" and not stage:
        return list(REFSET_KINDS)
    if kind == "behaviours" and not stage:
        return list(BEHAVIOURS)
    if kind == "published_circuits" and not stage:
        from attrprune.circuits.published import PUBLISHED  # torch-free data

        return list(PUBLISHED)
    raise ValueError(
        f"unknown registry table {table!r}; valid: methods[.<stage>], compression, refset_kinds, behaviours, "
        "published_circuits, "
        f"granularities[.<stage>] with stage one of {', '.join(STAGE_GRANULARITIES)}"
    )


def fill_schema_enums(schema):
    """Set `enum` wherever the (JSON Schema) dict has `x-registry: <table>`; returns the schema."""
    if isinstance(schema, dict):
        if "x-registry" in schema:
            schema["enum"] = enum(schema["x-registry"])
        for value in schema.values():
            fill_schema_enums(value)
    elif isinstance(schema, list):
        for value in schema:
            fill_schema_enums(value)
    return schema


# The paper's models among configs/paper.yaml's aliases, with the names its Table 1 gives them: a
# run with one of them also writes the comparison with Table 1 (compression_paper.md).
PAPER_MODELS = {"tinyllama-1.1b": "TinyLlama", "llama-2-7b": "Llama2-7B", "llama-3-8b": "Llama3-8B"}


if __name__ == "__main__":
    for name, m in METHODS.items():
        refset = "reads the reference set" if m.reads_refset else "ignores the reference set"
        stages = "; ".join(f"{s}: {','.join(g)}" for s, g in m.stages.items())
        print(f"{name:11s} scores {','.join(m.granularities):18s} {refset:25s} prunes in {stages}")
    for name, p in PRUNERS.items():
        calibration = "calibrated, block by block" if p.calibrated else "no calibration"
        print(f"pruner {name:10s} default scope {p.default_scope:6s} scopes {','.join(p.scopes):17s} {calibration}")
    print(
        "compression:",
        ", ".join(f"{n} ({'pruner' if s is None else 'scores ' + s})" for n, s in compression_methods().items()),
    )
    print("refset kinds:", ", ".join(REFSET_KINDS))
    print("behaviours:", ", ".join(f"{b} ({k})" for b, k in BEHAVIOURS.items()))
    print("scopes:", COMPRESSION_SCOPES_HELP)
