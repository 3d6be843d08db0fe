"""The config key reference, generated from the descriptions in schemas/config.schema.yaml.

The schema is the one source: this module walks it and writes one table per top-level section
(key, allowed values, default, description). MkDocs runs it as a hook (`hooks:` in mkdocs.yml),
which adds the page `config-reference.md` to the site at build time, so no copy is committed and
none can go stale. A key without a description is an error, which `mkdocs build --strict` and
tests/unit/test_docs.py report.

Run: ``python docs/hooks/config_reference.py`` prints the page (Markdown) to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
PAGE = "config-reference.md"


def load_schema(path: Path = SCHEMA) -> dict:
    """The schema with the registry's names filled in where it says `x-registry:` (when the
    package is importable; otherwise the table's name is shown)."""
    schema = yaml.safe_load(path.read_text())
    try:
        from attrprune.registry import fill_schema_enums
    except ImportError:
        return schema
    return fill_schema_enums(schema)


def _resolve(node: dict, schema: dict) -> dict:
    """`node` with a local `$ref` (#/$defs/...) merged in under its own keys."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def keys(schema: dict) -> list[tuple[str, dict]]:
    """Every config key as (dotted path, its schema node), depth first in schema order. A map
    whose keys the user chooses (models by alias) appears as `<alias>`."""
    out: list[tuple[str, dict]] = []

    def walk(node: dict, prefix: str) -> None:
        for name, child in (node.get("properties") or {}).items():
            child = _resolve(child, schema)
            path = f"{prefix}{name}"
            out.append((path, child))
            walk(child, path + ".")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("properties"):
            walk(extra, prefix + "<alias>.")

    walk(schema, "")
    return out


def missing_descriptions(schema: dict) -> list[str]:
    """Dotted paths of the keys without a description."""
    return [path for path, node in keys(schema) if not str(node.get("description") or "").strip()]


def _values(node: dict) -> str:
    """What a key accepts, in words: its enum, else its type with bounds or pattern."""
    if "enum" in node:
        return ", ".join(f"`{v}`" for v in node["enum"])
    if "x-registry" in node:
        return f"a registered name ({node['x-registry']})"
    kind = node.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    words = [k for k in kinds if k and k != "null"]
    text = " or ".join(words)
    if "array" in kinds and isinstance(node.get("items"), dict):
        text = "list of " + _values(node["items"]).removeprefix("list of ")
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            bounds.append(f"{sign} {node[key]}")
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    if "pattern" in node:
        text += f" matching `{node['pattern']}`"
    if "null" in kinds:
        text += ", or null"
    return text or "object"


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes and angle brackets escaped."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default(node: dict) -> str:
    if "default" not in node or node.get("type") == "object":
        return ""
    return f"`{json.dumps(node['default'])}`"


def render(schema: dict) -> str:
    """The reference page (Markdown). Raises ValueError naming every key without a description."""
    missing = missing_descriptions(schema)
    if missing:
        raise ValueError(
            "schemas/config.schema.yaml: keys without a description: "
            + ", ".join(missing)
            + "; add a description to each"
        )
    lines = [
        "# Config key reference",
        "",
        "Every key of `config.yaml` (and of the files under `configs/`), generated from the descriptions in "
        "`schemas/config.schema.yaml` when the documentation is built. The workflow validates the config "
        "against that schema before any job runs, fills in the defaults shown here, and refuses unknown "
        "keys. Registered names (methods, reference-set kinds, behaviours) come from `attrprune.registry`; "
        "`python -m attrprune.registry` lists them.",
        "",
    ]
    sections: dict[str, list[tuple[str, dict]]] = {}
    for path, node in keys(schema):
        sections.setdefault(path.split(".")[0], []).append((path, node))
    for section, rows in sections.items():
        top = rows[0][1]
        lines += [f"## `{section}`", "", _cell(top["description"]), ""]
        rows = rows[1:]
        if not rows:
            lines += [f"Accepts: {_cell(_values(top))}." + (f" Default: {_default(top)}." if _default(top) else ""), ""]
            continue
        lines += ["| key | accepts | default | description |", "|---|---|---|---|"]
        for path, node in rows:
            lines.append(f"| `{path}` | {_cell(_values(node))} | {_default(node)} | {_cell(node['description'])} |")
        lines.append("")
    return "\n".join(lines)


def on_files(files, config):
    """MkDocs hook: add the generated reference page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render(load_schema())))
    return files


if __name__ == "__main__":
    print(render(load_schema()))
