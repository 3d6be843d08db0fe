"""The tables stage builds the documented columns, the pivot and the plots from fixture metrics."""

import json

import pandas as pd
import pytest

from attrprune.tables import TIDY_COLUMNS, compression_tables


def _metrics(
    tmp_path, method, seed, sparsity, ppl, ioi, facts, token_ppl=None, seqlen=64, model="world-llama", source="world"
):
    path = tmp_path / model / method / f"s{seed}" / f"sparsity_{sparsity:.2f}" / "metrics.json"
    path.parent.mkdir(parents=True)
    rows = [
        {"task": "world_ppl", "metric": "word_perplexity", "value": ppl, "stderr": None},
        {"task": "world_ioi", "metric": "acc", "value": ioi, "stderr": 0.01},
        {"task": "world_facts", "metric": "acc", "value": facts, "stderr": 0.02},
    ]
    token = None
    if token_ppl is not None:  # as the compress stage writes it (evaluation.perplexity)
        rows.append({"task": f"{source}_tokens", "metric": "token_perplexity", "value": token_ppl, "stderr": None})
        token = {"source": source, "task": f"{source}_tokens", "seqlen": seqlen, "value": token_ppl}
    path.write_text(
        json.dumps(
            {
                "model_dir": f"models/{model}",
                "scope": "row",
                "sparsity": sparsity,
                "sparsity_measured": sparsity,
                "method": method,
                # a calibrated pruner has no scores: its seed is its calibration set's
                "scores": None if method == "sparsegpt" else {"method": method, "refset_seed": seed},
                "pruning": {"calibration": {"seed": seed} if method == "sparsegpt" else None},
                "metrics": rows,
                "token_perplexity": token,
            }
        )
    )
    return path


def test_compression_tables(tmp_path):
    files = []
    for seed, bump in ((0, 0.0), (1, 2.0)):
        files += [
            _metrics(tmp_path, "lrp", seed, 0.0, 8.0, 0.9, 1.0, 5.0),
            _metrics(tmp_path, "lrp", seed, 0.5, 10.0 + bump, 0.8, 0.6, 6.0 + bump),
        ]
    files += [
        _metrics(tmp_path, "random", 0, 0.0, 8.0, 0.9, 1.0, 5.0),
        _metrics(tmp_path, "random", 0, 0.5, 300.0, 0.5, 0.1, 200.0),
    ]
    out = tmp_path / "out"
    compression_tables(files, out / "c.csv", out / "c.md", out / "plots", at=0.5)
    df = pd.read_csv(out / "c.csv")
    assert list(df.columns) == TIDY_COLUMNS and len(df) == 6 * 4
    assert set(df.method) == {"lrp", "random"} and set(df.seed) == {0, 1}
    token = df[df.metric == "token_perplexity"]
    assert set(token.task) == {"world_tokens"} and len(token) == 6  # its own metric, beside lm-eval's rows
    md = (out / "c.md").read_text()
    assert "| method | scope | world token PPL @64 ↓ | lm-eval word PPL ↓ | mean accuracy ↑ | eval s.e. | seeds |" in md
    # lrp at 50 %: token perplexity mean 7 over seeds 6 and 8, word perplexity mean 11 over 10
    # and 12; s.e. = std / sqrt(2) = 1.0
    assert "| lrp | row | 7.00 ± 1.00 | 11.00 ± 1.00 | 0.700 ± 0.000 | 0.011 | 2 |" in md
    assert "| random | row | 200.00 | 300.00 | 0.300 | 0.011 | 1 |" in md
    assert md.index("| lrp |") < md.index("| random |")  # sorted by perplexity
    # every sparsity, token perplexity mean ± s.e. over seeds, best at the highest sparsity first
    sweep = md[md.index("### world-llama: world token perplexity @64 by sparsity") :]
    assert "| method | scope | 0.00 | 0.50 |" in sweep
    assert sweep.index("| lrp | row | 5.00 ± 0.00 | 7.00 ± 1.00 |") < sweep.index("| random | row | 5.00 | 200.00 |")
    assert (out / "plots" / "compression_world-llama.png").stat().st_size > 1000


def test_calibrated_pruners_and_the_dense_model_tabulate(tmp_path):
    files = [_metrics(tmp_path, m, seed, 0.5, 10.0 + seed, 0.8, 0.6) for m in ("sparsegpt", "lrp") for seed in (0, 1)]
    dense = _metrics(tmp_path, "dense", 0, 0.0, 8.0, 0.9, 1.0)
    record = json.loads(dense.read_text())
    dense.write_text(json.dumps({**record, "method": None, "scores": None, "pruning": None}))
    out = tmp_path / "out"
    compression_tables([*files, dense], out / "c.csv", out / "c.md", out / "plots", at=0.5)
    df = pd.read_csv(out / "c.csv")
    assert set(df.method) == {"sparsegpt", "lrp"} and set(df[df.method == "sparsegpt"].seed) == {0, 1}
    # the dense model stands at sparsity 0 of every method x seed
    at_zero = df[(df.sparsity == 0) & (df.metric == "word_perplexity")]
    assert len(at_zero) == 4 and set(at_zero.value) == {8.0}
    assert "| sparsegpt | row | – | 10.50 ± 0.50 |" in (out / "c.md").read_text()


