"""Command line of the suite: one subcommand per workflow stage.

Snakemake rules call these (`python -m attrprune <stage> ... > log 2>&1`), so every job can be
rerun by hand with the command its log shows. Heavy imports happen inside each handler so that
`--help` is fast and no stage imports what another stage patches (lxt).

Run: ``python -m attrprune --help``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# Kept equal to attrprune.relevance.METHODS and the schema's enum (tests check both); spelled
# out here so that `--help` does not import torch.
METHOD_NAMES = ["lrp", "gradient", "wanda", "magnitude", "activation", "random"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _names(text: str) -> list[str]:
    return [t for t in text.split(",") if t]


def _model_args(p: argparse.ArgumentParser, device_map: bool = True) -> None:
    """--dtype and --device-map of a stage that loads a model (attrprune.models.load_model)."""
    from attrprune.models import DEVICE_MAPS, DTYPES  # no torch import: --help stays fast

    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="auto: bfloat16 on GPUs that support it, float16 on older GPUs, float32 on CPU; "
                        "float16 is refused on CPU" if device_map else
                        "auto: the checkpoint's own dtype (config.json); otherwise cast to this dtype")
    if device_map:
        p.add_argument("--device-map", choices=DEVICE_MAPS, default="none",
                       help="none: the whole model on one device (the GPU if any, else CPU); "
                            "auto: spread over all visible GPUs with accelerate (needs CUDA)")


def _world_corpus(a) -> None:
    from attrprune.world.corpus import write_corpus

    manifest = write_corpus(a.seed, a.out_dir, scale=a.scale)
    print(f"wrote {manifest['n_train_documents']} training documents to {a.out_dir}", file=sys.stderr)


def _world_tokenizer(a) -> None:
    from attrprune.world.tokenizer import train_tokenizer

    tok = train_tokenizer(a.corpus_dir, a.vocab_size, a.out_dir)
    print(f"tokenizer with {len(tok)} tokens written to {a.out_dir}", file=sys.stderr)


def _world_train(a) -> None:
    from attrprune.world.train import WorldModelSpec, train_world_model

    spec = WorldModelSpec(
        family=a.family, hidden_size=a.hidden_size, intermediate_size=a.intermediate_size, layers=a.layers,
        heads=a.heads, context=a.context, batch_size=a.batch_size, epochs=a.epochs, lr=a.lr, seed=a.seed,
    )
    _, log = train_world_model(spec, a.corpus_dir, a.tokenizer_dir, a.out_dir, threads=a.threads)
    print(f"trained {a.family}: {log['steps']} steps in {log['train_seconds']} s, final loss {log['final_loss']:.3f}", file=sys.stderr)


def _world_card(a) -> None:
    from attrprune.io import write_json
    from attrprune.world.card import measure_card

    result = measure_card(a.model_dir, a.data_dir, a.n_prompts)
    write_json(a.out, result)
    print(json.dumps(result["card"], indent=1), file=sys.stderr)


def _world_card_table(a) -> None:
    from attrprune.io import atomic_write_text
    from attrprune.world.card import markdown_table

    results = [json.loads(Path(p).read_text()) for p in a.cards]
    atomic_write_text(a.out, markdown_table(results))


def _world_publish(a) -> None:
    from attrprune.world.card import publish_world

    publish_world(a.corpus_dir, a.models_dir, a.models, a.out_dir, a.stamp, a.n_prompts)


def _refsets(a) -> None:
    from attrprune.refsets import build_refset, save_refset

    refset = build_refset(a.kind, a.model_dir, a.data_dir, a.n, a.seed, length=a.length, new_tokens=a.new_tokens,
                          source=a.source, text_file=a.text_file, prompts_file=a.prompts_file, dtype=a.dtype,
                          device_map=a.device_map)
    save_refset(refset, a.out)
    print(f"{a.kind} reference set: {len(refset)} samples x {refset.input_ids.shape[1]} tokens -> {a.out}", file=sys.stderr)


def _scores(a) -> None:
    import torch

    from attrprune.io import provenance
    from attrprune.models import load_model, placement
    from attrprune.refsets import load_refset
    from attrprune.relevance import ScoreOptions, compute_scores
    from attrprune.relevance.store import save_scores

    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    model, _ = load_model(a.model_dir, dtype=a.dtype, device_map=a.device_map)
    refset = load_refset(a.refset)
    options = ScoreOptions(batch_size=a.batch_size, seed=a.seed, lrp_variant=a.lrp_variant, aggregation=a.aggregation)
    scores = compute_scores(a.method, model, refset, options)
    meta = provenance(
        method=a.method, lrp_variant=a.lrp_variant if a.method == "lrp" else None, target=refset.meta.get("target"),
        aggregation=a.aggregation if a.method in ("lrp", "gradient") else None,
        refset=str(a.refset), refset_kind=refset.meta.get("kind"), refset_sha256=refset.meta.get("sha256"),
        refset_seed=refset.meta.get("seed"), n_samples=len(refset), seed=a.seed, batch_size=a.batch_size,
        **placement(model, a.device_map), dtype_requested=a.dtype, model_dir=str(a.model_dir),
    )
    save_scores(scores, a.out, meta)
    print(f"{a.method}: {len(scores.weights)} weight, {len(scores.neurons)} neuron, {len(scores.heads)} head tensors -> {a.out}", file=sys.stderr)


def _sparsities(text: str) -> list[float]:
    values = [float(t) for t in text.split(",") if t]
    bad = [v for v in values if not 0.0 <= v < 1.0]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"sparsities must lie in [0, 1), got {text}")
    return values


def _compress(a) -> None:
    from attrprune.compression import compress_and_evaluate

    _set_threads(a.threads)
    compress_and_evaluate(a.model_dir, a.scores, a.scope, a.sparsities, a.tasks, a.data_dir, a.out_template,
                          batch_size=a.batch_size, limit=a.limit, seed=a.seed,
                          ppl_source=None if a.ppl_source == "none" else a.ppl_source, seqlen=a.seqlen,
                          dtype=a.dtype, device_map=a.device_map, model_name=a.model_name)


def _export_pruned(a) -> None:
    from attrprune.compression import export_pruned

    info = export_pruned(a.model_dir, a.scores, a.scope, a.sparsity, a.out_dir, base_model=a.base_model, dtype=a.dtype)
    print(f"pruned model ({info['sparsity_measured']:.4f} sparse) -> {a.out_dir}", file=sys.stderr)


def _tables(a) -> None:
    from attrprune.tables import compression_tables

    compression_tables(a.metrics, a.csv, a.markdown, a.plots_dir, a.at_sparsity, a.paper_markdown)


def _ioi_data(a) -> None:
    from attrprune.ioi import ioi_data

    rows = ioi_data(a.model_dir, a.n, a.seed, a.split, a.out)
    print(f"{len(rows)} {a.split} IOI prompts -> {a.out}", file=sys.stderr)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _circuit(a) -> None:
    from attrprune.circuits.export import run_circuit

    _set_threads(a.threads)
    run_circuit(a.model_dir, a.scores, a.eval_file, a.granularity, a.scope, a.sparsities, a.threshold, a.out_dir,
                weight_modules=a.weight_modules, ablation_path=a.ablation, top_fraction=a.top_fraction, limit=a.limit,
                batch_size=a.batch_size, dtype=a.dtype, device_map=a.device_map, model_name=a.model_name)


def _circuit_ablation(a) -> None:
    from attrprune.circuits.ablation import run_ablation

    _set_threads(a.threads)
    run_ablation(a.model_dir, a.eval_file, a.out, n_weights=a.n_weights, weight_modules=a.weight_modules,
                 seed=a.seed, limit=a.limit, dtype=a.dtype, device_map=a.device_map)


def _circuit_tables(a) -> None:
    from attrprune.circuits.tables import circuit_tables

    circuit_tables(a.curves, a.csv, a.summary_csv, a.markdown, a.plots_dir)


def _ks(text: str) -> list[int]:
    values = [int(t) for t in text.split(",") if t]
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"ks must be comma-separated non-negative integers, got {text}")
    return values


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _correction(a) -> None:
    from attrprune.correction.run import run_correction

    _set_threads(a.threads)
    run_correction(a.model_dir, a.general_scores, a.unwanted_scores, a.behaviour, a.granularity, a.ks, a.prompts_file,
                   a.out_dir, scorer=a.scorer, scorer_options=json.loads(a.scorer_options) if a.scorer_options else None,
                   reply_only=a.reply_only, new_tokens=a.new_tokens, n_samples=a.n_samples, top_p=a.top_p,
                   temperature=a.temperature, seed=a.seed, n_prompts=a.n_prompts, ppl_tasks=a.ppl_tasks,
                   data_dir=a.data_dir, ppl_limit=a.ppl_limit, normalization=a.normalization,
                   weight_modules=a.weight_modules, batch_size=a.batch_size, dtype=a.dtype, device_map=a.device_map,
                   model_name=a.model_name)


def _behaviour_prompts(a) -> None:
    from attrprune.correction.prompts import behaviour_prompts

    _set_threads(a.threads)
    behaviour_prompts(a.behaviour, a.model_dir, a.reference_out, a.evaluation_out, n_candidates=a.n_candidates,
                      n_reference=a.n_reference, threshold=a.threshold, new_tokens=a.new_tokens, scorer=a.scorer,
                      scorer_options=json.loads(a.scorer_options) if a.scorer_options else None, seed=a.seed,
                      dtype=a.dtype, device_map=a.device_map)


def _correction_tables(a) -> None:
    from attrprune.correction.tables import correction_tables

    correction_tables(a.curves, a.csv, a.markdown, a.plots_dir, a.examples_md)


def _download_model(a) -> None:
    from attrprune.download import download_model

    record = download_model(a.hf_id, a.revision, a.out_dir)
    print(f"{a.hf_id} at {record['commit_sha']}: {len(record['files'])} files ({record['weights_format']}) -> {a.out_dir}", file=sys.stderr)


def _download_data(a) -> None:
    from attrprune.download import download_datasets, write_marker

    write_marker(a.out, "datasets", download_datasets(a.names))
    print(f"cached {', '.join(a.names)}; marker {a.out}", file=sys.stderr)


def _download_detoxify(a) -> None:
    from attrprune.download import download_detoxify, write_marker

    record = download_detoxify(a.model_type)
    write_marker(a.out, "detoxify", record)
    print(f"Detoxify {a.model_type}: {record['checkpoint']}; marker {a.out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m attrprune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")

    p = sub.add_parser("world-corpus", help="generate the built-in world's corpus and evaluation sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=_positive_float, default=1.0, help="shrink the training corpus (tests use 0.01)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_world_corpus)

    p = sub.add_parser("world-tokenizer", help="train the world's byte-level BPE tokenizer")
    p.add_argument("--corpus-dir", type=Path, required=True)
    p.add_argument("--vocab-size", type=_positive_int, default=4096)
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_world_tokenizer)

    p = sub.add_parser("world-train", help="train one world model (Llama or OPT architecture) on CPU")
    p.add_argument("--family", choices=["llama", "opt"], required=True)
    p.add_argument("--corpus-dir", type=Path, required=True)
    p.add_argument("--tokenizer-dir", type=Path, required=True)
    p.add_argument("--hidden-size", type=_positive_int, default=128)
    p.add_argument("--intermediate-size", type=_positive_int, default=512)
    p.add_argument("--layers", type=_positive_int, default=2)
    p.add_argument("--heads", type=_positive_int, default=8)
    p.add_argument("--context", type=_positive_int, default=64)
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--epochs", type=_positive_int, default=1)
    p.add_argument("--lr", type=_positive_float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=1)
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_world_train)

    p = sub.add_parser("world-card", help="measure a world model's card (perplexity, IOI, toxicity, repetition)")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--n-prompts", type=_positive_int, default=None, help="use only the first N prompts of each set")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_world_card)

    p = sub.add_parser("world-card-table", help="one Markdown table from several world-card JSON files")
    p.add_argument("--cards", type=_names, required=True, help="comma-separated card JSON paths")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_world_card_table)

    p = sub.add_parser("world-publish", help="copy a trained world into the repository and write its card")
    p.add_argument("--corpus-dir", type=Path, required=True)
    p.add_argument("--models-dir", type=Path, required=True)
    p.add_argument("--models", type=_names, required=True, help="comma-separated model names under --models-dir")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--n-prompts", type=_positive_int, default=None)
    p.add_argument("--stamp", type=Path, required=True, help="written last: marks a complete publish")
    p.set_defaults(func=_world_publish)

    p = sub.add_parser("refsets", help="materialise a seeded reference set and its explained target")
    p.add_argument("--kind", choices=["general", "ioi", "toxic", "repetition"], required=True)
    p.add_argument("--model-dir", type=Path, required=True, help="tokenizer (and, for behaviours, generator)")
    p.add_argument("--data-dir", type=Path, default=None, help="the world's data folder (world source, prompts)")
    p.add_argument("--source", choices=["world", "wikitext2", "c4", "json"], default="world",
                   help="general text: the world's, WikiText-2 / C4 from the local datasets cache, or --text-file")
    p.add_argument("--text-file", type=Path, default=None, help="JSONL with a \"text\" field (source json)")
    p.add_argument("--prompts-file", type=Path, default=None,
                   help="ioi / toxic / repetition prompts as JSONL (default: the world's files under --data-dir)")
    p.add_argument("--n", type=_positive_int, default=128, help="number of samples")
    p.add_argument("--length", type=_positive_int, default=None, help="tokens per general-text window (default: model context)")
    p.add_argument("--new-tokens", type=_positive_int, default=20, help="greedy tokens explained per behaviour prompt")
    p.add_argument("--seed", type=int, default=0)
    _model_args(p)  # toxic / repetition sets generate with the model
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_refsets)

    p = sub.add_parser("scores", help="score every weight, neuron and head of a model on a reference set")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--refset", type=Path, required=True)
    p.add_argument("--method", choices=METHOD_NAMES, required=True)
    p.add_argument("--lrp-variant", choices=["attnlrp", "cp"], default="attnlrp")
    p.add_argument("--aggregation", choices=["abs", "signed"], default="abs",
                   help="lrp / gradient over tokens: sum of |R| per token (default) or |sum of R|")
    p.add_argument("--batch-size", type=_positive_int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the random method (and torch)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    _model_args(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_scores)

    p = sub.add_parser("compress", help="prune by scores at many sparsities and evaluate each with lm-eval")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--model-name", default=None, help="the model's name in outputs and tables (default: the folder name)")
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--scope", default="row", help="row, layer, global, or N:M such as 2:4")
    p.add_argument("--sparsities", type=_sparsities, required=True, help="comma-separated, each in [0, 1)")
    p.add_argument("--tasks", type=_names, required=True, help="comma-separated lm-eval task names (world_* ship with the package)")
    p.add_argument("--data-dir", type=Path, default=None, help="the world's data folder (for world_* tasks)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="lm-eval batch size; also windows per token-perplexity pass")
    p.add_argument("--limit", type=_positive_int, default=None, help="evaluate only the first N documents per task")
    p.add_argument("--ppl-source", choices=["world", "wikitext2", "none"], default="none",
                   help="token perplexity (Wanda/SparseGPT protocol) on the world's held-out text (needs --data-dir) "
                        "or the WikiText-2 test split; none: skip it")
    p.add_argument("--seqlen", type=_positive_int, default=None,
                   help="tokens per token-perplexity window (default: the model's max_position_embeddings)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--out-template", required=True, help="output path with {sparsity}, e.g. out/sparsity_{sparsity}/metrics.json")
    _model_args(p)
    p.set_defaults(func=_compress)

    p = sub.add_parser("export-pruned", help="write one pruned model in Hugging Face format")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--scores", type=Path, required=True)
    p.add_argument("--scope", default="row")
    p.add_argument("--sparsity", type=lambda t: _sparsities(t)[0], required=True)
    p.add_argument("--base-model", default=None,
                   help="base_model of the model card: the hub id (e.g. facebook/opt-125m); default --model-dir")
    _model_args(p, device_map=False)  # runs on the CPU: zeroing weights needs no accelerator
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=_export_pruned)

    p = sub.add_parser("tables", help="tidy CSV, paper-style Markdown pivot and plots of compression results")
    p.add_argument("--metrics", type=_names, required=True, help="comma-separated metrics.json paths")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--markdown", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True)
    p.add_argument("--at-sparsity", type=float, default=0.5, help="sparsity of the pivot table (paper: 0.5)")
    p.add_argument("--paper-markdown", type=Path, default=None, help="also write the paper's Table 1 beside ours here")
    p.set_defaults(func=_tables)

    p = sub.add_parser("ioi-data", help="write seeded IOI prompts (single-token names of a model's tokenizer) as JSONL")
    p.add_argument("--model-dir", type=Path, required=True, help="model folder whose tokenizer picks the names")
    p.add_argument("--n", type=_positive_int, default=256, help="number of prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=["reference", "evaluation"], required=True, help="disjoint name halves")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_ioi_data)

    p = sub.add_parser("circuit", help="IOI circuit: prune by task scores over sparsities, find the sparsest circuit above a threshold")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--model-name", default=None, help="the model's name in outputs and tables (default: the folder name)")
    p.add_argument("--scores", type=lambda t: [Path(x) for x in _names(t)], required=True,
                   help="comma-separated score files, one per reference seed (curves per seed, circuit on their mean)")
    p.add_argument("--eval-file", type=Path, required=True, help="JSONL of held-out IOI prompts (prompt, io, s)")
    p.add_argument("--granularity", choices=["weight", "neuron", "head"], required=True)
    p.add_argument("--scope", default="global", help="global or row (weights), global or layer (neurons, heads)")
    p.add_argument("--weight-modules", choices=["mlp", "all"], default="mlp", help="weights of the MLP projections only, or of every linear layer")
    p.add_argument("--sparsities", type=_sparsities, required=True)
    p.add_argument("--threshold", type=_positive_float, default=0.9, help="normalised logit difference the circuit keeps")
    p.add_argument("--ablation", type=Path, default=None, help="circuit-ablation output: score the ranking against it")
    p.add_argument("--top-fraction", type=_positive_float, default=0.1, help="ablation-important components = this top fraction")
    p.add_argument("--limit", type=_positive_int, default=None, help="first N evaluation prompts")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--out-dir", type=Path, required=True, help="curve.json (written last), circuit.safetensors/.json/.png")
    _model_args(p)
    p.set_defaults(func=_circuit)

    p = sub.add_parser("circuit-ablation", help="ground truth: IOI drop when each head, neuron and sampled weight is removed alone")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--eval-file", type=Path, required=True)
    p.add_argument("--n-weights", type=_positive_int, default=256, help="single weights sampled for ablation")
    p.add_argument("--weight-modules", choices=["mlp", "all"], default="mlp")
    p.add_argument("--seed", type=int, default=0, help="seed of the weight sample")
    p.add_argument("--limit", type=_positive_int, default=None, help="first N evaluation prompts")
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--out", type=Path, required=True)
    _model_args(p)
    p.set_defaults(func=_circuit_ablation)

    p = sub.add_parser("circuit-tables", help="circuit tables (CSV, Markdown) and plots from curve.json files")
    p.add_argument("--curves", type=_names, required=True, help="comma-separated curve.json paths")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--summary-csv", type=Path, required=True)
    p.add_argument("--markdown", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True)
    p.set_defaults(func=_circuit_tables)

    p = sub.add_parser("correction", help="targeted correction: prune the k lowest R_general - R_unwanted components, "
                                          "measure the behaviour and general perplexity")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--model-name", default=None, help="the model's name in outputs and tables (default: the folder name)")
    p.add_argument("--general-scores", type=Path, required=True, help="scores on general text")
    p.add_argument("--unwanted-scores", type=Path, required=True, help="scores of the same method on the behaviour's reference set")
    p.add_argument("--behaviour", choices=["toxicity", "repetition"], required=True)
    p.add_argument("--granularity", choices=["neuron", "weight"], required=True, help="MLP neurons (up/fc1) or weight elements")
    p.add_argument("--weight-modules", choices=["neuron_role", "mlp", "all"], default="neuron_role",
                   help="weights of up/fc1 only (the paper's fc1 weights), of every MLP projection, or of every linear layer")
    p.add_argument("--ks", type=_ks, required=True, help="comma-separated numbers of components to prune (k=0 is always added)")
    p.add_argument("--normalization", choices=["sum", "max", "none"], default="sum", help="scale of each side before R_general - R_unwanted")
    p.add_argument("--prompts-file", type=Path, required=True, help="JSONL of held-out behaviour prompts (field \"prompt\")")
    p.add_argument("--n-prompts", type=_positive_int, default=None, help="first N prompts")
    p.add_argument("--new-tokens", type=_positive_int, default=None, help="tokens per continuation (default 20 toxicity, 50 repetition)")
    p.add_argument("--n-samples", type=_non_negative_int, default=4, help="sampled continuations per prompt (0 = greedy only)")
    p.add_argument("--top-p", type=_positive_float, default=0.9)
    p.add_argument("--temperature", type=_positive_float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--scorer", choices=["world", "detoxify"], default="world", help="toxicity scorer")
    p.add_argument("--scorer-options", default=None, help='JSON options of the scorer, e.g. {"model_type": "original", "device": "cuda"}')
    p.add_argument("--reply-only", action=argparse.BooleanOptionalAction, default=None,
                   help="measure the behaviour on the quoted reply only (default: yes with the world scorer)")
    p.add_argument("--ppl-tasks", type=_names, default=["world_ppl"], help="rolling-perplexity lm-eval tasks (world_ppl, wikitext)")
    p.add_argument("--data-dir", type=Path, default=None, help="the world's data folder (for world_* tasks)")
    p.add_argument("--ppl-limit", type=_positive_int, default=None, help="first N documents per perplexity task")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--out-dir", type=Path, required=True, help="generations.jsonl and curve.json (written last)")
    _model_args(p)
    p.set_defaults(func=_correction)

    p = sub.add_parser("behaviour-prompts", help="hub models: select the prompts that show a behaviour, split into reference / evaluation")
    p.add_argument("--behaviour", choices=["toxicity", "repetition"], required=True)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--n-candidates", type=_positive_int, default=5000, help="RealToxicityPrompts prompts tried (toxicity)")
    p.add_argument("--n-reference", type=_positive_int, default=93, help="at most this many (and at most half) for reference")
    p.add_argument("--threshold", type=float, default=None, help="toxicity >= (default 0.9) / uniqueness ratio < (default 0.5)")
    p.add_argument("--new-tokens", type=_positive_int, default=None, help="greedy tokens per prompt (default 20 / 50)")
    p.add_argument("--scorer", choices=["world", "detoxify"], default="detoxify")
    p.add_argument("--scorer-options", default=None, help='JSON, e.g. {"model_type": "original"}')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--reference-out", type=Path, required=True)
    p.add_argument("--evaluation-out", type=Path, required=True)
    _model_args(p)
    p.set_defaults(func=_behaviour_prompts)

    p = sub.add_parser("correction-tables", help="correction tables (CSV, Markdown), trade-off plots and examples from curve.json files")
    p.add_argument("--curves", type=_names, required=True, help="comma-separated curve.json paths")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--markdown", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True, help="gets correction_{model}.png")
    p.add_argument("--examples-md", type=Path, required=True)
    p.set_defaults(func=_correction_tables)

    p = sub.add_parser("download-model", help="fetch a hub model at a pinned revision (login node: needs internet)")
    p.add_argument("--hf-id", required=True, help="Hugging Face repository id, e.g. TinyLlama/TinyLlama_v1.1")
    p.add_argument("--revision", required=True, help="commit id (40 hex digits) or release tag; never main")
    p.add_argument("--out-dir", type=Path, required=True, help="model folder; download.json is written last")
    p.set_defaults(func=_download_model)

    p = sub.add_parser("download-data", help="pre-cache datasets and lm-eval task data (login node: needs internet)")
    p.add_argument("--names", type=_names, required=True, help="comma-separated: wikitext2, c4, realtoxicityprompts, lmeval:<task>")
    p.add_argument("--out", type=Path, required=True, help="marker JSON, written last")
    p.set_defaults(func=_download_data)

    p = sub.add_parser("download-detoxify", help="pre-cache a Detoxify checkpoint and its tokenizer (login node: needs internet)")
    p.add_argument("--model-type", default="original", help="original, unbiased, multilingual, original-small or unbiased-small")
    p.add_argument("--out", type=Path, required=True, help="marker JSON, written last")
    p.set_defaults(func=_download_detoxify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0
