"""Command line of the suite: one subcommand per workflow stage, named after its Snakemake rule.

Snakemake rules call these (`python -m attrprune <stage> ... > log 2>&1`), so every job can be
rerun by hand with the command its log shows. Each stage is a frozen dataclass in
`attrprune.stages` whose fields are its flags (`model_dir` -> `--model-dir`); building the parser
imports neither torch nor lxt, so `--help` is fast.

Errors (`run`): a failure the suite knows (bad input, a missing or unwritable file, a full disk)
ends the stage with one line on stderr, ``attrprune <stage>: error: <what> (<file>): <fix>``, and
exit code 1 (argparse's usage errors: 2); ``--debug`` or ``ATTRPRUNE_DEBUG=1`` shows the traceback
instead. Anything else keeps its traceback.

Progress: timestamped `logging` lines on stderr, set up once here (`attrprune.logs`): each
stage's start, its steps with the seconds since it started, its end with its peak memory.

Run: ``python -m attrprune --help``, ``python -m attrprune scores --help``
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import sys
import types
import typing
from pathlib import Path

from attrprune.stages.circuits import CircuitAblationStage, CircuitStage, CircuitTablesStage, IoiDataStage
from attrprune.stages.compression import (
    CompressionTablesStage,
    CompressStage,
    ExportPrunedStage,
)
from attrprune.stages.correction import BehaviourPromptsStage, CorrectionStage, CorrectionTablesStage
from attrprune.stages.download import DownloadDataStage, DownloadDetoxifyStage, DownloadModelStage
from attrprune.stages.relevance import RefsetStage, ScoresStage
from attrprune.stages.structured import StructuredSpeedStage, StructuredStage, StructuredTablesStage
from attrprune.stages.world import (
    WorldCardStage,
    WorldCardTableStage,
    WorldCorpusStage,
    WorldPublishStage,
    WorldTokenizerStage,
    WorldTrainStage,
)

# Subcommand -> stage; each is the rule of the same name (with "_") in rules/*.smk.
STAGES = {
    "world-corpus": WorldCorpusStage,
    "world-tokenizer": WorldTokenizerStage,
    "world-train": WorldTrainStage,
    "world-publish": WorldPublishStage,
    "world-card": WorldCardStage,
    "world-card-table": WorldCardTableStage,
    "refset": RefsetStage,
    "scores": ScoresStage,
    "compress": CompressStage,
    "compression-tables": CompressionTablesStage,
    "export-pruned": ExportPrunedStage,
    "structured": StructuredStage,
    "structured-speed": StructuredSpeedStage,
    "structured-tables": StructuredTablesStage,
    "ioi-data": IoiDataStage,
    "circuit-ablation": CircuitAblationStage,
    "circuit": CircuitStage,
    "circuit-tables": CircuitTablesStage,
    "behaviour-prompts": BehaviourPromptsStage,
    "correction": CorrectionStage,
    "correction-tables": CorrectionTablesStage,
    "download-model": DownloadModelStage,
    "download-data": DownloadDataStage,
    "download-detoxify": DownloadDetoxifyStage,
}

_PARSERS = {Path: Path, int: int, float: float, str: str}


def _or_none(parse):
    """`none` means "not given", so that a rule can spell out every flag of its job."""

    def parse_optional(text: str):
        return None if text == "none" else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")  # argparse names it in errors
    return parse_optional


class _Joined(argparse.Action):
    """A list flag given as one or more words, each comma-separated: one list."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [item for word in values for item in word])


def _add_flag(parser: argparse.ArgumentParser, field: dataclasses.Field, hint) -> None:
    flag, meta = "--" + field.name.replace("_", "-"), field.metadata
    args = typing.get_args(hint)
    optional = type(None) in args and isinstance(hint, types.UnionType)
    base = next(a for a in args if a is not type(None)) if optional else hint
    required = field.default is dataclasses.MISSING
    kwargs = {"help": meta.get("help") or None, "required": required, "dest": field.name}
    if not required:
        kwargs["default"] = list(field.default) if isinstance(field.default, tuple) else field.default
    if base is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    parse = meta.get("parse") or _PARSERS[base]
    kwargs["type"] = _or_none(parse) if optional else parse
    if meta.get("input"):  # the workflow writes a job's input files as separate words
        kwargs.update(nargs="+", action=_Joined)
    if meta.get("choices"):
        kwargs["choices"] = list(meta["choices"])
    parser.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m attrprune", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (also: ATTRPRUNE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, stage in STAGES.items():
        summary = " ".join(stage.__doc__.split())
        p = sub.add_parser(name, help=summary, description=summary)
        hints = typing.get_type_hints(stage)
        for field in dataclasses.fields(stage):
            _add_flag(p, field, hints[field.name])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage; failures raise (tests and callers see the exception, `run` reports it) after
    removing every output the stage had written, so a failed job leaves nothing that looks done."""
    from attrprune import logs
    from attrprune.io import job_code, removed_on_failure

    args = build_parser().parse_args(argv)
    stage = STAGES[args.stage]
    logs.stage_started(args.stage, sys.argv[1:] if argv is None else argv)
    with removed_on_failure(), job_code(args.stage, getattr(args, "method", None)):
        stage(**{f.name: getattr(args, f.name) for f in dataclasses.fields(stage)}).run()
    logs.stage_finished(args.stage)
    return 0


# What a user can fix, by OSError errno: the fix that goes with it.
_OS_FIXES = {
    errno.ENOENT: "check the path, or run the stage (workflow rule) that writes it",
    errno.EACCES: "make it readable / writable, or write elsewhere",
    errno.EISDIR: "give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOSPC: "no space left on the device: free some, or write the results elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f) or the file system allows: write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some, or write the results elsewhere",
}


def describe(error: BaseException) -> str | None:
    """One line for a failure the user can fix; None for anything else (it keeps its traceback)."""
    if isinstance(error, OSError) and error.errno in _OS_FIXES:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or type(error).__name__}{where}: {_OS_FIXES[error.errno]}"
    from attrprune.io import library_os_error

    wrapped = None if isinstance(error, OSError) else library_os_error(error)
    if wrapped is not None and wrapped.errno in _OS_FIXES:  # a library's write error (safetensors)
        return describe(wrapped)
    if isinstance(error, UnicodeDecodeError):
        return f"text is not UTF-8 ({error.reason} at byte {error.start}): save the file as UTF-8"
    from attrprune.io import NotCachedError

    if isinstance(error, (ValueError, FileNotFoundError, FloatingPointError, NotCachedError)):
        return " ".join(str(error).split()) or type(error).__name__
    return None


def run(argv: list[str] | None = None) -> int:
    """`main` behind the error boundary: the command line's entry point (`python -m attrprune`)."""
    from attrprune import logs

    argv = sys.argv[1:] if argv is None else argv
    logs.setup()
    debug = "--debug" in argv or os.environ.get("ATTRPRUNE_DEBUG", "") not in ("", "0")
    try:
        return main(argv)
    except Exception as error:
        line = None if debug else describe(error)
        if line is None:
            raise
        prog = " ".join(["attrprune", *[a for a in argv if a in STAGES][:1]])
        print(f"{prog}: error: {line}", file=sys.stderr)
        return 1
