"""Cost model of the paper preset (configs/paper.yaml): device time, peak device and host memory
and disk of every GPU job, per model, from measurements on scaled-down random-init models.

What is measured. Each preset model is built with random weights from its published config.json
(``ARCHS`` below, hard-coded with the hub ids they come from) but with only a few decoder layers
(a full 7-8B model does not fit a small machine), and on it, through the suite's own code:

* ``scores/<method>``: `attrprune.relevance.compute_scores` for lrp, gradient and wanda, one
  sample per pass as the ``scores`` rule runs it (like bench/gpu_check.py), on 3 samples: the
  fastest sample's time is the per-sample cost, the rest of the call (accumulators, |W| products,
  finiteness checks: once per job, over all weights) is recorded apart;
* ``prune``: the compress job's pruning, `CompressionPlan(model, "lrp", "row", scores)` sorted
  once and applied at sparsity 0.5 (host work: the scores live on the CPU);
* ``forward``: a forward pass and log-softmax, the per-token cost of lm-eval's loglikelihood
  requests, the token perplexity and each IOI evaluation;
* ``generate``: greedy `model.generate` of a batch of rows, the cost per generated token of the
  correction and behaviour_prompts jobs (measured on the models the preset generates with).

Each quantity is measured at several layer counts, fitted linearly in the number of layers
(slope = one decoder layer, intercept = embeddings, LM head and fixed overhead; residuals shown)
and extrapolated to the full depth. OPT-125M is also measured at its full 12 layers: the
"extrapolation check" compares that with the extrapolation from 1, 2 and 4 layers.

What is modelled. Per-job work comes from the preset: job counts as the workflow derives them
(`job_counts`: compression methods x scopes x reference seeds x sparsities, circuit methods x
granularities x scopes, correction behaviours x methods x granularities; the snakemake dry run
of the preset gives the same counts), tokens per job (reference sets, lm-eval task sizes in
``LM_EVAL_TASKS``, IOI prompts, generated rows), then time = tokens x measured cost per token,
scaled from the measured sequence length to the job's by the ratio of FLOPs per token (linear
layers + causal attention), plus startup and file I/O (``ASSUMED``). Device memory = weights in
bf16 + what the stage keeps whatever the tokens (scores: fp32 accumulators, 4 bytes per weight,
or the measured peak where larger; compress: masks and saved values) + one pass: activations
saved for backward (measured, parameters excluded, scaled to the job's tokens per pass and to
bf16) and the logits (tokens x vocabulary x 4-6 bytes; lm-eval scores wikitext in windows of the
model's max length, batch_size at a time). Host memory = the staged checkpoint, the score files
a job holds and the measured peak resident set of the pruning sort, plus a fixed runtime.

CPU runs (the default): torch on one thread, timed in process CPU time (a shared machine's load
changes wall time, not the work), at a short sequence length; turned into A100 times by ONE
factor, chosen so that LRP on Llama-2-7B costs what the paper reports on an A100 (about 5 s per
2,048-token sample; see bench/gpu_check.py). The factor and the effective A100 throughput it
implies (~17 TFLOP/s) are printed; forward-only stages run closer to peak on a GPU, so they are
likely overestimated by it. These rows are estimates for sizing jobs, not GPU measurements: on a
GPU machine run ``python bench/cost.py --device cuda`` (bf16, 2,048 tokens, CUDA peak memory,
wall time; no factor) and commit the JSON it writes.

Run (CPU: ~7 minutes of one core, ~12 GB of memory):
    python bench/cost.py [--out bench/cost_estimates.json] [--markdown cost.md]
GPU:  python bench/cost.py --device cuda
Estimates again from a JSON's measurements (seconds; e.g. after changing an assumption):
    python bench/cost.py --reuse bench/cost_estimates.json --out new.json
Job counts only (no torch):  python bench/cost.py --counts

The JSON (bench/cost_estimates.json, committed) is what tests/unit/test_slurm_sizes.py checks
profiles/slurm/config.yaml against: every GPU rule's runtime and mem_mb must cover the largest
estimate of a preset model by ``MARGIN``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import re
import sys
import threading
import time
from pathlib import Path

import yaml

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

# GPU rules of the workflow and the estimate rows that size them.
RULE_STAGES = {
    "scores": ("scores",),
    "compress": ("compress", "compress_calibrated"),
    "compress_dense": ("compress_dense",),
    "circuit": ("circuit",),
    "circuit_ablation": ("circuit_ablation",),
    "correction": ("correction_toxicity", "correction_repetition"),
    "behaviour_prompts": ("behaviour_prompts",),
}


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


# ----------------------------------------------------------------------------- job counts


def load_preset(path: Path = PRESET) -> dict:
    """The preset with the schema's defaults for the keys it leaves out (one level deep)."""
    cfg = yaml.safe_load(Path(path).read_text())
    schema = yaml.safe_load(SCHEMA.read_text())
    for section, spec in schema.get("properties", {}).items():
        if isinstance(cfg.get(section), dict):
            for key, sub in spec.get("properties", {}).items():
                if key not in cfg[section] and "default" in sub:
                    cfg[section][key] = sub["default"]
    return cfg


