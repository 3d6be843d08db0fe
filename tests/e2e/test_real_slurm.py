"""The SLURM profile on a real Slurm: the whole tiny workflow (tests/e2e/config.yaml, with its
world model's GPU jobs asking for one GPU, `models.world-llama.gpus: 1`) through
``--workflow-profile profiles/slurm`` on a single-node Slurm started here (tests/real_slurm.py),
once with accounting (slurmdbd) and once without. With accounting, one Slurm job per Snakemake
job: Slurm's own records (``scontrol show job``, ``sacct``) must show every job that Snakemake
would submit as a completed Slurm job with the memory, time limit and GPUs that the profile and
the workflow give it. Without accounting, the same workflow grouped by profiles/slurm-world (the
way world-model runs travel): the group jobs of its dry run, each completed and within 2 CPUs,
16 GB and an hour. Either way the tables equal a local run's byte for byte.

Needs root and Debian's slurm-wlm, munge, slurmdbd and mariadb-server (installed with apt-get
when missing). Where they cannot be had the tests skip with the reason, except under CI=true,
where they fail.

Faults, each run on both clusters or one per cluster: a job cancelled with scancel (no
accounting: the run fails naming it, the same command completes it), a node going down under a
running job (accounting: Slurm requeues it), and a job that hangs past its 1-minute time limit
(both: Slurm kills it, TIMEOUT; with accounting the profile's one retry is killed at the same
limit too; the same command without the tiny limit completes it).

Run: ``python -m pytest -q tests/e2e/test_real_slurm.py``. About 25 minutes on 2 quiet cores (47 on
cores shared with other work): each tiny Slurm job costs 10-80 s there; docs/cluster.md has the parts.
"""

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import real_slurm
import yaml

from attrprune import cluster as sizes

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
PARTITIONS = PROFILE / "partitions.example.yaml"
WORLD_GROUPS = ROOT / "profiles" / "slurm-world"
E2E_CONFIG = ROOT / "tests" / "e2e" / "config.yaml"
RUN_TIMEOUT = 1200

pytestmark = pytest.mark.slow


def config_with_gpus(tmp: Path) -> Path:
    """The e2e config with world-llama's GPU jobs asking for a GPU, so that both partitions are used."""
    config = yaml.safe_load(E2E_CONFIG.read_text())
    config["models"]["world-llama"]["gpus"] = 1
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, configfile: Path, *args: str, env=None, timeout=RUN_TIMEOUT):
    # --configfile last: it takes every argument up to the next option, targets too
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           *args, "--configfile", str(configfile)]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def configfile(tmp_path_factory):
    return config_with_gpus(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, configfile):
    """The same workflow run locally: the reference outputs."""
    workdir = tmp_path_factory.mktemp("local")
    started = time.monotonic()
    r = snakemake(workdir, configfile, "--workflow-profile", "none", "--cores", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"\nthe local run (--cores 2): {time.monotonic() - started:.0f} s", file=sys.__stdout__, flush=True)
    return workdir


