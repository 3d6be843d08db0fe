"""Code fingerprints: a short hash of the package source that one job runs.

The workflow passes each job's fingerprint as a rule param (`params.code`), so Snakemake's params
trigger reruns exactly the jobs a code change affects, and every output records the fingerprint
of the code that wrote it (`io.provenance`), so a table can tell when it mixes code versions.

What a job runs is derived from the source, never listed by hand. From its entry points (the
command line, the stage's class, and the registry entries its method dispatches to:
`registry.implementations`), every top-level definition (function, class, assignment) that they
name is followed through the package: by name, through imports (also the lazy ones inside
functions), through module attributes (`registry.method`), and through strings that name a
module or a "module:attribute" (the lrp maps of `architectures`).
Importing a module also runs its top-level statements that define nothing (its preamble), so a
used module brings its preamble and those of the modules it imports at top level. A data file
or folder beside a module (lm-eval's task YAMLs) counts, as bytes, where a definition names it.

A definition is hashed as its syntax tree without docstrings: comments, docstrings and
formatting do not count. The tables of every implementation (`cli.STAGES`, `registry.METHODS`,
`registry.PRUNERS`) are hashed but not followed, so a wanda job does not depend on the LRP code.

Run: ``python -m attrprune.fingerprint scores lrp`` prints that job's fingerprint;
``--units`` lists the definitions it covers.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "attrprune"
SELF = f"{PACKAGE}.fingerprint"  # not __name__: that is "__main__" under `python -m`
ROOT = Path(__file__).resolve().parent
PREAMBLE = "<preamble>"  # the unit of a module's top-level statements that define nothing
# Implementation tables: a job follows the entries it dispatches to, not the whole table.
DISPATCH_TABLES = frozenset(
    {("attrprune.cli", "STAGES"), ("attrprune.registry", "METHODS"), ("attrprune.registry", "PRUNERS")}
)
ENTRY = ("attrprune.__main__", PREAMBLE)  # `python -m attrprune`: every job starts here
_NAME_LIKE = re.compile(r"[\w.-]{1,200}(:\w+)?")  # a module, "module:attribute", or a file name

# (module, top-level name or PREAMBLE); (module, "*") a whole module; ("", path relative to the
# package folder) a data file or folder
Unit = tuple[str, str]


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    defs: dict[str, list[ast.stmt]] = field(default_factory=dict)
    preamble: list[ast.stmt] = field(default_factory=list)
    preamble_names: set[str] = field(default_factory=set)
    bindings: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (module, attr)
    imported: set[str] = field(default_factory=set)  # package modules imported at top level

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _strip_docstrings(body: list[ast.stmt]) -> list[ast.stmt]:
    """`body` without its docstring, and likewise every body nested in it (statements only:
    docstrings are the first statement of a module, class or function)."""
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:] or [ast.Pass()]
    for stmt in body:
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(stmt, name, _strip_docstrings(inner))
        for handler in getattr(stmt, "handlers", ()):
            handler.body = _strip_docstrings(handler.body)
    return body


def _module_files(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """(module name, file, is package) of every module; a folder without __init__.py is data."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if not all((root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue
        is_package = parts[-1] == "__init__"
        yield ".".join((root.name, *(parts[:-1] if is_package else parts))), path, is_package


def _import_bindings(node: ast.Import | ast.ImportFrom, module: Module, names: set[str]) -> dict:
    """{bound name: (module, attribute or None)} of one import statement, package targets only."""
    out = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            if alias.asname:
                out[alias.asname] = (alias.name, None)
            else:  # `import attrprune.x.y` binds `attrprune`
                out[PACKAGE] = (PACKAGE, None)
        return out
    if node.level:
        base = module.package.split(".")
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != PACKAGE:
        return out
    for alias in node.names:
        if alias.name == "*":
            continue
        target = f"{source}.{alias.name}"
        out[alias.asname or alias.name] = (target, None) if target in names else (source, alias.name)
    return out