def job_counts(cfg: dict) -> dict:
    """{model: {stage: jobs}} of the GPU rules, and per model the score files and reference sets
    the jobs read, counted as rules/*.smk derive them (see the module docstring)."""
    sys.path.insert(0, str(ROOT / "src"))
    from attrprune import registry  # torch-free

    def refsets(kind):
        return [f"{kind}-s{s}" for s in cfg["refsets"][kind]["seeds"]]

    out: dict[str, dict] = {}

    def slot(model):
        return out.setdefault(model, {"jobs": {}, "score_files": set(), "refsets": set()})

    def add(model, stage, n=1):
        jobs = slot(model)["jobs"]
        jobs[stage] = jobs.get(stage, 0) + n

    comp = cfg["compression"]
    sparsities = [s for s in comp["sparsities"] if s > 0]
    for model in comp["models"] or []:
        general = refsets("general")
        for method in comp["methods"]:
            scores_method = registry.compression_methods()[method]
            for scope in comp.get("method_scopes", {}).get(method, comp["scopes"]):
                base, allocation = registry.split_allocation(scope)
                reads = scores_method is None or allocation == "owl" or registry.METHODS[scores_method].reads_refset
                nm = registry.parse_scope(base)
                n_sparsities = 1 if isinstance(nm, tuple) else len(sparsities)
                for refset in general if reads else general[:1]:
                    add(model, "compress" if scores_method else "compress_calibrated", n_sparsities)
                    if scores_method:
                        slot(model)["score_files"].add((scores_method, refset))
                    if scores_method is None or allocation == "owl":
                        slot(model)["refsets"].add(refset)
        if len(sparsities) < len(comp["sparsities"]):
            add(model, "compress_dense")

    circ = cfg["circuits"]
    for model in circ["models"] or []:
        for method in circ["methods"]:
            for gran in circ["granularities"]:
                if method in registry.methods_for("circuits", gran):
                    scopes = circ["weight_scopes"] if gran == "weight" else ["global"]
                    add(model, "circuit", len(scopes))
                    slot(model)["score_files"].update((method, r) for r in refsets("ioi"))
        if circ.get("ablation") is not None:
            add(model, "circuit_ablation")

    corr = cfg["correction"]
    for model in corr["models"] or []:
        for behaviour in corr["behaviours"]:
            kind = registry.BEHAVIOURS[behaviour]
            add(model, "behaviour_prompts")
            for method in corr["methods"]:
                for gran in corr["granularities"]:
                    if method in registry.methods_for("correction", gran):
                        add(model, f"correction_{behaviour}")
                        slot(model)["score_files"].update({(method, refsets("general")[0]), (method, refsets(kind)[0])})

    for entry in out.values():
        entry["refsets"] |= {r for _, r in entry["score_files"]}
        scores = {}
        for method, refset in entry["score_files"]:
            key = (method, refset.rsplit("-s", 1)[0])
            scores[key] = scores.get(key, 0) + 1
        entry["jobs"]["scores"] = len(entry["score_files"])
        entry["scores_by_method_kind"] = {f"{m}/{k}": n for (m, k), n in sorted(scores.items())}
    return out


# ----------------------------------------------------------------------------- measurement


def clock(device: str) -> float:
    """Seconds for timing: on a CPU the process's CPU time (torch runs one thread: the work done,
    whatever else the machine runs meanwhile, and unaffected if the process is paused); on CUDA
    wall time (kernels run asynchronously; callers synchronize)."""
    return time.process_time() if device == "cpu" else time.perf_counter()


class Peak:
    """Peak memory of a block above what was allocated when it started: host resident set
    (VmHWM, reset through /proc/self/clear_refs; elsewhere a 2 ms sampling thread) and, on CUDA,
    `torch.cuda.max_memory_allocated`; the bytes of tensors saved for backward (activations,
    counted with `saved_tensors_hooks` as bench/relevance_speed.py does); the seconds it took."""

    def __init__(self, device: str, exclude: frozenset = frozenset()):
        self.device = device
        self.exclude = exclude  # storages not to count as saved (the parameters: no new memory)

    @staticmethod
    def _status(field: str) -> int:
        return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())[1]) * 1024

    def __enter__(self):
        import torch

        gc.collect()
        self.host_base = self._status("VmRSS")
        self._thread = None
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self._peak, self._stop = self.host_base, threading.Event()

            def sample():
                while not self._stop.wait(0.002):
                    self._peak = max(self._peak, self._status("VmRSS"))

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.device_base = torch.cuda.memory_allocated()
        self.saved_bytes = 0

        def pack(t):
            if t.untyped_storage().data_ptr() not in self.exclude:
                self.saved_bytes += t.numel() * t.element_size()
            return t

        self._hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._hooks.__enter__()
        self.start = clock(self.device)
        return self

    def __exit__(self, *exc):
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        self.seconds = clock(self.device) - self.start
        self._hooks.__exit__(None, None, None)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = self._peak
        else:
            peak = self._status("VmHWM")
        self.host_bytes = max(0, peak - self.host_base)
        self.device_bytes = (
            torch.cuda.max_memory_allocated() - self.device_base if self.device == "cuda" else self.host_bytes
        )
        return False


