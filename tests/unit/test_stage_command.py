"""attrprune.stages.command: a rule's shell command generated from its stage's dataclass has one
flag per field, each value quoted, and reads back through the command line to the same values."""

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from attrprune.cli import STAGES, build_parser
from attrprune.stages.command import cli_value, is_bool, is_input, shell_template

FORMAT = re.compile(r"\{([^{}:]+)(?::q)?\}")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_one_quoted_flag_per_field(stage):
    template = shell_template(stage)
    fields = [f.name for f in dataclasses.fields(STAGES[stage])]
    placeholders = re.findall(r"\{([^{}]+)\}", template)
    assert [p for p in placeholders if not p.endswith(":q")] == ["params.offline"]
    named = [p.removesuffix(":q").removeprefix("params.").removeprefix("input.") for p in placeholders[1:-1]]
    assert sorted(named) == sorted(fields)  # every field, once
    # a list of input files comes from the job's input of its name, never a param (report job info)
    inputs = [f.name for f in dataclasses.fields(STAGES[stage]) if is_input(f)]
    assert [p for p in placeholders if p.startswith("input.")] == [f"input.{name}:q" for name in inputs]
    assert template.startswith("{params.offline} python -m attrprune " + stage + " ")
    assert template.endswith(" > {log:q} 2>&1")


WORDS = ("a b/c'$(x)", "1", "0.5", "lrp")  # a word with shell syntax first: quoting must keep it


def _sample(stage, field):
    """A value the field's flag accepts: its default (True for an optional switch), else a choice,
    else the first of WORDS its parser takes (parsed, as the stage receives it)."""
    if field.default is not dataclasses.MISSING and field.default != ():
        return True if field.default is None and is_bool(stage, field.name) else field.default
    if field.metadata.get("choices"):
        return field.metadata["choices"][0]
    parse = field.metadata.get("parse")
    if is_input(field):  # several files, one with shell syntax
        return parse(WORDS[0]) + parse("x.json") + parse("y.json")
    for word in WORDS:
        try:
            return parse(word) if parse else word
        except Exception:  # argparse.ArgumentTypeError, ValueError: not this one
            continue
    raise AssertionError(f"{stage} --{field.name}: no sample value")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_command_reads_back_to_the_values(stage):
    """Format the template as Snakemake does (`:q` = shlex.quote) with every field's cli_value,
    split it as the shell does, parse it with the CLI: each field comes back as given."""
    fields = dataclasses.fields(STAGES[stage])
    values = {f.name: _sample(stage, f) for f in fields}
    params = {name: cli_value(stage, name, value) for name, value in values.items()}

    def fill(match):
        key = match.group(1)
        if key == "params.offline":
            return "X=1"
        if key == "threads":
            return shlex.quote(str(values.get("threads") or 1))
        if key == "log":
            return "job.log"
        if key.startswith("input."):  # Snakemake's `:q` of a list: each file quoted, space-separated
            return " ".join(shlex.quote(str(v)) for v in values[key.removeprefix("input.")])
        return shlex.quote(str(params[key.removeprefix("params.")]))

    words = shlex.split(FORMAT.sub(fill, shell_template(stage)).split(" > ")[0])
    assert words[:4] == ["X=1", "python", "-m", "attrprune"]
    args = build_parser().parse_args(words[4:])
    for f in fields:
        got, want = getattr(args, f.name), values[f.name]
        if f.name == "threads" and want is None:
            continue  # the job's own thread count
        if isinstance(want, tuple):
            want = list(want)
        if isinstance(got, Path):
            want = Path(want)
        assert got == want, (stage, f.name)
