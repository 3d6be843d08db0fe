"""Loading a local Hugging Face causal LM for a stage (never from the hub: compute is offline).

Precision and placement are two choices per model (config `models.<alias>.dtype` and
`.device_map`, CLI `--dtype` and `--device-map`):

- dtype `auto`: bfloat16 on a GPU that supports it (Ampere and later), float16 on an older
  GPU (V100), float32 on the CPU. `float32` works everywhere (use it when a method reports
  non-finite scores in bf16 / fp16). `float16` on the CPU is refused (many CPU kernels lack
  it and relevance overflows in it), and so is `bfloat16` on a GPU without bf16 support.
- device_map `none`: the whole model on one device, the GPU when one is visible, else the
  CPU. `auto`: accelerate's ``device_map="auto"`` spreads the layers over every visible GPU,
  for models larger than one GPU; it needs CUDA and is refused on a CPU-only machine (a
  silent fall-back would run a 7B model on the CPU for days). Inputs go to the embedding's
  device (`input_device`); accelerate's hooks move activations between GPUs.

Use::

    model, tokenizer = load_model("resources/models/llama-2-7b", dtype="bfloat16", device_map="auto")
"""

from __future__ import annotations

import json
from pathlib import Path

DTYPES = ("auto", "bfloat16", "float16", "float32")
DEVICE_MAPS = ("none", "auto")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_dtype(dtype: str = "auto", device: str | None = None):
    """The torch dtype a model is computed in on `device` ("cpu" or "cuda"; None = the GPU when
    one is visible), or a one-line ValueError naming the problem and the fix."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if device is None:
        device = "cuda" if _cuda() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; use cpu or cuda")
    if device == "cpu":
        if dtype == "float16":
            raise ValueError(
                "dtype float16 on the CPU: many CPU kernels lack float16 and relevance scores overflow "
                "in it; use float32 on CPU (or auto, which is float32 there)"
            )
        return torch.bfloat16 if dtype == "bfloat16" else torch.float32
    bf16 = torch.cuda.is_bf16_supported()
    if dtype == "bfloat16" and not bf16:
        raise ValueError(
            f"dtype bfloat16: this GPU ({torch.cuda.get_device_name()}) does not support bfloat16; "
            "use float16 or float32 (auto picks float16 here)"
        )
    if dtype == "auto":
        return torch.bfloat16 if bf16 else torch.float16
    return getattr(torch, dtype)


def checkpoint_dtype(model_dir: Path):
    """The dtype a checkpoint was saved in (config.json's `torch_dtype`, or `dtype` as written by
    transformers >= 4.56); float32 when it records none, as transformers assumes."""
    import torch

    config = json.loads((Path(model_dir) / "config.json").read_text())
    name = config.get("torch_dtype") or config.get("dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(name, torch.float32)


def _dtype_kwarg(torch_dtype) -> dict:
    """from_pretrained's dtype argument: `dtype` since transformers 4.56 (`torch_dtype` warns there),
    `torch_dtype` before (where `dtype` would be silently ignored)."""
    import transformers
    from packaging.version import Version

    return {"dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype": torch_dtype}


def _checked_dir(model_dir: Path) -> Path:
    model_dir = Path(model_dir)
    if (model_dir / "download.json").exists() or not (model_dir / "config.json").exists():
        from attrprune.hub import require_model

        require_model(model_dir, model_dir.name)  # a hub download: complete, or an error naming the fix
    try:
        json.loads((model_dir / "config.json").read_bytes())
    except ValueError as e:  # also not UTF-8
        raise ValueError(
            f"{model_dir / 'config.json'} is not valid JSON ({e}): download or save the model again"
        ) from e
    return model_dir


WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_sha256(model_dir: Path) -> str:
    """sha256 over the names and contents of a model folder's weight files (*.safetensors,
    *.bin, sorted by name): the checkpoint's identity, recorded in every scores file and checked
    by every stage that prunes by one. Reads every byte (~10 s per 10 GB)."""
    import hashlib

    model_dir = Path(model_dir)
    if not model_dir.is_dir() or (model_dir / "download.json").exists():
        _checked_dir(model_dir)  # a hub model not (completely) downloaded: the fix, before any hashing
    files = sorted(p for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{model_dir} has no weight files (*.safetensors, *.bin)")
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
    return h.hexdigest()


def _first_line(error: Exception) -> str:
    """The first line of a library's error message (transformers' run to many lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _pretrained_model(model_dir: Path, strict: bool = True, **kwargs):
    """AutoModelForCausalLM.from_pretrained, offline, with one line naming the folder when its
    weights are missing, truncated or corrupt (transformers raises several kinds of errors), or
    (`strict`, always outside tests) when they do not fill the architecture config.json names:
    transformers only warns about unused or missing tensors and initialises the missing ones at
    random, and a benchmark of such a model would be silently meaningless."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, output_loading_info=True, **kwargs
        )
    except (SafetensorError, OSError, EOFError) as e:  # not RuntimeError: out-of-memory is one
        raise ValueError(
            f"the model weights in {model_dir} cannot be loaded ({_first_line(e)}): the folder needs complete weight "
            "files (model.safetensors or pytorch_model.bin); download or save the model again"
        ) from e
    except RuntimeError as e:  # a tensor's shape differs from the one config.json implies
        if "size mismatch" not in str(e):
            raise
        raise ValueError(
            f"{_MISMATCH.format(model_dir)}: a tensor's shape differs ({_size_mismatch(e)}); {_FIX}"
        ) from e
    if strict:
        check_loading_info(model_dir, model, info)
    return model


_MISMATCH = "the weights in {} do not match the architecture its config.json names"
_FIX = "download or save the model again, with the config.json of its own weights"


def _size_mismatch(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
    return (lines[0] if lines else _first_line(error))[:300]


def _names(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_loading_info(model_dir: Path, model, info: dict) -> None:
    """One line naming the folder when from_pretrained left a weight of the model uninitialised
    (missing), did not use a tensor of the files (unexpected), changed a shape (mismatched), or
    built another class than config.json's `architectures` names."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    named = (config.get("architectures") or [None])[0]
    built = type(model).__name__
    parts = []
    if named is not None and named != built:
        parts.append(f"config.json names {named} but its model_type {config.get('model_type')!r} builds {built}")
    if info.get("missing_keys"):
        parts.append(
            f"{len(info['missing_keys'])} weights of {built} are not in the files "
            f"({_names(info['missing_keys'])}; they would be random)"
        )
    if info.get("unexpected_keys"):
        parts.append(
            f"{len(info['unexpected_keys'])} tensors in the files are unused ({_names(info['unexpected_keys'])})"
        )
    if info.get("mismatched_keys"):
        parts.append(
            f"{len(info['mismatched_keys'])} tensors have another shape ({_names(k for k, *_ in info['mismatched_keys'])})"
        )
    if parts:
        raise ValueError(f"{_MISMATCH.format(model_dir)}: {'; '.join(parts)}; {_FIX}")


