"""The command line's progress log: timestamped lines on stderr (the job's log under Snakemake).

Every stage logs through `logging.getLogger(__name__)`; the entry point (`attrprune.cli.run`)
configures it once per process with `setup()`. A line reads

    2026-12-06 13:20:01Z INFO +12.3s attrprune.compression: sparsity 0.50: measured 0.5000 -> ...

the time in UTC, then the seconds since the stage started, so a log says where a job's time went.
`stage_started` opens a stage (its line is written with the stage's first message, so a stage
that refuses its input at once prints only its one error line); `stage_finished` closes it with
its wall time, peak memory and CPU time. Libraries log their warnings the same way; their INFO
chatter stays off.

Progress (`steps`): a tqdm bar on a terminal; elsewhere (a log file) one line at every tenth of
the loop with its elapsed time, not tqdm's carriage-return frames. The libraries' own bars
(lm-eval's requests, the Hugging Face loaders) are drawn on a terminal only, too: `setup` makes
every tqdm bar created while stderr is not a terminal a disabled one.

Run: nothing to run; ``python -m attrprune <stage> ...`` writes these lines.
"""

from __future__ import annotations

import logging
import resource
import sys
import time

PACKAGE = "attrprune"
FORMAT = "%(asctime)sZ %(levelname)s +%(elapsed).1fs %(name)s: %(message)s"
_state = {"t0": time.monotonic(), "pending": []}


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when a line is written (a fork server's child, or a test
    capturing it, replaces it after setup), after the stage's held start line."""

    def emit(self, record: logging.LogRecord) -> None:
        pending, _state["pending"] = _state["pending"], []
        for held in [*pending, record]:
            try:
                sys.stderr.write(self.format(held) + "\n")
                sys.stderr.flush()
            except Exception:
                self.handleError(held)


class _Formatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        record.elapsed = max(0.0, record.created - _state["wall0"]) if "wall0" in _state else 0.0
        return super().format(record)


def setup() -> None:
    """Configure logging for this process (once; later calls only restart the stage clock)."""
    _state["wall0"] = time.time()
    _state["t0"] = time.monotonic()
    _state["pending"] = []
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and errors
    logging.getLogger(PACKAGE).setLevel(logging.INFO)  # the suite: its progress too
    logging.captureWarnings(True)
    _bars_on_terminals_only()


def _bars_on_terminals_only() -> None:
    """lm-eval passes `disable=False` to its bars, so tqdm's own rule (`disable=None`: no bar off a
    terminal) cannot apply: decide here, when a bar is created, from where stderr goes then (a
    fork server's child has the job's stderr)."""
    from tqdm import std

    init = std.tqdm.__init__
    if getattr(init, "terminal_only", False):
        return

    def __init__(self, *args, **kwargs):
        if not on_terminal():
            kwargs["disable"] = True
        init(self, *args, **kwargs)

    __init__.terminal_only = True
    std.tqdm.__init__ = __init__


def elapsed() -> float:
    """Seconds since the stage (or this process's logging) started."""
    return time.monotonic() - _state["t0"]


def peak_memory_mb() -> float:
    """This process's peak resident memory, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_started(stage: str, argv: list[str]) -> None:
    """Hold the stage's start line until its first message (see the module's docstring)."""
    log = logging.getLogger(PACKAGE)
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, "%s: start (%s)", (stage, " ".join(argv)), None)
    _state["pending"] = [record]


def stage_finished(stage: str) -> None:
    logging.getLogger(PACKAGE).info(
        "%s: done in %.1f s; peak memory %.0f MB; CPU %.1f s",
        stage,
        elapsed(),
        peak_memory_mb(),
        cpu_seconds(),
    )


def on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class steps:
    """A loop's progress: iterate over it (``for x in steps(items, desc="scores")``) or count by
    hand (``with steps(total=n, desc=...) as bar: ... bar.update()``). `enabled` False: silent."""

    def __init__(self, iterable=None, *, total: int | None = None, desc: str = "", enabled: bool = True):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.enabled = iterable, total, desc, enabled
        self.n, self._next, self._postfix = 0, 0, ""
        self.bar = None
        if enabled and on_terminal():
            from tqdm import tqdm

            self.bar = tqdm(iterable, total=total, desc=desc)

    def __iter__(self):
        if self.bar is not None:
            yield from self.bar
            return
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
            return
        self.n += n
        if not self.enabled or (self.n < self._next and self.n != self.total):
            return
        size = f"{self.n}/{self.total}" if self.total else str(self.n)
        logging.getLogger(__name__).info("%s: %s%s", self.desc, size, self._postfix)
        self._next = self.n + max(1, (self.total or 10) // 10)

    def set_postfix(self, **values) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)
        self._postfix = " (" + ", ".join(f"{k} {v}" for k, v in values.items()) + ")"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
