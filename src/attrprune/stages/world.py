"""Stages of the built-in world (rules/world.smk): corpus, tokenizer, models, publishing, cards."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from attrprune.stages.args import arg, job_inputs, names, positive_float, positive_int

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorldCorpusStage:
    """generate the built-in world's corpus and evaluation sets"""

    seed: int = arg(0)
    scale: float = arg(1.0, parse=positive_float, help="shrink the training corpus (tests use 0.01)")
    out_dir: Path = arg()

    def run(self) -> None:
        from attrprune.world.corpus import write_corpus

        manifest = write_corpus(self.seed, self.out_dir, scale=self.scale)
        log.info(f"wrote {manifest['n_train_documents']} training documents to {self.out_dir}")


@dataclass(frozen=True, kw_only=True)
class WorldTokenizerStage:
    """train the world's byte-level BPE tokenizer"""

    corpus_dir: Path = arg()
    vocab_size: int = arg(4096, parse=positive_int)
    out_dir: Path = arg()

    def run(self) -> None:
        from attrprune.world.tokenizer import train_tokenizer

        tok = train_tokenizer(self.corpus_dir, self.vocab_size, self.out_dir)
        log.info(f"tokenizer with {len(tok)} tokens written to {self.out_dir}")


@dataclass(frozen=True, kw_only=True)
class WorldTrainStage:
    """train one world model (Llama or OPT architecture) on CPU"""

    family: str = arg(choices=("llama", "opt"))
    corpus_dir: Path = arg()
    tokenizer_dir: Path = arg()
    hidden_size: int = arg(128, parse=positive_int)
    intermediate_size: int = arg(512, parse=positive_int)
    layers: int = arg(2, parse=positive_int)
    heads: int = arg(8, parse=positive_int)
    context: int = arg(64, parse=positive_int)
    batch_size: int = arg(16, parse=positive_int)
    epochs: int = arg(1, parse=positive_int)
    lr: float = arg(3e-3, parse=positive_float)
    seed: int = arg(0)
    threads: int = arg(1, parse=positive_int)
    out_dir: Path = arg()

    def run(self) -> None:
        from attrprune.world.train import WorldModelSpec, train_world_model

        fields = asdict(self)
        spec = WorldModelSpec(**{k: fields[k] for k in WorldModelSpec.__dataclass_fields__})
        _, history = train_world_model(spec, self.corpus_dir, self.tokenizer_dir, self.out_dir, threads=self.threads)
        log.info(
            f"trained {self.family}: {history['steps']} steps in {history['train_seconds']} s, "
            f"final loss {history['final_loss']:.3f}"
        )


@dataclass(frozen=True, kw_only=True)
class WorldCardStage:
    """measure a world model's card (perplexity, IOI, toxicity, repetition)"""

    model_dir: Path = arg()
    data_dir: Path = arg()
    n_prompts: int | None = arg(None, parse=positive_int, help="use only the first N prompts of each set")
    out: Path = arg()

    def run(self) -> None:
        from attrprune.io import write_json
        from attrprune.world.card import measure_card

        result = measure_card(self.model_dir, self.data_dir, self.n_prompts)
        write_json(self.out, result)
        log.info("card: %s", json.dumps(result["card"]))


@dataclass(frozen=True, kw_only=True)
class WorldCardTableStage:
    """one Markdown table from several world-card JSON files"""

    cards: list[str] = job_inputs(help="comma-separated card JSON paths")
    out: Path = arg()

    def run(self) -> None:
        from attrprune import headlines
        from attrprune.lineage import with_code_section
        from attrprune.records import WORLD_CARD, check_values, read_json
        from attrprune.report_html import write_markdown
        from attrprune.world.card import _ROWS, markdown_table, misses, n_targets

        cards = [read_json(p, WORLD_CARD) for p in self.cards]
        for path, card in zip(self.cards, cards):  # every row of the table: a finite number
            check_values(card["card"], {label: get for label, get, *_ in _ROWS}, f"{path}: card")
        # and world_card.html beside it, for the report
        short = headlines.section(headlines.world_card(misses(cards), n_targets()))
        write_markdown(self.out, with_code_section("# World card\n\n" + short + markdown_table(cards), cards))


@dataclass(frozen=True, kw_only=True)
class WorldPublishStage:
    """copy a trained world into the repository and write its card"""

    corpus_dir: Path = arg()
    models_dir: Path = arg()
    models: list[str] = arg(parse=names, help="comma-separated model names under --models-dir")
    out_dir: Path = arg()
    n_prompts: int | None = arg(None, parse=positive_int)
    stamp: Path = arg(help="written last: marks a complete publish")

    def run(self) -> None:
        from attrprune.world.card import publish_world

        publish_world(self.corpus_dir, self.models_dir, self.models, self.out_dir, self.stamp, self.n_prompts)