def _parse(name: str, path: Path, is_package: bool, names: set[str]) -> Module:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise ValueError(
            f"{path}:{err.lineno}: {err.msg}: fix it first (every job's code fingerprint reads the whole package)"
        ) from err
    tree.body = _strip_docstrings(tree.body)
    module = Module(name, path, is_package)
    for stmt in tree.body:
        targets: list[ast.expr] = []
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            module.defs.setdefault(stmt.name, []).append(stmt)
            continue
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            targets = [stmt.target]
        names_bound = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        if names_bound and all(isinstance(t, (ast.Name, ast.Tuple)) for t in targets):
            for bound in names_bound:
                module.defs.setdefault(bound, []).append(stmt)
            continue
        # Imports (the package's are followed; other libraries' are not hashed: provenance records
        # their versions) and anything else that runs at import time: the preamble.
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound = _import_bindings(node, module, names)
                module.bindings.update(bound)
                module.imported.update(target for target, _ in bound.values())
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                module.preamble_names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.preamble_names.add(node.name)
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            module.preamble.append(stmt)
    return module


def package(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the package at `root`, parsed."""
    files = list(_module_files(root))
    names = {name for name, _, _ in files}
    return {name: _parse(name, path, is_package, names) for name, path, is_package in files}


class _Graph:
    """What a unit names: definitions, modules and data files, by the rules of the module docstring."""

    def __init__(self, modules: dict[str, Module], root: Path):
        self.modules, self.root = modules, root
        self._references: dict[Unit, set[Unit]] = {}
        self._digests: dict[Unit, bytes] = {}

    def digest(self, unit: Unit) -> bytes:
        """The unit's hash: its syntax trees (docstrings stripped), or a data path's bytes."""
        if unit not in self._digests:
            module, name = unit
            if module:
                text = "".join(ast.dump(node) for node in self.nodes(unit)).encode()
            else:
                text = _data_bytes(self.root / name)
            self._digests[unit] = hashlib.sha256(f"{module}:{name}\0".encode() + text).digest()
        return self._digests[unit]

    def nodes(self, unit: Unit) -> list[ast.AST]:
        module, name = unit
        mod = self.modules[module]
        return mod.preamble if name == PREAMBLE else mod.defs.get(name, [])

    def _target(self, module: str, attr: str | None) -> Unit | None:
        """The unit that (module, attr) stands for, following re-exports; None if outside."""
        for _ in range(20):  # re-export chains are short; a cycle ends here
            if module not in self.modules:
                return None
            if attr is None:
                return (module, "*")
            if f"{module}.{attr}" in self.modules:
                return (f"{module}.{attr}", "*")
            mod = self.modules[module]
            if attr in mod.defs:
                return (module, attr)
            if attr in mod.bindings:
                module, attr = mod.bindings[attr]
                continue
            return (module, PREAMBLE) if attr in mod.preamble_names else None
        return None

    def _string(self, module: Module, text: str) -> Unit | None:
        if not _NAME_LIKE.fullmatch(text):
            return None
        source, _, attr = text.partition(":")
        if source in self.modules:
            return self._target(source, attr or None)
        if "/" in text or text in ("", ".", "..") or text.endswith(".py"):
            return None
        path = module.path.parent / text  # a data file or a folder that is not a package
        if path.is_file() or (path.is_dir() and not (path / "__init__.py").exists()):
            return ("", path.relative_to(self.root).as_posix())
        return None

    def references(self, unit: Unit) -> set[Unit]:
        if unit not in self._references:
            self._references[unit] = self._find_references(unit)
        return self._references[unit]

    def _find_references(self, unit: Unit) -> set[Unit]:
        module_name, name = unit
        mod = self.modules[module_name]
        out: set[Unit] = {(module_name, PREAMBLE)}  # using a module imports it, and its package
        parent = module_name.rpartition(".")[0]
        if parent:
            out.add((parent, PREAMBLE))
        if name == PREAMBLE:
            out.update((m, PREAMBLE) for m in mod.imported if m in self.modules)
        if (module_name, name) in DISPATCH_TABLES:
            return out
        bindings = dict(mod.bindings)
        walked = [sub for n in self.nodes(unit) for sub in ast.walk(n)]
        for node in walked:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                local = _import_bindings(node, mod, self.modules.keys())
                bindings.update(local)
                out.update(t for t in (self._target(m, a) for m, a in local.values()) if t and t[1] != "*")
                out.update((m, PREAMBLE) for m, a in local.values() if m in self.modules)
        consumed: set[int] = set()
        for node in walked:
            if isinstance(node, ast.Attribute):
                chain, base = [], node
                while isinstance(base, ast.Attribute):
                    chain.append(base.attr)
                    base = base.value
                if not isinstance(base, ast.Name) or id(base) in consumed or base.id not in bindings:
                    continue
                target_module, attr = bindings[base.id]
                if attr is not None:
                    continue
                consumed.add(id(base))
                target = None
                for part in reversed(chain):  # attrprune.registry.method -> (attrprune.registry, method)
                    target = self._target(target_module, part)
                    if target is None or target[1] != "*":
                        break
                    target_module = target[0]
                if target is not None:
                    out.add(target)
        for node in walked:
            target = None
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store) and id(node) not in consumed:
                if node.id in bindings:
                    target = self._target(*bindings[node.id])
                elif node.id in mod.defs:
                    target = (module_name, node.id)
                elif node.id in mod.preamble_names:
                    target = (module_name, PREAMBLE)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                target = self._string(mod, node.value)
            if target is not None:
                out.add(target)
        return out

    def expand(self, unit: Unit) -> Iterable[Unit]:
        """A whole module (name "*") stands for its preamble and every definition."""
        module, name = unit
        if name != "*":
            return [unit]
        mod = self.modules[module]
        return [(module, PREAMBLE), *((module, n) for n in mod.defs)]

    def closure(self, entries: Iterable[Unit]) -> set[Unit]:
        seen: set[Unit] = set()
        todo = [u for e in entries for u in self.expand(e)]
        while todo:
            unit = todo.pop()
            # This module is left out: it computes the records, not the results (and a change to
            # it would change every fingerprint or none).
            if unit in seen or unit[0] == SELF:
                continue
            seen.add(unit)
            if unit[0]:
                todo.extend(u for ref in self.references(unit) for u in self.expand(ref) if u not in seen)
        return seen


def _data_bytes(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return b"".join(p.relative_to(path).as_posix().encode() + b"\0" + p.read_bytes() for p in files)


def stage_unit(stage: str) -> Unit:
    """The class of a command-line stage (`attrprune.cli.STAGES`), as a unit."""
    from attrprune.cli import STAGES  # torch-free, like everything the command line imports

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    return STAGES[stage].__module__, STAGES[stage].__qualname__


@functools.lru_cache(maxsize=4)
def _graph(root: Path) -> _Graph:
    """The package at `root`, parsed once per process (the fork server parses it before forking)."""
    return _Graph(package(root), root)


def warm(root: Path = ROOT) -> None:
    """Parse the package and hash and follow every definition now, so that processes forked
    later (the fork server's jobs) only walk the graph."""
    graph = _graph(root)
    for name, module in graph.modules.items():
        for unit in [(name, PREAMBLE), *((name, d) for d in module.defs)]:
            graph.references(unit)
            graph.digest(unit)


def job_units(stage: str, method: str | None = None, root: Path = ROOT) -> set[Unit]:
    """Every unit a job of `stage` (with `method`, for the stages that take one) runs."""
    from attrprune.registry import implementations

    graph = _graph(root)
    entries = [ENTRY, stage_unit(stage)]
    for spec in implementations(method) if method else ():
        entries.append(graph._target(*spec.split(":")))
    return graph.closure(entries)


@functools.lru_cache(maxsize=256)
def job_fingerprint(stage: str, method: str | None = None, root: Path = ROOT) -> str:
    """16 hex digits: the hash of every unit the job runs (see the module docstring)."""
    graph = _graph(root)
    h = hashlib.sha256()
    for unit in sorted(job_units(stage, method, root)):
        h.update(graph.digest(unit))
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m attrprune.fingerprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", help="a command-line stage (python -m attrprune --help lists them)")
    parser.add_argument("method", nargs="?", help="the job's method, for the stages that take one")
    parser.add_argument("--units", action="store_true", help="also list the definitions it covers")
    args = parser.parse_args(argv)
    print(job_fingerprint(args.stage, args.method))
    if args.units:
        for module, name in sorted(job_units(args.stage, args.method)):
            print(f"  {module}:{name}" if module else f"  data {name}")


if __name__ == "__main__":
    main()
