"""Code fingerprints (attrprune.fingerprint): a job's fingerprint changes with the code it runs
and only with that code, on a copy of the package edited as a user would edit it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attrprune import fingerprint
from attrprune.cli import STAGES
from attrprune.registry import METHODS, PRUNERS, implementations

SRC = Path(fingerprint.__file__).resolve().parent
# Every stage with every method: which stages the workflow runs per method is the workflow's
# business; a fingerprint must follow the method's code whichever stage it is given to.
JOBS = [(stage, method) for stage in STAGES for method in (None, *METHODS, *PRUNERS)]


def jobs_of(stage: str) -> set[tuple]:
    """The jobs of `stage`, with and without every method."""
    return {job for job in JOBS if job[0] == stage}


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "attrprune"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def fingerprints(root: Path) -> dict[tuple, str]:
    fingerprint._graph.cache_clear()  # parse the edited files again
    fingerprint.job_fingerprint.cache_clear()
    return {job: fingerprint.job_fingerprint(*job, root=root) for job in JOBS}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def changed(root: Path, before: dict) -> set[tuple]:
    after = fingerprints(root)
    return {job for job in JOBS if after[job] != before[job]}


def test_a_copy_hashes_as_the_original(package):
    assert fingerprints(package) == fingerprints(SRC)


def test_an_lrp_change_reaches_the_lrp_jobs_only(package):
    before = fingerprints(package)
    edit(
        package / "relevance" / "lrp.py",
        "    arch = architecture_of(model)\n",
        "    arch = architecture_of(model)\n    arch = arch\n",
    )
    assert changed(package, before) == {(s, "lrp") for s in STAGES}


def test_a_gradient_change_reaches_gradient_and_lrp(package):
    """lrp is the gradient with LRP's rules: the shared pass counts for both, not for wanda."""
    before = fingerprints(package)
    edit(
        package / "relevance" / "methods.py",
        "    n = len(refset)\n    scores = Scores()\n    for name in linears:",
        "    n = len(refset) + 0\n    scores = Scores()\n    for name in linears:",
    )
    assert changed(package, before) == {(s, m) for s in STAGES for m in ("lrp", "gradient")}


def test_an_lrp_map_named_by_a_string_counts(package):
    """architectures names each family's LRP map as a module string; lrp imports it by name."""
    before = fingerprints(package)
    text = (package / "relevance" / "lrp_maps" / "opt.py").read_text()
    (package / "relevance" / "lrp_maps" / "opt.py").write_text(text + "\nEXTRA = 1\n")
    assert ("scores", "lrp") in changed(package, before)


def test_a_table_change_reaches_its_table_only(package):
    before = fingerprints(package)
    edit(package / "tables.py", '"# Compression\\n\\n"', '"# Compression!\\n\\n"')
    assert changed(package, before) == jobs_of("compression-tables")


def test_a_task_yaml_beside_the_evaluation_counts(package):
    """lm-eval's world task files are data that evaluation/lm.py names ("tasks"): they count."""
    before = fingerprints(package)
    yaml = package / "evaluation" / "tasks" / "world_ppl.yaml"
    yaml.write_text(yaml.read_text() + "\n# edited\n")
    hit = changed(package, before)
    assert ("compress", None) in hit and ("compress", "lrp") in hit  # None: the dense model
    assert ("scores", "lrp") not in hit and ("compression-tables", None) not in hit


def test_docstrings_comments_and_layout_count_for_nothing(package):
    before = fingerprints(package)
    methods = package / "relevance" / "methods.py"
    edit(methods, '    """Score `model` with `method` on `refset`;', '    """Score a model;')
    edit(methods, "    model.eval()\n", "    # a comment\n    model.eval(\n    )\n")
    edit(package / "relevance" / "lrp.py", "\n\n\ndef patch_map(", "\n\n\n# a comment\n\n\ndef patch_map(")
    assert changed(package, before) == set()


def test_the_world_generator_reaches_its_own_rule_only(package):
    """Editing the world's corpus generator reruns the world's corpus rule (run only by
    `snakemake world`), never a job of the default target, which reads the committed world."""
    before = fingerprints(package)
    corpus = package / "world" / "corpus.py"
    edit(corpus, "    docs = []\n    i = 0\n", "    docs = list()\n    i = 0\n")
    assert changed(package, before) == jobs_of("world-corpus")


def test_an_unused_definition_counts_for_nothing(package):
    before = fingerprints(package)
    corpus = package / "world" / "corpus.py"
    corpus.write_text(corpus.read_text() + "\n\ndef unused():\n    return 1\n")
    assert changed(package, before) == set()


def test_every_registry_entry_resolves_to_a_definition():
    """implementations() specs are followed as units: each must name a function or class."""
    graph = fingerprint._graph(fingerprint.ROOT)
    for name in (*METHODS, *PRUNERS):
        for spec in implementations(name):
            module, attr = spec.split(":")
            assert graph.nodes((module, attr)), spec


def test_an_unknown_stage_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown stage 'scorez'; valid: .*scores"):
        fingerprint.job_fingerprint("scorez")


def test_a_module_that_does_not_parse_is_named_with_its_line(package):
    (package / "tables.py").write_text("def broken(:\n")
    fingerprint._graph.cache_clear()
    with pytest.raises(ValueError, match=r"tables.py:1: .*fix it first"):
        fingerprint.job_fingerprint("scores", "lrp", root=package)


def test_the_command_line_prints_what_a_job_records():
    out = subprocess.run(
        [sys.executable, "-m", "attrprune.fingerprint", "scores", "lrp"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [fingerprint.job_fingerprint("scores", "lrp")]
