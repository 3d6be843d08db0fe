"""Every name the suite knows, in one torch-free table: scoring methods, reference-set kinds,
granularities, pruning scopes and behaviours.

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
REFSET_KINDS = ("general", "ioi", "toxic", "repetition")
GENERATED_KINDS = ("toxic", "repetition")

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
    "random": Method(f"{_SCORES}:random_scores", GRANULARITIES, False, _everywhere(GRANULARITIES)),
}

# Pruning scopes: rank within each output row, each layer, or the whole model; or N:M (prune the
# N lowest of every M consecutive inputs of a row, 0 < N < M). Paths spell N:M as NofM.
RANKED_SCOPES = ("row", "layer", "global")
NM_SCOPE = re.compile(r"(\d+):(\d+)")
SCOPES_HELP = "'row', 'layer', 'global', or 'N:M' with 0 < N < M (e.g. '2:4')"
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


def score_function(name: str):
    """The scoring function of a method (imports its module, and with it torch)."""
    module, attr = method(name).function.split(":")
    return getattr(importlib.import_module(module), attr)


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


def enum(table: str) -> list[str]:
    """The names of a registry table, as the config schema's `x-registry: <table>` refers to it:
    methods[.<stage>], refset_kinds, behaviours, granularities[.<stage>]."""
    kind, _, stage = table.partition(".")
    if kind == "methods":
        return methods_for(stage) if stage else list(METHODS)
    if kind == "granularities":
        return list(STAGE_GRANULARITIES[stage] if stage else GRANULARITIES)
    if kind == "refset_kinds" and not stage:
        return list(REFSET_KINDS)
    if kind == "behaviours" and not stage:
        return list(BEHAVIOURS)
    raise ValueError(
        f"unknown registry table {table!r}; valid: methods[.<stage>], refset_kinds, behaviours, "
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


if __name__ == "__main__":
    for name, m in METHODS.items():
        refset = "reads the reference set" if m.reads_refset else "ignores the reference set"
        stages = "; ".join(f"{s}: {','.join(g)}" for s, g in m.stages.items())
        print(f"{name:11s} scores {','.join(m.granularities):18s} {refset:25s} prunes in {stages}")
    print("refset kinds:", ", ".join(REFSET_KINDS))
    print("behaviours:", ", ".join(f"{b} ({k})" for b, k in BEHAVIOURS.items()))
    print("scopes:", SCOPES_HELP)
