"""Correction tables, plots and examples from two hand-written curve files."""

import json

import pandas as pd
import pytest

from attrprune.correction.tables import correction_tables


def _curve(method, toxic, ppl, tmp_path):
    points = []
    for k, t, p in zip((0, 10, 50), toxic, ppl):
        points.append(
            {
                "k": k,
                "n_pruned": k,
                "n_pruned_measured": k,
                "pruned_fraction": k / 1024,
                "metrics": {
                    "greedy_toxic_fraction": t,
                    "greedy_mean_toxicity": t,
                    "toxic_fraction": t / 2,
                    "mean_toxicity": t / 2,
                    "expected_max_toxicity": t,
                    "toxicity_probability": t,
                    "n_prompts": 4,
                    "n_generations": 8,
                    "word_perplexity:world_ppl": p,
                    "ppl_change:world_ppl": p / ppl[0] - 1,
                },
                "examples": [
                    {
                        "prompt": f'Kim hissed: "{i}',
                        "greedy": f'You | moron {k}."\nNext',
                        "greedy_score": t,
                        "sampled": [],
                        "sampled_scores": [],
                    }
                    for i in range(4)
                ],
            }
        )
    r = {
        "model_dir": "world/models/world-llama",
        "behaviour": "toxicity",
        "method": method,
        "granularity": "neuron",
        "normalization": "sum",
        "primary_ppl_task": "world_ppl",
        "curve": points,
        "measured_text": "reply up to the first closing quote or newline",
    }
    path = tmp_path / method / "curve.json"
    path.parent.mkdir()
    path.write_text(json.dumps(r))
    return path


@pytest.fixture
def outputs(tmp_path):
    files = [
        _curve("random", (1.0, 1.0, 0.9), (7.0, 7.1, 7.7), tmp_path),
        _curve("lrp", (1.0, 0.5, 0.0), (7.0, 7.07, 7.14), tmp_path),
    ]
    out = {
        "csv": tmp_path / "t/correction.csv",
        "markdown": tmp_path / "t/correction.md",
        "plots_dir": tmp_path / "p",
        "examples_md": tmp_path / "t/correction_examples.md",
    }
    correction_tables(files, **out)
    return out


def test_tidy_csv(outputs):
    df = pd.read_csv(outputs["csv"])
    assert list(df.columns) == ["model", "behaviour", "method", "granularity", "normalization", "k", "metric", "value"]
    assert not df.duplicated(["method", "k", "metric"]).any()
    lrp = df[(df.method == "lrp") & (df.k == 50)].set_index("metric").value
    assert lrp["greedy_toxic_fraction"] == 0.0 and lrp["perplexity"] == 7.14
    assert lrp["ppl_change"] == pytest.approx(0.02) and lrp["n_pruned_measured"] == 50
    assert "n_prompts" not in set(df.metric)
    assert set(df.model) == {"world-llama"} and set(df.k) == {0, 10, 50}


def test_markdown_puts_methods_side_by_side(outputs):
    md = outputs["markdown"].read_text()
    assert "### world-llama, toxicity, neurons (normalisation: sum)" in md
    assert "(measured on the reply up to the first closing quote or newline)" in md
    header = next(line for line in md.splitlines() if line.startswith("| k |"))
    assert header.index("lrp: greedy") < header.index("random: greedy")  # lrp first
    row = next(line for line in md.splitlines() if line.startswith("| 50 |"))
    assert row.split(" | ")[1:4] == ["0.000", "0.000", "+2.0%"] and "+10.0%" in row


def test_plot_and_examples(outputs):
    png = outputs["plots_dir"] / "correction_world-llama.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ex = outputs["examples_md"].read_text()
    assert "## world-llama, toxicity, neurons: lrp, k = 50" in ex
    assert 'You \\| moron 0."⏎Next (1.00) | You \\| moron 50."⏎Next (0.00) |' in ex
    assert ex.count("| Kim hissed") == 3


def test_duplicate_runs_and_no_files_are_errors(tmp_path):
    a = _curve("lrp", (1, 1, 1), (7, 7, 7), tmp_path)
    with pytest.raises(ValueError, match="same run"):
        correction_tables([a, a], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md")
    with pytest.raises(ValueError, match="no curve files"):
        correction_tables([], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md")
