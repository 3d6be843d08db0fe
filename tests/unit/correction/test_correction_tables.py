"""Correction tables, plots and examples from hand-written curve files, and the best operating
point under both thresholds (perplexity change and control fidelity)."""

import json

import pandas as pd
import pytest

from attrprune.correction.operating import best_point, best_table
from attrprune.correction.tables import correction_tables


def _curve(method, toxic, ppl, tmp_path, ctrl=(1.0, 0.9, 0.5)):
    points = []
    for k, t, p, c in zip((0, 10, 50), toxic, ppl, ctrl):
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
                    "control_unchanged": c,
                    "control_closed": c,
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
                "control_examples": [
                    {"control": True, "prompt": 'Kim smiled: "', "greedy": f'You are kind {k}."', "greedy_ratio": c}
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
        _curve("random", (1.0, 1.0, 0.9), (7.0, 7.1, 7.7), tmp_path, ctrl=(1.0, 1.0, 0.95)),
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
    assert row.split(" | ")[1:5] == ["0.000", "0.000", "0.50", "+2.0%"] and "+10.0%" in row
    assert "| k | method | control closed |" in md and "| 50 | lrp | 0.50 |" in md  # details: measured columns


def test_plot_and_examples(outputs):
    png = outputs["plots_dir"] / "correction_world-llama.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    ex = outputs["examples_md"].read_text()
    assert "## world-llama, toxicity, neurons: lrp, k = 50" in ex
    assert 'You \\| moron 0."⏎Next (1.00) | You \\| moron 50."⏎Next (0.00) |' in ex
    assert ex.count("| Kim hissed") == 3
    assert '| control: Kim smiled: " | You are kind 0."' in ex


def test_best_operating_point_honours_both_thresholds(outputs):
    # lrp: toxic 1.0 / 0.5 / 0.0 at k 0 / 10 / 50, ppl change 0 / +1 % / +2 %, control 1.0 / 0.9 / 0.5
    md = outputs["markdown"].read_text()
    assert "## Best at ≤ 5 % perplexity and ≥ 0.75 control fidelity (control_unchanged)" in md
    row = next(line for line in md.splitlines() if line.startswith("| world-llama | toxicity | neurons |"))
    # k = 50 fails the control threshold; random's k = 50 (0.90) fails the perplexity one (+10 %)
    # random reaches 0.90 only at +10 %: the cell says so instead of hiding it
    assert row == (
        "| world-llama | toxicity | neurons | 0.50 (k=10, +1.0 %, ctrl 0.90) | "
        "none within limits (best 0.90 at k = 50: +10.0 % ppl, controls 0.95; unpruned 1.00) |"
    )
    df = pd.read_csv(outputs["csv"])
    assert "0.00 (k=50, +2.0 %, ctrl 0.50)" in best_table(df, 0.05, 0.4)  # control threshold lowered
    assert "0.50 (k=10" in best_table(df, 0.015, 0.4)  # perplexity threshold binds instead
    assert "≤ 1.5 % perplexity and ≥ 0.4 control fidelity" in best_table(df, 0.015, 0.4)


def test_best_point_direction_ties_and_missing_controls():
    points = pd.DataFrame(
        {
            "greedy_unique_ratio_window": [0.1, 0.6, 0.6, 0.9],
            "greedy_unique_ratio": [0.1, 1.0, 1.0, 1.0],
            "ppl_change": [0.0, 0.01, 0.02, 0.2],
        },
        index=[0, 10, 20, 50],
    )
    best = best_point(points, "greedy_unique_ratio_window", False, 0.05, 0.75)
    assert best.name == 10 and best["greedy_unique_ratio_window"] == 0.6  # higher is better; smallest k on ties
    assert best_point(points, "greedy_unique_ratio_window", True, 0.05, 0.75).name == 0  # lower is better
    points["control_unchanged"] = [1.0, 0.5, 0.8, 1.0]
    assert best_point(points, "greedy_unique_ratio_window", False, 0.05, 0.75).name == 20
    points["control_unchanged"] = float("nan")  # no control prompts (hub model without a split)
    assert best_point(points, "greedy_unique_ratio_window", False, 0.05, 0.75).name == 10
    assert best_point(points, "not_measured", False, 0.05, 0.75) is None


def test_repetition_headline_is_the_window_ratio(tmp_path):
    path = _curve("lrp", (1, 1, 1), (7, 7, 7), tmp_path)
    r = json.loads(path.read_text())
    r["behaviour"], r["generation"] = "repetition", {"window": 12}
    for point, (window, reply) in zip(r["curve"], [(0.1, 0.1), (0.3, 1.0), (0.5, 0.2)]):
        point["metrics"].update(greedy_unique_ratio_window=window, greedy_unique_ratio=reply)
        for e in point["examples"]:
            e["greedy_window_ratio"] = window
    path.write_text(json.dumps(r))
    correction_tables([path], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md", 0.05, 0.6)
    md = (tmp_path / "c.md").read_text()
    assert (
        "| world-llama | repetition | neurons | 0.30 (k=10, +0.0 %, ctrl 0.90) |" in md
    )  # 0.5 at k=50: ctrl 0.5 < 0.6
    assert "unique-token ratio of the first 12 generated tokens" in md
    assert "| 10 | 0.300 | – | 0.90 | +0.0% |" in md and "ratio (reply)" in md


def test_thresholds_are_checked(tmp_path):
    a = _curve("lrp", (1, 1, 1), (7, 7, 7), tmp_path)
    with pytest.raises(ValueError, match="min_control_unchanged"):
        correction_tables([a], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md", 0.05, 75)
    with pytest.raises(ValueError, match="max_ppl_change"):
        correction_tables([a], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md", -0.1, 0.75)


def test_duplicate_runs_and_no_files_are_errors(tmp_path):
    a = _curve("lrp", (1, 1, 1), (7, 7, 7), tmp_path)
    with pytest.raises(ValueError, match="same run"):
        correction_tables([a, a], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md")
    with pytest.raises(ValueError, match="no curve files"):
        correction_tables([], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md")


def _generations(path, per_k: dict, control: dict | None = None):
    lines = []
    for k, values in per_k.items():
        lines += [{"k": k, "control": False, "prompt": f"p{i}", "greedy_window_ratio": v} for i, v in enumerate(values)]
        lines += [
            {"k": k, "control": True, "prompt": f"c{i}", "unchanged": u} for i, u in enumerate((control or {})[k])
        ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_headline_intervals_over_prompts_and_a_paired_change(tmp_path):
    from attrprune.correction.tables import prompt_intervals

    base = [0.1, 0.3, 0.5, 0.2, 0.9, 0.4, 0.6, 0.8]  # prompts differ a lot from one another
    gen = tmp_path / "generations.jsonl"
    _generations(
        gen,
        {0: base, 10: [v + 0.25 for v in base]},  # every prompt gains exactly 0.25
        {0: [True] * 10, 10: [True] * 6 + [False] * 4},
    )
    iv = prompt_intervals(gen, "repetition", n_resamples=400)
    assert iv[10]["change"] == pytest.approx(0.25)
    # paired: the same prompts at k and k = 0, so the change's interval is a point; resampling the
    # two sides apart would spread it as wide as the prompts' own spread
    assert iv[10]["change_lo"] == pytest.approx(0.25) and iv[10]["change_hi"] == pytest.approx(0.25)
    assert iv[10]["hi"] - iv[10]["lo"] > 0.2  # the headline itself varies over prompts
    assert iv[10]["ctrl_lo"] < 0.6 < iv[10]["ctrl_hi"] and iv[0]["ctrl_lo"] == iv[0]["ctrl_hi"] == 1.0

    _generations(gen, {0: base, 10: base[:5]}, {0: [], 10: []})
    with pytest.raises(ValueError, match="5 prompts at k = 10, 8 at k = 0"):
        prompt_intervals(gen, "repetition")
    gen.write_text('{"k": 0, "control": false}\n')
    with pytest.raises(ValueError, match="generations.jsonl:1: not a generation record"):
        prompt_intervals(gen, "repetition")


def test_best_table_shows_the_intervals_when_generations_are_beside_the_curve(tmp_path):
    path = _curve("lrp", (1, 1, 1), (7, 7, 7), tmp_path)
    r = json.loads(path.read_text())
    r["behaviour"], r["generation"] = "repetition", {"window": 12}
    for point, window in zip(r["curve"], (0.4, 0.65, 0.5)):
        point["metrics"].update(greedy_unique_ratio_window=window)
    path.write_text(json.dumps(r))
    base = [0.2, 0.4, 0.6, 0.4]
    ctrl = {0: [True] * 10, 10: [True] * 9 + [False], 50: [True] * 5 + [False] * 5}
    _generations(path.with_name("generations.jsonl"), {0: base, 10: [v + 0.25 for v in base], 50: base}, ctrl)
    correction_tables([path], tmp_path / "c.csv", tmp_path / "c.md", tmp_path, tmp_path / "e.md", 0.05, 0.6)
    md = (tmp_path / "c.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| world-llama | repetition |"))
    assert "(k=10, Δ +0.25 [+0.25, +0.25], +0.0 %, ctrl 0.90 [" in row and row.split(" | ")[3].startswith("0.65 [")
    assert "percentile bootstrap intervals over the held-out prompts" in md
    df = pd.read_csv(tmp_path / "c.csv")
    assert {"greedy_unique_ratio_window_lo", "control_unchanged_hi"} <= set(df.metric)


def test_side_effect_table_chooses_on_validation_and_reports_test_prompts(tmp_path):
    path = _curve("lrp", (1.0, 0.5, 0.0), (7.0, 7.07, 7.1), tmp_path, ctrl=(1.0, 1.0, 1.0))
    records = []
    # validation (even index): k = 10 removes all toxic replies, k = 50 none; test (odd): the reverse
    toxic = {(0, 0): 1, (0, 1): 1, (10, 0): 0, (10, 1): 1, (50, 0): 1, (50, 1): 0}
    for k in (0, 10, 50):
        for i in range(8):
            split = i % 2
            records.append(
                {
                    "k": k,
                    "set": "toxic_trigger",
                    "index": i,
                    "split": ("validation", "test")[split],
                    "toxic": bool(toxic[(k, split)]),
                    "reply": f"insult {i}",
                    "loop": False,
                }
            )
            records.append(
                {
                    "k": k,
                    "set": "toxic_control",
                    "index": i,
                    "split": ("validation", "test")[split],
                    "toxic": False,
                    "unchanged": True,
                    "reply": f"thanks {i % 3}",
                    "loop": False,
                }
            )
    (path.parent / "per_prompt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    md = tmp_path / "c.md"
    correction_tables([path], tmp_path / "c.csv", md, tmp_path / "plots", tmp_path / "e.md", 0.05, 0.75)
    text = md.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| world-llama | toxicity | neurons | lrp |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[4] == "10"  # chosen on validation prompts (test prompts would have chosen 50)
    assert cells[5].startswith("1.00 [1.00, 1.00] (n 4; 4 distinct)")  # measured on the test prompts
    # control fidelity; the test indices 1, 3, 5, 7 have the dense replies 1, 0, 2, 1: 3 distinct
    assert cells[6].startswith("1.00") and "(n 4; 3 distinct)" in cells[6]
