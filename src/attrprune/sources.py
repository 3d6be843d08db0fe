"""Has the package's source changed since a moment? The fork server (`attrprune.forkserver`)
notes the package's files before it imports them and declines a job once any was added, removed
or edited: its children would run the modules it imported mixed with newer files read from disk.

Run: nothing to run; the fork server uses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class Sources:
    """The package's files as the server found them before importing it: a job forked later runs
    the modules the server imported and reads the rest (lazy imports, data files) from disk, so
    both must be what the server saw."""

    def __init__(self, root: Path):
        self.root = root
        self.stats = self._stats()
        self.digests = {rel: self._digest(rel) for rel in self.stats}

    def _stats(self) -> dict[str, tuple[int, int]]:
        out = {}
        for path in self.root.rglob("*"):
            if "__pycache__" not in path.parts and path.is_file():
                st = path.stat()
                out[path.relative_to(self.root).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def _digest(self, rel: str) -> str:
        return hashlib.sha256((self.root / rel).read_bytes()).hexdigest()

    def changed(self) -> str | None:
        """The first file added, removed or edited since the server started (None: none)."""
        now = self._stats()
        for rel in sorted(set(now) | set(self.stats)):
            if rel not in now or rel not in self.stats:
                return rel
            if now[rel] != self.stats[rel] and self._digest(rel) != self.digests[rel]:
                return rel  # a touch without an edit keeps its digest
        return None
