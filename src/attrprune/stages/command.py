"""A stage's command line as the workflow writes it: one `--flag {params.<field>:q}` per field of
the stage's dataclass, so that a rule's shell command is generated from the stage and every
value reaches the command quoted. A list of the job's input files (`args.job_inputs`) is written
from the rule's input of the field's name instead, `--flag {input.<field>:q}`, so that it never
becomes a param (the report shows every param of a job). Torch-free (the workflow imports it to
build the DAG).

    >>> shell_template("world-card-table")
    '{params.offline} python -m attrprune world-card-table --cards {input.cards:q} --out {params.out:q} > {log:q} 2>&1'

`cli_value` spells a Python value as the command line parses it (`none` for None, `a,b` for a
list, `--x` / `--no-x` for a bool field).
"""

from __future__ import annotations

import dataclasses
import types
import typing


def stage_class(stage: str):
    """The dataclass of a command-line stage (`attrprune.cli.STAGES`)."""
    from attrprune.cli import STAGES

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    return STAGES[stage]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def is_bool(stage: str, name: str) -> bool:
    """Whether the field is a switch (--x / --no-x, also when optional) rather than a flag with a value."""
    hint = typing.get_type_hints(stage_class(stage))[name]
    return hint is bool or (isinstance(hint, types.UnionType) and bool in typing.get_args(hint))


def fields(stage: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(stage_class(stage)))


def is_input(field: dataclasses.Field) -> bool:
    """Whether the workflow gives the field from the job's input of its name (`args.job_inputs`)."""
    return bool(field.metadata.get("input"))


def shell_template(stage: str) -> str:
    """The rule's shell command: the offline prefix, the stage, every field's flag with its
    quoted param (a switch is its param alone; `threads` is the job's own; a list of input files
    the job's input of that name), and the log."""
    words = ["{params.offline} python -m attrprune", stage]
    for field in fields(stage):
        if field.name == "threads":
            words.append("--threads {threads:q}")
        elif is_input(field):
            words.append(f"{flag(field.name)} {{input.{field.name}:q}}")
        elif is_bool(stage, field.name):
            words.append(f"{{params.{field.name}:q}}")
        else:
            words.append(f"{flag(field.name)} {{params.{field.name}:q}}")
    return " ".join(words) + " > {log:q} 2>&1"


def cli_value(stage: str, name: str, value):
    """`value` of field `name` as its command line reads it."""
    if is_bool(stage, name):
        if value is None:  # an optional switch's "not given" has no spelling on a command line
            raise ValueError(f"{stage} {flag(name)}: give True or False (a switch cannot say none)")
        return flag(name) if value else flag("no_" + name)
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value
