"""The Snakefile's path grammar and the rules' commands against what the workflow really schedules.

One dry run (no job runs, no network: a hub model's download is only scheduled) of the e2e config
plus a hub model, an export, and the `world` and `download` targets, so that every rule has jobs.
Every output, log and benchmark of every job, and every input that no job writes, must have one
of the shapes in the Snakefile's header; every header shape must occur; every command must be
`python -m attrprune <rule name with - for _>` with flags the CLI accepts.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "Snakefile"
TOPS = ("world/", "resources/", "results/", "logs/", "benchmarks/")
# Wildcards with a stricter shape than "one path segment"; {job} (logs, benchmarks) is any path.
WILDCARDS = {
    "model": r"[a-z0-9.-]+",
    "world_model": r"[a-z0-9.-]+",
    "seed": r"\d+",
    "sparsity": r"0\.\d{2}",
    "job": r".+",
}
OFFLINE = ["HF_HUB_OFFLINE=1", "HF_DATASETS_OFFLINE=1", "TRANSFORMERS_OFFLINE=1"]
ONLINE = [v.replace("=1", "=0") for v in OFFLINE]


def header_patterns() -> list[str]:
    """The first token of every header comment line that starts with a top-level folder."""
    patterns = []
    for line in SNAKEFILE.read_text().splitlines():
        if not line.startswith("#"):
            if patterns:
                break
            continue
        fields = line[1:].split()
        if fields and fields[0].startswith(TOPS):
            patterns.append(fields[0])
    return patterns


def to_regex(pattern: str) -> re.Pattern:
    """{name}: a wildcard; {a,b}: one of the spellings; a trailing /: the folder or anything in it."""
    folder = pattern.endswith("/")
    parts = []
    for i, part in enumerate(re.split(r"(\{[^}]*\})", pattern.rstrip("/"))):
        if i % 2 == 0:
            parts.append(re.escape(part))
        elif "," in part:
            parts.append("(?:" + "|".join(re.escape(a) for a in part[1:-1].split(",")) + ")")
        else:
            parts.append(f"(?:{WILDCARDS.get(part[1:-1], r'[^/]+')})")
    return re.compile("".join(parts) + ("(?:/.*)?" if folder else ""))


def test_header_patterns_parse():
    patterns = header_patterns()
    assert len(patterns) > 20 and "logs/{job}.log" in patterns and "benchmarks/{job}.tsv" in patterns
    for p in patterns:
        to_regex(p)


def dry_run_jobs(workdir: Path, configfile: Path, *targets: str) -> list[dict]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--workflow-profile",
        "none",
        "--cores",
        "1",
        "-n",
        "-p",
        *targets,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs, job = [], None
    for line in r.stdout.splitlines():
        if m := re.fullmatch(r"(?:local)?rule (\w+):", line):
            job = {"rule": m[1], "input": [], "output": [], "log": [], "benchmark": [], "shell": None}
            jobs.append(job)
        elif job and (m := re.fullmatch(r"    (input|output|log|benchmark): (.*)", line)):
            job[m[1]] = m[2].split(", ")
        elif job and line.startswith("Shell command: "):
            job["shell"] = None if line.endswith(": None") else line.removeprefix("Shell command: ")
            job = None
    assert jobs, r.stdout
    return jobs


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    config = yaml.safe_load((ROOT / "tests" / "e2e" / "config.yaml").read_text())
    # a hub model under a paper alias: its jobs, and the comparison with the paper's table
    config["models"]["tinyllama-1.1b"] = {"source": "hub", "hf_id": "org/tiny", "revision": "v1.0"}
    config["compression"]["export"] = {"method": "lrp", "scope": "row", "sparsity": 0.5}
    config["download"] = {"datasets": ["c4"], "detoxify": "original"}
    tmp = tmp_path_factory.mktemp("grammar")
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp / "run").mkdir()
    return dry_run_jobs(tmp / "run", tmp / "config.yaml", "all", "world", "download")


def repo_relative(path: str) -> str:
    """Committed world files are read where the repository lies (the run is elsewhere)."""
    return str(Path(path).relative_to(ROOT)) if Path(path).is_absolute() else path


def test_every_path_has_one_shape_and_every_shape_occurs(jobs):
    patterns = {p: to_regex(p) for p in header_patterns()}
    written = {f for job in jobs for f in job["output"]}
    used, problems = set(), []
    for job in jobs:
        read = [repo_relative(f) for f in job["input"] if f not in written]
        for path in job["output"] + job["log"] + job["benchmark"] + read:
            shapes = [p for p, rx in patterns.items() if rx.fullmatch(path)]
            used.update(shapes)
            if len(shapes) != 1:
                problems.append(f"{job['rule']}: {path} has shapes {shapes}")
    assert not problems, "\n".join(problems)
    assert not set(patterns) - used, f"header shapes no job has: {sorted(set(patterns) - used)}"


def test_logs_and_benchmarks_are_named_after_the_job_outputs(jobs):
    """logs/{job}.log and benchmarks/{job}.tsv with the same {job}: an output path without its
    extension (a folder output: the folder), or the folder or name prefix the job's outputs share."""
    for job in jobs:
        if not job["output"] or job["rule"] in ("all", "world", "download"):
            continue
        (log,) = job["log"]
        stem = log.removeprefix("logs/").removesuffix(".log")
        assert log == f"logs/{stem}.log", job
        if not job["rule"].startswith("download"):
            assert job["benchmark"] == [f"benchmarks/{stem}.tsv"], job
        assert any(out == stem or out.startswith(stem + sep) for out in job["output"] for sep in "./_"), job


