"""bench/gpu_check.py on CPU with --tiny: both methods run through compute_scores in bf16 and
report a positive time per sample and a peak memory, in the table and in the JSON.

The script runs in this process (its imports are shared with the other tests), as
``python bench/gpu_check.py --tiny --device cpu --out <json>`` would.
"""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_reports_both_methods(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    rc = load_gpu_check().main(["--tiny", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    assert (result["device"], result["dtype"], result["tokens_per_sample"]) == ("cpu", "bfloat16", 64)
    assert set(result["methods"]) == {"lrp", "gradient"}
    for method, r in result["methods"].items():
        assert "error" not in r, r
        assert r["seconds_per_sample"] > 0 and r["peak_bytes"] > 0, (method, r)
        assert f"\n{method} " in printed
    assert "lrp / gradient: time" in printed


def test_full_shape_refuses_cpu():
    """The real check (TinyLlama's shape, 2048 tokens) is for a GPU; on CPU it must say --tiny."""
    with pytest.raises(SystemExit):
        load_gpu_check().main(["--device", "cpu"])
