"""Nothing from a config, a path or a wildcard is executed by a rule's shell: every value a
`shell:` command interpolates is quoted (`:q`), except the fixed offline prefix."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
UNQUOTED_ALLOWED = {"params.offline"}  # a constant of rules/common.smk: env assignments must stay words


def _shell_strings(text: str):
    """(line number, string literal) of every line inside a rule's `shell:` block."""
    in_shell = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("shell:"):
            in_shell = True
            continue
        if in_shell and not stripped.startswith(('"', "'")):
            in_shell = False
        if in_shell:
            yield number, stripped


def _commands():
    """(where, command template) of every rule: literal `shell:` strings, and the commands that
    rules generate from their stage (`stage_shell("<stage>")`, attrprune.stages.command)."""
    from attrprune.stages.command import shell_template

    for path in sorted((ROOT / "rules").glob("*.smk")) + [ROOT / "Snakefile"]:
        text = path.read_text()
        for number, literal in _shell_strings(text):
            if not literal.startswith("stage_shell("):
                yield f"{path.name}:{number}", literal
        for number, line in enumerate(text.splitlines(), 1):
            for stage in re.findall(r'stage_shell\("([\w-]+)"\)', line):
                yield f"{path.name}:{number}", shell_template(stage)


def test_every_shell_placeholder_is_quoted():
    unquoted = [
        f"{where}: {{{field}}}"
        for where, command in _commands()
        for field in PLACEHOLDER.findall(command)
        if not field.endswith(":q") and field not in UNQUOTED_ALLOWED
    ]
    assert not unquoted, "unquoted shell placeholders:\n" + "\n".join(unquoted)
    placeholders = sum(len(PLACEHOLDER.findall(command)) for _, command in _commands())
    assert placeholders > 200  # the parser saw the rules' commands, generated ones included


def _dry_run(tmp_path, config, *targets):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none", "-n", "-p", "--cores", "1",
        *targets,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_a_hostile_task_name_is_refused_by_the_schema(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["compression"]["tasks"] = ["world_ppl", f"$(touch {tmp_path / 'pwned'})"]
    r = _dry_run(tmp_path, config)
    assert r.returncode != 0
    assert "compression.tasks.1: '$(touch" in r.stdout + r.stderr and "does not match" in r.stdout + r.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_model_path_with_shell_syntax_reaches_the_command_as_one_word(tmp_path):
    """A path is not validated by a pattern (any folder name is legal): quoting alone keeps it inert."""
    import shlex
    import shutil

    marker = tmp_path / "pwned"
    folder = tmp_path / f"$(touch {marker})" / "model"
    shutil.copytree(ROOT / "world" / "models" / "world-llama", folder)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["models"] = {"mine": {"source": "local", "path": str(folder), "data": "world"}}
    config["compression"].update(methods=["magnitude"], method_scopes={}, sparsities=[0.0, 0.5], export=None)
    config["circuits"]["models"] = config["correction"]["models"] = config["structured"]["models"] = []
    r = _dry_run(tmp_path, config, "compression_tables")
    assert r.returncode == 0, r.stdout + r.stderr
    commands = [line for line in r.stdout.splitlines() if "attrprune compress" in line and "--model-dir" in line]
    assert commands
    for line in commands:
        words = shlex.split(line.split("Shell command:", 1)[-1])
        assert words[words.index("--model-dir") + 1] == str(folder)
    assert not marker.exists()


UNSAFE_LOADS = [
    (re.compile(r"torch\.load\((?![^)]*weights_only=True)"), "torch.load without weights_only=True"),
    (re.compile(r"\bpickle\.loads?\("), "pickle.load"),
    (re.compile(r"\b(?:cloudpickle|dill|joblib)\.load"), "a pickle-based loader"),
    (re.compile(r"yaml\.(?:load|load_all)\((?![^)]*Loader=_UniqueKeyLoader)"), "yaml.load without a safe loader"),
    (re.compile(r"yaml\.(?:unsafe_load|full_load|UnsafeLoader|FullLoader)"), "an unsafe YAML loader"),
    (re.compile(r"(?<![.\w])(?:eval|exec)\("), "eval / exec (module.eval() is fine)"),
]


def test_nothing_deserialises_code_from_a_file():
    """No file a user can swap is unpickled or loaded as code, anywhere in the package, the rules or
    the benchmarks (`_UniqueKeyLoader` is a yaml.SafeLoader subclass)."""
    files = [
        *(ROOT / "src").rglob("*.py"),
        *(ROOT / "rules").glob("*.smk"),
        ROOT / "Snakefile",
        *(ROOT / "bench").glob("*.py"),
    ]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {what}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for pattern, what in UNSAFE_LOADS
        if pattern.search(line) and not line.lstrip().startswith("#")
    ]
    assert not found, "\n".join(found)
    assert "class _UniqueKeyLoader(yaml.SafeLoader)" in (ROOT / "src" / "attrprune" / "config.py").read_text()
