"""After a change to the code, Snakemake reruns exactly the jobs that run the changed code, and
what reads their outputs (rules pass `attrprune.fingerprint` as params.code).

One tiny run of the whole workflow, from a copy of the repository (its Snakefile, rules and
package; the committed world linked in), so that the tests can edit the package as a user
would; each test edits a copy's module, asks Snakemake what it would rerun, and restores it.
The last one runs a partial rerun and checks that the table warns about mixed code versions.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_workflow import E2E_CONFIG, ROOT, job_counts

pytestmark = pytest.mark.slow


def tiny_config() -> dict:
    """The e2e config, smaller: lrp and random only, head circuits, three compression points
    (0.3 and 0.5 are one compress job each, so one of them can be rerun alone)."""
    config = yaml.safe_load(E2E_CONFIG.read_text())
    config["scores"]["methods"] = ["lrp", "random"]
    config["compression"].update(methods=["lrp", "random"], method_scopes={}, sparsities=[0.0, 0.3, 0.5])
    config["circuits"]["granularities"] = ["head"]
    return config


class Copy:
    """A copy of the workflow and package in `root`, run in `root/run` with that package."""

    def __init__(self, root: Path):
        self.root, self.work = root, root / "run"
        # bench/cost_estimates.json: the SLURM sizes of preset models, read when the workflow parses
        for part in ("Snakefile", "rules", "schemas", "report", "envs", "src/attrprune", "bench/cost_estimates.json"):
            source, target = ROOT / part, root / part
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
        (root / "world").symlink_to(ROOT / "world")
        self.work.mkdir()
        self.config = root / "tiny.yaml"
        self.config.write_text(yaml.safe_dump(tiny_config()))
        self.env = {**os.environ, "PYTHONPATH": str(root / "src")}

    def snakemake(self, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(self.root / "Snakefile"),
               "--directory", str(self.work), "--configfile", str(self.config),
               "--workflow-profile", "none", "--cores", "2", *args]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)

    def planned(self, *args: str) -> dict[str, int]:
        """{rule: jobs} that a dry run would run ({} when nothing is to be done)."""
        r = self.snakemake("-n", *args)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        out = r.stdout + r.stderr
        return {} if "Nothing to be done" in out else job_counts(out)

    def edit(self, module: str, old: str, new: str) -> "Edit":
        return Edit(self.root / "src" / "attrprune" / module, old, new)


class Edit:
    """Replace `old` by `new` in a source file for the duration of a with block."""

    def __init__(self, path: Path, old: str, new: str):
        self.path, self.old, self.new = path, old, new

    def __enter__(self):
        self.text = self.path.read_text()
        assert self.text.count(self.old) == 1, f"{self.old!r} is not once in {self.path}"
        self.path.write_text(self.text.replace(self.old, self.new))

    def __exit__(self, *exc):
        self.path.write_text(self.text)


def jobs_by_method(listing: str) -> dict[str, dict[str, int]]:
    """{method: {rule: jobs}} of a dry run's job listing ("" for jobs without a method)."""
    out: dict[str, dict[str, int]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", listing):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule is None:
            continue
        method = re.search(r"wildcards:.*\bmethod=([\w-]+)", block)
        counts = out.setdefault(method.group(1) if method else "", {})
        counts[rule.group(1)] = counts.get(rule.group(1), 0) + 1
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    copy = Copy(tmp_path_factory.mktemp("after_a_change"))
    r = copy.snakemake("-n")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    copy.first_plan = jobs_by_method(r.stdout)
    r = copy.snakemake(timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert copy.planned() == {}  # the fingerprints are stable from one Snakemake process to the next
    return copy


TABLES = {"compression_tables": 1, "circuit_tables": 1, "correction_tables": 1}


def test_a_scoring_change_reruns_its_jobs_and_what_reads_them(run):
    lrp_jobs = run.first_plan["lrp"]
    # every stage has lrp jobs, and other methods' jobs that must not rerun
    assert {"scores", "compress", "circuit", "correction"} <= set(lrp_jobs)
    assert {"scores", "compress", "circuit", "correction"} <= set(run.first_plan["random"])
    with run.edit(
        "relevance/lrp.py",
        "    arch = architecture_of(model)\n",
        "    arch = architecture_of(model)\n    arch = arch\n",
    ):
        # the structured track's lrp model feeds the speed measurement and its table
        structured = {"structured_speed": 1, "structured_tables": 1} if "structured" in lrp_jobs else {}
        assert run.planned() == {**lrp_jobs, **TABLES, **structured, "all": 1}
        # --summary names each output's status; the rest of the DAG is untouched
        status = {
            line.split("\t")[0]: line.split("\t")[4] for line in run.snakemake("--summary").stdout.splitlines()[1:]
        }
        changed = {path for path, s in status.items() if s == "params changed"}
        assert changed and all("/lrp/" in path for path in changed), changed
        assert status["results/world-llama/scores/random/general-s0.safetensors"] == "ok"
    assert run.planned() == {}


def test_a_table_change_reruns_only_that_table(run):
    with run.edit("tables.py", '"# Compression\\n\\n"', '"# Compression!\\n\\n"'):
        assert run.planned() == {"compression_tables": 1, "all": 1}


def test_docstrings_comments_and_layout_rerun_nothing(run):
    methods = "relevance/methods.py"
    with run.edit(methods, '    """Score `model` with `method` on `refset`;', '    """Score the model with a method;'):
        with run.edit("relevance/lrp.py", "\n\n\ndef patch_map(", "\n\n\n# a comment\n\n\ndef patch_map("):
            assert run.planned() == {}
    with run.edit(methods, "    model.eval()\n", "    model.eval(\n    )\n"):
        assert run.planned() == {}


def test_a_world_generator_change_retrains_nothing(run):
    """The default target reads the committed world; only `snakemake world` would regenerate it."""
    with run.edit("world/corpus.py", "    docs = []\n    i = 0\n", "    docs = list()\n    i = 0\n"):
        assert run.planned() == {}


def test_a_table_of_two_code_versions_says_so(run):
    """After a change to the compress stage, rerunning one of its jobs and then the table without
    the params trigger (a user who skipped the rest) leaves a table that warns."""
    compress = run.work / "results" / "world-llama" / "compression" / "lrp" / "row" / "general-s0"
    texts = "    texts = None\n"
    with run.edit("compression.py", texts, texts + "    texts = texts\n"):
        planned = run.planned()
        assert planned["compress"] == 4 and planned["compress_dense"] == 1
        r = run.snakemake(str((compress / "sparsity_0.30" / "metrics.json").relative_to(run.work)), timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        r = run.snakemake("compression_tables", "--rerun-triggers", "mtime", timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    markdown = (run.work / "results" / "tables" / "compression.md").read_text()
    warning = "Warning: the compress outputs of lrp this table read come from 2 versions of its code"
    assert warning in markdown
    assert warning in (run.work / "logs" / "results" / "tables" / "compression.log").read_text()
    # the other tables read no mixed outputs
    assert "Warning" not in (run.work / "results" / "tables" / "circuits.md").read_text()
    assert "## Code versions" in (run.work / "results" / "tables" / "circuits.md").read_text()
