"""Where a workflow run's time went: the per-job wall times Snakemake wrote to `benchmarks/`,
summed per part of the workflow (the tables of docs/findings/time.md).

Run after a workflow run, in its directory::

    python bench/job_times.py                 # benchmarks/ of the current directory
    python bench/job_times.py /tmp/run/benchmarks

Each job's `s` column is its wall time. On 2 cores two jobs run at once, so the sum of job times
is about twice the run's wall time; the shares are what matter. Memory is left out (a served job's
max_rss counts the child that did its work: src/attrprune/jobusage.py).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

# (part, predicate on the benchmark path relative to benchmarks/), first match wins.
PARTS = (
    ("reference sets", lambda p: p.startswith("resources/refsets/")),
    ("scores", lambda p: "/scores/" in p),
    ("compression: dense model", lambda p: p.endswith("/compression/dense.tsv")),
    ("compression: export", lambda p: "/compression/export/" in p),
    ("compression: pruned models", lambda p: "/compression/" in p),
    ("circuits: exhaustive ablation", lambda p: p.endswith("/circuits/ioi/ablation.tsv")),
    ("circuits", lambda p: "/circuits/" in p),
    ("correction", lambda p: "/correction/" in p),
    ("world cards", lambda p: p.startswith("results/world/")),
    ("tables", lambda p: p.startswith("results/tables/")),
)


def part_of(relative: str) -> str:
    for name, matches in PARTS:
        if matches(relative):
            return name
    return "other"


def job_times(benchmarks: Path) -> dict[str, list[float]]:
    """{part: [wall seconds of each job]} of every benchmark file under `benchmarks`."""
    times: dict[str, list[float]] = defaultdict(list)
    for path in sorted(benchmarks.rglob("*.tsv")):
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:  # one row per repeat; Snakemake writes one
            times[part_of(path.relative_to(benchmarks).as_posix())].append(float(rows[0]["s"]))
    return times


def table(times: dict[str, list[float]]) -> str:
    total = sum(sum(v) for v in times.values())
    lines = ["| part | jobs | job-seconds | share | mean s/job |", "|---|---:|---:|---:|---:|"]
    for name, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        s = sum(values)
        lines.append(f"| {name} | {len(values)} | {s:,.0f} | {s / total:.0%} | {s / len(values):.1f} |")
    n = sum(len(v) for v in times.values())
    lines.append(f"| all | {n} | {total:,.0f} | 100% | {total / max(n, 1):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="?", type=Path, default=Path("benchmarks"))
    args = parser.parse_args(argv)
    if not args.benchmarks.is_dir():
        raise SystemExit(f"job_times: {args.benchmarks} is not a folder: run it where a workflow ran, or name one")
    print(table(job_times(args.benchmarks)))


if __name__ == "__main__":
    main()
