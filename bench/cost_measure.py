"""Measurements of the cost model (bench/cost.py): each preset model built with random weights
and a few decoder layers, and on it, through the suite's own code, the time and peak memory of
the scores methods, the pruning sort, a forward pass and greedy generation (`measure_all`).
"""

from __future__ import annotations

import contextlib
import gc
import re
import sys
import threading
import time
from pathlib import Path

from cost_model import fits_of
from cost_preset import (
    ARCHS,
    ASSUMED,
    CPU_GENERATE,
    CPU_PLAN,
    REPEATS,
    SAMPLES,
    SCORE_METHODS,
    shape,
)


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
