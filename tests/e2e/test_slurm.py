"""The SLURM profile, run for real: snakemake-executor-plugin-slurm submits the tiny workflow
through the shell shims in tests/slurm_shims (sbatch runs each job here, in the background;
sacct and squeue answer from the job states), and every job's sbatch command line is checked
against profiles/slurm and the workflow's per-job sizes. tests/e2e/test_real_slurm.py runs the
profile on a real Slurm.

The shims are tested first, on their own, so that a pass of the end-to-end run means the plugin
really submitted, polled and collected the jobs.

Run: ``python -m pytest -q tests/e2e/test_slurm.py`` (the end-to-end run takes about 2 minutes).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SHIMS = ROOT / "tests" / "slurm_shims"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
PARTITIONS = ROOT / "profiles" / "slurm" / "partitions.example.yaml"
E2E_CONFIG = ROOT / "tests" / "e2e" / "config.yaml"
# The shims need these beyond bash and coreutils.
TOOLS = ("bash", "flock", "setsid", "timeout")


def shim_env(state_dir: Path, **extra) -> dict:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"the SLURM shims need {missing} on PATH (util-linux / coreutils)")
    env = dict(os.environ)
    env.update(PATH=f"{SHIMS}{os.pathsep}{env['PATH']}", SLURMSHIM_DIR=str(state_dir), **extra)
    return env


def shim(env, *args, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), env=env, input=stdin, capture_output=True, text=True, timeout=30)


def calls(state_dir: Path, command: str) -> list[list[str]]:
    """The recorded argv of every call of `command`, oldest first (without the command name)."""
    log = state_dir / f"{command}.log"
    return [json.loads(line)[1:] for line in log.read_text().splitlines()] if log.exists() else []


def wait_for_state(env, job_id: str, done=("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED")) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = shim(env, "sacct", "-X", "--parsable2", "--noheader", "--format=JobIdRaw,State", "-j", job_id).stdout
        state = out.strip().split("|")[-1]
        if state in done:
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish; last sacct output: {out!r}")


def live_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in a process group, from /proc (Linux)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def test_shims_run_jobs_and_report_them_in_slurm_formats(tmp_path):
    env = shim_env(tmp_path / "state")
    out = tmp_path / "out"
    out.mkdir()
    # The plugin's own submission shape: --parsable, --wrap with quotes inside, -D.
    ok = shim(env, "sbatch", "--parsable", "--job-name", "run1", "--output", f"{out}/%j.log", "--export=ALL",
              "-A", "test", "-p", "test", "-t", "5", "--mem", "100", "--gpus=2", "-D", str(out),
              '--wrap=echo "job $SLURM_JOB_ID on $SLURM_JOB_PARTITION with $SLURM_GPUS gpus" > result.txt')  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    job = ok.stdout.strip()
    assert job.isdigit()
    failing = shim(env, "sbatch", "--parsable", "-J", "run1", "-D", str(out), "--wrap=exit 3").stdout.strip()
    timed_out = shim(env, "sbatch", "--parsable", "-J", "run2", "-D", str(out), "-t", "0:01", "--wrap=sleep 20")
    timed_out = timed_out.stdout.strip()  # -t 0:01 is MM:SS, one second
    cancelled = shim(env, "sbatch", "--parsable", "-J", "run2", "-D", str(out), "--wrap=sleep 20").stdout.strip()
    script = "#!/bin/sh\necho from stdin $1\n"
    from_stdin = shim(env, "sbatch", "-D", str(out), "-o", f"{out}/stdin.log", "/dev/stdin", "x", stdin=script)
    assert from_stdin.stdout.startswith("Submitted batch job "), from_stdin.stdout

    assert wait_for_state(env, job) == "COMPLETED"
    assert (out / "result.txt").read_text() == f"job {job} on test with 2 gpus\n"
    assert wait_for_state(env, failing) == "FAILED"
    wait_for_state(env, cancelled, done=("RUNNING",))
    assert shim(env, "scancel", cancelled).returncode == 0
    assert wait_for_state(env, cancelled) == "CANCELLED"
    pgid = int((tmp_path / "state" / "jobs" / cancelled / "pgid").read_text())
    time.sleep(0.5)
    assert live_members(pgid) == [], "scancel left the job's processes running"
    assert wait_for_state(env, timed_out) == "TIMEOUT"
    assert "DUE TO TIME LIMIT" in (out / f"slurm-{timed_out}.out").read_text()
    assert wait_for_state(env, from_stdin.stdout.split()[-1]) == "COMPLETED"
    assert (out / "stdin.log").read_text() == "from stdin x\n"

    # The plugin's status query (sacct) and its fallback (squeue), filtered by job name.
    sacct = shim(env, "sacct", "-X", "--parsable2", "--clusters", "all", "--noheader", "--format=JobIdRaw,State",
                 "--starttime", "2020-01-01T00:00", "--endtime", "now", "--name", "run1")  # fmt: skip
    assert sacct.stdout.splitlines() == [f"{job}|COMPLETED", f"{failing}|FAILED"]
    squeue = shim(env, "squeue", "--format=%i|%T", "--states=all", "--noheader", "--name", "run1,run2")
    states = [f"{job}|COMPLETED", f"{failing}|FAILED", f"{timed_out}|TIMEOUT", f"{cancelled}|CANCELLED"]
    assert squeue.stdout.splitlines() == states
    assert shim(env, "squeue", "-h", "-o", "%i").stdout == ""  # by default only pending and running
    table = shim(env, "sacct", "-j", failing, "--format=JobID,State,ExitCode").stdout.splitlines()
    assert table[0].split() == ["JobID", "State", "ExitCode"] and table[2].split() == [failing, "FAILED", "3:0"]
    assert shim(env, "sacct", "-j", f"{failing}.0", "--format=Reason", "--noheader").stdout == ""  # no steps
    assert shim(env, "sacct", "--format=Bogus").returncode != 0

    # What the plugin asks about partitions and accounts, and the argv log.
    assert shim(env, "sinfo", "-o", "%P").stdout == "PARTITION\ntest*\n"
    assert shim(env, "sacctmgr", "-n", "-s", "list", "user", "me", "format=account%256").stdout == "test\n"
    rejected = shim(env, "sbatch", "-A", "other", "--wrap=true")
    assert rejected.returncode != 0 and "Invalid account" in rejected.stderr
    assert calls(tmp_path / "state", "sbatch")[0][-1].startswith('--wrap=echo "job $SLURM_JOB_ID')
    assert shim(env, "srun", "-n1", "--cpu-bind=q", "--gpus=1", "--nodes=1", "echo", "step").stdout == "step\n"


# Prints {rule: submitted?} for the default config: local rules (localrules:, or nothing to
# run, like `all`) never reach SLURM. Through the API: the command line does not tell them apart.
SUBMITTED_RULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
snakefile, configfile, workdir = map(Path, sys.argv[1:])
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile, workdir=workdir,
                      config_settings=ConfigSettings(configfiles=[configfile]))._workflow
    print(json.dumps({r.name: [not (r.name in wf._localrules or r.norun), {"mem_mb", "runtime"} <= set(r.resources)]
                      for r in wf.rules}))
"""


