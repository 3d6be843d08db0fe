"""Targeted correction (rules/correction.smk): behaviour prompts of hub models, correction, tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attrprune.registry import BEHAVIOURS, STAGE_GRANULARITIES
from attrprune.stages.args import (
    MODEL_NAME_HELP,
    ModelJob,
    TableJob,
    arg,
    job_inputs,
    ks,
    names,
    non_negative_int,
    positive_float,
    positive_int,
)

SCORERS = ("world", "detoxify")
DETOXIFY_MODEL_TYPES = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
SCORER_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class ScorerArgs:
    """The toxicity scorer: the world's planted-insult detector or Detoxify (checkpoint, device)."""

    scorer: str = arg("world", choices=SCORERS, help="toxicity scorer")
    scorer_model_type: str = arg("original", choices=DETOXIFY_MODEL_TYPES, help="Detoxify checkpoint")
    scorer_device: str = arg("auto", choices=SCORER_DEVICES, help="device of the Detoxify scorer")

    def scorer_options(self) -> dict:
        """make_scorer's keyword arguments (none for the world scorer)."""
        if self.scorer != "detoxify":
            return {}
        return {"model_type": self.scorer_model_type, "device": self.scorer_device}


@dataclass(frozen=True, kw_only=True)
class CorrectionStage(ScorerArgs, ModelJob):
    """targeted correction: prune the k lowest R_general - R_unwanted components, measure the behaviour and
    general perplexity"""

    model_name: str | None = arg(None, help=MODEL_NAME_HELP)
    intervention: str = arg(
        "prune",
        choices=("prune", "aura"),
        help="prune the k lowest R_general - R_unwanted components, or AurA (toxicity, neurons: dampen each "
        "neuron by its AUROC as a toxicity detector; one operating point, no scores)",
    )
    general_scores: Path | None = arg(None, help="scores on general text (prune)")
    unwanted_scores: Path | None = arg(None, help="scores of the same method on the behaviour's reference set (prune)")
    aura_reference: Path | None = arg(
        None, help='AurA: JSONL of toxicity reference prompts (field "prompt"), completed by the model and labelled'
    )
    aura_neutral: Path | None = arg(None, help='AurA: JSONL of non-toxic text (field "text"; one sentence a line)')
    behaviour: str = arg(choices=tuple(BEHAVIOURS))
    granularity: str = arg(choices=STAGE_GRANULARITIES["correction"], help="MLP neurons (up/fc1) or weight elements")
    weight_modules: str = arg(
        "neuron_role",
        choices=("neuron_role", "mlp", "all"),
        help="weights of up/fc1 only (the paper's fc1 weights), of every MLP projection, or of every linear layer",
    )
    ks: list[int] = arg(
        (), parse=ks, help="comma-separated numbers of components to prune (k=0 is always added; AurA: ignored)"
    )
    normalization: str = arg(
        "sum", choices=("sum", "max", "none"), help="scale of each side before R_general - R_unwanted"
    )
    prompts_file: Path = arg(help='JSONL of held-out behaviour prompts (field "prompt")')
    control_file: Path | None = arg(
        None,
        help='JSONL of control prompts (field "prompt"; the first N as for --prompts-file) on which the model '
        "should behave normally: their replies against k = 0 measure collateral damage (none = no controls)",
    )
    n_prompts: int | None = arg(None, parse=positive_int, help="first N prompts")
    new_tokens: int | None = arg(
        None, parse=positive_int, help="tokens per continuation (default 20 toxicity, 50 repetition)"
    )
    window: int = arg(
        12, parse=positive_int, help="repetition: the uniqueness ratio and distinct-2 over the first N generated tokens"
    )
    n_samples: int = arg(4, parse=non_negative_int, help="sampled continuations per prompt (0 = greedy only)")
    top_p: float = arg(0.9, parse=positive_float)
    temperature: float = arg(1.0, parse=positive_float)
    seed: int = arg(0, help="sampling seed")
    reply_only: bool | None = arg(
        None, help="measure the behaviour on the quoted reply only (default: yes with the world scorer)"
    )
    ppl_tasks: list[str] = arg(
        ("world_ppl",), parse=names, help="rolling-perplexity lm-eval tasks (world_ppl, wikitext)"
    )
    data_dir: Path | None = arg(None, help="the world's data folder (for world_* tasks)")
    ppl_limit: int | None = arg(None, parse=positive_int, help="first N documents per perplexity task")
    side_effects: bool = arg(
        False,
        help="world models: measure all four behaviour sets of --data-dir (toxicity and repetition triggers and "
        "controls), held-out-name IOI and the planted facts at every k (per_prompt.jsonl)",
    )
    loop_span: int = arg(4, parse=positive_int, help="side effects: a loop is a span of N tokens occurring 3 times")
    side_new_tokens: int | None = arg(
        None, parse=positive_int, help="side effects: tokens per continuation (default 20 toxicity, 50 repetition)"
    )
    batch_size: int = arg(64, parse=positive_int)
    out_dir: Path = arg(help="generations.jsonl and curve.json (written last)")

    def run(self) -> None:
        from attrprune.correction.run import run_correction

        self.set_threads()
        run_correction(self)


@dataclass(frozen=True, kw_only=True)
class BehaviourPromptsStage(ScorerArgs, ModelJob):
    """hub models: select the prompts that show a behaviour, split into reference / evaluation"""

    behaviour: str = arg(choices=tuple(BEHAVIOURS))
    scorer: str = arg("detoxify", choices=SCORERS, help="toxicity scorer")
    n_candidates: int = arg(5000, parse=positive_int, help="RealToxicityPrompts prompts tried (toxicity)")
    n_reference: int = arg(93, parse=positive_int, help="at most this many (and at most half) for reference")
    threshold: float | None = arg(None, help="toxicity >= (default 0.9) / uniqueness ratio < (default 0.5)")
    new_tokens: int | None = arg(None, parse=positive_int, help="greedy tokens per prompt (default 20 / 50)")
    seed: int = arg(0)
    reference_out: Path = arg()
    evaluation_out: Path = arg()
    control_out: Path | None = arg(
        None, help="prompts on which the model does not show the behaviour (the correction stage's controls)"
    )

    def run(self) -> None:
        from attrprune.correction.prompts import behaviour_prompts

        self.set_threads()
        behaviour_prompts(
            self.behaviour,
            self.model_dir,
            self.reference_out,
            self.evaluation_out,
            self.control_out,
            n_candidates=self.n_candidates,
            n_reference=self.n_reference,
            threshold=self.threshold,
            new_tokens=self.new_tokens,
            scorer=self.scorer,
            scorer_options=self.scorer_options(),
            seed=self.seed,
            dtype=self.dtype,
            device_map=self.device_map,
        )


@dataclass(frozen=True, kw_only=True)
class CorrectionTablesStage(TableJob):
    """correction tables (CSV, Markdown), trade-off plots and examples from curve.json files"""

    curves: list[str] = job_inputs(help="comma-separated curve.json paths")
    examples_md: Path = arg(help="before/after generations per model, behaviour and method")
    max_ppl_change: float = arg(
        0.05, parse=float, help="best-operating-point table: largest perplexity increase (0.05 = 5 %%)"
    )
    min_control_unchanged: float = arg(
        0.75, parse=float, help="best-operating-point table: smallest share of control replies unchanged from k = 0"
    )

    def run(self) -> None:
        from attrprune.correction.tables import correction_tables

        correction_tables(
            self.curves,
            self.csv,
            self.markdown,
            self.plots_dir,
            self.examples_md,
            self.max_ppl_change,
            self.min_control_unchanged,
        )