def check_vocabulary(model_dir: Path, model, tokenizer) -> None:
    """One line naming the folder when the tokenizer has ids past the model's embedding (its rows
    would be read out of range, or from another model's vocabulary)."""
    n_embed = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > n_embed:
        raise ValueError(
            f"the tokenizer in {model_dir} has {len(tokenizer)} tokens but the model's embedding only {n_embed} "
            "rows: the tokenizer files belong to another model; save the model's own tokenizer into the folder"
        )


def _pretrained_tokenizer(model_dir: Path):
    """AutoTokenizer.from_pretrained, offline; a folder without usable tokenizer files (or
    missing a package its tokenizer needs) is one line naming the folder."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, ImportError, TypeError) as e:
        files = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model")
        if not any((Path(model_dir) / f).exists() for f in files):
            reason = f"none of {', '.join(files)}"  # transformers then blames a missing package
        else:
            reason = _first_line(e)
        raise ValueError(
            f"no usable tokenizer in {model_dir} ({reason[:200]}): save the model's tokenizer files "
            "(tokenizer.json, tokenizer_config.json; tokenizer.save_pretrained) into the folder"
        ) from e


def load_tokenizer(model_dir: Path):
    """The tokenizer of a model folder, offline; a missing folder or tokenizer is one line naming it."""
    return _pretrained_tokenizer(_checked_dir(model_dir))


def load_model(model_dir: Path, dtype: str = "auto", device_map: str = "none", strict: bool = True):
    """(model in eval mode, tokenizer) from `model_dir`, in `dtype` and placed by `device_map`
    (see the module docstring). `device_map="cpu"` keeps the model on the CPU even when a GPU is
    visible (the world card and tests use it; not offered on the command line). Every weight must
    come from the files and every tensor of the files be used (`check_loading_info`), and the
    tokenizer fit the embedding; only a test may pass `strict=False` to compute on random weights."""
    if device_map not in (*DEVICE_MAPS, "cpu"):
        raise ValueError(f"unknown device_map {device_map!r}; use one of {', '.join(DEVICE_MAPS)}")
    if device_map == "auto" and not _cuda():
        raise ValueError(
            "device_map auto spreads a model over GPUs, but no CUDA GPU is visible; "
            "use device_map none (the whole model on the CPU)"
        )
    device = "cpu" if device_map == "cpu" else "cuda" if _cuda() else "cpu"
    torch_dtype = resolve_dtype(dtype, device)
    model_dir = _checked_dir(model_dir)
    tokenizer = _pretrained_tokenizer(model_dir)  # first: it fails in a second, the weights take long
    if device_map == "auto":
        model = _pretrained_model(model_dir, strict, device_map="auto", **_dtype_kwarg(torch_dtype))
    else:
        model = _pretrained_model(model_dir, strict, **_dtype_kwarg(torch_dtype)).to(device)
    if strict:
        check_vocabulary(model_dir, model, tokenizer)
    return model.eval(), tokenizer


def load_checkpoint_on_cpu(model_dir: Path, dtype: str = "auto"):
    """(model, tokenizer) on the CPU in the checkpoint's own dtype (`auto`) or in `dtype`, for
    stages that only edit and save weights (export): no compute, so float16 is fine here."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    model_dir = _checked_dir(model_dir)
    import torch

    torch_dtype = checkpoint_dtype(model_dir) if dtype == "auto" else getattr(torch, dtype)
    tokenizer = _pretrained_tokenizer(model_dir)
    model = _pretrained_model(model_dir, **_dtype_kwarg(torch_dtype)).eval()
    check_vocabulary(model_dir, model, tokenizer)
    return model, tokenizer


def input_device(model):
    """Where input ids go: the token embedding's device (the first layer also under a device map,
    whose hooks then move activations between GPUs)."""
    return model.get_input_embeddings().weight.device


def placement(model, device_map: str = "none") -> dict:
    """What outputs record about how a model ran: its dtype, the device_map asked for and the
    devices its parameters ended up on."""
    return {
        "dtype": str(model.dtype).removeprefix("torch."),
        "device_map": device_map,
        "devices": sorted({str(p.device) for p in model.parameters()}),
    }