def test_missing_pivot_sparsity_is_an_error(tmp_path):
    files = [_metrics(tmp_path, "lrp", 0, 0.3, 9.0, 0.9, 0.9)]
    with pytest.raises(ValueError, match="no results at sparsity 0.50"):
        compression_tables(files, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "p", at=0.5)


def test_paper_table_fills_our_cells_only_where_we_have_results():
    import pandas as pd

    from attrprune.paper import paper_table

    # perplexity = lm-eval's word perplexity (never in the paper table), token_perplexity = ours
    summ = pd.DataFrame(
        [
            {
                "model": "tinyllama-1.1b",
                "method": "lrp",
                "scope": "row",
                "sparsity": 0.5,
                "perplexity": 19.0,
                "token_perplexity": 12.34,
                "accuracy": 0.4471,
            },
            {
                "model": "tinyllama-1.1b",
                "method": "lrp",
                "scope": "row",
                "sparsity": 0.0,
                "perplexity": 13.0,
                "token_perplexity": 7.99,
                "accuracy": 0.4874,
            },
            {
                "model": "llama-2-7b",
                "method": "lrp",
                "scope": "row",
                "sparsity": 0.5,
                "perplexity": 11.0,
                "token_perplexity": float("nan"),
                "accuracy": 0.5472,
            },
            {  # magnitude per layer (the Wanda repository's), as the paper's column
                "model": "tinyllama-1.1b",
                "method": "magnitude",
                "scope": "layer",
                "sparsity": 0.5,
                "perplexity": 40.0,
                "token_perplexity": 25.0,
                "accuracy": 0.41,
            },
            {  # per row: not the paper's magnitude
                "model": "tinyllama-1.1b",
                "method": "magnitude",
                "scope": "row",
                "sparsity": 0.5,
                "perplexity": 30.0,
                "token_perplexity": 20.0,
                "accuracy": 0.42,
            },
            {  # not in the paper: our row only
                "model": "tinyllama-1.1b",
                "method": "sparsegpt",
                "scope": "layer",
                "sparsity": 0.5,
                "perplexity": 15.0,
                "token_perplexity": 11.0,
                "accuracy": 0.46,
            },
            {
                "model": "world-llama",
                "method": "lrp",
                "scope": "row",
                "sparsity": 0.5,
                "perplexity": 7.4,
                "token_perplexity": 8.1,
                "accuracy": 0.9,
            },
        ]
    )
    settings = {
        "tinyllama-1.1b": {"source": "wikitext2", "seqlen": 2048},
        "world-llama": {"source": "world", "seqlen": 64},
    }
    table = paper_table(summ, 0.5, settings)
    lines = table.splitlines()
    assert "| TinyLlama | lrp | 11.85 | 12.34 | 44.71 | 44.71 |" in lines
    assert "| TinyLlama | dense | 7.98 | 7.99 | 48.74 | 48.74 |" in lines
    assert "| TinyLlama | wanda | 11.52 | – | 45.46 | – |" in lines
    assert "| TinyLlama | magnitude | 24.42 | 25.00 | 41.38 | 41.00 |" in lines
    assert "| TinyLlama | sparsegpt | – | 11.00 | – | 46.00 |" in lines
    assert not any(line.startswith("| TinyLlama | wanda_onepass") for line in lines)  # no results of ours: no row
    assert "| Llama2-7B | lrp | 7.14 | – | 54.72 | 54.72 |" in lines  # no token perplexity: never the word one
    assert "| Llama3-8B | lrp | 9.82 | – | 55.18 | – |" in lines
    assert "ours at windows of 2,048 tokens." in table and "word perplexity" in table


def test_paper_table_says_when_our_seqlen_differs():
    import pandas as pd

    from attrprune.paper import paper_table

    summ = pd.DataFrame(
        [
            {
                "model": "llama-2-7b",
                "method": "lrp",
                "scope": "row",
                "sparsity": 0.5,
                "perplexity": 11.0,
                "token_perplexity": 7.0,
                "accuracy": 0.55,
            }
        ]
    )
    table = paper_table(summ, 0.5, {"llama-2-7b": {"source": "wikitext2", "seqlen": 4096}})
    assert "| Llama2-7B | lrp | 7.14 | 7.00 | 54.72 | 55.00 |" in table.splitlines()
    assert "ours at windows of 4,096 tokens; the paper's windows are 2,048 tokens, so these differ" in table


