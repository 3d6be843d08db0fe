"""Which code wrote what a table reads: the code records (stage, method, fingerprint; see
`attrprune.fingerprint` and `io.provenance`) and git commits found in the outputs a table job
reads (its parsed JSON records), also those they embed (a metrics file carries its scores' record), and a warning when
the outputs of one stage and method come from two versions of its code (a table built partly
from stale outputs, e.g. after `snakemake --rerun-triggers mtime`).

The table stages append `code_section` to their markdown: the warnings under the title (also
printed to the job's log) and a "Code versions" table at the end.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

log = logging.getLogger(__name__)


def code_records(record) -> list[dict]:
    """Every code record in an output's JSON, its own and the embedded ones, each with the git
    commit recorded beside it."""
    found = []
    if isinstance(record, dict):
        code = record.get("code")
        if isinstance(code, dict) and "fingerprint" in code:
            found.append({**code, "git_commit": record.get("git_commit")})
        for value in record.values():
            found += code_records(value)
    elif isinstance(record, list):
        for value in record:
            found += code_records(value)
    return found


def code_versions(records: Iterable[dict]) -> tuple[list[dict], int]:
    """(one row per stage, method and fingerprint: its commits and how many of the `records`
    carry it; how many records carry no code record at all, i.e. were written before outputs
    recorded their code)."""
    inputs: dict[tuple, set[int]] = defaultdict(set)
    commits: dict[tuple, set[str]] = defaultdict(set)
    unrecorded = 0
    for i, record in enumerate(records):
        found = code_records(record)
        unrecorded += not found
        for code in found:
            key = (code["stage"], code.get("method") or "", code["fingerprint"])
            inputs[key].add(i)
            commits[key].add(str(code.get("git_commit") or "unknown"))
    rows = [
        {"stage": s, "method": m, "fingerprint": f, "commits": sorted(commits[s, m, f]), "inputs": len(inputs[s, m, f])}
        for s, m, f in sorted(inputs)
    ]
    return rows, unrecorded


def mixed_warnings(rows: list[dict]) -> list[str]:
    """One line per stage and method whose outputs come from more than one code version."""
    by_job: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        by_job[row["stage"], row["method"]].append(row)
    lines = []
    for (stage, method), versions in sorted(by_job.items()):
        if len(versions) > 1:
            listed = ", ".join(
                f"{v['fingerprint']} ({v['inputs']} input{'s' * (v['inputs'] != 1)}, commit {_commits(v)})"
                for v in versions
            )
            lines.append(
                f"Warning: the {stage} outputs{f' of {method}' if method else ''} this table read come from "
                f"{len(versions)} versions of its code: {listed}. Some are stale: run `snakemake` again "
                '(`snakemake --summary` marks the stale outputs "params changed").'
            )
    return lines


def _commits(row: dict) -> str:
    return " / ".join(
        c.removesuffix("-dirty")[:12] + ("-dirty" if c.endswith("-dirty") else "") for c in row["commits"]
    )


def code_section(records: Iterable[dict]) -> tuple[list[str], str]:
    """(warning lines, the markdown "Code versions" section) of the records a table read."""
    rows, unrecorded = code_versions(records)
    lines = [
        "## Code versions",
        "",
        "The code that wrote the outputs this table read (`code` in their provenance; its fingerprint is the "
        "rule's `params.code`, see `python -m attrprune.fingerprint`), and the git commit it ran at.",
        "",
        "| stage | method | code fingerprint | commit | inputs |",
        "|---|---|---|---|---|",
        *(
            f"| {r['stage']} | {r['method'] or '-'} | {r['fingerprint']} | {_commits(r)} | {r['inputs']} |"
            for r in rows
        ),
    ]
    if unrecorded:
        lines += ["", f"{unrecorded} inputs record no code fingerprint (written before outputs recorded one)."]
    return mixed_warnings(rows), "\n".join(lines) + "\n"


def with_code_section(markdown: str, records: Iterable[dict]) -> str:
    """`markdown` with the warnings of `code_section` under its title (and on stderr, the job's
    log) and its "Code versions" section at the end."""
    warnings, section = code_section(records)
    for line in warnings:
        log.warning(line)
    title, _, rest = markdown.partition("\n\n")
    if warnings:
        markdown = title + "\n\n" + "\n>\n".join(f"> **{w}**" for w in warnings) + "\n\n" + rest
    return markdown.rstrip("\n") + "\n\n" + section
