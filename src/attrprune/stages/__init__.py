"""The workflow's stages as frozen config dataclasses, one per Snakemake rule that runs code.

Each stage declares its arguments as fields (`arg(...)`: default, help, choices, parser) and
does its work in `run()`, importing the heavy modules there, so that building the command line
imports neither torch nor lxt. `attrprune.cli` turns the table `attrprune.cli.STAGES` into
subcommands (field `model_dir` -> flag `--model-dir`); a stage can also be run from Python:

    from attrprune.stages.relevance import ScoresStage
    ScoresStage(model_dir=Path("world/models/world-llama"), refset=Path("r.safetensors"),
                method="lrp", out=Path("s.safetensors")).run()

Flags shared by several stages are declared once, in the base classes of `args`.
"""