def expected_jobs(tmp: Path, configfile: Path, *targets: str) -> dict[str, dict]:
    """{comment: {rule, mem_mb, runtime, gpu}} of every job a run through the profile submits,
    from its dry run (the plugin names a job's comment rule_<rule>_wildcards_<values>)."""
    r = snakemake(tmp, configfile, *targets, "--workflow-profile", str(PROFILE), "-n", timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    jobs = {}
    for block in r.stdout.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        while lines and lines[0].startswith("[") and lines[0].endswith("]"):
            lines.pop(0)
        if not lines or not lines[0].startswith("rule ") or not any(x.startswith("output:") for x in lines):
            continue
        rule = lines[0][len("rule ") : -1]
        fields = {k: v for k, _, v in (line.partition(": ") for line in lines[1:])}
        wildcards = [p.split("=", 1)[1] for p in fields.get("wildcards", "").split(", ") if "=" in p]
        resources = dict(p.split("=", 1) for p in fields["resources"].split(", ") if "=" in p)
        comment = f"rule_{rule}" + (f"_wildcards_{'_'.join(wildcards)}".replace("/", "_") if wildcards else "")
        jobs[comment] = {"rule": rule, "mem_mb": int(resources["mem_mb"]), "runtime": int(resources["runtime"]),
                         "gpu": int(resources.get("gpu", 0))}  # fmt: skip
    assert jobs, r.stdout[-3000:]
    return jobs


@pytest.fixture(scope="module", params=[True, False], ids=["accounting", "no-accounting"])
def slurm(request, tmp_path_factory):
    why = real_slurm.unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, but no real Slurm: {why}")
        pytest.skip(why)
    c = real_slurm.SlurmCluster(tmp_path_factory.mktemp("slurm"), accounting=request.param)
    c.start()
    yield c
    c.stop()


def slurm_jobs(slurm, job_name: str) -> dict[str, dict]:
    """Every job slurmctld knows under `job_name` (the run's id), as {job id: scontrol fields}."""
    out = slurm.run("squeue", "--states=all", "-h", "-o", "%i", "--name", job_name).stdout.split()
    return {job_id: slurm.show_job(job_id) for job_id in out}


def run_uuid(log: str) -> str:
    ids = {line.split("SLURM run ID: ", 1)[1].split()[0] for line in log.splitlines() if "SLURM run ID: " in line}
    assert len(ids) == 1, f"the plugin's run id, once in the log: {ids}"
    return ids.pop()


def group_count(tmp: Path, configfile: Path) -> int:
    """How many group jobs a run through the profile and profiles/slurm-world submits (its dry run)."""
    r = snakemake(tmp, configfile, "--workflow-profile", str(PROFILE), "--profile", str(WORLD_GROUPS), "-n",
                  timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return sum("] Group job " in line for line in r.stdout.splitlines())


def test_tiny_workflow_on_a_real_slurm(slurm, local_run, configfile, tmp_path, capsys):
    """With accounting, one Slurm job per Snakemake job, each asking for its own size (checked in
    scontrol and sacct). Without, the world add-on's groups (profiles/slurm-world): each of its
    stages' Snakemake jobs travel up to 12 per Slurm job, the rest one per Slurm job, and every
    Slurm job fits a 1-hour, 16 GB node with 2 CPUs. Either way every job completes and the tables
    equal the local run's."""
    grouped = not slurm.accounting
    expected = expected_jobs(tmp_path / "dry", configfile)
    in_groups = yaml.safe_load((WORLD_GROUPS / "config.yaml").read_text())["groups"]
    workdir = tmp_path / "run"
    workdir.mkdir()
    extra = ["--default-resources", f"slurm_account={real_slurm.ACCOUNT}"] if slurm.accounting else []
    if grouped:
        extra += ["--profile", str(WORLD_GROUPS)]
    started = time.monotonic()
    r = snakemake(workdir, configfile, "--workflow-profile", str(PROFILE), *extra,
                  "--slurm-partition-config", str(PARTITIONS),
                  # the first status check after 1 s instead of 40 s
                  "--slurm-init-seconds-before-status-checks", "1", env=slurm.env)  # fmt: skip
    elapsed = time.monotonic() - started
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-6000:] + "\nslurmctld:\n" + slurm.log("slurmctld.log")[-3000:]

    # The run's Slurm jobs: the plugin names every job after the run's id.
    run_id = run_uuid(log)
    jobs = slurm_jobs(slurm, run_id)
    by_comment = {j["Comment"]: (job_id, j) for job_id, j in jobs.items()}
    for job_id, job in jobs.items():
        assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), (job_id, job)
    if grouped:
        alone = {c: w for c, w in expected.items() if w["rule"] not in in_groups}
        assert set(alone) <= set(by_comment), sorted(set(alone) - set(by_comment))
        groups = len(jobs) - len(alone)
        assert groups == group_count(tmp_path / "dry-groups", configfile), (groups, sorted(by_comment))
        assert len(jobs) < len(expected) / 2, f"{len(jobs)} Slurm jobs for {len(expected)} Snakemake jobs"
        for job_id, job in jobs.items():
            minutes = sum(int(x) * f for x, f in zip(job["TimeLimit"].split(":"), (60, 1, 0)))
            fits = minutes <= 60 and int(job["MinMemoryNode"].rstrip("M")) <= 16000 and int(job["NumCPUs"]) <= 2
            assert fits, (job_id, job["Comment"], job["TimeLimit"], job["MinMemoryNode"], job["NumCPUs"])
        # every Snakemake job ran: its benchmark file is written by the job itself
        ran, ran_locally = ({p.relative_to(d) for p in (d / "benchmarks").rglob("*.tsv")} for d in (workdir, local_run))
        assert ran == ran_locally and len(ran) > len(jobs), sorted(ran ^ ran_locally)
    else:
        assert len(by_comment) == len(jobs), "two Slurm jobs for one Snakemake job"
        assert set(by_comment) == set(expected), (
            f"submitted but not expected: {sorted(set(by_comment) - set(expected))}; "
            f"expected but not submitted: {sorted(set(expected) - set(by_comment))}"
        )
        gpu_jobs = 0
        for comment, want in expected.items():
            job_id, job = by_comment[comment]
            assert job["MinMemoryNode"] == f"{want['mem_mb']}M", (comment, job["MinMemoryNode"], want)
            h, m = divmod(want["runtime"], 60)
            assert job["TimeLimit"] == f"{h:02d}:{m:02d}:00", (comment, job["TimeLimit"], want)
            gpus = f"gres:gpu:{want['gpu']}" if want["gpu"] else "(null)"
            assert job.get("TresPerJob", "(null)") == gpus, (comment, job.get("TresPerJob"), want)
            assert job["Partition"] == ("gpu" if want["gpu"] else "cpu"), (comment, job["Partition"])
            if want["rule"] in sizes.RULES:  # a world model's job: small
                assert (want["mem_mb"], want["runtime"]) == (sizes.WORLD["mem_mb"], sizes.WORLD["runtime"])
            gpu_jobs += bool(want["gpu"])
        assert 0 < gpu_jobs < len(expected), "both partitions used"

    if slurm.accounting:  # Slurm's accounting record of the same jobs
        fmt = "JobID,JobName%12,Partition,State,ExitCode,ReqMem,Timelimit,Elapsed,ReqTRES%50"
        table = slurm.run("sacct", "-X", "--format", fmt, "-j", ",".join(sorted(jobs, key=int))).stdout
        rows = slurm.run("sacct", "-X", "-P", "-n", "--format=JobID,State,ReqMem,Timelimit,ReqTRES",
                         "-j", ",".join(jobs)).stdout.splitlines()  # fmt: skip
        assert len(rows) == len(jobs)
        for row in rows:
            job_id, state, req_mem, limit, tres = row.split("|")
            want = expected[jobs[job_id]["Comment"]]
            assert state == "COMPLETED" and req_mem == f"{want['mem_mb']}M", row
            assert ("gres/gpu=1" in tres) == bool(want["gpu"]), row
    else:  # the plugin's default status command would have failed here
        assert slurm.run("sacct", "-X", check=False).returncode != 0
        table = slurm.run("squeue", "--states=all", "-o", "%.6i %.10P %.10T %.8m %.10l %.5C %.12b %k").stdout
    with capsys.disabled():
        mode = "with accounting, one per Snakemake job" if slurm.accounting else "without accounting, grouped"
        print(f"\n{len(jobs)} Slurm jobs for {len(expected)} Snakemake jobs {mode}, {elapsed:.0f} s from "
              f"submission to the last one's end:\n{table}")  # fmt: skip

    # The outputs: the tables byte for byte as the local run's; structured.* hold measured
    # latencies and memory, which differ from run to run.
    tables = [p for p in (local_run / "results" / "tables").iterdir() if not p.name.startswith("structured")]
    compared = sorted(p.relative_to(local_run) for p in tables)
    assert len(compared) >= 2
    different = [str(t) for t in compared if not filecmp.cmp(local_run / t, workdir / t, shallow=False)]
    assert different == []