def test_profile_sizes_every_rule_and_leaves_gpus_and_accounts_to_others(tmp_path):
    """Every rule that goes to SLURM has a runtime and memory: a model rule from the workflow, per
    job (attrprune.cluster), another rule in the profile or its own resources. The profile names no model rule (its
    set-resources would override the per-job sizes), sets no `gpu` (that would override the rules'
    per-model gpu count), no account or partition (the user's), and no default-resources (it would
    replace a user profile's default-resources wholesale)."""
    from attrprune import cluster

    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert "default-resources" not in profile
    r = subprocess.run(
        [sys.executable, "-c", SUBMITTED_RULES, str(ROOT / "Snakefile"), str(ROOT / "config.yaml"), str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.splitlines()[-1])
    rules = {name for name, (submitted, _) in info.items() if submitted}
    sized_by_rule = {name for name, (_, sized) in info.items() if sized}
    assert {"scores", "compress", "refset"} <= rules
    sized = profile["set-resources"]
    assert not set(sized) & set(cluster.RULES), f"{PROFILE} overrides the per-job sizes of model rules"
    unsized = rules - set(sized) - set(cluster.RULES) - sized_by_rule
    assert not unsized, f"rules without SLURM sizes in {PROFILE}: {sorted(unsized)}"
    for rule, res in sized.items():
        assert isinstance(res.get("runtime"), int) and isinstance(res.get("mem_mb"), int), rule
        assert not {"gpu", "gpus", "gres", "slurm_account", "slurm_partition"} & set(res), rule


def option(argv: list[str], name: str) -> str | None:
    """Value of `name VALUE` or `name=VALUE` in argv; None if absent."""
    for i, a in enumerate(argv):
        if a == name:
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


@pytest.mark.slow
def test_tiny_workflow_through_the_slurm_executor(tmp_path):
    """Two scores jobs and one compress job (plus their reference set) through the real executor
    plugin and the profile. The world model's GPU rules ask for no GPU (gpu=0 from the
    workflow), so the run uses a copy of the profile in which `scores` takes one, as a hub
    model's would; compress stays a world-model job without a GPU."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is not installed: pip install snakemake-executor-plugin-slurm")
    state, run, profile_dir = tmp_path / "slurm", tmp_path / "run", tmp_path / "profile"
    run.mkdir()
    profile_dir.mkdir()
    profile = yaml.safe_load(PROFILE.read_text())
    profile["set-resources"]["scores"] = {"gpu": 1}  # only the GPU: the sizes stay the per-job ones
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(profile))
    env = shim_env(state, SLURMSHIM_PARTITIONS="cpu,gpu", SLURMSHIM_ACCOUNTS="test")
    scores = {m: f"results/world-llama/scores/{m}/general-s0.safetensors" for m in ("lrp", "random")}
    compressed = "results/world-llama/compression/random/row/general-s0/sparsity_{}/metrics.json"
    metrics = {s: compressed.format(s) for s in ("0.50",)}  # one compress job per sparsity
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(run),
            "--configfile", str(E2E_CONFIG)]  # fmt: skip
    try:
        r = subprocess.run(
            base + ["--workflow-profile", str(profile_dir), "--default-resources", "slurm_account=test",
                    "--slurm-partition-config", str(PARTITIONS),
                    # the first status check after 1 s instead of 40 s
                    "--slurm-init-seconds-before-status-checks", "1",
                    *scores.values(), metrics["0.50"]],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:  # a killed run leaves its jobs running in the background
        jobs = [d.name for d in (state / "jobs").iterdir()] if (state / "jobs").exists() else []
        if jobs:
            shim(env, "scancel", *jobs)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]

    # Complete outputs: what the jobs wrote, and Snakemake sees nothing left to do.
    from attrprune.relevance.store import load_scores

    for method, path in scores.items():
        _, meta = load_scores(run / path)
        assert meta["method"] == method and meta["n_samples"] == 8
    for s, path in metrics.items():
        m = json.loads((run / path).read_text())
        assert m["sparsity"] == float(s) and abs(m["sparsity_measured"] - float(s)) < 1e-9 and m["metrics"]
    again = subprocess.run(base + ["--workflow-profile", "none", "-n", *scores.values(), metrics["0.50"]],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout + again.stderr

    # Every job went through sbatch, ran, and was collected as COMPLETED.
    submitted = defaultdict(list)  # "rule_<name>" -> argv of each sbatch call
    for argv in calls(state, "sbatch"):
        submitted[option(argv, "--comment").split("_wildcards_")[0]].append(argv)
    assert {k: len(v) for k, v in submitted.items()} == {"rule_refset": 1, "rule_scores": 2, "rule_compress": 1}
    assert {(d / "state").read_text().strip() for d in (state / "jobs").iterdir()} == {"COMPLETED"}
    assert calls(state, "squeue"), "the plugin never asked squeue (the profile's status command) for the job states"

    from attrprune.cluster import WORLD

    expected = {"rule_refset": ("cpu", None), "rule_scores": ("gpu", "1"), "rule_compress": ("cpu", None)}
    for rule, (partition, gpus) in expected.items():
        res = WORLD  # world-llama's jobs, sized by the workflow (the profile copy adds only a GPU)
        for argv in submitted[rule]:
            assert option(argv, "--mem") == str(res["mem_mb"]), (rule, argv)
            assert option(argv, "-t") == str(res["runtime"]), (rule, argv)
            assert option(argv, "-p") == partition and option(argv, "-A") == "test", (rule, argv)
            assert option(argv, "--gpus") == gpus and option(argv, "--gres") is None, (rule, argv)
            # HF_HOME & co. reach the jobs only through this (see the profile's header).
            assert "--export=ALL" in argv
    # Inside each job the plugin's jobstep runs the rule through srun, with the same GPU request.
    assert sorted(option(a, "--gpus") or "0" for a in calls(state, "srun")) == ["0", "0", "1", "1"]
