"""A warm process that runs the workflow's jobs without paying for Python imports each time.

Starting `python -m attrprune` takes a quarter of a second, but importing torch, transformers
(whose generation code pulls in scikit-learn and SciPy) and lm-eval takes 8-15 s, paid by every
job; most world-model jobs compute for a few seconds. While a server runs, each job's command
(`python -m attrprune <stage> ...`) hands its arguments, working directory, environment and
stdin / stdout / stderr to the server over a Unix socket; the server forks a child that already
has those libraries imported, the child runs the stage exactly as `attrprune.cli.run` would in a
fresh process, and its exit code becomes the command's. Outputs, logs and exit codes are those of
a fresh process. When the job's command dies (Snakemake cancels it), the child kills itself.
When the child exits, the server hands its resource usage (`os.wait4`: peak memory, CPU time) to
the job's command, which writes it in the job's log; the workflow adds it to the job's
`benchmark:` file, which otherwise measures only the command (`attrprune.jobusage`).

A job runs in its own process as before, with one line saying why, when the server is not
reachable or does not match it: another Python, another copy of the package, a package whose
source changed since the server imported it (an edit during a run), or other values of the
environment variables the libraries read at import (the Hugging Face offline switches, thread
and CUDA settings). Only the user who started the server can use it (a private folder, checked
peer credentials): Linux only, where the kernel tells a socket its peer's user (SO_PEERCRED);
elsewhere the server does not start and says so in one line.

The workflow starts one per local run (Snakefile `onstart`; never for cluster executors, whose
jobs run on other machines) and stops it when the run ends; it also stops by itself when the
process that started it exits. `ATTRPRUNE_FORKSERVER=off` in the environment of `snakemake`
turns it off.

Run by hand (what `onstart` does)::

    python -m attrprune.forkserver --socket /tmp/x/server.sock --parent $$ &
    ATTRPRUNE_FORKSERVER=/tmp/x/server.sock python -m attrprune scores ...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path

from attrprune.sources import Sources

ENV_VAR = "ATTRPRUNE_FORKSERVER"
# Variables that a library reads when it is imported (so in the server, once), not when a job
# runs: a job whose values differ runs in its own process.
IMPORT_TIME_PREFIXES = (
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TORCH",
    "PYTORCH_",
    "CUDA_",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "TOKENIZERS_",
    "PYTHON",
    "LD_",
    "XDG_CACHE_HOME",
)
# What the server imports before it serves: the slow imports every stage shares.
PRELOAD = (
    "torch",
    "safetensors.torch",
    "transformers",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.generation.utils",
    "transformers.models.llama.modeling_llama",
    "transformers.models.opt.modeling_opt",
    "lm_eval.evaluator",
    "lm_eval.tasks",
    "pandas",
    "attrprune.cli",
)
_HEADER = struct.Struct("!I")  # request length, network byte order
log = logging.getLogger("attrprune.forkserver")  # not __name__: "__main__" when it serves


def _import_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_PREFIXES)}


def _identity() -> dict:
    """What the client and the server must share for a forked child to equal a fresh process."""
    import attrprune

    return {
        "executable": os.path.realpath(sys.executable),
        "package": os.path.realpath(attrprune.__file__),
    }


def _mismatch(request: dict, env: dict, source: Sources | None = None) -> str | None:
    """Why the server cannot run `request` as a fresh process would (None: it can)."""
    for key, value in _identity().items():
        if request.get(key) != value:
            return f"{key} {request.get(key)} differs from the server's {value}"
    theirs, ours = _import_time_env(request.get("env", {})), _import_time_env(env)
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        return f"environment variables read at import differ from the server's: {', '.join(differ)}"
    edited = source.changed() if source is not None else None
    if edited is not None:
        return f"the package's source changed since the server started ({source.root / edited})"
    return None


# ---------------------------------------------------------------- client (the job's command)


def delegate(argv: list[str]) -> int | None:
    """Run `argv` in the server named by $ATTRPRUNE_FORKSERVER and return its exit code; None when
    there is no server to use (the caller then runs the stage itself)."""
    path = os.environ.get(ENV_VAR, "")
    if path in ("", "off", "0"):
        return None
    from attrprune import logs

    logs.setup()
    umask = os.umask(0)
    os.umask(umask)
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask, **_identity()}
    payload = json.dumps(request).encode()
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        socket.send_fds(conn, [_HEADER.pack(len(payload)) + payload], [0, 1, 2])
        reader = conn.makefile("rb")
        reply = json.loads(reader.readline() or b"{}")
    except OSError as err:
        import errno

        gone = "; it died or was stopped" if err.errno == errno.ECONNREFUSED else ""
        log.warning("fork server %s not reachable (%s%s); running in this process", path, err.strerror or err, gone)
        return None
    if not reply.get("accepted"):
        log.warning("fork server declined (%s); running in this process", reply.get("reason", "no reply"))
        return None
    # Blocks until the child exits; if this process is killed, the socket closes and the child
    # kills itself (see _serve_child). The child sends its own exit code, so a job still finishes
    # (and keeps its outputs) when the server dies; no exit code at all means the child died too.
    # Then the server sends the exit code again with the child's resource usage, and hangs up.
    code, usage = None, None
    while True:
        try:
            line = reader.readline()
            message = json.loads(line) if line else None
        except (OSError, ValueError):
            message = None
        if message is None:
            break
        code = message.get("exit", code) if code is None else code
        usage = message.get("usage", usage)
    if code is None:
        print(
            f"attrprune: error: the fork server ({path}) died while this job ran in it, and the job with it; "
            "the job failed: rerun it (a rerun runs it fresh, in its own process when no server runs)",
            file=sys.stderr,
        )
        return 1
    from attrprune.jobusage import usage_line

    # Only after a success: a failure keeps its one error line last (and Snakemake writes no
    # benchmark for a failed job).
    if code == 0 and usage is not None:
        log.info(usage_line(usage))
    elif code == 0:
        log.warning("fork server gone before the job's child was reaped: its memory and CPU time are unknown")
    return int(code)


# ---------------------------------------------------------------- server


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < _HEADER.size:
        raise ValueError("short request")
    (length,) = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    return json.loads(body), fds


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:  # the client is gone; nothing to tell
        pass


def _serve_child(conn: socket.socket, listener: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process, run the stage, exit with its code."""
    import threading

    listener.close()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()  # not in the server's process group: a signal to the server leaves running jobs alone
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    from attrprune import io

    # The job's umask, for the files and folders it creates; io read it once, at the server's import.
    io._UMASK = int(request.get("umask", 0o022))
    os.umask(io._UMASK)
    os.environ.clear()
    os.environ.update(request["env"])
    import tempfile

    tempfile.tempdir = None  # recomputed from the job's TMPDIR, not the server's cached choice
    sys.argv = [sys.argv[0], *request["argv"]]

    def exit_when_client_dies():
        try:
            conn.recv(1)  # the client never sends more: this returns when its end closes
        finally:
            os._exit(128 + signal.SIGTERM)

    threading.Thread(target=exit_when_client_dies, daemon=True).start()
    code = 1
    try:
        from attrprune.cli import run

        code = run(request["argv"])
    except SystemExit as stop:  # argparse: usage errors (2), --help (0)
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _send(conn, {"exit": code})  # from the child itself: it reaches the job even if the server died
        os._exit(code)


