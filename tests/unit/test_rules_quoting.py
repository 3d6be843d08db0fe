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


def test_every_shell_placeholder_is_quoted():
    unquoted = []
    files = sorted((ROOT / "rules").glob("*.smk")) + [ROOT / "Snakefile"]
    for path in files:
        for number, literal in _shell_strings(path.read_text()):
            for field in PLACEHOLDER.findall(literal):
                if not field.endswith(":q") and field not in UNQUOTED_ALLOWED:
                    unquoted.append(f"{path.name}:{number}: {{{field}}}")
    assert not unquoted, "unquoted shell placeholders:\n" + "\n".join(unquoted)
    assert sum(1 for path in files for _ in _shell_strings(path.read_text())) > 50  # the parser saw the rules


def test_a_hostile_task_name_reaches_the_command_as_one_word(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    hostile = f"$(touch {tmp_path / 'pwned'})"
    config["compression"]["tasks"] = ["world_ppl", hostile]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none", "-n", "-p", "--cores", "1",
        "compression_tables",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    commands = [line for line in r.stdout.splitlines() if " compress " in line and "--tasks" in line]
    assert commands and all(f"--tasks 'world_ppl,{hostile}'" in c for c in commands)
    assert not (tmp_path / "pwned").exists()
