"""The paper preset's models and the cost model's constants (bench/cost.py): the published
configs of the preset's models (``ARCHS``), what is measured on a CPU (``CPU_PLAN``), lm-eval task
sizes, everything assumed rather than measured (``ASSUMED``), the GPU rules and their estimate
rows (``RULE_STAGES``); the linear fit in layers and the shapes (parameters, prunable weights,
FLOPs per token) computed from the configs. No torch.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "paper.yaml"
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
DEFAULT_OUT = ROOT / "bench" / "cost_estimates.json"

# SLURM requests must be at least this multiple of the estimate (profiles/slurm/config.yaml).
MARGIN = 1.5
# Shortest runtime the profile requests (minutes): below it a node hiccup or a slow file system
# kills a job that would have finished.
MIN_RUNTIME_MIN = 30

# Published config.json values of the preset's models (configs/paper.yaml pins the revisions).
ARCHS = {
    "opt-125m": {
        "hf_id": "facebook/opt-125m",
        "family": "opt",
        "config": dict(
            vocab_size=50272,
            hidden_size=768,
            num_hidden_layers=12,
            ffn_dim=3072,
            num_attention_heads=12,
            max_position_embeddings=2048,
            word_embed_proj_dim=768,
            do_layer_norm_before=True,
            activation_function="relu",
            enable_bias=True,
            tie_word_embeddings=True,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=2,
        ),  # fmt: skip
    },
    "tinyllama-1.1b": {
        "hf_id": "TinyLlama/TinyLlama_v1.1",
        "family": "llama",
        "config": dict(
            vocab_size=32000,
            hidden_size=2048,
            intermediate_size=5632,
            num_hidden_layers=22,
            num_attention_heads=32,
            num_key_value_heads=4,
            max_position_embeddings=2048,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
        ),  # fmt: skip
    },
    "llama-2-7b": {
        "hf_id": "meta-llama/Llama-2-7b-hf",
        "family": "llama",
        "config": dict(
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
        ),  # fmt: skip
    },
    "llama-3-8b": {
        "hf_id": "meta-llama/Meta-Llama-3-8B",
        "family": "llama",
        "config": dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=8192,
            rms_norm_eps=1e-5,
            rope_theta=500000.0,
            tie_word_embeddings=False,
        ),  # fmt: skip
    },
}

# Layer counts and sequence length measured per model on a CPU (on CUDA: 1, 2, 4 layers at the
# preset's 2,048 tokens). OPT-125M's 12 is its full depth: the check on the extrapolation. The
# 7-8B models fit through two points (1 and 3 layers: ~10 GB and a minute each on 2 cores), so
# their residuals are zero by construction; OPT-125M's and TinyLlama's three show the linearity.
# The pruning sort takes ~0.4 us per weight on one shared core (a 7-8B layer: over a minute), so
# on a CPU it is measured on OPT-125M only; the other models get OPT-125M's fit scaled by their
# sort work (weights x log2 of the row length: row-wise sorts of n log n).
CPU_PLAN = {
    "opt-125m": {"layers": (1, 2, 4, 12), "fit": (1, 2, 4), "tokens": 64, "prune": True},
    "tinyllama-1.1b": {"layers": (1, 2, 4), "fit": (1, 2, 4), "tokens": 32, "prune": False},
    "llama-2-7b": {"layers": (1, 3), "fit": (1, 3), "tokens": 16, "prune": False},
    "llama-3-8b": {"layers": (1, 3), "fit": (1, 3), "tokens": 16, "prune": False},
}
CPU_GENERATE = {"rows": 4, "prompt": 8, "new": 8}
SAMPLES = 3  # reference samples per scores call: the fastest one's time is the per-sample time
REPEATS = 2  # forward and generate calls: the fastest counts
PRUNE_DONOR = "opt-125m"

SCORE_METHODS = ("lrp", "gradient", "wanda")
# What a preset scoring method costs, by the measured method it stands for (None: no model pass).
METHOD_COST = {"lrp": "lrp", "gradient": "gradient", "wanda": "wanda", "activation": "wanda", "magnitude": None,
               "random": None, "atp": "gradient"}  # fmt: skip

# lm-eval tasks: (evaluated split, documented examples, requests per example, ASSUMED tokens per
# request = context + continuation). Examples are the split sizes of the datasets' cards; tokens
# per request are rough means for a Llama tokenizer (assumptions). lm-eval runs one
# forward per request (no sharing of the context between choices is assumed, so an upper bound).
# wikitext: lm-eval's wikitext-2-raw-v1 test split, 62 documents, ~245k words, scored as rolling
# windows of the model's max length: ~0.34 M Llama tokens (166 windows of 2,048, the count the
# Wanda and SparseGPT code report for LLaMA); one request per window.
LM_EVAL_TASKS = {
    "wikitext": {"split": "test", "examples": 62, "requests": 1, "tokens": 340_000 / 62, "rolling": True},
    "boolq": {"split": "validation", "examples": 3270, "requests": 2, "tokens": 150},
    "rte": {"split": "validation", "examples": 277, "requests": 2, "tokens": 80},
    "hellaswag": {"split": "validation", "examples": 10042, "requests": 4, "tokens": 80},
    "winogrande": {"split": "validation", "examples": 1267, "requests": 2, "tokens": 35},
    "arc_easy": {"split": "test", "examples": 2376, "requests": 4, "tokens": 40},
    "arc_challenge": {"split": "test", "examples": 1172, "requests": 4, "tokens": 45},
    "openbookqa": {"split": "test", "examples": 500, "requests": 4, "tokens": 25},
}

# Everything the model assumes rather than measures.
ASSUMED = {
    # The paper's A100 number for LRP (bench/gpu_check.py): the CPU -> A100 time factor.
    "anchor": {"model": "llama-2-7b", "method": "lrp", "tokens": 2048, "seconds_per_sample": 5.0},
    # Token perplexity on WikiText-2 test (compression.ppl_source wikitext2) at compression.seqlen.
    "wikitext2_tokens": 340_000,
    "ioi_prompt_tokens": 20,  # IOI sentences (ACDC / Wang et al. templates) in subword tokens
    "behaviour_prompt_tokens": 20,  # RealToxicityPrompts prompts and the repetition prompts
    # Correction evaluates on the behaviour_prompts job's evaluation half and its control prompts;
    # their sizes depend on the model's outputs: assumed equal to the reference set's n.
    "eval_prompts_as_reference_n": True,
    "generation_batch": 64,  # correction / behaviour_prompts rows per generate call (CLI default)
    "circuit_batch": 256,  # IOI prompts per forward (CLI default)
    "startup_s": 60,  # python, torch, lm-eval imports and CUDA init per job
    "fs_bytes_per_s": 250e6,  # shared file system read / write (checkpoint, score files)
    # GPU -> host copy of the fp32 scores at the end of a scores job (CPU runs: the once-per-call
    # work over all weights is measured on the CPU, where it is memory-bound, and not converted).
    "d2h_bytes_per_s": 10e9,
    "checkpoint_bytes_per_param": 2,  # checkpoints on disk and staged on the CPU in 16 bits
    "device_bytes_per_param": 2,  # bf16 on the GPU (dtype auto on an A100 / H100)
    # Floor of one forward call on a GPU: Python and generate overhead per call plus kernel
    # launches per decoder layer (HF eager); small batches (decode steps, ablation forwards)
    # cannot go faster than this.
    "gpu_seconds_per_call": 5e-3,
    "gpu_seconds_per_layer_call": 2e-4,
    "host_runtime_bytes": 3e9,  # CUDA context, lm-eval / datasets, Detoxify on the host
    "detoxify_host_bytes": 1e9,
    "small_output_bytes": {"compress": 150e3, "circuit": 200e3, "correction_row": 400},
}

# GPU rules of the workflow and the estimate rows that size them: the table the workflow's job
# sizes read (attrprune.cluster, torch-free), so that both always name the same stages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from attrprune.cluster import RULE_STAGES  # noqa: E402, F401, I001  (this module is where the cost model reads it)


# ----------------------------------------------------------------------------- the fit


def fit_layers(layers, values) -> dict:
    """Least-squares line value = intercept + slope * layers: {slope, intercept, residuals}."""
    n = len(layers)
    if n < 2 or len(set(layers)) < 2:
        raise ValueError(f"a line needs two distinct layer counts, got {list(layers)}")
    mx, my = sum(layers) / n, sum(values) / n
    sxx = sum((x - mx) ** 2 for x in layers)
    slope = sum((x - mx) * (y - my) for x, y in zip(layers, values)) / sxx
    intercept = my - slope * mx
    return {
        "layers": list(layers),
        "values": list(values),
        "slope": slope,
        "intercept": intercept,
        "residuals": [y - (intercept + slope * x) for x, y in zip(layers, values)],
    }


def extrapolate(fit: dict, layers: int) -> float:
    return fit["intercept"] + fit["slope"] * layers


def full_layers(model: str) -> int:
    """Decoder layers of a preset model: num_hidden_layers of its published config."""
    return ARCHS[model]["config"]["num_hidden_layers"]


# ----------------------------------------------------------------------------- shapes


def shape(model: str) -> dict:
    """Counts from the published config: prunable weights (the suite's linear layers: q, k, v, o
    and the MLP; not embeddings or LM head), score-file elements (weights + one per output unit +
    heads), parameters, attention heads, MLP neurons (per layer and total)."""
    c = ARCHS[model]["config"]
    h, n_layers, heads = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    if ARCHS[model]["family"] == "llama":
        kv = c["num_key_value_heads"] * h // heads
        i = c["intermediate_size"]
        outs = [h, kv, kv, h, i, i, h]  # q k v o gate up down: output units
        ins = [h, h, h, h, h, h, i]
        layer_params = sum(o * n for o, n in zip(outs, ins)) + 2 * h  # + 2 RMSNorms
        embed = c["vocab_size"] * h
        other = embed + (0 if c["tie_word_embeddings"] else embed) + h
        neurons = i
    else:  # OPT: biases, learned positions (offset 2), tied LM head
        f = c["ffn_dim"]
        outs, ins = [h, h, h, h, f, h], [h, h, h, h, h, f]
        layer_params = sum(o * n for o, n in zip(outs, ins)) + sum(outs) + 4 * h
        other = c["vocab_size"] * h + (c["max_position_embeddings"] + 2) * h + 2 * h
        neurons = f
    prunable_layer = sum(o * n for o, n in zip(outs, ins))
    sort_work = sum(o * n * math.log2(n) for o, n in zip(outs, ins))  # row-wise sorts, per layer
    return {
        "layers": n_layers,
        "hidden": h,
        "prunable_per_layer": prunable_layer,
        "prunable": prunable_layer * n_layers,
        "sort_work_per_layer": sort_work,
        "score_elements": (prunable_layer + sum(outs) + heads) * n_layers,
        "params_per_layer": layer_params,
        "params": layer_params * n_layers + other,
        "lm_head_params": c["vocab_size"] * h,
        "heads": heads * n_layers,
        "neurons": neurons * n_layers,
        "max_positions": c["max_position_embeddings"],
        "vocab": c["vocab_size"],
    }


def flops_per_token(model: str, context: int) -> float:
    """Forward FLOPs per token of a causal sequence of `context` tokens: 2 per prunable weight and
    LM-head weight, plus QK^T and AV over the mean causal context (context + 1) / 2."""
    s = shape(model)
    return 2 * (s["prunable"] + s["lm_head_params"]) + 4 * s["layers"] * s["hidden"] * (context + 1) / 2
