"""What recording code fingerprints costs a run (docs/findings/time.md): the fork server's
one-time parse of the package (`attrprune.fingerprint.warm`), and then, per job, what a forked
child pays to compute its fingerprint, as the fork server's jobs do.

Run: ``python bench/fingerprint_cost.py``
"""

from __future__ import annotations

import os
import time

import attrprune.cli  # noqa: F401  preloaded by the fork server, as here
from attrprune import fingerprint

JOBS = [
    ("scores", "lrp"),
    ("compress", "lrp"),
    ("compress", "sparsegpt"),
    ("circuit", "lrp"),
    ("correction", "random"),
    ("compression-tables", None),
    ("world-card", None),
]


def main() -> None:
    start = time.perf_counter()
    fingerprint.warm()
    print(f"fork server, once: {time.perf_counter() - start:.2f} s")
    for job in JOBS:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a fresh child of the warmed process, as each job is
            start = time.perf_counter()
            fingerprint.job_fingerprint(*job)
            os.write(write, f"{1000 * (time.perf_counter() - start):.1f}".encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        print(f"{job[0]} {job[1] or ''}: {os.read(read, 64).decode()} ms per job")
        os.close(read)


if __name__ == "__main__":
    main()
