"""The tiny e2e run, made once per test session and shared: `snakemake world` retrains the tiny
world into a work dir, then the default target runs every stage on the committed world
(test_workflow checks its outputs, test_report_browser its report). A test that changes the
run's files restores them before it returns."""

import pytest
from test_workflow import E2E_CONFIG, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    r = snakemake(workdir, E2E_CONFIG, "world", "--cores", "2", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = snakemake(workdir, E2E_CONFIG, "--cores", "2", timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return workdir
