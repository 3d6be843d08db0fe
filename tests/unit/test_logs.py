"""Logs with time: a stage's lines carry the UTC time and the seconds since it started, open with
its start and close with its wall time, peak memory and CPU time; loops log every tenth of their
steps off a terminal, and no progress bar (ours or a library's) writes frames into a log file."""

import re
from pathlib import Path

from attrprune import logs
from attrprune.cli import run

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) \+(\d+\.\d)s [\w.]+: ")


def test_a_stage_logs_its_start_steps_and_end_with_time_and_peak_memory(tmp_path, capsys):
    argv = ["refset", "--kind", "general", "--model-dir", str(ROOT / "world/models/world-llama"), "--n", "4",
            "--length", "16", "--data-dir", str(ROOT / "world/data"), "--source", "world", "--seed", "0",
            "--out", str(tmp_path / "r.safetensors")]  # fmt: skip
    capsys.readouterr()
    assert run(argv) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    assert lines[0].endswith(f"refset: start ({' '.join(argv)})")
    assert "general reference set: 4 samples x 16 tokens" in lines[-2]
    done = re.search(r"refset: done in ([0-9.]+) s; peak memory (\d+) MB; CPU ([0-9.]+) s$", lines[-1])
    assert done and abs(float(done[2]) - logs.peak_memory_mb()) <= 5 and float(done[2]) > 100, lines[-1]
    elapsed = [float(LINE.match(line)[2]) for line in lines]
    assert elapsed == sorted(elapsed) and abs(elapsed[-1] - float(done[1])) <= 0.1


def test_a_refused_stage_prints_its_one_error_line_only(tmp_path, capsys):
    capsys.readouterr()
    assert run(["refset", "--kind", "general", "--model-dir", str(tmp_path / "absent"), "--n", "4",
                "--out", str(tmp_path / "r.safetensors")]) == 1  # fmt: skip
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("attrprune refset: error: ")


def test_loops_log_every_tenth_of_their_steps_off_a_terminal(capsys):
    logs.setup()
    capsys.readouterr()
    for _ in logs.steps(range(95), desc="blocks"):
        pass
    for _ in logs.steps(range(95), desc="quiet", enabled=False):
        pass
    with logs.steps(total=3, desc="by hand") as bar:
        for _ in range(3):
            bar.update()
    err = capsys.readouterr().err
    assert "\r" not in err and "quiet" not in err
    blocks = [line for line in err.splitlines() if "blocks: " in line]
    assert [line.rsplit(" ", 1)[1] for line in blocks] == [
        f"{n}/95" for n in (1, 10, 19, 28, 37, 46, 55, 64, 73, 82, 91, 95)
    ]
    assert [line.rsplit(" ", 1)[1] for line in err.splitlines() if "by hand" in line] == ["1/3", "2/3", "3/3"]


def test_library_bars_are_off_in_a_log_file(capsys):
    """lm-eval asks for its bars with disable=False: off a terminal they are still not drawn."""
    from tqdm import tqdm
    from tqdm.auto import tqdm as auto_tqdm

    logs.setup()
    capsys.readouterr()
    assert sum(tqdm(range(5), desc="Running loglikelihood requests", disable=False)) == 10
    with auto_tqdm(total=2) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""
