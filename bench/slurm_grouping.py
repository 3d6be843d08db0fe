"""Submission to the last job's end of a workflow run through the SLURM profile on a real
single-node Slurm (tests/real_slurm.py), with and without the world add-on's groups
(profiles/slurm-world), side by side on one cluster: the numbers of docs/cluster.md.

Each run starts in a fresh clone of the repository at HEAD (its committed world models, no
results), with accounting (slurmdbd), so that sacct has every Slurm job; job ends are seen
through squeue in both, as profiles/slurm sets. Needs root and Debian's Slurm packages, like the
tests. Run::

    python bench/slurm_grouping.py                         # config.yaml, ungrouped then grouped
    python bench/slurm_grouping.py --config tests/e2e/config.yaml --order grouped,ungrouped

Prints one line per run and writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import real_slurm  # noqa: E402

PROFILE = ROOT / "profiles" / "slurm"
WORLD_GROUPS = ROOT / "profiles" / "slurm-world"
MODES = {"ungrouped": [], "grouped": ["--profile", str(WORLD_GROUPS)]}


def clock(elapsed: str) -> float:
    """sacct's Elapsed ([D-]HH:MM:SS) in seconds."""
    days, _, hms = elapsed.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def run_once(cluster: real_slurm.SlurmCluster, mode: str, config: Path, scratch: Path) -> dict:
    workdir = scratch / mode
    subprocess.run(["git", "clone", "-q", str(ROOT), str(workdir)], check=True)
    log = scratch / f"{mode}.log"
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", str(PROFILE), *MODES[mode],
           "--default-resources", f"slurm_account={real_slurm.ACCOUNT}", "slurm_partition=cpu",
           "--slurm-init-seconds-before-status-checks", "1", "--configfile", str(config)]  # fmt: skip
    env = {**cluster.env, "PYTHONPATH": str(workdir / "src")}  # the jobs run the clone's package
    started = time.monotonic()
    with log.open("w") as out:
        r = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    text = log.read_text()
    if r.returncode != 0:
        raise SystemExit(f"the {mode} run failed ({r.returncode}); its log: {log}\n{text[-3000:]}")
    run_id = next(
        line.split("SLURM run ID: ", 1)[1].split()[0] for line in text.splitlines() if "SLURM run ID: " in line
    )
    rows = cluster.run("sacct", "-X", "-P", "-n", "-S", "now-1days", "--name", run_id,
                       "--format=JobID,State,Elapsed").stdout.splitlines()  # fmt: skip
    elapsed = [clock(row.split("|")[2]) for row in rows]
    states = sorted({row.split("|")[1] for row in rows})
    snakemake_jobs = sum(1 for _ in (workdir / "benchmarks").rglob("*.tsv"))
    return {"mode": mode, "config": str(config.relative_to(ROOT)), "commit": head(), "wall_s": round(wall),
            "slurm_jobs": len(rows), "snakemake_jobs_run": snakemake_jobs, "states": states,
            "slurm_elapsed_sum_s": sum(elapsed), "slurm_elapsed_max_s": max(elapsed, default=0)}  # fmt: skip


def head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--order", default="ungrouped,grouped", help="modes in the order to run them")
    parser.add_argument("--out", type=Path, default=Path("slurm_grouping.json"))
    args = parser.parse_args(argv)
    modes = args.order.split(",")
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"--order: unknown mode {', '.join(unknown)}; valid: {', '.join(MODES)}")
    if why := real_slurm.unavailable():
        raise SystemExit(f"no real Slurm here: {why}")
    config = args.config.resolve()
    results = []
    with tempfile.TemporaryDirectory(prefix="slurm-grouping-") as tmp:
        cluster = real_slurm.SlurmCluster(Path(tmp) / "cluster", accounting=True).start()
        try:
            for mode in modes:
                results.append(run_once(cluster, mode, config, Path(tmp)))
                print(json.dumps(results[-1]), flush=True)
                args.out.write_text(json.dumps(results, indent=1) + "\n")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