def test_compression_paper_markdown_uses_token_perplexity(tmp_path):
    files = []
    for method, sparsity, word, token in (
        ("lrp", 0.0, 13.0, 8.0),
        ("lrp", 0.5, 19.0, 12.0),
        ("wanda", 0.5, 18.0, 11.5),
    ):
        files.append(
            _metrics(
                tmp_path,
                method,
                0,
                sparsity,
                word,
                0.4,
                0.5,
                token,
                seqlen=2048,
                model="tinyllama-1.1b",
                source="wikitext2",
            )
        )
    out = tmp_path / "out"
    compression_tables(files, out / "c.csv", out / "c.md", out / "plots", at=0.5, paper_markdown=out / "paper.md")
    paper = (out / "paper.md").read_text()
    assert "| TinyLlama | lrp | 11.85 | 12.00 | 44.71 | 45.00 |" in paper
    assert "| TinyLlama | wanda | 11.52 | 11.50 | 45.46 | 45.00 |" in paper
    assert "| TinyLlama | dense | 7.98 | 8.00 | 48.74 | 45.00 |" in paper
    assert "ours at windows of 2,048 tokens." in paper


def test_token_perplexity_at_mixed_seqlens_is_an_error(tmp_path):
    files = [
        _metrics(tmp_path, "lrp", 0, 0.5, 10.0, 0.9, 0.9, 7.0, seqlen=64),
        _metrics(tmp_path, "lrp", 1, 0.5, 10.0, 0.9, 0.9, 7.0, seqlen=32),
    ]
    with pytest.raises(ValueError, match="different \\(source, seqlen\\)"):
        compression_tables(files, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "p", at=0.5)


def test_metrics_without_token_perplexity_still_tabulate(tmp_path):
    """Metrics files written before the token perplexity existed (or with ppl_source none)."""
    files = [_metrics(tmp_path, "lrp", 0, 0.5, 10.0, 0.9, 0.9)]
    compression_tables(files, tmp_path / "c.csv", tmp_path / "c.md", tmp_path / "p", at=0.5)
    assert "| lrp | row | – | 10.00 | 0.900 | 0.011 | 1 |" in (tmp_path / "c.md").read_text()


def test_paired_differences_over_documents():
    """Against the dense model and lrp on the same documents: the estimate is the seed-mean
    difference computed by hand, the interval covers it, and a method that is worse on every
    document has an interval that excludes 0; the perplexity ratio is exp of the ll difference."""
    import numpy as np

    from attrprune.tables import paired_differences

    n = 40
    dense_acc = np.ones(n)
    lrp_acc = np.r_[np.ones(30), np.zeros(10)]  # 10 documents lost
    worse = np.r_[np.ones(10), np.zeros(30)]  # 30 lost

    def rec(method, seed, acc, ll):
        docs = {"world_ioi": {"acc": list(acc)}, "world_ppl": {"word_perplexity": [[x, 10.0] for x in ll]}}
        return {
            "model_dir": "models/world-llama",
            "method": method,
            "scope": "row",
            "sparsity": 0.0 if method is None else 0.5,
            "per_document": docs,
        }

    ll = -np.linspace(5, 15, n)
    records = [
        rec(None, 0, dense_acc, ll),
        rec("lrp", 0, lrp_acc, ll - 1.0),
        rec("lrp", 1, lrp_acc, ll - 3.0),  # the two seeds average to ll - 2
        rec("wanda", 0, worse, ll - 5.0),
    ]
    df = paired_differences(records).set_index("method")
    assert df.loc["lrp", "vs_dense_acc_diff"] == pytest.approx(-10 / n)
    assert df.loc["lrp", "vs_dense_acc_diff_lo"] <= -10 / n <= df.loc["lrp", "vs_dense_acc_diff_hi"] < 0
    assert df.loc["wanda", "vs_lrp_acc_diff"] == pytest.approx(-20 / n)
    assert df.loc["wanda", "vs_lrp_acc_diff_hi"] < 0
    # word perplexity ratio: exp(Σ Δll / Σ words) = exp(2 n / 10 n) against dense for lrp's seed mean
    assert df.loc["lrp", "vs_dense_ppl_ratio"] == pytest.approx(np.exp(2 / 10))
    assert df.loc["wanda", "vs_lrp_ppl_ratio"] == pytest.approx(np.exp(3 / 10))
    assert np.isnan(df.loc["lrp"].get("vs_lrp_acc_diff", np.nan))  # lrp is not compared with itself
