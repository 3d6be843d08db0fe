"""Fuzzing the inputs a user or an attacker controls (Hypothesis): configs, JSON Lines files and
the files the table stages read. For every generated input the suite must refuse it with one line
naming the file or the key (exit code 1, or 2 for usage), never a traceback, never an output file,
and never run anything a string holds (every string carries shell metacharacters that would
create a marker file if a shell ran them). Each test prints how many inputs it tried; together
they take about a minute on two cores (derandomised, without Hypothesis' database: every run
tries the same inputs, so CI is reproducible).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attrprune.cli import run

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "world" / "models" / "world-llama"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _report(capsys, what: str, tried: int, refused: int) -> None:
    with capsys.disabled():
        print(f"\nfuzz {what}: {tried} inputs tried, {refused} refused with one line")


def _shelly(marker: Path) -> st.SearchStrategy[str]:
    """Strings with unicode and shell metacharacters; any shell that ran one would touch `marker`."""
    payload = st.sampled_from(
        [
            f"$(touch {marker})",
            f"`touch {marker}`",
            f"; touch {marker}",
            f"| touch {marker} &",
            f"' && touch {marker} '",
        ]
    )
    noise = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    return st.builds(lambda a, p, b: a + p + b, noise, payload, noise)


# ---- configs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validate_config():
    """The workflow's own config checks (attrprune.config: schema with defaults, duplicate keys,
    cross-key rules), run on a config as the Snakefile runs them after merging --configfile."""
    from attrprune.config import check as check_config

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    schema = ROOT / "schemas" / "config.schema.yaml"
    check_config(copy.deepcopy(base), schema)  # the shipped config passes

    def check(config: dict) -> None:
        check_config(config, schema)

    return base, check


def _paths(node, prefix=()):
    """Every key path of the config: sections and leaves."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _wrong_values(original, marker: Path) -> st.SearchStrategy:
    """Values of the wrong type for `original`, out-of-range numbers, and metacharacter strings."""
    numbers = st.one_of(
        st.sampled_from([-1, 0, -(10**12), 10**18, -0.5, 1.5, 1e308, float("nan"), float("inf"), -float("inf")]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
    )
    others = st.one_of(
        _shelly(marker),
        st.lists(_shelly(marker), max_size=2),
        st.dictionaries(_shelly(marker), st.integers(), max_size=1),
        st.none(),
        st.booleans(),
    )
    if isinstance(original, bool):
        return st.one_of(numbers, _shelly(marker), st.lists(st.booleans(), min_size=1, max_size=2))
    if isinstance(original, (int, float)):
        return st.one_of(numbers, others)
    return st.one_of(numbers, others)


def test_fuzzed_configs_are_refused_naming_the_key(validate_config, tmp_path, capsys):
    """One key of the default config gets a value of another type, out of range, or a string of
    unicode and shell metacharacters: the checks refuse it with a ConfigError whose lines each
    name a key, among them the changed key, or accept it; nothing else (no TypeError, KeyError ...).
    A string the schema accepts (a free name) is never run: no marker file."""
    from attrprune.config import ConfigError

    base, check = validate_config
    marker = tmp_path / "executed"
    paths = sorted(set(_paths(base)), key=lambda p: (len(p), p))
    counts = {"tried": 0, "refused": 0}

    @FUZZ
    @given(data=st.data())
    def fuzz(data):
        path = data.draw(st.sampled_from(paths), label="key")
        config = copy.deepcopy(base)
        node = config
        for key in path[:-1]:
            node = node[key]
        original = node[path[-1]]
        value = data.draw(_wrong_values(original, marker), label="value")
        node[path[-1]] = value
        counts["tried"] += 1
        try:
            check(config)
        except ConfigError as error:
            counts["refused"] += 1
            lines = str(error).strip().splitlines()
            body = lines[1:] if lines[0] == "Invalid config:" else lines
            dotted = ".".join(map(str, path))
            assert body and any(dotted in line or line.startswith(("<top level>", path[0])) for line in body), error
            # each line names a key (schema errors: "key: what"; cross-key rules: "key: ...")
            assert all(":" in line for line in body), error
        assert not marker.exists()

    fuzz()
    _report(capsys, "configs (one key changed)", counts["tried"], counts["refused"])
    assert counts["refused"] > counts["tried"] // 2  # most wrong values are wrong


def test_snakemake_refuses_a_config_before_any_job_and_runs_none_of_its_strings(tmp_path):
    """The same checks through `snakemake --dry-run` itself, for three values like those above:
    exit code 1, the key named, no Python traceback and no location lines of the check (the
    Snakefile prints the message and exits), no marker file."""
    import subprocess
    import sys

    marker = tmp_path / "executed"
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())  # the workflow's own
    cases = {
        "scores.storage": {"scores": {"storage": f"$(touch {marker})"}},
        "models.world-llama.source": {"models": {"world-llama": {"source": 3}}},
        "compression: unknown key": {"compression": {f"`touch {marker}`": 1}},
    }
    for key, overlay in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(overlay, allow_unicode=True))
        argv = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad), "--directory", str(tmp_path)]
        done = subprocess.run([*argv, "-s", str(ROOT / "Snakefile")], capture_output=True, text=True, timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "Invalid config:" in out and key.split(":")[0] in out, out
        assert "Traceback" not in out and 'File "' not in out and not marker.exists(), out


# ---- JSON Lines inputs --------------------------------------------------------------------------

GOOD_TEXT = '{"text": "Ann went home. Bob stayed at the farm and fed the goats and the hens."}\n'


def _bad_jsonl(marker: Path) -> st.SearchStrategy[bytes]:
    """JSON Lines that are wrong by construction: random bytes that are not JSON, a valid line cut
    inside, rows without 'text', or with 'text' of another type."""
    good = GOOD_TEXT.encode()
    random_bytes = st.binary(min_size=1, max_size=200).filter(lambda b: not _valid_text_rows(b))
    cut = st.integers(1, len(good) - 3).map(lambda i: good + good[:i] + b"\n")
    other_type = st.one_of(st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(), st.lists(st.integers()))
    wrong_type = other_type.map(lambda v: good + (json.dumps({"text": v}) + "\n").encode())
    no_text = st.dictionaries(_shelly(marker), _shelly(marker), max_size=3).map(
        lambda d: good + (json.dumps({k: v for k, v in d.items() if k != "text"}) + "\n").encode()
    )
    return st.one_of(random_bytes, cut, wrong_type, no_text)


def _valid_text_rows(data: bytes) -> bool:
    try:
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError):
        return False
    return bool(rows) and all(isinstance(r, dict) and isinstance(r.get("text"), str) for r in rows)


