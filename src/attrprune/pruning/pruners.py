"""Pruners as their authors run them, behind one signature (`prune`).

Every pruner (named in `attrprune.registry.PRUNERS`) is ``fn(model, calibration, sparsity, scope,
options) -> stats`` and prunes `model`
*in place* (SparseGPT also rewrites the kept weights): work on a copy, or wrap the call in
``with weights_restored(model):`` to get the dense weights back afterwards. `stats` holds the
measured zeros per layer and overall, the options used, the per-block sparsities asked for, the
number of calibration tokens and the time taken.

* ``magnitude``: |W|, no calibration; scope ``"layer"`` is the Wanda repository's magnitude
  baseline (one threshold per weight matrix), ``"row"``, ``"global"`` and ``"N:M"`` the variants;
* ``wanda``: |W_ij| · ‖X_j‖₂, X from the calibration tokens after the already pruned blocks
  (`attrprune.pruning.sequential`); default scope ``"row"`` (per output row, the paper's);
* ``ria``: (|W_ij| / Σ_k |W_ik| + |W_ij| / Σ_k |W_kj|) · ‖X_j‖₂^a, a = 0.5 (RIA's ``--a``
  default); default scope ``"layer"`` (RIA's code compares per layer unless ``--per_outneuron``);
* ``sparsegpt``: OBS pruning with reconstruction (`attrprune.pruning.reconstruct`): block size
  128, damping 1 % of mean diag H (the reference code's defaults); default scope ``"layer"``.

Calibrated pruners take ``allocation="owl"`` to prune each block at its OWL sparsity
(`attrprune.pruning.owl`, M = 5, λ = 0.08) instead of the same sparsity everywhere. Counts per
comparison group are the authors' (`attrprune.registry.count_rule`): exactly ``int(s · n)`` per
row (Wanda, RIA per row, every row scope), or every weight at or below the value at sorted index
``int(s · n)`` per layer (magnitude, RIA) or per block of columns (SparseGPT).

Options are checked where they enter (`check_options`): a block size below 1, a damping outside
(0, 1], a negative RIA exponent, OWL's M <= 0 or λ outside [0, 1] is one line, never a fallback.

Use::

    from attrprune.pruning.pruners import prune
    with weights_restored(model):
        stats = prune("sparsegpt", model, refset, 0.5)          # the method's default scope
        stats = prune("wanda", model, refset, 0.5, scope="2:4")  # N:M
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from attrprune import registry
from attrprune.architectures import architecture_of
from attrprune.pruning.apply import apply_masks_, model_sparsity
from attrprune.pruning.masks import MaskBuilder, check_sparsity
from attrprune.pruning.owl import OWL_LAMBDA, OWL_M, owl_sparsities
from attrprune.pruning.reconstruct import Hessian, sparsegpt_layer
from attrprune.pruning.sequential import InputNorms, run_sequential
from attrprune.refsets import RefSet
from attrprune.registry import parse_scope

ALLOCATIONS = ("uniform", "owl")


@dataclass(frozen=True)
class MagnitudeOptions:
    """Magnitude needs no calibration and has no options."""


@dataclass(frozen=True)
class CalibrationOptions:
    batch_size: int = 8  # samples per block forward: memory only (results equal up to float summation order)
    order: str = "block"  # "block": all linears from one pass (reference code); "sequential": q/k/v, o, MLP in, MLP out
    allocation: str = "uniform"  # "owl": per-block sparsities by OWL
    owl_m: float = OWL_M
    owl_lambda: float = OWL_LAMBDA
    progress: bool = False


@dataclass(frozen=True)
class WandaOptions(CalibrationOptions):
    pass


@dataclass(frozen=True)
class RiaOptions(CalibrationOptions):
    a: float = 0.5  # exponent of the activation norm (RIA's --a default)


@dataclass(frozen=True)
class SparseGPTOptions(CalibrationOptions):
    blocksize: int = 128  # columns per mask-selection block / lazy update (--blocksize)
    percdamp: float = 0.01  # damping, fraction of mean diag H (--percdamp)


# (option, test, what it must be) for every option a pruner reads; `check_options` applies them.
_OPTION_RANGES = {
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "owl_m": (lambda v: v > 0, "> 0 (outliers are scores above M x the mean)"),
    "owl_lambda": (lambda v: 0 <= v <= 1, "in [0, 1] (the spread of block sparsities around the target)"),
    "a": (lambda v: v >= 0, ">= 0 (the exponent of the activation norm)"),
    "blocksize": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1 (columns per block)"),
    "percdamp": (lambda v: 0 < v <= 1, "in (0, 1] (a fraction of the Hessian's mean diagonal)"),
}


def check_options(method: str, options) -> None:
    """One line naming the option and its valid range when a pruner option is out of range."""
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        test, valid = _OPTION_RANGES.get(field.name, (None, None))
        if test is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN
        if not ok or not test(value):
            raise ValueError(f"{method}: option {field.name} = {value!r} is out of range; it must be {valid}")
    if getattr(options, "order", "block") not in ("block", "sequential"):
        raise ValueError(f"{method}: option order = {options.order!r}; valid: block, sequential")


@contextlib.contextmanager
def weights_restored(model) -> Iterator[None]:
    """Restore every prunable linear's weight on exit (a CPU copy is kept meanwhile)."""
    arch = architecture_of(model)
    params = [model.get_submodule(name).weight for name in arch.linear_names(model)]
    saved = [p.detach().to("cpu", copy=True) for p in params]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)


