"""How the default config's world-model jobs travel on a cluster: profiles/slurm-world groups
them (Snakemake group jobs), up to 12 independent jobs of one stage per Slurm job. Read from a
dry run of config.yaml with ``--workflow-profile profiles/slurm --profile profiles/slurm-world``:
the default config becomes a few dozen Slurm jobs instead of one per Snakemake job, every group
holds at most 12 jobs of its own stage's rules, and run 2 at a time its jobs take at most an
hour by their own runtimes. The real cluster runs the grouped tiny workflow in
tests/e2e/test_real_slurm.py.

Run: ``python -m pytest -q tests/unit/test_slurm_world_groups.py`` (two dry runs, under a minute).
"""

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
WORLD_GROUPS = ROOT / "profiles" / "slurm-world"
PER_GROUP = 12
CORES = 2


def addon() -> dict:
    return yaml.safe_load((WORLD_GROUPS / "config.yaml").read_text())


def dry_run(tmp_path: Path, *profile_args: str) -> str:
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
           str(tmp_path), "--workflow-profile", str(PROFILE), *profile_args]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def slurm_jobs(log: str) -> list[tuple[str | None, collections.Counter, list[int]]]:
    """(group or None, {rule: jobs}, the jobs' runtimes) of every Slurm job the dry run would submit."""
    jobs, group = [], None
    for line in log.splitlines():
        if "] Group job " in line:
            group = (line.split("] Group job ", 1)[1].split()[0], collections.Counter(), [])
            jobs.append(group)
        elif re.match(r"(\[|localrule |Job stats)", line):
            group = None
        elif m := re.match(r"rule (\w+):", line):  # a job of its own (`all` has no output: local)
            group = None
            if m.group(1) != "all":
                jobs.append((None, collections.Counter([m.group(1)]), []))
        elif group is not None and (m := re.match(r" {4}rule (\w+):", line)):
            group[1][m.group(1)] += 1
        elif group is not None and (m := re.match(r" {8}resources: .*runtime=(\d+)", line)):
            group[2].append(int(m.group(1)))
    return jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    plain = dry_run(tmp_path_factory.mktemp("plain"))
    grouped = dry_run(tmp_path_factory.mktemp("grouped"), "--profile", str(WORLD_GROUPS))
    return slurm_jobs(plain), slurm_jobs(grouped)


def test_the_default_config_is_a_few_dozen_slurm_jobs(runs):
    plain, grouped = runs
    n_plain = sum(sum(c.values()) for _, c, _ in plain)
    n_grouped = sum(sum(c.values()) for _, c, _ in grouped)
    assert n_grouped == n_plain > 200, "the same Snakemake jobs, grouped or not"
    assert len(plain) == n_plain, "without the add-on, one Slurm job per Snakemake job"
    assert len(grouped) <= 40, f"{len(grouped)} Slurm jobs for {n_grouped} Snakemake jobs"


def test_each_group_is_at_most_12_jobs_of_its_stage(runs):
    _, grouped = runs
    groups = addon()["groups"]
    assert addon()["cores"] == CORES
    assert set(addon()["group-components"]) == set(groups.values())
    assert all(n <= PER_GROUP for n in addon()["group-components"].values())
    seen = set()
    for group, rules, runtimes in grouped:
        if group is None:
            assert not set(rules) & set(groups), f"a job of a grouped rule travels alone: {rules}"
            continue
        assert sum(rules.values()) <= PER_GROUP, (group, rules)
        assert {groups[r] for r in rules} == {group}, (group, rules)
        # run CORES at a time, independent jobs ask for at most an hour (12 world jobs of 10 minutes)
        assert len(runtimes) == sum(rules.values()) and max(runtimes) * -(-len(runtimes) // CORES) <= 60, runtimes
        seen |= set(rules)
    assert {"refset", "scores", "compress", "circuit", "correction", "structured"} <= seen


def test_the_cluster_profile_leaves_grouping_to_the_addon():
    """Snakemake keeps one value per option, the workflow profile's first: set in profiles/slurm,
    these would override the add-on's, and group the hub models' jobs (hours each) too."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert not {"groups", "group-components", "cores"} & set(profile)