def job_argv(job) -> list[str]:
    return shlex.split(job["shell"].split(" > ")[0])


def _reused_rules() -> dict[str, str]:
    """{rule: the rule it reuses} of every `use rule X as Y with:` (Y runs X's command)."""
    text = "".join(smk.read_text() for smk in sorted((ROOT / "rules").glob("*.smk")))
    return {new: old for old, new in re.findall(r"^use rule (\w+) as (\w+)", text, flags=re.M)}


def test_commands_are_the_rule_names_with_cli_flags(jobs):
    """Subcommand = rule name with - for _ (a reused rule's: its original's); every flag and value parses with the CLI; compute
    jobs run offline, downloads online."""
    from attrprune.cli import build_parser

    parser = build_parser()
    reused = _reused_rules()
    seen = set()
    for job in jobs:
        if job["shell"] is None:
            continue
        argv = job_argv(job)
        i = argv.index("attrprune")
        assert argv[i - 2 : i] == ["python", "-m"], job["shell"]
        assert argv[i + 1] == reused.get(job["rule"], job["rule"]).replace("_", "-"), job["shell"]
        assert argv[: i - 2] == (ONLINE if job["rule"].startswith("download") else OFFLINE), job["shell"]
        parser.parse_args(argv[i + 1 :])
        seen.add(job["rule"])
    assert len(seen) >= 20, seen


def test_scores_storage_auto_is_float32_for_world_models_and_float16_for_hub_models(jobs):
    """scores.storage: auto resolves per model in the rule's params (so it is part of what reruns)."""
    storage = {}
    for job in jobs:
        if job["rule"] == "scores":
            argv = job_argv(job)
            model = job["output"][0].split("/")[1]
            storage.setdefault(model, set()).add(argv[argv.index("--storage") + 1])
    assert storage["tinyllama-1.1b"] == {"float16"}
    assert storage["world-llama"] == {"float32"}


def test_every_rule_with_a_command_runs_its_own_subcommand():
    """The same, read from rules/*.smk: rules that no dry run above schedules are covered too."""
    from attrprune.cli import STAGES

    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            rules[name] = re.findall(r'stage_shell\("([\w-]+)"\)', block)
    commands = {name: found for name, found in rules.items() if found}
    assert len(commands) >= 20
    for name, found in commands.items():
        assert found == [name.replace("_", "-")], (name, found)
        assert found[0] in STAGES, found
    assert set(STAGES) == {found[0] for found in commands.values()}, "a CLI stage without a rule"
    assert {name for name, found in rules.items() if not found} == {"download", "world"}
    assert _reused_rules() == {"compress_dense": "compress"}