def wait_for_job(slurm, comment: str, known: set[str], run, log: Path, state="RUNNING", timeout=600) -> str:
    """The id of a new job (not in `known`) with this comment, once it is in `state`; fails when
    the workflow `run` (writing to `log`) ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise AssertionError(
                f"the run ended ({run.returncode}) before {comment} was {state}:\n{log.read_text()[-5000:]}"
            )
        for line in slurm.run("squeue", "--states=all", "-h", "-o", "%i|%T|%k").stdout.splitlines():
            job_id, job_state, job_comment = line.split("|", 2)
            if job_id not in known and job_comment == comment and job_state == state:
                return job_id
        time.sleep(0.2)
    raise AssertionError(f"no new job {comment} reached {state} within {timeout} s")


def job_ids(slurm) -> set[str]:
    return set(slurm.run("squeue", "--states=all", "-h", "-o", "%i").stdout.split())


# The fault tests' target: a reference set and the scores computed on it (two jobs, one per partition).
SCORES = "results/world-llama/scores/random/general-s0.safetensors"
SCORES_JOB = "rule_scores_wildcards_world-llama_random_general-s0"


def test_a_fault_is_named_and_survived(slurm, local_run, configfile, tmp_path):
    """Without accounting: the scores job is cancelled (scancel) with retries off. The run fails,
    names the Slurm job and its state, leaves no scores file; the same command again completes
    it. With accounting: the node goes down under the running scores job. Slurm requeues the job
    (its default for batch jobs) and runs it again when the node is back; the run completes
    unattended. Either way the scores equal the local run's byte for byte."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    extra = ["--default-resources", f"slurm_account={real_slurm.ACCOUNT}"] if slurm.accounting else []
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           SCORES, "--workflow-profile", str(PROFILE), *extra, "--slurm-partition-config", str(PARTITIONS),
           "--slurm-init-seconds-before-status-checks", "1", "--configfile", str(configfile)]  # fmt: skip
    known = job_ids(slurm)
    retries = [] if slurm.accounting else ["--retries", "0"]
    logfile = tmp_path / "snakemake.log"
    with open(logfile, "w") as out:
        run = subprocess.Popen(cmd + retries, env=slurm.env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        job = wait_for_job(slurm, SCORES_JOB, known, run, logfile)
        if slurm.accounting:
            slurm.run("scontrol", "update", f"NodeName={slurm.node}", "State=DOWN", "Reason=test_node_failure")
            wait_for_job(slurm, SCORES_JOB, known, run, logfile, state="PENDING")  # requeued, same id
            # back in service (slurmd's next registration may already have done it: ReturnToService=2)
            slurm.run("scontrol", "update", f"NodeName={slurm.node}", "State=RESUME", check=False)
        else:
            slurm.run("scancel", job)
        run.wait(timeout=RUN_TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
    log = logfile.read_text()
    if slurm.accounting:
        assert run.returncode == 0, log[-5000:]
        record = slurm.show_job(job)
        assert record["JobState"] == "COMPLETED" and int(record["Restarts"]) == 1, record
        states = slurm.run("sacct", "-j", job, "-D", "-X", "-P", "-n", "--format=State").stdout.split()
        assert "NODE_FAIL" in states or "REQUEUED" in states, states
    else:
        assert run.returncode != 0, log[-5000:]
        assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in log, log[-5000:]
        assert "Error in rule scores" in log, log[-5000:]
        assert not (workdir / SCORES).exists(), "a cancelled job left its output"
        again = subprocess.run(cmd, env=slurm.env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert filecmp.cmp(local_run / SCORES, workdir / SCORES, shallow=False)


def hold_until_ended(slurm, job: str, timeout: float = 300) -> str:
    """Stops (SIGSTOP) every process of the running `job` (`scontrol listpids`: the batch script,
    srun, Snakemake and the rule's command; not slurmstepd) until Slurm ends the job, as a job that
    hangs. Repeats each second: a step started after the first pass is stopped too. Returns the
    job's final state (after COMPLETING, while Slurm kills the processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = slurm.show_job(job)["JobState"]
        if state == "COMPLETING":  # being killed: its final state comes once its processes are gone
            time.sleep(1)
            continue
        if state != "RUNNING":
            return state
        for line in slurm.run("scontrol", "listpids", job, check=False).stdout.splitlines()[1:]:
            try:
                os.kill(int(line.split()[0]), signal.SIGSTOP)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(1)
    raise AssertionError(f"job {job} still running {timeout} s after it was stopped: no time limit enforced")


def test_a_time_limit_kills_the_job(slurm, local_run, configfile, tmp_path):
    """The scores job with a 1-minute time limit (`--set-resources scores:runtime=1`) hangs (its
    processes stopped). Slurm kills it at its limit: its record says TIMEOUT with a 1-minute
    TimeLimit. With accounting the profile's `retries: 1` resubmits it once with the same limit,
    and that attempt is killed too (sacct lists both); without, `--retries 0`. The run fails naming
    the Slurm job and TIMEOUT, leaves no scores file, and the same command without the tiny limit
    (`--rerun-incomplete`) completes the scores equal to the local run's."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    extra = ["--default-resources", f"slurm_account={real_slurm.ACCOUNT}"] if slurm.accounting else []
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           SCORES, "--workflow-profile", str(PROFILE), *extra, "--slurm-partition-config", str(PARTITIONS),
           "--slurm-init-seconds-before-status-checks", "1", "--rerun-incomplete",
           "--configfile", str(configfile)]  # fmt: skip
    # the command line's set-resources replaces the profile's table: harmless here, where no
    # rule of that table runs
    tiny = ["--set-resources", "scores:runtime=1"]
    attempts = 2 if slurm.accounting else 1
    retries = [] if slurm.accounting else ["--retries", "0"]
    known = job_ids(slurm)
    logfile = tmp_path / "snakemake.log"
    with open(logfile, "w") as out:
        run = subprocess.Popen(cmd + tiny + retries, env=slurm.env, stdout=out, stderr=subprocess.STDOUT, text=True)
    killed = []
    try:
        for _ in range(attempts):
            job = wait_for_job(slurm, SCORES_JOB, known | set(killed), run, logfile)
            assert hold_until_ended(slurm, job) == "TIMEOUT"
            killed.append(job)
        run.wait(timeout=RUN_TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
    log = logfile.read_text()
    assert run.returncode != 0, log[-5000:]
    for job in killed:
        record = slurm.show_job(job)
        killed_by = (record["JobState"], record["Reason"], record["TimeLimit"])
        assert killed_by == ("TIMEOUT", "TimeLimit", "00:01:00"), record
        assert f"SLURM-job '{job}' failed, SLURM status is: 'TIMEOUT'" in log, log[-5000:]
    assert "Error in rule scores" in log, log[-5000:]
    # every scores job of the run is one of the killed attempts
    scores_jobs = {i for i, j in slurm_jobs(slurm, run_uuid(log)).items() if j["Comment"] == SCORES_JOB}
    assert scores_jobs == set(killed), (scores_jobs, killed)
    if slurm.accounting:  # Slurm's accounting record of the same attempts
        rows = slurm.run("sacct", "-X", "-P", "-n", "-j", ",".join(killed), "--format=JobID,State,Timelimit").stdout
        assert sorted(rows.split()) == sorted(f"{job}|TIMEOUT|00:01:00" for job in killed), rows
    scores_dir = (workdir / SCORES).parent
    assert not scores_dir.exists() or list(scores_dir.iterdir()) == [], "a killed job left output"
    again = subprocess.run(cmd, env=slurm.env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert filecmp.cmp(local_run / SCORES, workdir / SCORES, shallow=False)
