# One warm process per local run that every job's `python -m attrprune` hands its work to
# (src/attrprune/forkserver.py): the imports of torch, transformers and lm-eval (8-15 s) are paid
# once instead of once per job. Jobs and their outputs are unchanged; a job the server does not
# match runs in its own process and says why in its log. A served job's benchmark file counts
# the child that did its work (attrprune.jobusage). Not for cluster executors (their jobs
# run on other machines) nor dry runs; `ATTRPRUNE_FORKSERVER=off snakemake ...` turns it off.

import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from attrprune.forkserver import ENV_VAR as FORKSERVER_VAR  # stdlib only: cheap to import here
from attrprune.jobusage import count_served_jobs_in_benchmarks

# The environment Snakemake gives a job of 1 thread (rules here use 1), plus OFFLINE: the server
# imports with the values its jobs have, so that those read at import agree.
_JOB_THREAD_VARS = ("OMP", "MKL", "OPENBLAS", "GOTO", "VECLIB", "NUMEXPR")
_FORKSERVER = {}


def start_forkserver():
    if not workflow.local_exec or os.environ.get(FORKSERVER_VAR, "") in ("off", "0"):
        return
    folder = tempfile.mkdtemp(prefix="attrprune-forkserver-")  # private (0700): only this user connects
    sock = os.path.join(folder, "server.sock")
    env = {**os.environ, **dict(pair.split("=", 1) for pair in shlex.split(OFFLINE))}
    env.update({f"{name}_NUM_THREADS": "1" for name in _JOB_THREAD_VARS})
    env.pop(FORKSERVER_VAR, None)
    log = open(os.path.join(folder, "server.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "attrprune.forkserver", "--socket", sock, "--parent", str(os.getpid())],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(sock) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if not os.path.exists(sock):
        proc.kill()
        with open(log.name) as f:
            tail = f.read().strip().splitlines()[-1:]
        print(
            f"attrprune: fork server did not start ({' '.join(tail) or 'timeout'}); jobs import on their own",
            file=sys.stderr,
        )
        shutil.rmtree(folder, ignore_errors=True)
        return
    os.environ[FORKSERVER_VAR] = sock  # inherited by every job's shell
    count_served_jobs_in_benchmarks()  # benchmarks/ then measure the served child, not only the client
    _FORKSERVER.update(proc=proc, folder=folder)


def stop_forkserver():
    proc = _FORKSERVER.pop("proc", None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.environ.pop(FORKSERVER_VAR, None)
        shutil.rmtree(_FORKSERVER.pop("folder"), ignore_errors=True)


onstart:
    start_forkserver()


onsuccess:
    stop_forkserver()


onerror:
    stop_forkserver()