def _report(method, model, sparsity, scope, options, started, blocks=None, run=None) -> dict:
    measured = model_sparsity(model)
    return {
        "method": method,
        "sparsity": sparsity,
        "scope": scope,
        "options": dataclasses.asdict(options),
        "block_sparsity": blocks,
        "per_layer": measured["per_layer"],
        "overall": measured["overall"],
        **(run or {"n_tokens": 0, "n_samples": 0}),
        "seconds": time.perf_counter() - started,
    }


def magnitude(model, calibration: RefSet | None, sparsity: float, scope: str, options: MagnitudeOptions) -> dict:
    """|W| ranked within `scope`; `calibration` is not read (may be None)."""
    started = time.perf_counter()
    arch = architecture_of(model)
    scores = {
        name: arch.weight(model.get_submodule(name)).detach().float().abs().contiguous()
        for name in arch.linear_names(model)
    }
    keep = MaskBuilder(scores, scope, count=registry.count_rule("magnitude", scope)).masks(sparsity)
    apply_masks_(model, weight_masks=keep)
    return _report("magnitude", model, sparsity, scope, options, started)


def _block_sparsities(model, calibration, sparsity, scope, options: CalibrationOptions) -> dict[int, float]:
    n_blocks = len(architecture_of(model).block_list(model))
    if options.allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {options.allocation!r}; valid: {', '.join(ALLOCATIONS)}")
    if options.allocation == "uniform":
        return dict.fromkeys(range(n_blocks), sparsity)
    if isinstance(parse_scope(scope), tuple):
        raise ValueError(
            f"allocation 'owl' varies the sparsity per block; scope {scope!r} fixes it (use 'row' or 'layer')"
        )
    return owl_sparsities(model, calibration, sparsity, options.owl_m, options.owl_lambda, options.batch_size)


def _check(method: str, sparsity: float, scope: str) -> None:
    check_sparsity(sparsity)
    if parse_scope(scope) == "global":
        raise ValueError(
            f"{method} prunes block by block: scope 'global' needs every layer's scores at once; use 'row' or "
            "'layer' (or one-pass scores from attrprune.relevance with MaskBuilder(scores, 'global'))"
        )


def _calibrated(
    method: str, model, calibration, sparsity, scope, options: CalibrationOptions, make_stat, prune_layer
) -> dict:
    """Run the sequential engine; `prune_layer(name, module, stat, block sparsity)` edits one weight."""
    started = time.perf_counter()
    _check(method, sparsity, scope)
    blocks = _block_sparsities(model, calibration, sparsity, scope, options)

    def process(block: int, stats: dict) -> None:
        for name, stat in stats.items():
            prune_layer(name, model.get_submodule(name), stat, blocks[block])

    run = run_sequential(model, calibration, make_stat, process, options.batch_size, options.order, options.progress)
    return _report(method, model, sparsity, scope, options, started, blocks, run)


