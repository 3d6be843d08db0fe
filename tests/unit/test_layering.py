"""Import layering: the core owns the primitives, the built-in world and the downloads use them.

Every module under src/attrprune is parsed (ast) and every import statement in it, at any level
(module top, function bodies, class bodies, conditional blocks), is checked, and so is every
string that names a module or a "module:attribute" (what `importlib.import_module` or a registry
entry imports by name): no core module may import `attrprune.world` or `attrprune.download`. The exceptions are the command-line layer
(`cli.py` and a future `stages/` package), the world itself (`world/`) and the world's own
lm-eval task files (`evaluation/tasks/world_*`), which are the world's code shipped where
lm-eval looks for tasks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = "attrprune"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE
FORBIDDEN = (f"{PACKAGE}.world", f"{PACKAGE}.download")
# A whole string that is a dotted module of the package, maybe with ":attribute" (prose that
# mentions a module, a docstring, is not an import).
MODULE_STRING = re.compile(rf"({PACKAGE}(?:\.\w+)+)(?::\w+)?")


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_exempt(module: str) -> bool:
    """The command-line layer, the world, and the world's lm-eval task files."""
    rel = module.split(".")[1:]
    return rel[:1] in (["cli"], ["stages"], ["world"]) or (
        rel[:2] == ["evaluation", "tasks"] and len(rel) > 2 and rel[2].startswith("world_")
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted name) of everything `module` imports; `from a import b` yields a, and a.b when
    a is a package (b may be a submodule); relative imports are resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out.append((node.lineno, base))
            if base == PACKAGE:  # `from attrprune import world`
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = MODULE_STRING.fullmatch(node.value.strip())
            if named:  # importlib.import_module("attrprune.world.x"), "attrprune.world.x:f"
                out.append((node.lineno, named.group(1)))
    return out


def offending(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        module = module_name(path, src)
        if is_exempt(module):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        bad = sorted(
            {(line, name) for line, name in imported_names(tree, module, path.name == "__init__.py") if offending(name)}
        )
        found += [f"{module} ({path.relative_to(src.parent)}:{line}) imports {name}" for line, name in bad]
    return found


def test_core_never_imports_the_world_or_the_downloads():
    found = violations()
    assert not found, (
        "core modules must not import attrprune.world or attrprune.download (the world and the "
        "downloads use the core, never the reverse):\n  " + "\n  ".join(found)
    )


def test_the_checker_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "world").mkdir(parents=True)
    (pkg / "evaluation" / "tasks").mkdir(parents=True)
    (pkg / "sub").mkdir()
    for f in ("__init__.py", "world/__init__.py", "evaluation/__init__.py", "sub/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "world" / "measure.py").write_text("from attrprune.text import read_jsonl\nimport attrprune.world.lexicon\n")
    (pkg / "evaluation" / "tasks" / "world_utils.py").write_text("from attrprune.world.lexicon import TOWNS\n")
    (pkg / "evaluation" / "tasks" / "other.py").write_text("from attrprune.world.lexicon import TOWNS\n")
    (pkg / "cli.py").write_text("from attrprune.download import download_model\n")
    (pkg / "top.py").write_text("import attrprune.world.measure as m\n")
    (pkg / "local.py").write_text("def f():\n    from attrprune.download import require_model\n")
    (pkg / "alias.py").write_text("from attrprune import world\n")
    (pkg / "sub" / "rel.py").write_text("from ..world import measure\nfrom .. import download\n")
    (pkg / "clean.py").write_text(
        '"""Reads `attrprune.world.measure` data."""\nimport attrprune.worldly\nfrom attrprune.text import pad_rows\n'
        'NOTE = "see attrprune.world.measure for the words"\n'
    )
    (pkg / "named.py").write_text(
        'import importlib\n\n\ndef f():\n    return importlib.import_module("attrprune.world.measure")\n'
    )
    (pkg / "spec.py").write_text('TEST = "attrprune.download:require_model"\n')
    found = violations(pkg)
    assert [v.split(" (")[0] for v in found] == [
        "attrprune.alias",
        "attrprune.evaluation.tasks.other",
        "attrprune.local",
        "attrprune.named",
        "attrprune.spec",
        "attrprune.sub.rel",
        "attrprune.sub.rel",
        "attrprune.top",
    ]
    assert "attrprune.named (attrprune/named.py:5) imports attrprune.world.measure" in found
    assert "attrprune.spec (attrprune/spec.py:1) imports attrprune.download" in found
    assert "attrprune.local (attrprune/local.py:2) imports attrprune.download" in found
    assert "attrprune.alias (attrprune/alias.py:1) imports attrprune.world" in found
    assert [v.split(" imports ")[1] for v in found if v.startswith("attrprune.sub.rel")] == [
        "attrprune.world",
        "attrprune.download",
    ]
    assert "attrprune.top (attrprune/top.py:1) imports attrprune.world.measure" in found
