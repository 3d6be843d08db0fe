"""One look for every plot: a colour and marker per method, a line style per scope, labelled
bands and thresholds, and figures written as PNG and SVG.

Colours follow the method's place in one fixed list built from the registry (scoring methods,
then calibrated pruners, one-pass variants, structured-only methods and correction's AurA), never
the order a groupby happens to meet them in, so lrp has the same colour in every panel of every
plot. A method the list does not know (a new one) gets a colour from its name, stable too.

Use: ``style = method_style("lrp", "row")`` then ``ax.plot(x, y, **style)``;
``band(ax, x, low, high, colour, SE_OVER_SEEDS)``; ``threshold(ax, 0.9, "threshold 0.9")``;
``save(fig, path)`` writes ``path`` (PNG) and ``path.with_suffix(".svg")``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from attrprune import registry
from attrprune.io import atomic_path, pyplot

# Band labels: what each shaded area covers.
SE_OVER_SEEDS = "±1 s.e. over reference seeds"
STD_OVER_SEEDS = "±1 std over reference seeds"
BOOTSTRAP_PROMPTS = "95 % bootstrap over prompts"

# Colour-blind-friendly, high-contrast palette (Okabe-Ito, then tab10's distinct extras).
_PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
    "#9467BD",
    "#17BECF",
    "#F0E442",
)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p", "d")
_REFERENCE = {"dense": "#444444", "unpruned": "#444444", "random": "#999999"}
_SCOPE_STYLES = {"row": "-", "layer": "--", "global": "-.", "": "-"}


def known_methods() -> list[str]:
    """Every method name a plot may show, in a fixed order derived from the registry."""
    names = list(registry.METHODS)
    names += [p for p in registry.PRUNERS if p not in names]
    names += [m for m in registry.compression_methods() if m not in names]
    names += [m for m in registry.STRUCTURED_METHODS if m not in names]
    return [*names, "aura"]


def method_colour(method: str) -> str:
    """The method's colour: grey shades for the references (dense, random), else by its place
    in `known_methods` (by a hash of its name when it is not there)."""
    if method in _REFERENCE:
        return _REFERENCE[method]
    names = [m for m in known_methods() if m not in _REFERENCE]
    index = names.index(method) if method in names else zlib.crc32(method.encode())
    return _PALETTE[index % len(_PALETTE)]


def method_marker(method: str) -> str:
    names = known_methods()
    index = names.index(method) if method in names else zlib.crc32(method.encode())
    return _MARKERS[index % len(_MARKERS)]


def scope_linestyle(scope: str | None) -> str:
    """Solid per row, dashed per layer, dash-dot global; N:M and OWL scopes dotted."""
    scope = scope or ""
    return _SCOPE_STYLES.get(scope, ":")


def method_style(method: str, scope: str | None = None, label: str | None = None) -> dict:
    """Keyword arguments for `Axes.plot`: colour, marker, line style and label."""
    if label is None:
        label = method if not scope else f"{method} ({scope})"
    return {
        "color": method_colour(method),
        "marker": method_marker(method),
        "linestyle": scope_linestyle(scope),
        "markersize": 4,
        "linewidth": 1.5,
        "label": label,
    }


def band(ax, x, low, high, colour: str, label: str | None = None) -> None:
    """A shaded interval; `label` (one of the constants above) names what it covers. Pass the
    label once per axes (the legend shows it in grey, for every band of that kind)."""
    ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
    if label:
        ax.fill_between([], [], [], color="#888888", alpha=0.3, linewidth=0, label=label)


def threshold(ax, y: float, label: str, axis: str = "y") -> None:
    """A labelled dotted reference line (a faithfulness threshold, a perplexity limit)."""
    line = ax.axhline if axis == "y" else ax.axvline
    line(y, color="#555555", linewidth=1.0, linestyle=":", label=label)


def finish(ax, legend: bool = True) -> None:
    """Grid and a legend without duplicate entries."""
    ax.grid(alpha=0.3)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        if seen:
            ax.legend(seen.values(), seen.keys(), fontsize=7, framealpha=0.85)


def quality_axes(axes, ppl_label: str, xlabel: str) -> None:
    """The two panels of a compression plot: perplexity (`ppl_label`, log axis) left, mean accuracy
    right, both against `xlabel`; grids, and the legend on the right panel."""
    axes[0].set_yscale("log")
    axes[0].set_ylabel(ppl_label)
    axes[1].set_ylabel("mean accuracy ↑")
    for ax in axes:
        ax.set_xlabel(xlabel)
        finish(ax, legend=ax is axes[1])


def svg_path(path: Path | str) -> Path:
    return Path(path).with_suffix(".svg")


def save(fig, path: Path | str, dpi: int = 110) -> None:
    """Lay out `fig` and write it atomically as PNG at `path` and as SVG beside it; free it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    # SVG text stays text (searchable, scalable); a fixed hash salt keeps reruns byte-identical.
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "attrprune"}):
        with atomic_path(svg_path(path)) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    pyplot().close(fig)
