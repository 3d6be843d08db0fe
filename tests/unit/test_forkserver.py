"""The fork server: a job handed to it behaves as the same command in a fresh process (outputs,
stdout / stderr, exit codes, working directory), and a job it cannot match runs by itself."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attrprune.jobusage import parse_log, usage_line

ROOT = Path(__file__).resolve().parents[2]
WORLD_LLAMA = ROOT / "world" / "models" / "world-llama"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forkserver")
    sock = folder / "server.sock"
    env = {**os.environ, **OFFLINE}
    env.pop("ATTRPRUNE_FORKSERVER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "attrprune.forkserver", "--socket", str(sock), "--parent", str(os.getpid())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.1)
    yield {"sock": str(sock), "pid": proc.pid}
    proc.terminate()
    proc.wait(timeout=10)
    assert not sock.exists(), "the server leaves its socket behind"


def attrprune(*argv, cwd, sock, **env):
    full = {**os.environ, **OFFLINE, "ATTRPRUNE_FORKSERVER": sock, **env}
    return subprocess.run(
        [sys.executable, "-m", "attrprune", *argv], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def refset_argv(out):
    return [
        "refset", "--kind", "general", "--model-dir", str(WORLD_LLAMA), "--n", "16", "--length", "32",
        "--data-dir", str(ROOT / "world" / "data"), "--source", "world", "--seed", "3", "--out", out,
    ]  # fmt: skip


def messages(stderr, containing):
    """The log lines that contain `containing`, without their time and elapsed seconds."""
    return [re.sub(r"^\S+ \S+ \w+ \+[0-9.]+s ", "", line) for line in stderr.splitlines() if containing in line]


def _children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_served_job_equals_a_fresh_process(server, tmp_path):
    """Same bytes written (relative output path: the job's working directory, not the server's),
    same message on the job's stderr, exit code 0, and the child really ran in the server."""
    served = attrprune(*refset_argv("served.safetensors"), cwd=tmp_path, sock=server["sock"])
    fresh = attrprune(*refset_argv("fresh.safetensors"), cwd=tmp_path, sock="off")
    assert served.returncode == fresh.returncode == 0, served.stderr + fresh.stderr
    assert (tmp_path / "served.safetensors").read_bytes() == (tmp_path / "fresh.safetensors").read_bytes()
    assert "running in this process" not in served.stderr, served.stderr
    assert "general reference set: 16 samples x 32 tokens" in served.stderr
    assert messages(served.stderr, "reference set") == [
        m.replace("fresh", "served") for m in messages(fresh.stderr, "reference set")
    ]
    # files and folders the job creates get the job's permissions, not the server's private ones
    nested = attrprune(*refset_argv("sub/dir/x.safetensors"), cwd=tmp_path, sock=server["sock"])
    assert nested.returncode == 0, nested.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "sub" / "dir").stat().st_mode & 0o777 == 0o777 & ~umask
    mode = (tmp_path / "sub" / "dir" / "x.safetensors").stat().st_mode & 0o777
    assert mode == (tmp_path / "fresh.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_errors_and_usage_keep_their_exit_codes_and_one_line(server, tmp_path):
    missing = attrprune(*refset_argv("x.safetensors")[:4], str(tmp_path / "nope"), *refset_argv("x")[5:],
                        cwd=tmp_path, sock=server["sock"])  # fmt: skip
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("attrprune refset: error: "), missing.stderr
    assert str(tmp_path / "nope") in missing.stderr
    usage = attrprune("refset", "--kind", "nonsense", cwd=tmp_path, sock=server["sock"])
    assert usage.returncode == 2 and "invalid choice: 'nonsense'" in usage.stderr
    helped = attrprune("--help", cwd=tmp_path, sock=server["sock"])
    assert helped.returncode == 0 and "usage: python -m attrprune" in helped.stdout


def test_a_job_with_other_import_time_settings_runs_by_itself(server, tmp_path):
    """HF_HUB_OFFLINE is read when huggingface_hub is imported: a job that differs from the server
    must not inherit the server's value, so it runs in its own process (and says so)."""
    r = attrprune(*refset_argv("own.safetensors"), cwd=tmp_path, sock=server["sock"], HF_HUB_OFFLINE="0")
    assert r.returncode == 0, r.stderr
    assert "fork server declined (environment variables read at import differ" in r.stderr
    assert "HF_HUB_OFFLINE" in r.stderr and (tmp_path / "own.safetensors").exists()


def test_no_server_runs_the_job_itself(tmp_path):
    r = attrprune(*refset_argv("alone.safetensors"), cwd=tmp_path, sock=str(tmp_path / "gone.sock"))
    assert r.returncode == 0, r.stderr
    assert "not reachable" in r.stderr and (tmp_path / "alone.safetensors").exists()


def test_a_killed_job_kills_its_child(server, tmp_path):
    """Snakemake cancels a job by killing its command: the child in the server must stop too."""
    env = {**os.environ, **OFFLINE, "ATTRPRUNE_FORKSERVER": server["sock"]}
    big = refset_argv("big.safetensors")
    big[big.index("--n") + 1] = "50000"
    assert attrprune(*big, cwd=tmp_path, sock=server["sock"]).returncode == 0
    # LRP over 50,000 samples: minutes, so it is killed half-way.
    argv = ["scores", "--model-dir", str(WORLD_LLAMA), "--refset", "big.safetensors", "--method", "lrp",
            "--out", "killed.safetensors"]  # fmt: skip
    client = subprocess.Popen([sys.executable, "-m", "attrprune", *argv], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _children(server["pid"]):
        assert time.monotonic() < deadline, "no child started"
        time.sleep(0.05)
    (child,) = _children(server["pid"])
    client.kill()
    client.wait()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the child outlived its job"
        time.sleep(0.05)
    assert not (tmp_path / "killed.safetensors").exists()


def test_a_served_job_logs_its_childs_memory_and_cpu(server, tmp_path):
    """The job's command only waits: its log must carry what the child that ran the stage used
    (os.wait4 in the server), the same peak the stage itself measured at its end, not the
    command's own 15-30 MB."""
    served = attrprune(*refset_argv("u.safetensors"), cwd=tmp_path, sock=server["sock"])
    assert served.returncode == 0, served.stderr
    usage = parse_log(served.stderr)
    assert usage is not None, served.stderr
    assert served.stderr.strip().splitlines()[-1].endswith(usage_line(usage).split(": ", 1)[1])
    (done,) = messages(served.stderr, "refset: done in")
    stage_peak = float(re.search(r"peak memory (\d+) MB", done).group(1))
    assert usage["max_rss"] > 100 and abs(usage["max_rss"] - stage_peak) <= 0.05 * stage_peak, (usage, done)
    assert usage["cpu_time"] > 0
    fresh = attrprune(*refset_argv("f.safetensors"), cwd=tmp_path, sock="off")
    assert parse_log(fresh.stderr) is None  # a job in its own process: Snakemake measures it itself


def test_a_benchmark_file_counts_the_served_child(tmp_path):
    """A local Snakemake run with the fork server (rules/forkserver.smk): the job's benchmark file
    records the child's peak memory and CPU time on top of the client's, not the client's alone."""
    offline = " ".join(f"{k}={v}" for k, v in OFFLINE.items())
    (tmp_path / "Snakefile").write_text(
        f'OFFLINE = "{offline}"\n\n'
        f'include: "{ROOT / "rules" / "forkserver.smk"}"\n\n'
        "rule refset:\n"
        '    output: "r.safetensors"\n'
        '    log: "r.log"\n'
        '    benchmark: "r.tsv"\n'
        f'    shell: "{offline} {sys.executable} -m attrprune {" ".join(refset_argv("{output}"))} > {{log}} 2>&1"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "ATTRPRUNE_FORKSERVER"}
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "r.safetensors"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    usage = parse_log((tmp_path / "r.log").read_text())
    assert usage is not None and usage["max_rss"] > 100, (tmp_path / "r.log").read_text()
    header, row = (tmp_path / "r.tsv").read_text().splitlines()
    bench = dict(zip(header.split("\t"), row.split("\t")))
    assert usage["max_rss"] <= float(bench["max_rss"]) < usage["max_rss"] + 300, bench  # + the client's
    assert float(bench["cpu_time"]) >= usage["cpu_time"] and bench["max_uss"] == "NA", bench


def test_an_edited_package_is_declined_and_the_job_runs_fresh(tmp_path):
    """A server imported the package once: after an edit its children would mix old modules with
    new files read from disk, so it declines, naming the file, and the job runs by itself."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "attrprune", src / "attrprune", ignore=shutil.ignore_patterns("__pycache__"))
    sock = tmp_path / "s" / "server.sock"
    sock.parent.mkdir(mode=0o700)
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(src)}
    env.pop("ATTRPRUNE_FORKSERVER", None)
    proc = subprocess.Popen([sys.executable, "-m", "attrprune.forkserver", "--socket", str(sock), "--parent",
                             str(os.getpid())], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the fork server did not start"
            time.sleep(0.1)
        before = attrprune(*refset_argv("a.safetensors"), cwd=tmp_path, sock=str(sock), PYTHONPATH=str(src))
        assert before.returncode == 0 and parse_log(before.stderr) is not None, before.stderr
        edited = src / "attrprune" / "refsets.py"
        edited.write_text(edited.read_text() + "\n# edited\n")
        after = attrprune(*refset_argv("b.safetensors"), cwd=tmp_path, sock=str(sock), PYTHONPATH=str(src))
        assert after.returncode == 0, after.stderr
        (line,) = messages(after.stderr, "declined")
        assert "the package's source changed since the server started" in line and str(edited) in line, line
        assert parse_log(after.stderr) is None and (tmp_path / "b.safetensors").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_off_linux_the_server_does_not_start(monkeypatch, capsys):
    """Without SO_PEERCRED anyone could hand the server a job: it refuses to start, in one line."""
    from attrprune import forkserver

    monkeypatch.setattr(forkserver.sys, "platform", "darwin")
    monkeypatch.setattr(forkserver, "serve", lambda *a: pytest.fail("served off Linux"))
    with pytest.raises(SystemExit) as stopped:
        forkserver.main(["--socket", "/nonexistent/s.sock"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 1 and len(err) == 1 and "needs Linux (this is darwin)" in err[0], err
