"""What a job served by the fork server used, and Snakemake benchmark files that count it.

Snakemake's `benchmark:` file measures the process tree of the job's shell command (psutil,
sampled every 0.5-30 s): for a job the fork server runs (`attrprune.forkserver`), that tree is
only the thin client, which waits while a child of the server does the work; the child is not in
the tree. So its record would say 15 MB and 0.02 s for a job that held gigabytes for minutes.

The server collects the child's resource usage when it exits (`os.wait4`: peak resident memory,
user + system CPU time, blocks read and written) and hands it to the client, which writes it as
one line of the job's log (`usage_line`). In a local run the workflow then adds it to the record
Snakemake wrote (`amend_benchmark`, called from rules/forkserver.smk right after each job): in
the benchmark file of a served job,

- max_rss is the client's (and its shell's) measured peak plus the child's peak: what the job's
  processes held, as a fresh process would have (the child's resident pages include the server's
  imported libraries, which a fresh process loads itself);
- cpu_time, io_in and io_out are the client's plus the child's; mean_load is recomputed from the
  new cpu_time over the wall time `s`;
- max_vms, max_uss and max_pss are NA: the kernel keeps no peak of them for the child.

Jobs that ran in their own process (no server, or one that declined them) keep Snakemake's record.

Run: nothing to run; the lines are in logs/, the amended files in benchmarks/.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

MARKER = "fork server child usage:"
FIELDS = ("max_rss", "cpu_time", "io_in", "io_out")  # Snakemake's column names, MB and seconds
_PAIR = re.compile(r"(\w+)=([0-9.]+)")
_UNKNOWN = ("max_vms", "max_uss", "max_pss")


def from_rusage(ru, darwin: bool = False) -> dict[str, float]:
    """A `resource.struct_rusage` (of `os.wait4`) in Snakemake's units: MiB ("MB") and seconds."""
    mib = 2**20
    return {
        "max_rss": ru.ru_maxrss / (mib if darwin else 2**10),  # bytes on macOS, KiB on Linux
        "cpu_time": ru.ru_utime + ru.ru_stime,
        "io_in": ru.ru_inblock * 512 / mib,  # 512-byte blocks that reached the disk
        "io_out": ru.ru_oublock * 512 / mib,
    }


def usage_line(usage: dict[str, float]) -> str:
    values = " ".join(f"{k}={usage[k]:.2f}" for k in FIELDS)
    return f"{MARKER} {values} (MB and s of the process that ran the stage; benchmarks/ add them to the client's)"


def parse_log(text: str) -> dict[str, float] | None:
    """The usage of the served commands of a job's log (one, in this workflow's rules; commands
    run one after the other: the largest peak, the sums of the rest); None when none was served."""
    found = None
    for line in text.splitlines():
        at = line.find(MARKER)
        if at >= 0:
            pairs = dict(_PAIR.findall(line[at + len(MARKER) :].split("(", 1)[0]))
            if set(FIELDS) <= pairs.keys():
                one = {k: float(pairs[k]) for k in FIELDS}
                found = (
                    one if found is None else {k: (max if k == "max_rss" else sum)((found[k], one[k])) for k in FIELDS}
                )
    return found


def read_log_usage(path: str | Path, tail: int = 1 << 16) -> dict[str, float] | None:
    """`parse_log` of the end of the log at `path` (the client writes its line last)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, io.SEEK_END)
            f.seek(max(0, f.tell() - tail))
            return parse_log(f.read().decode("utf-8", errors="replace"))
    except OSError:
        return None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # NA: Snakemake sampled nothing (a job shorter than its first sample)
        return 0.0


def amend_benchmark(path: str | Path, usage: dict[str, float]) -> bool:
    """Add a served child's usage to the one-row TSV benchmark file at `path` (see the module's
    docstring). False, file untouched, for anything else (repeats, another format)."""
    path = Path(path)
    if path.suffix != ".tsv" or not path.is_file():
        return False
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if len(rows) != 2 or not {"s", *FIELDS, "mean_load"} <= set(rows[0]):
        return False
    record = dict(zip(rows[0], rows[1]))
    for key in FIELDS:
        record[key] = f"{_number(record[key]) + usage[key]:.2f}"
    seconds = _number(record["s"])
    if seconds > 0:  # Snakemake's mean_load: CPU percent averaged over the wall time
        record["mean_load"] = f"{100 * float(record['cpu_time']) / seconds:.2f}"
    for key in _UNKNOWN:
        if key in record:
            record[key] = "NA"
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows([rows[0], [record[k] for k in rows[0]]])
    return True


def count_served_jobs_in_benchmarks() -> None:
    """In a Snakemake process that runs jobs locally: after each job, add the usage line of its
    log to its benchmark file. Snakemake has no hook between writing a job's benchmark and
    finishing the job, so this wraps the local executor's job runner (snakemake 9:
    `snakemake.executors.local.run_wrapper`, which runs each shell job in a thread of this
    process and writes its benchmark record last); its arguments are read by name."""
    import inspect

    import snakemake.executors.local as local

    original = local.run_wrapper
    if getattr(original, "counts_served_jobs", False):
        return
    signature = inspect.signature(original)

    def run_wrapper(*args, **kwargs):
        original(*args, **kwargs)
        given = signature.bind(*args, **kwargs).arguments
        benchmark, logs = given.get("benchmark"), given.get("log") or []
        usage = next(filter(None, map(read_log_usage, logs)), None) if benchmark else None
        if usage is not None:
            amend_benchmark(benchmark, usage)

    run_wrapper.counts_served_jobs = True
    local.run_wrapper = run_wrapper