def serve(path: str, parent: int | None = None) -> None:
    """Listen on `path` until the `parent` process exits or SIGTERM arrives."""
    import importlib

    import attrprune
    from attrprune import logs

    logs.setup()
    env = dict(os.environ)  # as the jobs see it: before the imports below add their own variables
    source = Sources(Path(attrprune.__file__).resolve().parent)  # before the imports read it
    for name in PRELOAD:
        importlib.import_module(name)
    from attrprune.io import pyplot

    pyplot()  # matplotlib on the Agg backend, as every stage that plots selects it (5-8 s to import)
    from attrprune.fingerprint import warm

    warm()  # every job records its code fingerprint: parse and hash the package once, here
    # Set by the libraries at import (a fresh process sets them too): the children keep them.
    added = {k: v for k, v in os.environ.items() if k not in env}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o077)  # the socket: this user only (its folder is private too)
    listener.bind(path)
    os.umask(umask)
    listener.listen(64)
    children: dict[int, socket.socket] = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # A child's exit wakes the loop at once (its job waits for the usage sent when it is reaped).
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    log.info("listening on %s (pid %d)", path, os.getpid())
    try:
        while not stop:
            ready, _, _ = select.select([listener, wake_r], [], [], 0.2)
            if wake_r in ready:
                while _drain(wake_r):
                    pass
            _reap(children)
            if parent is not None and not _alive(parent):
                break
            if listener not in ready:
                continue
            conn, _ = listener.accept()
            conn.settimeout(10)  # a client that connects and sends nothing cannot stall the server
            fds: list[int] = []
            try:
                if _peer_uid(conn) != os.getuid():
                    raise PermissionError("another user")
                request, fds = _read_request(conn)
                reason = _mismatch(request, env, source) if len(fds) == 3 else "stdin/stdout/stderr not passed"
            except (OSError, ValueError) as err:
                reason, request = f"bad request: {err}", None
            if reason is not None:
                _send(conn, {"accepted": False, "reason": reason})
                conn.close()
            else:
                conn.settimeout(None)
                sys.stdout.flush()
                sys.stderr.flush()
                # Accepted before the fork: once a child may run the job, the client must never
                # read "no reply" and run it a second time (it reports a dead server instead).
                _send(conn, {"accepted": True})
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)  # the server's wake-up pipe is not the child's
                    os.close(wake_r)
                    os.close(wake_w)
                    request["env"] = {**added, **request["env"]}
                    _serve_child(conn, listener, request, fds)
                children[pid] = conn
            for fd in fds:
                os.close(fd)
    finally:
        signal.set_wakeup_fd(-1)
        listener.close()
        Path(path).unlink(missing_ok=True)
        for conn in children.values():  # their jobs still finish; the clients get no exit code
            conn.close()


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _reap(children: dict[int, socket.socket]) -> None:
    from attrprune.jobusage import from_rusage

    while children:
        try:
            pid, status, rusage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            code = os.waitstatus_to_exitcode(status)
            usage = from_rusage(rusage, darwin=sys.platform == "darwin")
            _send(conn, {"exit": code if code >= 0 else 128 - code, "usage": usage})
            conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m attrprune.forkserver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on (its folder: private)")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process exits")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_PEERCRED"):
        # Only Linux tells a Unix socket who connected (SO_PEERCRED): elsewhere anyone could use it.
        print(
            f"attrprune fork server: not started: it needs Linux (this is {sys.platform}); "
            "every job imports its libraries itself",
            file=sys.stderr,
        )
        raise SystemExit(1)
    serve(args.socket, args.parent)


if __name__ == "__main__":
    main()
