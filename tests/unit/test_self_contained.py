"""The repository stands on its own: no file refers to design notes, notes folders or issue
numbers that a reader of the repository cannot open."""

import re
import subprocess

# What a reference outside the repository looks like (the files that define the grep are exempt).
OUTSIDE = re.compile(
    r"DESIGN\.md|shared/notes|notes/[\w-]+\.md|protocols\.md|world-prototype|\bissue \d|the issue asked"
)


def test_no_file_refers_to_documents_outside_the_repository(repo_root):
    files = subprocess.run(["git", "ls-files"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    hits = []
    for name in files.splitlines():
        path = repo_root / name
        if name == "tests/unit/test_self_contained.py" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # model weights and other binaries
        hits += [
            f"{name}:{i}: {line.strip()[:100]}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)
        ]
    assert not hits, "references to documents outside the repository:\n" + "\n".join(hits)
