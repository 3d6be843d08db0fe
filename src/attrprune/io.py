"""Small I/O helpers: atomic writes, hashes, provenance and the offline datasets cache, shared by
every stage."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def model_name(record: dict) -> str:
    """The model a result belongs to, for tables: its recorded name (the config alias), else the
    name of its model folder (outputs written before names were recorded)."""
    return record.get("model") or Path(record["model_dir"]).name


@contextlib.contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary sibling path to write to; it is renamed to `path` only on success."""
    path = Path(path)
    if path.is_dir():  # checked first: the rename would fail only after all the work, naming the temp file
        raise IsADirectoryError(errno.EISDIR, "the output path is a folder", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # a part of the folder path is a file
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", err.filename) from err
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes it 0600, and some writers (safetensors) replace it with their own 0600
        # file: results should read like any file the user writes.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        for written in _RECORDING:
            written.append(path)
    except OSError as err:  # name the output, not the temporary file a user never sees
        if err.errno is None or str(err.filename) != tmp:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        Path(tmp).unlink(missing_ok=True)


# One list per open `removed_on_failure` block: `atomic_path` adds every file it completes to each.
_RECORDING: list[list] = []


@contextlib.contextmanager
def removed_on_failure():
    """For a stage with several outputs: every file written through `atomic_path` inside the block
    is deleted when the block fails, so a failed job leaves none of its outputs behind (files it
    did not write are left alone). Yields the list of those files."""
    paths: list[Path] = []
    _RECORDING.append(paths)
    try:
        yield paths
    except BaseException:
        for p in paths:
            Path(p).unlink(missing_ok=True)
        raise
    finally:
        _RECORDING.remove(paths)


@contextlib.contextmanager
def atomic_folder(out_dir: Path | str):
    """Yield a temporary sibling folder to fill; it replaces `out_dir` only on success, and is
    removed otherwise (a killed or failed job leaves no checkpoint that looks complete). A write
    error inside it, the OS's or a library's (safetensors), names `out_dir`, not the temporary
    folder a user never sees."""
    import shutil

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, "the output folder is a file: delete it, or give another folder", str(out_dir)
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        try:
            yield tmp
        except OSError as err:
            if err.errno is None or not str(err.filename or "").startswith(str(tmp)):
                raise
            raise OSError(err.errno, err.strerror, str(out_dir)) from err
        except Exception as err:
            wrapped = library_os_error(err, out_dir)
            if wrapped is None:
                raise
            raise wrapped from err
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write `text` so that a killed job leaves either the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def pyplot():
    """matplotlib.pyplot on the Agg backend: jobs have no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def library_os_error(error: BaseException, path: Path | str | None = None) -> OSError | None:
    """The OSError inside a library's own error (safetensors reports a full disk as
    ``SafetensorError: ... No space left on device (os error 28) at path ...``), naming `path`
    (else the path in the message); None when it holds none."""
    import re

    found = re.search(r"\(os error (\d+)\)", str(error))
    if found is None:
        return None
    code = int(found.group(1))
    if path is None:
        named = re.search(r'at path "([^"]*)"', str(error))
        path = named.group(1) if named else None
    return OSError(code, os.strerror(code), None if path is None else str(path))


class NotCachedError(RuntimeError):
    """Something an offline job reads (a dataset, a checkpoint) is not in the local cache; the
    message names what and how to fetch it (`snakemake download`). The CLI prints it as one line."""


def cached_dataset(spec: dict, what: str, cached_when: str, otherwise: str | None = None):
    """`datasets.load_dataset(**spec)` from the local cache (compute jobs are offline), or a
    one-line NotCachedError naming `snakemake download` and, if given, the `otherwise` alternative."""
    import datasets

    try:
        return datasets.load_dataset(**spec)
    except Exception as err:  # offline: ConnectionError, FileNotFoundError, ValueError, ... by version
        raise NotCachedError(
            f"{what} is not in the local datasets cache ({type(err).__name__}: {err}). Run `snakemake download` "
            "on a machine with internet first (same HF_HOME / HF_DATASETS_CACHE as the compute jobs; it caches "
            f"{cached_when})" + (f", or {otherwise}" if otherwise else "")
        ) from err


def write_json(path: Path | str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str:
    """The commit of the source tree this package runs from, with "-dirty" if it has edits."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The code of the job running in this process (`job_code`), as `provenance` records it.
_JOB_CODE: list[dict] = []


@contextlib.contextmanager
def job_code(stage: str, method: str | None = None):
    """Inside the block, `provenance` records the code this job runs: its stage, method and code
    fingerprint (`attrprune.fingerprint`, the value the workflow passes as the rule's params.code)."""
    from attrprune.fingerprint import job_fingerprint

    _JOB_CODE.append({"stage": stage, "method": method, "fingerprint": job_fingerprint(stage, method)})
    try:
        yield
    finally:
        _JOB_CODE.pop()


def provenance(**extra) -> dict:
    """What every output records: package version, git commit, the job's code (inside `job_code`:
    every command-line stage), library versions, and `extra`."""
    import torch
    import transformers

    from attrprune import __version__

    return {
        "attrprune_version": __version__,
        "git_commit": git_commit(),
        **({"code": dict(_JOB_CODE[-1])} if _JOB_CODE else {}),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        **extra,
    }
