"""The tables stage builds the documented columns, the pivot and the plots from fixture metrics."""

import json

import pandas as pd
import pytest

from attrprune.tables import TIDY_COLUMNS, compression_tables


def _metrics(tmp_path, method, seed, sparsity, ppl, ioi, facts):
    path = tmp_path / method / f"s{seed}" / f"sparsity_{sparsity:.2f}" / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "model_dir": "world/models/world-llama", "scope": "row", "sparsity": sparsity, "sparsity_measured": sparsity,
        "scores": {"method": method, "refset_seed": seed},
        "metrics": [
            {"task": "world_ppl", "metric": "word_perplexity", "value": ppl, "stderr": None},
            {"task": "world_ioi", "metric": "acc", "value": ioi, "stderr": 0.01},
            {"task": "world_facts", "metric": "acc", "value": facts, "stderr": 0.02},
        ],
    }))
    return path


def test_compression_tables(tmp_path):
    files = []
    for seed, bump in ((0, 0.0), (1, 2.0)):
        files += [_metrics(tmp_path, "lrp", seed, 0.0, 8.0, 0.9, 1.0), _metrics(tmp_path, "lrp", seed, 0.5, 10.0 + bump, 0.8, 0.6)]
    files += [_metrics(tmp_path, "random", 0, 0.0, 8.0, 0.9, 1.0), _metrics(tmp_path, "random", 0, 0.5, 300.0, 0.5, 0.1)]
    out = tmp_path / "out"
    compression_tables(files, out / "c.csv", out / "c.md", out / "plots", at=0.5)
    df = pd.read_csv(out / "c.csv")
    assert list(df.columns) == TIDY_COLUMNS and len(df) == 6 * 3
    assert set(df.method) == {"lrp", "random"} and set(df.seed) == {0, 1}
    md = (out / "c.md").read_text()
    # lrp at 50 %: perplexity mean 11 over seeds 10 and 12, s.e. = std / sqrt(2) = 1.0
    assert "| lrp | 11.00 ± 1.00 | 0.700 ± 0.000 | 2 |" in md
    assert "| random | 300.00 | 0.300 | 1 |" in md
    assert md.index("| lrp |") < md.index("| random |")  # sorted by perplexity
    assert (out / "plots" / "compression_world-llama.png").stat().st_size > 1000


def test_missing_pivot_sparsity_is_an_error(tmp_path):
    files = [_metrics(tmp_path, "lrp", 0, 0.3, 9.0, 0.9, 0.9)]
    with pytest.raises(ValueError, match="no results at sparsity 0.50"):
        compression_tables(files, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "p", at=0.5)


def test_paper_table_fills_our_cells_only_where_we_have_results():
    import pandas as pd

    from attrprune.paper import paper_table

    summ = pd.DataFrame([
        {"model": "tinyllama-1.1b", "method": "lrp", "scope": "row", "sparsity": 0.5, "perplexity": 12.34, "accuracy": 0.4471},
        {"model": "tinyllama-1.1b", "method": "lrp", "scope": "row", "sparsity": 0.0, "perplexity": 7.99, "accuracy": 0.4874},
        {"model": "world-llama", "method": "lrp", "scope": "row", "sparsity": 0.5, "perplexity": 7.4, "accuracy": 0.9},
    ])
    lines = paper_table(summ, 0.5).splitlines()
    assert "| TinyLlama | lrp | 11.85 | 12.34 | 44.71 | 44.71 |" in lines
    assert "| TinyLlama | dense | 7.98 | 7.99 | 48.74 | 48.74 |" in lines
    assert "| TinyLlama | wanda | 11.52 | – | 45.46 | – |" in lines
    assert "| Llama3-8B | lrp | 9.82 | – | 55.18 | – |" in lines
