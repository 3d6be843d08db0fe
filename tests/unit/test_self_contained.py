"""The repository stands on its own: no file refers to design notes, notes folders or issue
numbers that a reader of the repository cannot open, and no file narrates how the project was
built (what a session did, which numbers an earlier text quoted): a reader needs what is true of
the code as it is, with the commit that measured each number."""

import re
import subprocess

import pytest

# What a reference outside the repository looks like (this file is exempt; its patterns and
# examples are spelled so that a plain `git grep` for the names finds nothing here either).
OUTSIDE = re.compile(
    r"DESIGN\.md|shared[/ ]notes|\bnotes[/]|protocols\.md|world-prototyp[e]|\bissues? #?\d|the\sissue asked"
    r"|which the\sissue"
)
# What narration of the project's own history looks like.
NARRATION = re.compile(
    r"\bthis session\b|\bsessions so far\b|\bwas lent\b|\bsuperseded\b|\bquoted before\b|\bthis README (quoted|said)\b"
    r"|\bthe earlier tables\b|\bnow carries\b|\bwe (added|changed|fixed|tried|rewrote)\b|\bthe lead\b"
    r"|\bhelper session\b",
    re.IGNORECASE,
)
# Where narration would be read as documentation: prose, code, rules, tests, benchmarks, configs
# (world/ holds generated text and model files).
NARRATION_PATHS = re.compile(
    r"^(README\.md|Snakefile|config\.yaml|mkdocs\.yml|pyproject\.toml|\.ci/|docs/|src/|rules/|tests/|bench/|configs/"
    r"|schemas/|profiles/|report/|envs/)"
)
EXEMPT = {"tests/unit/test_self_contained.py"}


def _text_files(repo_root):
    files = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        path = repo_root / name
        if name in EXEMPT or not path.is_file():
            continue
        try:
            yield name, path.read_text()
        except UnicodeDecodeError:
            continue  # model weights and other binaries


def _hits(pattern, files):
    return [
        f"{name}:{i}: {line.strip()[:100]}"
        for name, text in files
        for i, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_no_file_refers_to_documents_outside_the_repository(repo_root):
    hits = _hits(OUTSIDE, _text_files(repo_root))
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)


def test_no_file_narrates_how_the_project_was_built(repo_root):
    files = [(name, text) for name, text in _text_files(repo_root) if NARRATION_PATHS.match(name)]
    assert any(name.startswith("docs/") for name, _ in files) and any(name == "README.md" for name, _ in files)
    hits = _hits(NARRATION, files)
    assert not hits, "narration of the project's history (say what is true of the code instead):\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "pattern, line",
    [
        (OUTSIDE, "see DESIGN" + ".md §4 for the protocol"),
        (OUTSIDE, "as the shared notes say"),
        (OUTSIDE, "written up in notes" + "/world.md"),
        (OUTSIDE, "the world-" + "prototype run"),
        (OUTSIDE, "fixed in issue " + "12"),
        (OUTSIDE, "see issue #7"),
        (OUTSIDE, "the layout which the " + "issue asked for"),
        (NARRATION, "No GPU was lent to this session."),
        (NARRATION, "the numbers this README quoted before are superseded"),
        (NARRATION, "We added the structured track later."),
        (NARRATION, "which every IOI reference set now carries"),
    ],
)
def test_the_patterns_catch_what_they_are_for(pattern, line):
    assert pattern.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "vectorised over the leading dimensions",
        '@pytest.fixture(scope="session")',
        "the held-out names (40) are never in IOI sentences",
        "see docs/findings/compression.md for the measured numbers",
    ],
)
def test_the_patterns_leave_ordinary_text_alone(line):
    assert not OUTSIDE.search(line) and not NARRATION.search(line)