def build(model: str, n_layers: int, device: str, dtype):
    """Random-init model of the published config with `n_layers` decoder layers, built without
    the slow initializers and filled with a periodic N(0, 0.02) pattern (values do not change the
    cost; they only have to be finite)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM
    from transformers.modeling_utils import no_init_weights

    spec = ARCHS[model]
    cfg_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if spec["family"] == "llama" else (OPTConfig, OPTForCausalLM)
    cfg = cfg_cls(**{**spec["config"], "num_hidden_layers": n_layers})
    with no_init_weights(), torch.device(device):
        m = model_cls(cfg)
    g = torch.Generator(device="cpu").manual_seed(0)
    chunk = (torch.randn(1 << 20, generator=g) * 0.02).to(device)
    with torch.no_grad():
        for name, p in m.named_parameters():
            flat = p.data.view(-1)
            if "norm" in name and name.endswith("weight"):
                flat.fill_(1.0)
                continue
            full = flat.numel() // chunk.numel()
            if full:
                flat[: full * chunk.numel()].view(full, -1).copy_(chunk.expand(full, -1))
            flat[full * chunk.numel() :].copy_(chunk[: flat.numel() - full * chunk.numel()])
    return m.to(dtype).eval()


def set_depth(model, n: int, full: list):
    """Keep the first `n` of the built decoder layers (`full`): one build serves every count."""
    import torch

    from attrprune.architectures import architecture_of

    arch = architecture_of(model)
    parent, attr = arch.blocks.rsplit(".", 1)
    setattr(model.get_submodule(parent), attr, torch.nn.ModuleList(full[:n]))
    model.config.num_hidden_layers = n


@contextlib.contextmanager
def timed_batches(device: str):
    """Seconds the scoring methods spend on each batch of the reference set (`clock` time
    between handing out a batch and being asked for the next): the per-sample cost, apart from
    what a call does once over all weights (accumulators, |W| products, finiteness checks)."""
    import torch

    import attrprune.relevance.methods as methods

    marks: list[float] = []
    original = methods._batches

    def batches(*args, **kwargs):
        for batch in original(*args, **kwargs):
            start = clock(device)
            yield batch
            if device == "cuda":
                torch.cuda.synchronize()
            marks.append(clock(device) - start)

    methods._batches = batches
    try:
        yield marks
    finally:
        methods._batches = original


def measure_model(
    model: str, layer_counts, tokens: int, device: str, dtype, fwd_batch: int, gen: dict | None, prune_at=()
) -> dict:
    """{layers: {quantity: {seconds, host_bytes, device_bytes, tokens}}} on `device`."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
    from relevance_speed import batch_for

    from attrprune.architectures import architecture_of
    from attrprune.pruning.plan import CompressionPlan
    from attrprune.relevance import ScoreOptions, compute_scores

    m = build(model, max(layer_counts), device, dtype)
    arch = architecture_of(m)
    full = list(arch.block_list(m))
    opts = ScoreOptions(batch_size=1, progress=False)
    refset = batch_for(m, SAMPLES, tokens)
    ids = batch_for(m, fwd_batch, tokens).input_ids.to(device)
    measure_generate = gen is not None
    gen = gen or {"rows": 1, "prompt": 4, "new": 1}
    prompt = batch_for(m, gen["rows"], gen["prompt"]).input_ids.to(device)
    pad = m.config.pad_token_id if m.config.pad_token_id is not None else 0

    def forward(ids=ids):
        with torch.no_grad():
            torch.log_softmax(m(input_ids=ids).logits.float(), -1)

    def generate(prompt=prompt, new=gen["new"]):  # noqa: B008
        m.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                   min_new_tokens=new, do_sample=False, pad_token_id=pad)  # fmt: skip

    params = frozenset(p.untyped_storage().data_ptr() for p in m.parameters())
    out = {}
    for i, n in enumerate(sorted(layer_counts)):
        set_depth(m, n, full)
        s = shape(model)
        if sum(arch.weight(m.get_submodule(k)).numel() for k in arch.linear_names(m)) != s["prunable_per_layer"] * n:
            raise AssertionError(f"{model}: prunable weights of the built model differ from shape()")
        row = {}
        if i == 0:  # warm-up on 4 tokens: lxt's patching, first-call overheads
            for method in SCORE_METHODS:
                compute_scores(method, m, batch_for(m, 1, 4), opts)
            forward(ids[:1, :4])
            if measure_generate:
                generate(prompt[:1, :4], 1)
        for method in SCORE_METHODS:
            with Peak(device, params) as p, timed_batches(device) as marks:
                result = compute_scores(method, m, refset, opts)
            row[f"scores/{method}"] = {
                "seconds": min(marks),  # per sample: the fastest (a shared machine only adds time)
                "call_seconds": max(0.0, p.seconds - sum(marks)),  # once per call, over all weights
                "host_bytes": p.host_bytes,
                "device_bytes": p.device_bytes,
                "saved_bytes": p.saved_bytes / SAMPLES,  # per sample
                "tokens": tokens,
            }
            if method == "lrp" and n in prune_at:
                with Peak(device) as p:
                    plan = CompressionPlan(m, "lrp", "row", result)
                    with plan.pruned(0.5):
                        pass
                row["prune"] = {"seconds": p.seconds, "host_bytes": p.host_bytes, "device_bytes": p.device_bytes,
                                "weights": s["prunable_per_layer"] * n}  # fmt: skip
                del plan
            del result
        for name, fn, extra in (
            ("forward", forward, {"tokens": fwd_batch * tokens}),
            ("generate", generate, {"rows": gen["rows"], "new_tokens": gen["new"], "prompt": gen["prompt"]}),
        ):
            if name == "generate" and not measure_generate:
                continue
            seconds = []
            with Peak(device) as p:
                for _ in range(REPEATS):
                    start = clock(device)
                    fn()
                    if device == "cuda":
                        torch.cuda.synchronize()
                    seconds.append(clock(device) - start)
            row[name] = {"seconds": min(seconds), "host_bytes": p.host_bytes, "device_bytes": p.device_bytes, **extra}
        out[n] = row
        print(f"  {model} {n} layers: " + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in row.items()), flush=True)
    return out


