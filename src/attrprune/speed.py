"""What a smaller model buys, measured side by side: parameters, file size, peak memory, latency
of a forward pass and generation speed of the dense model and each pruned one, on the same inputs
in one run, with ratios to the dense model.

Each model is loaded and run in its own forked process (the parent has imported torch and
transformers but computed nothing), one after another, so that its memory is its own:

* ``peak_memory_bytes``: on CPU, the process's peak resident set while loading the model and
  running every measured pass, minus its resident set before loading (Linux: the high-water mark
  is reset through /proc/self/clear_refs at the start); on CUDA, torch's peak allocated bytes;
* ``forward_s``: median over ``repeats`` of one forward pass of ``batch`` × ``seqlen`` tokens
  (after 2 warm-up passes); ``generate_tokens_per_s``: ``new_tokens`` greedy tokens after a
  ``prompt`` -token prompt, batch 1, the median time's rate;
* ``file_bytes``: the weight files of the folder; ``parameters``: distinct parameters.

Every model is measured once per round, ``rounds`` rounds (the models in turn, so that a slow
spell of a shared machine hits all of them); each time and memory is the median over the rounds.

Inputs are seeded random token ids, the same for every model.

Run: ``python -m attrprune.speed --model dense=world/models/world-llama --model lrp=out/model --out speed.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def file_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in Path(model_dir).iterdir() if p.name.endswith(WEIGHT_SUFFIXES))


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _measure_one(model_dir: str, settings: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(settings["threads"])
    device = settings["device"]
    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        reset = _reset_peak()
        start = _status_kb("VmRSS")
    dtype = getattr(torch, settings["dtype"]) if settings["dtype"] != "auto" else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    gen = torch.Generator().manual_seed(settings["seed"])
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (settings["batch"], settings["seqlen"]), generator=gen).to(device)
    prompt = torch.randint(3, vocab, (1, settings["prompt"]), generator=gen).to(device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with torch.inference_mode():
        times = []
        for i in range(settings["repeats"] + 2):
            sync()
            t0 = time.perf_counter()
            model(input_ids=ids)
            sync()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        gen_times = []
        n = settings["new_tokens"]
        for i in range(settings["gen_repeats"] + 1):
            sync()
            t0 = time.perf_counter()
            out = model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=model.config.pad_token_id or 0,
            )
            sync()
            if i >= 1:
                gen_times.append(time.perf_counter() - t0)
            if out.shape[1] != prompt.shape[1] + n:
                raise RuntimeError(f"generation gave {out.shape[1] - prompt.shape[1]} tokens, not {n}")
    if cuda:
        peak = torch.cuda.max_memory_allocated() - start
    else:
        hwm = _status_kb("VmHWM")
        peak = (hwm - start) * 1024 if reset and hwm is not None and start is not None else None
    return {
        "parameters": params,
        "file_bytes": file_bytes(Path(model_dir)),
        "peak_memory_bytes": peak,
        "forward_s": statistics.median(times),
        "generate_tokens_per_s": n / statistics.median(gen_times),
        "dtype": str(model.dtype).removeprefix("torch."),
    }


def _child(conn, model_dir, settings):
    try:
        conn.send(("ok", _measure_one(model_dir, settings)))
    except Exception as error:  # reported by the parent, with the model it concerns
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def measure_models(
    models: dict[str, Path],
    device: str = "cpu",
    threads: int = 1,
    batch: int = 8,
    seqlen: int | None = None,
    prompt: int = 8,
    new_tokens: int = 32,
    repeats: int = 10,
    gen_repeats: int = 3,
    rounds: int = 3,
    dtype: str = "auto",
    seed: int = 0,
    reference: str = "dense",
) -> dict:
    """{settings, models: {label: measurements, with ratios to `reference`}} of every model of
    `models` (label -> folder), each in its own forked process, in the order given, `rounds`
    times over: times and memory are the medians over the rounds (each round's values kept)."""
    import multiprocessing

    import torch
    import transformers  # noqa: F401  imported once here, before the forks

    if reference not in models:
        raise ValueError(f"no {reference!r} model to compare with: give --model {reference}=<dense model folder>")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: no CUDA GPU is visible; use --device cpu")
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(models[reference])
    AutoModelForCausalLM._model_mapping[type(config)]  # imports the modeling module before the forks
    if seqlen is None:
        seqlen = min(128, config.max_position_embeddings)
    if prompt + new_tokens > seqlen:
        raise ValueError(f"prompt ({prompt}) + new tokens ({new_tokens}) exceed {seqlen} positions")
    settings = dict(
        device=device,
        threads=threads,
        batch=batch,
        seqlen=seqlen,
        prompt=prompt,
        new_tokens=new_tokens,
        repeats=repeats,
        gen_repeats=gen_repeats,
        rounds=rounds,
        dtype=dtype,
        seed=seed,
    )
    ctx = multiprocessing.get_context("spawn" if device == "cuda" else "fork")
    runs: dict[str, list[dict]] = {label: [] for label in models}
    for _ in range(rounds):  # every model once per round, so that a slow spell hits all of them
        for label, folder in models.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, str(folder), settings))
            proc.start()
            status, value = parent.recv()
            proc.join()
            if status != "ok":
                raise RuntimeError(f"measuring {label} ({folder}) failed: {value}")
            runs[label].append(value)
            log.info(f"{label}: {value}")
    results = {}
    for label, values in runs.items():
        peaks = [v["peak_memory_bytes"] for v in values if v["peak_memory_bytes"] is not None]
        results[label] = {
            "model_dir": str(models[label]),
            **values[0],
            "peak_memory_bytes": statistics.median(peaks) if peaks else None,
            "forward_s": statistics.median(v["forward_s"] for v in values),
            "generate_tokens_per_s": statistics.median(v["generate_tokens_per_s"] for v in values),
            "rounds": values,
        }
    base = results[reference]
    for r in results.values():
        r["ratios"] = {
            key: (r[key] / base[key] if r[key] is not None and base[key] else None)
            for key in ("parameters", "file_bytes", "peak_memory_bytes", "forward_s", "generate_tokens_per_s")
        }
    device_name = torch.cuda.get_device_name() if device == "cuda" else (platform.processor() or platform.machine())
    return {
        "settings": settings
        | {"device_name": device_name, "cpu_count": os.cpu_count(), "torch": torch.__version__, "reference": reference},
        "models": results,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m attrprune.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, help="label=folder; one must be labelled dense")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seqlen", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dtype", default="auto")
    a = p.parse_args(argv)
    models = dict(m.split("=", 1) for m in a.model)
    res = measure_models(
        models,
        device=a.device,
        threads=a.threads,
        batch=a.batch,
        seqlen=a.seqlen,
        new_tokens=a.new_tokens,
        repeats=a.repeats,
        rounds=a.rounds,
        dtype=a.dtype,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
