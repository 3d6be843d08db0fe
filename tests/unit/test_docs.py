"""The documentation stays complete and small where it must: the README is a front door (at most
200 lines) whose links resolve, every page under docs/ is in the site's nav, CI runs the README's
test command, and the config reference covers every schema key with its description.

`mkdocs build --strict` (in .ci/run) is the link check of docs/ itself."""

import importlib.util
import re

import pytest
import yaml

README_MAX_LINES = 200


def _hook(repo_root):
    spec = importlib.util.spec_from_file_location("config_reference", repo_root / "docs/hooks/config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(nav) -> list[str]:
    """Every page path of a MkDocs nav (nested lists of pages and {title: page-or-section})."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def _slug(heading: str) -> str:
    """The anchor MkDocs' toc extension gives a heading (its default slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def test_readme_is_a_front_door(repo_root):
    lines = (repo_root / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, more than {README_MAX_LINES}: move the detail to a page under docs/"
    )


def test_every_docs_page_is_in_the_nav(repo_root):
    config = yaml.safe_load((repo_root / "mkdocs.yml").read_text())
    nav = set(_nav_pages(config["nav"]))
    docs = repo_root / config["docs_dir"]
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    assert pages, "no pages under docs/"
    assert not pages - nav, f"pages under docs/ that the nav of mkdocs.yml leaves out: {sorted(pages - nav)}"
    generated = {_hook(repo_root).PAGE}
    assert not nav - pages - generated, f"nav entries without a page: {sorted(nav - pages - generated)}"


def test_readme_links_resolve(repo_root):
    readme = (repo_root / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local), "the README links no docs page"
    broken = []
    for link in local:
        path, _, anchor = link.partition("#")
        target = repo_root / path
        if not target.is_file():
            broken.append(link)
        elif anchor and anchor not in {_slug(h) for h in re.findall(r"^#+ (.+)$", target.read_text(), re.M)}:
            broken.append(link)
    assert not broken, f"README links to missing files or headings: {broken}"


def test_ci_runs_the_readme_test_command(repo_root):
    ci = [
        line
        for line in (repo_root / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert len(ci) == 1, f".ci/run should be one command (the README's), found {ci}"
    assert "mkdocs build --strict" in ci[0] and "pytest" in ci[0]
    readme = (repo_root / "README.md").read_text()
    assert ci[0] in readme.splitlines(), "the README's test command differs from .ci/run: update both together"


def test_config_reference_covers_every_schema_key(repo_root):
    hook = _hook(repo_root)
    schema = hook.load_schema()
    assert hook.missing_descriptions(schema) == []
    page = hook.render(schema)
    paths = [path for path, _ in hook.keys(schema)]
    assert len(paths) > 100  # the walk reaches the nested keys, not just the sections
    for path in paths:
        assert f"`{path}`" in page, f"{path} is not in the generated reference"
    # keys nested under user-chosen names and under a $ref are reached
    assert "models.<alias>.dtype" in paths and "world.models.<alias>.hidden_size" in paths
    described = schema["properties"]["correction"]["properties"]["window"]["description"]
    assert " ".join(described.split()) in page


@pytest.mark.parametrize(
    "where",
    [
        lambda s: s["properties"]["top"]["properties"],
        lambda s: s["properties"]["named"]["additionalProperties"]["properties"],
    ],
)
def test_config_reference_refuses_a_key_without_description(repo_root, where):
    hook = _hook(repo_root)
    schema = {
        "properties": {
            "top": {"description": "A section.", "type": "object", "properties": {}},
            "named": {
                "description": "A map by name.",
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {}},
            },
        }
    }
    where(schema)["bare"] = {"type": "integer", "default": 1}
    missing = hook.missing_descriptions(schema)
    assert len(missing) == 1 and missing[0].endswith(".bare")
    with pytest.raises(ValueError, match=r"bare.*add a description"):
        hook.render(schema)
