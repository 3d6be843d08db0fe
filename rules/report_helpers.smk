# What `snakemake --report report.html` shows: each table stage's interpreted tables as HTML
# (written beside its Markdown) and its plots, with a caption from report/ and labels saying
# which model and stage each item is. Captions are .rst files under report/, rendered with the
# run's config (snakemake.config) and, for per-job items, its wildcards.

REPORT_CAPTIONS = "../report/"


def report_table(path, models, stage, caption, category, shows, subcategory="Tables"):
    """A table stage's HTML table, shown in the report (one item for all the stage's `models`).
    One table per subcategory: with two, the report would turn their `shows` into a toggle."""
    return report(
        path,
        caption=REPORT_CAPTIONS + caption,
        category=category,
        subcategory=subcategory,
        labels={"model": ", ".join(models) or "none", "stage": stage, "shows": shows},
    )


def report_plots(stage, caption, category, shows):
    """The per-model PNG plots of a table stage (`results/plots/{stage}_{model}.png`), one report
    item each, labelled by model. The SVG beside each is a plain output (`plot_svgs`)."""
    plots = []
    for model in stage_models(stage):
        # (no line may begin with `report`: Snakemake would read it as its `report:` directive)
        plot = report(
            f"results/plots/{stage}_{model}.png",
            caption=REPORT_CAPTIONS + caption,
            category=category,
            subcategory="Plots",
            labels={"model": model, "stage": stage, "shows": shows},
        )
        plots.append(plot)
    return plots


def plot_svgs(stage):
    """The SVG copies of a table stage's plots."""
    return [f"results/plots/{stage}_{model}.svg" for model in stage_models(stage)]