def cpu_gemm_flops(seconds: float = 1.0) -> float:
    """FLOP/s of a 2048^2 fp32 matmul on this CPU (for the record: what the factor is relative to)."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    n, start = 0, clock("cpu")
    while clock("cpu") - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (clock("cpu") - start)


# ----------------------------------------------------------------------------- the model


def fits_of(measured: dict, fit_layers_used) -> dict:
    """{quantity: {"seconds": fit, "work_bytes": fit}} over the layer counts used for fitting."""
    layers = sorted(fit_layers_used)
    quantities = [q for q in measured[layers[0]] if all(q in measured[n] for n in layers)]
    keys = {"seconds": "seconds", "call_seconds": "call_seconds", "work_bytes": "device_bytes",
            "host_bytes": "host_bytes", "saved_bytes": "saved_bytes"}  # fmt: skip
    return {
        q: {
            fit: fit_layers(layers, [measured[n][q][key] for n in layers])
            for fit, key in keys.items()
            if key in measured[layers[0]][q]
        }
        for q in quantities
    }


def prune_cost(runs: dict, model: str) -> tuple[float, float]:
    """(host seconds, host bytes) of the compress job's pruning at full depth: the model's own
    fit, or where it was not measured PRUNE_DONOR's fit scaled per layer by the sort work (time)
    and by the weights (bytes)."""
    s, L = shape(model), full_layers(model)
    if "prune" in runs[model]["fits"]:
        f = runs[model]["fits"]["prune"]
        return extrapolate(f["seconds"], L), max(0.0, extrapolate(f["host_bytes"], L))
    if PRUNE_DONOR not in runs or "prune" not in runs[PRUNE_DONOR]["fits"]:
        raise SystemExit(f"{model}: pruning not measured; measure {PRUNE_DONOR} too (--models)")
    f, donor = runs[PRUNE_DONOR]["fits"]["prune"], shape(PRUNE_DONOR)
    per_weight = s["prunable_per_layer"] / donor["prunable_per_layer"]  # memory: bytes per weight
    per_sort = s["sort_work_per_layer"] / donor["sort_work_per_layer"]  # time: n log n per row
    seconds = (f["seconds"]["intercept"] + f["seconds"]["slope"] * L) * per_sort
    return seconds, max(0.0, (f["host_bytes"]["intercept"] + f["host_bytes"]["slope"] * L) * per_weight)


def estimate(cfg: dict, counts: dict, runs: dict, device: str) -> dict:
    """Per model and stage: jobs, device seconds per job, device-hours, peak device and host
    bytes, disk bytes; plus the CPU -> A100 factor. `runs`: {model: {"measured", "fits",
    "tokens", "fwd_batch", "gen"}}."""
    A = ASSUMED
    anchor = A["anchor"]
    per_token = {}  # model -> quantity -> device seconds per token at the measured length
    for model, run in runs.items():
        L = full_layers(model)
        per_token[model] = {
            q: extrapolate(f["seconds"], L) / (run["fwd_batch"] * run["tokens"] if q == "forward" else run["tokens"])
            for q, f in run["fits"].items()
            if q.startswith(("scores/", "forward"))
        }
        g = run["gen"]
        if "generate" in run["fits"]:
            per_token[model]["generate"] = extrapolate(run["fits"]["generate"]["seconds"], L) / (g["rows"] * g["new"])
    if device == "cuda":
        factor = 1.0
    else:
        a = anchor["model"]
        if a not in runs:
            raise SystemExit(f"the CPU -> A100 factor needs {a} measured (--models)")
        cpu_sample = (
            per_token[a]["scores/lrp"]
            * anchor["tokens"]
            * flops_per_token(a, anchor["tokens"])
            / (flops_per_token(a, runs[a]["tokens"]))
        )
        factor = anchor["seconds_per_sample"] / cpu_sample
    implied_tflops = (
        3 * flops_per_token(anchor["model"], anchor["tokens"]) * anchor["tokens"] / anchor["seconds_per_sample"] / 1e12
    )

    def dev_seconds(model, q, tokens, context, calls=0):
        """Device seconds of `tokens` tokens of quantity q at `context` tokens per sequence, and at
        least `calls` forward calls at the per-layer floor."""
        run = runs[model]
        measured_ctx = run["gen"]["prompt"] if q == "generate" else run["tokens"]
        t = per_token[model][q] * tokens * flops_per_token(model, context) / flops_per_token(model, measured_ctx)
        return max(
            factor * t, calls * (A["gpu_seconds_per_call"] + full_layers(model) * A["gpu_seconds_per_layer_call"])
        )

    out = {"factor_cpu_to_a100": factor, "implied_a100_tflops": implied_tflops, "models": {}}
    for model, entry in counts.items():
        if model not in runs:
            continue
        run, s, L = runs[model], shape(model), full_layers(model)
        dtype_scale = 1.0 if device == "cuda" else A["device_bytes_per_param"] / 4  # fp32 -> bf16 activations
        weights_dev = s["params"] * A["device_bytes_per_param"]
        staged = s["params"] * A["checkpoint_bytes_per_param"]
        score_file = 4 * s["score_elements"]
        # Host: the process, plus the larger of the checkpoint staged on the CPU (freed when the
        # model moves to the GPU, before any scores are made or read) and what the job holds later:
        # score files (and their serialized copy while saving), the pruning's sort keys and masks
        # (measured on the CPU, where it also keeps what a GPU job keeps on the device).
        base_host = run["host_base_bytes"] + A["host_runtime_bytes"]
        io = A["fs_bytes_per_s"]
        load = A["startup_s"] + staged / io

        def work(q, run=run, L=L):
            """Peak bytes of quantity q above what was allocated before, at full depth."""
            return max(0.0, extrapolate(run["fits"][q]["work_bytes"], L))

        def state(q, s=s):
            """What a scores call keeps on the device whatever the tokens: the fp32 accumulators or
            scores (4 bytes per weight; on a CPU run the measured peak where it is larger)."""
            return max(4 * s["prunable"], work(q) if device == "cpu" else 0.0) if q.startswith("scores/") else 0.0

        def pass_bytes(q, tokens_per_pass, run=run, s=s, L=L, dtype_scale=dtype_scale):
            """Device bytes of one pass of `tokens_per_pass` tokens beyond weights and state. CUDA:
            the measured peak, scaled to the tokens. CPU: the activations saved for backward (measured,
            in the device dtype) plus the logits per token and vocabulary entry: bf16 logits and
            lm-eval's bf16 log-softmax (4 bytes), or bf16 logits and the fp32 copy the explained
            target takes (scores: 6 bytes)."""
            measured_tokens = run["fwd_batch"] * run["tokens"] if q == "forward" else run["tokens"]
            ratio = tokens_per_pass / measured_tokens
            if device == "cuda":
                return max(0.0, work(q) - state(q)) * ratio
            fit = run["fits"][q].get("saved_bytes")
            saved = max(0.0, extrapolate(fit, L)) if fit else 0.0
            return saved * ratio * dtype_scale + tokens_per_pass * s["vocab"] * (6 if q.startswith("scores/") else 4)

        prune_s, prune_bytes = prune_cost(runs, model)
        rows = {}

        # scores: per method and reference-set kind
        score_rows = {}
        for mk, n_jobs in entry["scores_by_method_kind"].items():
            method, kind = mk.split("/")
            r = cfg["refsets"][kind]
            per_seq = {"general": r.get("length", 2048), "ioi": A["ioi_prompt_tokens"]}.get(
                kind, A["behaviour_prompt_tokens"] + r.get("new_tokens", 0)
            )
            q = METHOD_COST[method]
            compute = dev_seconds(model, f"scores/{q}", r["n"] * per_seq, per_seq, calls=r["n"]) if q else 0.0
            if q:  # once per job over all weights: measured on a GPU; on a CPU run, the copy to the host
                compute += (
                    max(0.0, extrapolate(run["fits"][f"scores/{q}"]["call_seconds"], L))
                    if device == "cuda"
                    else score_file / A["d2h_bytes_per_s"]
                )
            device_peak = weights_dev + (state(f"scores/{q}") + pass_bytes(f"scores/{q}", per_seq) if q else 0)
            score_rows[mk] = {
                "jobs": n_jobs,
                "seconds": load + compute + score_file / io,
                "parts_s": {"load": load, "device": compute, "write_scores": score_file / io},
                "device_bytes": device_peak,
                "host_bytes": base_host + max(staged, 2 * score_file),
                "disk_bytes": score_file,
            }
        rows["scores"] = {
            "jobs": sum(r["jobs"] for r in score_rows.values()),
            "seconds": max(r["seconds"] for r in score_rows.values()),
            "device_hours": sum(r["jobs"] * r["seconds"] for r in score_rows.values()) / 3600,
            "device_bytes": max(r["device_bytes"] for r in score_rows.values()),
            "host_bytes": max(r["host_bytes"] for r in score_rows.values()),
            "disk_bytes": sum(r["jobs"] * r["disk_bytes"] for r in score_rows.values()),
            "by_method_kind": score_rows,
        }

        # compression: lm-eval tasks + token perplexity, per sparsity
        comp = cfg["compression"]
        if any(k.startswith("compress") for k in entry["jobs"]):
            max_len = s["max_positions"]  # lm-eval's max_length: the model's positions
            eval_s, calls, eval_tokens = 0.0, 0, 0
            for task in comp["tasks"]:
                t = LM_EVAL_TASKS[task]
                n_req = t["examples"] * t["requests"]
                tokens = n_req * t["tokens"]
                ctx = min(max_len, t["tokens"]) if not t.get("rolling") else max_len
                eval_s += dev_seconds(model, "forward", tokens, ctx)
                calls += math.ceil(n_req / comp["batch_size"])
                eval_tokens += tokens
            seqlen = comp["seqlen"] or max_len
            if comp["ppl_source"] != "none":
                eval_s += dev_seconds(model, "forward", A["wikitext2_tokens"], seqlen)
                eval_tokens += A["wikitext2_tokens"]
            eval_s = max(eval_s, calls * (A["gpu_seconds_per_call"] + L * A["gpu_seconds_per_layer_call"]))
            # Largest pass: lm-eval's rolling windows of max_len x batch (logits + log-softmax).
            fwd_dev = pass_bytes(
                "forward", comp["batch_size"] * max(max_len if "wikitext" in comp["tasks"] else 0, seqlen)
            )
            general = cfg["refsets"]["general"]
            calib_tokens = general["n"] * general["length"]
            # bool masks and the pruned values kept for restoring, at the highest sparsity
            masks_dev = s["prunable"] * (1 + max(comp["sparsities"]) * A["device_bytes_per_param"])
            common = {"eval_tokens": eval_tokens}
            rows["compress"] = {
                **common,
                "jobs": entry["jobs"].get("compress", 0),
                "seconds": load + score_file / io + prune_s + eval_s,
                "parts_s": {"load": load, "read_scores": score_file / io, "prune_host": prune_s, "evaluate": eval_s},
                "device_bytes": weights_dev + masks_dev + fwd_dev,
                "host_bytes": base_host + max(staged, score_file + prune_bytes),
            }
            # Calibrated pruners: one sequential pass over the calibration set per sparsity (the
            # cost of wanda scores), block inputs and outputs kept on the device; SparseGPT's
            # per-layer solves are not modelled (seconds per layer on a GPU).
            blocks_dev = 2 * calib_tokens * s["hidden"] * A["device_bytes_per_param"]
            rows["compress_calibrated"] = {
                **common,
                "jobs": entry["jobs"].get("compress_calibrated", 0),
                "seconds": load + dev_seconds(model, "scores/wanda", calib_tokens, general["length"]) + eval_s,
                "parts_s": {
                    "load": load,
                    "calibrate": dev_seconds(model, "scores/wanda", calib_tokens, general["length"]),
                    "evaluate": eval_s,
                },  # fmt: skip
                "device_bytes": weights_dev + blocks_dev + fwd_dev,
                "host_bytes": base_host + staged,
            }
            rows["compress_dense"] = {
                **common,
                "jobs": entry["jobs"].get("compress_dense", 0),
                "seconds": load + eval_s,
                "parts_s": {"load": load, "evaluate": eval_s},
                "device_bytes": weights_dev + fwd_dev,
                "host_bytes": base_host + staged,
            }
            small = A["small_output_bytes"]["compress"]
            for k in ("compress", "compress_calibrated", "compress_dense"):
                rows[k]["disk_bytes"] = rows[k]["jobs"] * small

        # circuits: IOI evaluations over the sweep and the search; exhaustive ablation
        circ = cfg["circuits"]
        if entry["jobs"].get("circuit"):
            from attrprune.circuits.faithfulness import curve_sparsities

            seeds = len(cfg["refsets"]["ioi"]["seeds"])
            grid = curve_sparsities(circ["sparsities"], circ.get("faithfulness_sizes") or None)
            evaluations = seeds * len(grid) + 16 + 2  # sweep per seed, sparsest-circuit scan, dense + ablated
            prompts, pt = circ["limit"] or 500, A["ioi_prompt_tokens"]
            per_eval_calls = math.ceil(prompts / A["circuit_batch"])
            compute = dev_seconds(model, "forward", evaluations * prompts * pt, pt, evaluations * per_eval_calls)
            rows["circuit"] = {
                "jobs": entry["jobs"]["circuit"],
                "evaluations": evaluations,
                "seconds": load + seeds * score_file / io + seeds * prune_s + compute,
                "parts_s": {
                    "load": load,
                    "read_scores": seeds * score_file / io,
                    "sort_host": seeds * prune_s,
                    "evaluate": compute,
                },  # fmt: skip
                "device_bytes": weights_dev + s["prunable"] + pass_bytes("forward", A["circuit_batch"] * pt),
                "host_bytes": base_host + max(staged, (seeds + 2) * score_file + prune_bytes),
                "disk_bytes": entry["jobs"]["circuit"] * (A["small_output_bytes"]["circuit"] + s["prunable"]),
            }
        if entry["jobs"].get("circuit_ablation"):
            ab = circ["ablation"]
            forwards = s["heads"] + s["neurons"] + ab["n_weights"] + 1
            pt = A["ioi_prompt_tokens"]
            calls = forwards * math.ceil(ab["limit"] / A["circuit_batch"])
            rows["circuit_ablation"] = {
                "jobs": entry["jobs"]["circuit_ablation"],
                "forwards": forwards,
                "seconds": load + dev_seconds(model, "forward", forwards * ab["limit"] * pt, pt, calls),
                "device_bytes": weights_dev + pass_bytes("forward", A["circuit_batch"] * pt),
                "host_bytes": base_host + staged,
                "disk_bytes": 4 * (s["heads"] + s["neurons"] + 2 * ab["n_weights"]),
            }

        # correction: per k (and k = 0), generate, score, control prompts, lm-eval perplexity
        corr = cfg["correction"]
        for behaviour in corr["behaviours"]:
            key = f"correction_{behaviour}"
            if not entry["jobs"].get(key):
                continue
            kind = {"toxicity": "toxic", "repetition": "repetition"}[behaviour]
            n_eval = corr["n_prompts"] or cfg["refsets"][kind]["n"]
            samples = corr["sampling"]["n"][behaviour]
            new = corr["new_tokens"][behaviour]
            rows_gen = n_eval * (1 + samples) + n_eval  # greedy + samples, control prompts greedy
            points = len({0, *corr["ks"]["neuron"]})  # ks per granularity have the same length here
            points = max(points, len({0, *corr["ks"]["weight"]}))
            gb = A["generation_batch"]
            gen_s = dev_seconds(model, "generate", rows_gen * new, A["behaviour_prompt_tokens"],
                                math.ceil(rows_gen / gb) * new)  # fmt: skip
            ppl_tokens = sum(LM_EVAL_TASKS[t]["examples"] * LM_EVAL_TASKS[t]["tokens"] for t in corr["ppl_tasks"])
            ppl_s = dev_seconds(model, "forward", ppl_tokens, s["max_positions"])
            kv = 2 * s["layers"] * s["hidden"] * A["device_bytes_per_param"] * gb * (A["behaviour_prompt_tokens"] + new)
            rows[key] = {
                "jobs": entry["jobs"][key],
                "points": points,
                "generated_rows_per_point": rows_gen,
                "seconds": load + 2 * score_file / io + prune_s + points * (gen_s + ppl_s),
                "parts_s": {
                    "load": load,
                    "read_scores": 2 * score_file / io,
                    "sort_host": prune_s,
                    "generate": points * gen_s,
                    "perplexity": points * ppl_s,
                },  # fmt: skip
                "device_bytes": weights_dev + s["prunable"] + max(kv, pass_bytes("forward", gb * s["max_positions"])),
                "host_bytes": base_host + max(staged, 4 * score_file + prune_bytes),
                "disk_bytes": entry["jobs"][key] * points * rows_gen * A["small_output_bytes"]["correction_row"],
            }
        if entry["jobs"].get("behaviour_prompts"):
            hub = corr["hub_prompts"]
            new = max(corr["new_tokens"].values())
            gb = A["generation_batch"]
            rows["behaviour_prompts"] = {
                "jobs": entry["jobs"]["behaviour_prompts"],
                "seconds": load
                + dev_seconds(
                    model,
                    "generate",
                    hub["n_candidates"] * new,
                    A["behaviour_prompt_tokens"],
                    math.ceil(hub["n_candidates"] / gb) * new,
                ),  # fmt: skip
                "device_bytes": weights_dev
                + 2 * s["layers"] * s["hidden"] * 2 * gb * (A["behaviour_prompt_tokens"] + new),
                "host_bytes": base_host + staged + A["detoxify_host_bytes"],
                "disk_bytes": 0,
            }
        for r in rows.values():
            r.setdefault("device_hours", r["jobs"] * r["seconds"] / 3600)
        refset_bytes = 0
        for name in entry["refsets"]:
            r = cfg["refsets"][name.rsplit("-s", 1)[0]]
            refset_bytes += 4 * 8 * r["n"] * r.get("length", A["behaviour_prompt_tokens"] + r.get("new_tokens", 0))
        out["models"][model] = {
            "hf_id": ARCHS[model]["hf_id"],
            "shape": s,
            "stages": rows,
            "disk": {
                "score_files": len(entry["score_files"]),
                "score_file_bytes_fp32": score_file,
                "scores_bytes_fp32": len(entry["score_files"]) * score_file,
                "scores_bytes_16bit": len(entry["score_files"]) * score_file // 2,
                "refsets_bytes": refset_bytes,
                "checkpoint_bytes": staged,
                "outputs_bytes": sum(r["disk_bytes"] for k, r in rows.items() if k != "scores"),
            },
        }
    return out


def slurm_needs(est: dict, counts: dict) -> dict:
    """Per GPU rule: the largest estimate (minutes of runtime, MB of host memory) over the preset
    models that run it, and which model that is."""
    needs = {}
    for rule, stages in RULE_STAGES.items():
        cands = [
            (model, st, est["models"][model]["stages"][st])
            for model in est["models"]
            for st in stages
            if counts[model]["jobs"].get(st) and st in est["models"][model]["stages"]
        ]
        if not cands:
            continue
        t = max(cands, key=lambda c: c[2]["seconds"])
        m = max(cands, key=lambda c: c[2]["host_bytes"])
        d = max(cands, key=lambda c: c[2]["device_bytes"])
        needs[rule] = {
            "runtime_min": t[2]["seconds"] / 60,
            "runtime_from": f"{t[0]} {t[1]}",
            "mem_mb": m[2]["host_bytes"] / 1e6,
            "mem_from": f"{m[0]} {m[1]}",
            "device_gb": d[2]["device_bytes"] / 1e9,
            "device_from": f"{d[0]} {d[1]}",
        }
    return needs


def suggested(need: dict) -> dict:
    """The profile's sizes for a need: MARGIN x the estimate, runtime in whole quarter hours (at
    least MIN_RUNTIME_MIN), memory in whole 4 GB."""
    runtime = max(MIN_RUNTIME_MIN, 15 * math.ceil(MARGIN * need["runtime_min"] / 15))
    return {"runtime": runtime, "mem_mb": 4000 * math.ceil(MARGIN * need["mem_mb"] / 4000)}


# ----------------------------------------------------------------------------- output


def fmt_time(seconds: float) -> str:
    m = seconds / 60
    return f"{m:.1f} min" if m < 60 else f"{m / 60:.1f} h"


def markdown(est: dict, device: str) -> str:
    """The cost table: one row per model and GPU stage of the preset, a disk row per model."""
    cpu = device == "cpu"
    lines = [
        f"| model | stage | jobs | time per job{' (A100, est.)' if cpu else ''} | device-hours | peak device GB "
        "| peak host GB | disk GB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    total_h = total_disk = total_16 = 0.0
    for model, m in est["models"].items():
        for stage, r in m["stages"].items():
            if not r["jobs"]:
                continue
            total_h += r["device_hours"]
            lines.append(
                f"| {model} | {stage} | {r['jobs']} | {fmt_time(r['seconds'])} | {r['device_hours']:.1f} | "
                f"{r['device_bytes'] / 1e9:.1f} | {r['host_bytes'] / 1e9:.1f} | {r['disk_bytes'] / 1e9:.2f} |"
            )
        d = m["disk"]
        rest = d["refsets_bytes"] + d["checkpoint_bytes"] + d["outputs_bytes"]
        total_disk += d["scores_bytes_fp32"] + rest
        total_16 += d["scores_bytes_16bit"] + rest
        lines.append(
            f"| {model} | disk in all: {d['score_files']} score files x {d['score_file_bytes_fp32'] / 1e9:.2f} GB "
            f"(fp32), refsets, checkpoint, outputs | | | | | | {(d['scores_bytes_fp32'] + rest) / 1e9:.1f} |"
        )
    lines.append(f"| **all** | | | | **{total_h:.0f}** | | | **{total_disk / 1e9:.0f}** |")
    if cpu:
        note = (
            f"Every row is a CPU measurement extrapolated to the full model: A100 time = CPU time x "
            f"{est['factor_cpu_to_a100']:.3g} (LRP on Llama-2-7B = the paper's 5 s per 2,048-token sample, an "
            f"effective {est['implied_a100_tflops']:.0f} TFLOP/s)."
        )
    else:
        note = f"Measured on {device} ({est.get('device_name', '')}), extrapolated to the full models."
    note += f" Score files in 16 bits instead of fp32: {total_16 / 1e9:.0f} GB of disk in all."
    return "\n".join(lines) + "\n\n" + note + "\n"


def fit_table(runs: dict) -> str:
    lines = ["| model | quantity | layers | seconds | slope s/layer | intercept s | residuals s | full depth s |",
             "|---|---|---|---|---:|---:|---|---:|"]  # fmt: skip
    for model, run in runs.items():
        for q, f in run["fits"].items():
            t = f["seconds"]
            lines.append(
                f"| {model} | {q} | {','.join(map(str, t['layers']))} | {', '.join(f'{v:.3f}' for v in t['values'])} | "
                f"{t['slope']:.4f} | {t['intercept']:.4f} | {', '.join(f'{v:+.3f}' for v in t['residuals'])} | "
                f"{extrapolate(t, full_layers(model)):.3f} |"
            )
    return "\n".join(lines) + "\n"


def measure_all(a, cfg: dict, counts: dict) -> tuple[dict, dict]:
    """({device, threads, ...}, {model: run}) measured on a.device."""
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(a.threads)
    models = a.models.split(",") if a.models else [m for m in ARCHS if m in counts]
    dtype = torch.float32 if a.device == "cpu" else torch.bfloat16
    host_base = Peak._status("VmRSS")
    gemm = cpu_gemm_flops() if a.device == "cpu" else None
    started = time.perf_counter()
    runs = {}
    for model in models:
        if a.device == "cpu":
            plan = CPU_PLAN[model]
            fwd_batch, gen = 1, CPU_GENERATE
        else:
            plan = {
                "layers": (1, 2, 4),
                "fit": (1, 2, 4),
                "tokens": cfg["compression"]["seqlen"] or 2048,
                "prune": True,
            }
            fwd_batch, gen = (
                cfg["compression"]["batch_size"],
                {"rows": ASSUMED["generation_batch"], "prompt": 20, "new": 20},
            )
        generates = {"correction_toxicity", "correction_repetition", "behaviour_prompts"} & set(counts[model]["jobs"])
        gen = gen if generates else None  # only the models the preset generates with
        prune_at = plan["fit"] if plan["prune"] else ()
        measured = measure_model(model, plan["layers"], plan["tokens"], a.device, dtype, fwd_batch, gen, prune_at)
        gc.collect()  # the model built for `model` goes before the next one is built
        if a.device == "cuda":
            torch.cuda.empty_cache()
        runs[model] = {
            "layers_measured": list(plan["layers"]),
            "layers_fitted": list(plan["fit"]),
            "tokens": plan["tokens"],
            "fwd_batch": fwd_batch,
            "gen": gen,
            "host_base_bytes": host_base,
            "measured": measured,
        }
    meta = {
        "device": a.device,
        "device_name": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_gemm_gflops": gemm / 1e9 if gemm else None,
        "measure_seconds": time.perf_counter() - started,
    }
    for run in runs.values():
        run["fits"] = fits_of(run["measured"], run["layers_fitted"])
    return meta, runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--preset", type=Path, default=PRESET)
    ap.add_argument("--models", help="comma-separated subset of " + ",".join(ARCHS))
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: on a shared machine extra threads wait on each other)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON estimates (default: %(default)s)")
    ap.add_argument("--markdown", type=Path, help="also write the tables here")
    ap.add_argument("--counts", action="store_true", help="print the preset's job counts and stop")
    ap.add_argument(
        "--reuse", type=Path, help="no measuring: redo the fits and estimates from this JSON's measurements"
    )
    a = ap.parse_args(argv)

    cfg = load_preset(a.preset)
    counts = job_counts(cfg)
    if a.counts:
        for model, e in counts.items():
            print(model, dict(sorted(e["jobs"].items())), e["scores_by_method_kind"])
        return 0
    if a.reuse:
        old = json.loads(a.reuse.read_text())
        meta = old["measurement"]
        runs = {}
        for model, run in old["runs"].items():
            run["measured"] = {int(n): row for n, row in run["measured"].items()}
            runs[model] = {**run, "fits": fits_of(run["measured"], run["layers_fitted"])}
    else:
        meta, runs = measure_all(a, cfg, counts)
        a.out.parent.mkdir(parents=True, exist_ok=True)  # the raw measurements first: --reuse reads them
        a.out.write_text(json.dumps({"measurement": meta, "runs": runs}, indent=1, default=str) + "\n")
    device = meta["device"]
    checks = {}
    for model, run in runs.items():  # depth measured beyond the fit: the extrapolation's check
        for n in set(run["layers_measured"]) - set(run["layers_fitted"]):
            checks[f"{model}@{n}"] = {
                q: {"measured_s": run["measured"][n][q]["seconds"], "predicted_s": extrapolate(f["seconds"], n)}
                for q, f in run["fits"].items()
                if q in run["measured"][n]
            }
    est = estimate(cfg, counts, runs, device)
    needs = slurm_needs(est, counts)
    result = {
        "generated_by": " ".join(["python bench/cost.py", *(sys.argv[1:] if argv is None else argv)]),
        "measurement": meta,
        "preset": str(a.preset.relative_to(ROOT) if a.preset.is_relative_to(ROOT) else a.preset),
        "margin": MARGIN,
        "min_runtime_min": MIN_RUNTIME_MIN,
        "assumed": ASSUMED,
        "lm_eval_tasks": LM_EVAL_TASKS,
        "jobs": {
            m: {"jobs": e["jobs"], "scores_by_method_kind": e["scores_by_method_kind"]} for m, e in counts.items()
        },
        "factor_cpu_to_a100": est["factor_cpu_to_a100"],
        "implied_a100_tflops": est["implied_a100_tflops"],
        "estimates": est["models"],
        "slurm": {rule: {**n, "suggested": suggested(n)} for rule, n in needs.items()},
        "fits": {m: {q: f for q, f in r["fits"].items()} for m, r in runs.items()},
        "extrapolation_checks": checks,
        "runs": {m: {k: v for k, v in r.items() if k != "fits"} for m, r in runs.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")

    table = markdown(est, device)
    fits = fit_table(runs)
    lines = ["", "## What the paper preset costs", "", table, "## Linear fits in layers (seconds)", "", fits]
    if checks:
        lines += ["## Extrapolation check", ""]
        for where, qs in checks.items():
            lines.append(
                f"{where}: "
                + ", ".join(
                    f"{q} {v['measured_s']:.3f} s measured vs {v['predicted_s']:.3f} s predicted" for q, v in qs.items()
                )
            )
        lines.append("")
    lines += ["## SLURM sizes (profiles/slurm/config.yaml: at least MARGIN x estimate)", ""]
    lines += [
        f"{rule}: estimate {n['runtime_min']:.0f} min ({n['runtime_from']}), {n['mem_mb'] / 1000:.1f} GB host "
        f"({n['mem_from']}), {n['device_gb']:.1f} GB device ({n['device_from']}) -> runtime: {suggested(n)['runtime']}, "
        f"mem_mb: {suggested(n)['mem_mb']}"
        for rule, n in needs.items()
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    print(f"wrote {a.out} ({meta['measure_seconds']:.0f} s of measurement)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