def _norm_stat(arch):
    def make(name, module):
        w = arch.weight(module)
        return InputNorms(w.shape[1], w.device)

    return make


def _masking(method: str, arch, scope: str, score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    """prune_layer for score-and-mask methods: score(|W| [out, in], ‖X‖ [in]) ranked within
    `scope`, counted as the method's authors count."""
    count = registry.count_rule(method, scope) if scope in ("row", "layer") else "floor"

    @torch.no_grad()
    def prune_layer(name, module, stat: InputNorms, s: float) -> None:
        w = arch.weight(module)  # [out, in] view: the zeros reach the model
        scores = score(w.detach().float().abs().contiguous(), stat.norms())  # [out, in]
        keep = MaskBuilder({name: scores}, scope, count=count).masks(s)[name]
        w.masked_fill_(~keep, 0)

    return prune_layer


def wanda(model, calibration: RefSet, sparsity: float, scope: str, options: WandaOptions) -> dict:
    """Wanda, sequential: S_ij = |W_ij| · ‖X_j‖₂ on the inputs left by the pruned blocks before."""
    arch = architecture_of(model)
    prune_layer = _masking("wanda", arch, scope, lambda w, norms: w * norms[None, :])
    return _calibrated("wanda", model, calibration, sparsity, scope, options, _norm_stat(arch), prune_layer)


def ria(model, calibration: RefSet, sparsity: float, scope: str, options: RiaOptions) -> dict:
    """RIA: relative importance (row and column sums of |W|) times ‖X_j‖₂^a, sequential."""
    arch = architecture_of(model)
    tiny = torch.finfo(torch.float32).tiny  # an all-zero row or column scores 0, not NaN

    def score(w, norms):
        relative = w / w.sum(1, keepdim=True).clamp_min(tiny) + w / w.sum(0, keepdim=True).clamp_min(tiny)
        return relative * norms[None, :].pow(options.a)  # [out, in]

    prune_layer = _masking("ria", arch, scope, score)
    return _calibrated("ria", model, calibration, sparsity, scope, options, _norm_stat(arch), prune_layer)


def sparsegpt(model, calibration: RefSet, sparsity: float, scope: str, options: SparseGPTOptions) -> dict:
    """SparseGPT, sequential: each linear pruned and its kept weights reconstructed from H = 2XXᵀ."""
    arch = architecture_of(model)

    def make_stat(name, module):
        w = arch.weight(module)
        return Hessian(w.shape[1], w.device)

    @torch.no_grad()
    def prune_layer(name, module, stat: Hessian, s: float) -> None:
        w = arch.weight(module)  # [out, in] view
        new, _ = sparsegpt_layer(w, stat.matrix(), s, scope, options.blocksize, options.percdamp)
        w.copy_(new.to(w.dtype))

    if isinstance(parse_scope(scope), tuple):
        n, m = parse_scope(scope)
        if abs(sparsity - n / m) > 1e-9:
            raise ValueError(f"scope '{n}:{m}' prunes exactly {n / m:g}; got sparsity {sparsity!r}")
    return _calibrated("sparsegpt", model, calibration, sparsity, scope, options, make_stat, prune_layer)


def prune(method: str, model, calibration: RefSet | None, sparsity: float, scope: str | None = None, options=None):
    """Prune `model` in place with pruner `method` (`attrprune.registry.PRUNERS`); None = the
    method's default scope / options (the authors' defaults)."""
    entry = registry.pruner(method)
    function, options_type = registry.pruner_function(method)
    scope = entry.default_scope if scope is None else scope
    if not isinstance(parse_scope(scope), tuple) and scope not in entry.scopes:
        raise ValueError(f"{method} does not prune with scope {scope!r}; valid: {', '.join(entry.scopes)}, or N:M")
    if entry.calibrated and (calibration is None or len(calibration) == 0):
        raise ValueError(f"{method} needs a non-empty calibration set")
    options = options or options_type()
    check_options(method, options)
    return function(model, calibration, sparsity, scope, options)
