"""One style for every plot: a method keeps its colour across panels whatever order the data
meets it in, and every figure is written as PNG and SVG."""

import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from attrprune import plotstyle
from attrprune.circuits import tables as circuit_tables


def _curves():
    rows = []
    # weights: lrp and random; heads: activation and lrp (lrp second in groupby order there)
    for gran, methods in (("weight", ("lrp", "random")), ("head", ("activation", "lrp"))):
        for method in methods:
            for seed in (0, 1):
                for sparsity in (0.0, 0.5, 0.9):
                    rows.append(
                        dict(model="m", method=method, granularity=gran, scope="global", seed_index=seed,
                             sparsity=sparsity, kept_fraction=1 - sparsity, accuracy=1 - sparsity / 2,
                             logit_diff=1.0, normalized_logit_diff=1 - sparsity / 3 - seed / 100)
                    )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def captured(monkeypatch):
    figures = []
    monkeypatch.setattr(plotstyle, "save", lambda fig, path, dpi=110: figures.append(fig))
    return figures


def test_a_method_has_one_colour_in_every_panel(captured, tmp_path):
    circuit_tables.plot_model(_curves(), "m", tmp_path / "c.png", threshold=0.9)
    (fig,) = captured
    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            method = line.get_label().split(" ")[0]
            if method in ("lrp", "random", "activation"):
                colours.setdefault(method, set()).add(line.get_color())
    assert colours["lrp"] == {plotstyle.method_colour("lrp")}  # both panels, both rows
    assert len({c for cs in colours.values() for c in cs}) == 3  # and each method its own
    axes = fig.axes
    assert all(ax.get_xscale() == "log" for ax in axes)  # kept fraction on a log axis
    labels = [t for ax in axes for t in ax.get_legend_handles_labels()[1]]
    assert "faithfulness threshold 0.9" in labels and "±1 std over 2 reference seeds" in labels


def test_colours_and_markers_do_not_depend_on_order():
    first = [plotstyle.method_colour(m) for m in ("lrp", "wanda", "sparsegpt")]
    assert first == [plotstyle.method_colour(m) for m in ("lrp", "wanda", "sparsegpt")]
    known = [m for m in plotstyle.known_methods() if m not in ("random",)]
    assert len({plotstyle.method_colour(m) for m in known}) == len(known)  # no two share a colour
    assert plotstyle.method_colour("a-new-method") == plotstyle.method_colour("a-new-method")
    assert plotstyle.scope_linestyle("row") != plotstyle.scope_linestyle("layer")


def test_every_figure_is_written_as_png_and_svg(tmp_path):
    plt = plotstyle.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 2], **plotstyle.method_style("lrp", "row"))
    plotstyle.save(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(tmp_path / "p.svg").getroot()
    assert root.tag.endswith("svg") and float(root.get("width").rstrip("pt")) > 0


def test_compression_plots_the_tables_perplexity_with_random_clipped(captured, tmp_path):
    from attrprune.compression_plot import plot_model

    rows = []
    for method, worst in (("lrp", 7.0), ("random", 5000.0), ("sparsegpt", 6.5)):
        for sparsity, ppl in ((0.0, 5.0), (0.5, worst)):
            rows.append(
                dict(model="m", method=method, scope="row", sparsity=sparsity, perplexity=2 * ppl,
                     token_perplexity=ppl, accuracy=0.5, token_perplexity_se=0.1, perplexity_se=0.1,
                     accuracy_se=0.01, n_seeds=3)
            )  # fmt: skip
    plot_model(pd.DataFrame(rows), "m", tmp_path / "p.png", {"source": "wikitext2", "seqlen": 2048})
    (fig,) = captured
    ppl_axis = fig.axes[0]
    assert ppl_axis.get_ylabel().startswith("wikitext2 token perplexity @2048")
    assert ppl_axis.get_ylim()[1] <= 3 * 7.0 + 1e-9  # random's 5000 does not set the scale
    assert any("random 5,000" in t.get_text() for t in ppl_axis.texts)  # but its value is written
    assert "±1 s.e. over 3 reference seeds" in [t for ax in fig.axes for t in ax.get_legend_handles_labels()[1]]


def test_correction_panels_run_against_k_in_order(captured, tmp_path):
    from attrprune.correction.tables import plot_model

    rows = []
    # k listed out of order, as curve files may hold them
    for k, toxic, ppl, ctrl in ((30, 0.03, 0.098, 0.27), (0, 1.0, 0.0, 1.0), (10, 0.5, 0.02, 0.8)):
        for metric, value in (("greedy_toxic_fraction", toxic), ("ppl_change", ppl), ("control_unchanged", ctrl)):
            rows.append(
                dict(model="m", behaviour="toxicity", method="lrp", granularity="neuron", normalization="sum",
                     k=k, metric=metric, value=value)
            )  # fmt: skip
    plot_model(pd.DataFrame(rows), "m", tmp_path / "c.png", 0.05, 0.75)
    (fig,) = captured
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[0].startswith("toxic fraction") and labels[1].startswith("control replies unchanged")
    assert labels[2].startswith("general perplexity change")
    for ax in fig.axes:
        line = next(li for li in ax.get_lines() if li.get_label() == "lrp")
        assert list(line.get_xdata()) == [0, 10, 30]  # joined in k order, not file order
        assert line.get_color() == plotstyle.method_colour("lrp")
    assert "limit +5 %" in fig.axes[2].get_legend_handles_labels()[1]
    assert "limit 0.75" in fig.axes[1].get_legend_handles_labels()[1]
