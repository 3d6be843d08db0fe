"""The workflow as a Snakemake module: another workflow imports it with three lines and gets the
same jobs as running it directly (its own files are found from its folder, not the importer's)."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflow import E2E_CONFIG, ROOT, job_counts, snakemake  # noqa: E402

IMPORTING = """module attrprune:
    snakefile: "{snakefile}"
    config: config
use rule * from attrprune
"""


def test_an_importing_workflow_plans_the_same_jobs(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "Snakefile").write_text(IMPORTING.format(snakefile=ROOT / "Snakefile"))
    shutil.copy(E2E_CONFIG, outer / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config.yaml"]
    imported = subprocess.run(cmd, cwd=outer, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stdout[-3000:] + imported.stderr[-3000:]
    (tmp_path / "direct").mkdir()
    direct = snakemake(tmp_path / "direct", E2E_CONFIG, "-n")
    assert direct.returncode == 0, direct.stdout[-3000:] + direct.stderr[-3000:]
    counts = job_counts(imported.stdout)
    assert counts == job_counts(direct.stdout) and counts["compress_dense"] == 1 and counts["compress"] >= 1
    # the jobs read the committed world from this repository, wherever the importer runs
    assert str(ROOT / "world" / "models") in imported.stdout


def test_a_bad_config_through_the_module_is_one_line(tmp_path):
    (tmp_path / "Snakefile").write_text(IMPORTING.format(snakefile=ROOT / "Snakefile"))
    config = yaml.safe_load(E2E_CONFIG.read_text())
    config.setdefault("scores", {})["storage"] = "bfloat16"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config.yaml"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "scores.storage: 'bfloat16' is not one of" in out, out
    assert "Traceback" not in out and 'File "' not in out, out