def _one_line(capsys, code: int, stage: str, *names: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, err
    assert "Traceback" not in err and lines and sum(": error:" in line for line in lines) == 1, err
    assert lines[-1].startswith(f"attrprune {stage}: error: "), err
    assert any(name in lines[-1] for name in names), err
    return lines[-1]


def test_fuzzed_jsonl_files_are_one_line(tmp_path, capsys):
    """General text for a reference set (the stage reads it, then would tokenise and write)."""
    import transformers

    transformers.logging.set_verbosity_error()
    marker, out, text = tmp_path / "executed", tmp_path / "out" / "refset.safetensors", tmp_path / "text.jsonl"
    counts = {"tried": 0}

    @FUZZ
    @given(data=_bad_jsonl(marker))
    def fuzz(data):
        text.write_bytes(data)
        counts["tried"] += 1
        argv = ["refset", "--kind", "general", "--model-dir", str(MODEL), "--source", "json"]
        code = run([*argv, "--text-file", str(text), "--n", "2", "--length", "8", "--out", str(out)])
        _one_line(capsys, code, "refset", str(text))
        assert not out.exists() and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
        assert not marker.exists()

    fuzz()
    _report(capsys, "JSON Lines (reference-set text)", counts["tried"], counts["tried"])


def _generation_rows(marker: Path) -> st.SearchStrategy[bytes]:
    """A correction run's generations.jsonl, damaged: cut inside a line, random bytes, rows with
    wrong fields, wrong types or non-finite values."""
    good = [{"k": 0, "greedy_score": 0.9}, {"k": 1, "greedy_score": 0.1}]
    text = "".join(json.dumps(r) + "\n" for r in good).encode()
    bad_value = st.one_of(
        st.sampled_from([float("nan"), float("inf")]), _shelly(marker), st.none(), st.lists(st.integers())
    )
    field = st.sampled_from(["k", "greedy_score"])
    wrong = st.tuples(field, bad_value).map(lambda fv: text + (json.dumps({**good[0], fv[0]: fv[1]}) + "\n").encode())
    missing = field.map(lambda f: text + (json.dumps({k: v for k, v in good[0].items() if k != f}) + "\n").encode())
    inside = [i for i in range(1, len(text)) if text[i - 1 : i] not in (b"}", b"\n")]  # a line cut inside
    cut = st.sampled_from(inside).map(lambda i: text[:i])
    noise = st.binary(min_size=1, max_size=120).map(lambda b: text + b.replace(b"\n", b" ") + b"\n")
    return st.one_of(wrong, missing, cut, noise)


def _correction_curve(path: Path) -> Path:
    point = {
        "n_pruned": 0,
        "n_pruned_measured": 0,
        "pruned_fraction": 0.0,
        "metrics": {"greedy_toxic_fraction": 0.5, "word_perplexity:world_ppl": 7.0, "ppl_change:world_ppl": 0.0},
        "examples": [{"prompt": 'Kim hissed: "', "greedy": "You moron", "greedy_score": 0.9}],
    }
    record = {
        "model_dir": str(MODEL),
        "behaviour": "toxicity",
        "method": "lrp",
        "granularity": "neuron",
        "normalization": "sum",
        "primary_ppl_task": "world_ppl",
        "curve": [{**point, "k": 0}, {**point, "k": 1}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_fuzzed_generation_logs_are_one_line(tmp_path, capsys):
    """generations.jsonl beside a correction curve, read by correction-tables."""
    marker = tmp_path / "executed"
    curve = _correction_curve(tmp_path / "run" / "curve.json")
    generations = curve.with_name("generations.jsonl")
    outs = tmp_path / "tables"
    argv = ["correction-tables", "--curves", str(curve), "--csv", str(outs / "c.csv"), "--markdown"]
    argv += [str(outs / "c.md"), "--plots-dir", str(outs / "p"), "--examples-md", str(outs / "e.md")]
    generations.write_text('{"k": 0, "greedy_score": 0.9}\n{"k": 1, "greedy_score": 0.1}\n')
    assert run(argv) == 0  # the undamaged file makes the tables
    import shutil

    shutil.rmtree(outs)
    counts = {"tried": 0}

    @FUZZ
    @given(data=_generation_rows(marker))
    def fuzz(data):
        generations.write_bytes(data)
        counts["tried"] += 1
        _one_line(capsys, run(argv), "correction-tables", str(generations))
        assert not outs.exists() or not any(outs.rglob("*.*"))
        assert not marker.exists()

    fuzz()
    _report(capsys, "JSON Lines (correction generations)", counts["tried"], counts["tried"])


# ---- table inputs ----------------------------------------------------------------------------------

METRICS = {
    "method": "magnitude",
    "model": "world-llama",
    "model_dir": str(MODEL),
    "scope": "row",
    "sparsity": 0.5,
    "sparsity_measured": 0.5,
    "metrics": [
        {"task": "world_ppl", "metric": "word_perplexity", "value": 5.0, "stderr": None},
        {"task": "world_ioi", "metric": "acc", "value": 0.5, "stderr": 0.05},
    ],
    "token_perplexity": {"source": "world", "seqlen": 64, "value": 9.0},
    "per_document": {"world_ioi": {"acc": [1.0, 0.0]}},
    "pruning": {"calibration": None},
    "scores": {"refset_seed": 0},
}
# what each key must be: a replacement of another kind is an error
NEEDED = [
    ("sparsity",),
    ("sparsity_measured",),
    ("metrics",),
    ("metrics", 0),
    ("metrics", 0, "task"),
    ("metrics", 1, "metric"),
    ("metrics", 0, "value"),
    ("token_perplexity", "seqlen"),
    ("token_perplexity", "value"),
    ("token_perplexity", "source"),
    ("per_document", "world_ioi", "acc"),
    ("per_document", "world_ioi", "acc", 0),
    ("method",),
    ("scope",),
    ("pruning",),
]


def _damaged_metrics(marker: Path) -> st.SearchStrategy[tuple[str, bytes]]:
    """(the key changed, the file): a needed key dropped or of another type (strings of
    metacharacters included), NaN or infinite where a number is needed, the JSON cut short."""

    def replace(path, value):
        record = copy.deepcopy(METRICS)
        node = record
        for key in path[:-1]:
            node = node[key]
        if value is _DROP:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return ".".join(str(k) for k in path if not isinstance(k, int)).split(".")[-1], json.dumps(record).encode()

    numeric = {"sparsity", "sparsity_measured", "value", "seqlen"}

    def wrong_for(path):
        last = path[-1]
        if isinstance(last, int) and path[-2] == "acc":
            kinds = st.one_of(_shelly(marker), st.sampled_from([float("nan"), None, [], {}]))
        elif last in numeric:
            kinds = st.one_of(_shelly(marker), st.sampled_from([float("nan"), float("inf"), None, [], {}, True]))
        else:
            kinds = st.one_of(st.integers(), st.floats(), st.sampled_from([[], {}, True]))
            if last not in ("method", "scope"):
                kinds = st.one_of(kinds, st.none())
        optional = isinstance(last, int) or path[0] == "per_document"  # per-document values may be absent
        return st.one_of(kinds, st.nothing() if optional else st.just(_DROP))

    changed = st.sampled_from(NEEDED).flatmap(lambda p: wrong_for(p).map(lambda v: replace(p, v)))
    text = json.dumps(METRICS).encode()
    cut = st.integers(1, len(text) - 1).map(lambda i: ("", text[:i]))
    return st.one_of(changed, cut)


_DROP = object()


def test_fuzzed_metrics_files_are_one_line(tmp_path, capsys):
    """compression-tables over the dense model's metrics and one damaged pruned run's."""
    marker = tmp_path / "executed"
    dense = tmp_path / "dense.json"
    dense.write_text(json.dumps({**METRICS, "method": None, "scope": None, "sparsity": 0.0, "sparsity_measured": 0.0}))
    metrics = tmp_path / "metrics.json"
    outs = tmp_path / "tables"
    argv = ["compression-tables", "--metrics", f"{dense},{metrics}", "--csv", str(outs / "c.csv")]
    argv += ["--markdown", str(outs / "c.md"), "--plots-dir", str(outs / "plots")]
    metrics.write_text(json.dumps(METRICS))
    assert run(argv) == 0  # the undamaged file makes the tables
    import shutil

    shutil.rmtree(outs)
    counts = {"tried": 0}

    @FUZZ
    @given(damage=_damaged_metrics(marker))
    def fuzz(damage):
        key, data = damage
        shutil.rmtree(outs, ignore_errors=True)  # every example starts from the same state
        metrics.write_bytes(data)
        counts["tried"] += 1
        line = _one_line(capsys, run(argv), "compression-tables", str(metrics))
        assert key in line or "is not valid JSON" in line, line
        assert not outs.exists()
        assert not marker.exists()

    fuzz()
    _report(capsys, "table inputs (metrics.json)", counts["tried"], counts["tried"])


def test_nan_is_refused_where_a_number_is_needed_and_kept_where_it_is_data():
    """The checks themselves: NaN is no sparsity, but lm-eval may report a NaN metric."""
    from attrprune.records import METRICS as SCHEMA
    from attrprune.records import BadRecord, check

    ok = {**METRICS, "metrics": [{"task": "t", "metric": "m", "value": math.nan, "stderr": None}]}
    check(ok, SCHEMA, "m.json")
    with pytest.raises(BadRecord, match=r"m.json: key 'sparsity' is nan, not a finite number"):
        check({**METRICS, "sparsity": math.nan}, SCHEMA, "m.json")
    with pytest.raises(BadRecord, match=r"key 'metrics\[0\].value' is a boolean, not a number"):
        check({**METRICS, "metrics": [{"task": "t", "metric": "m", "value": True}]}, SCHEMA, "m.json")
