"""Sequential calibration: the engine Wanda, SparseGPT, RIA and OWL run their calibration on.

The protocol (Wanda's and SparseGPT's reference code): the calibration samples enter block 0;
each block is scored (and pruned) on its inputs, then its *pruned* outputs become the next
block's inputs. Only one block's activations live on the device besides the block inputs
themselves ([n, L, d] for the whole calibration set, as in the authors' code).

How:

1. `capture_block_inputs` runs the backbone once per batch with every decoder block swapped for a
   recorder that keeps what the model passes to the block (hidden states of block 0; for every
   block the remaining positional and keyword arguments: attention mask, position ids or rotary
   embeddings, cache position, caches off) and hands its input straight on, so no block computes
   anything. Recording each block's own arguments covers families whose blocks differ (Gemma-3
   and Qwen pass sliding-window masks to some blocks, full ones to others).
2. `run_sequential` then walks the blocks: forward hooks on the block's prunable linears feed
   their inputs (real tokens only: padding never counts) into one statistic per linear, the
   caller's `process(block, stats)` prunes the block (or only reads the statistics), and the
   block is run again to turn its inputs into the next block's inputs.

Order within a block (``order``): ``"block"`` collects every linear's statistic from one pass of
the block as it is, then prunes them all, as the reference code of Wanda, RIA and SparseGPT does
(SparseGPT's ``sequential = [list(full.keys())]``); ``"sequential"`` is SparseGPT's
``--true-sequential``: attention inputs (q, k, v), attention output, MLP inputs, MLP output, each
group's statistics collected after the previous groups are pruned.

Position ids are passed as the running count of real tokens, so left padding gives the same
statistics as right padding (transformers' Llama-style models otherwise count pad positions).

Use (here only reading the dense model's input norms; a pruner edits the weights in `process`)::

    norms = {}
    arch = architecture_of(model)
    run_sequential(
        model, refset,
        lambda name, module: InputNorms(arch.weight(module).shape[1], module.weight.device),
        lambda block, stats: norms.update({name: s.norms() for name, s in stats.items()}),
    )

Hooks and recorders are removed, and the blocks put back, also after an exception. The weights
are whatever `process` makes of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from attrprune.architectures import Architecture, architecture_of
from attrprune.logs import steps
from attrprune.models import input_device
from attrprune.refsets import RefSet

ORDERS = ("block", "sequential")


class InputNorms:
    """Σ_t x_tj² over real calibration tokens for each input feature j of a linear (Wanda, RIA, OWL)."""

    def __init__(self, n_in: int, device: torch.device):
        self.sum_sq = torch.zeros(n_in, device=device)
        self.n_tokens = 0

    def add(self, x: torch.Tensor) -> None:
        self.sum_sq += x.pow(2).sum(0)  # x: [tokens, in] float32
        self.n_tokens += len(x)

    def norms(self) -> torch.Tensor:
        """‖X_j‖₂ over every calibration token, [in]."""
        return self.sum_sq.sqrt()


@dataclass
class _Batch:
    hidden: torch.Tensor  # [b, L, d]: the input of the current block
    tokens: torch.Tensor  # [b * L] bool: real (unpadded) tokens
    calls: list = field(default_factory=list)  # per block: (positional args after the hidden states, kwargs)


class _Stop(Exception):
    """Raised by the last recorder: the rest of the backbone (final norm) is not needed."""


class _Recorder(torch.nn.Module):
    """Stands in for decoder block `index`: records its arguments and returns its input unchanged."""

    def __init__(self, block: torch.nn.Module, index: int, sink: dict, last: bool):
        super().__init__()
        self.block, self.index, self.sink, self.last = block, index, sink, last

    def __getattr__(self, name: str):
        # The backbone may read block attributes (Gemma-3 / Qwen: `attention_type` picks the mask).
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["block"], name)

    def forward(self, *args, **kwargs):
        hidden, rest = (args[0], args[1:]) if args else (kwargs.pop("hidden_states"), ())
        if self.index == 0:
            self.sink["hidden"] = hidden
        self.sink["calls"].append((rest, kwargs))
        if self.sink["tuple_out"] is None:
            # Some families' blocks return a tuple (OPT, GPT-2, Gemma-3), others a tensor (Llama):
            # answer in the block's own format, learned from one real call.
            self.sink["tuple_out"] = isinstance(self.block(hidden, *rest, **kwargs), tuple)
        if self.last:
            raise _Stop
        return (hidden,) if self.sink["tuple_out"] else hidden


@contextlib.contextmanager
def _recorders(blocks: torch.nn.ModuleList, sink: dict) -> Iterator[None]:
    originals = list(blocks)
    try:
        for i, block in enumerate(originals):
            blocks[i] = _Recorder(block, i, sink, last=i == len(originals) - 1)
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token among the real tokens of its row, [b, L] (pads repeat a neighbour's)."""
    return (mask.long().cumsum(1) - 1).clamp_min(0)


@torch.no_grad()
def capture_block_inputs(model, calibration: RefSet, batch_size: int = 8) -> list[_Batch]:
    """Per calibration batch: block 0's input hidden states and every block's other arguments."""
    arch = architecture_of(model)
    backbone, blocks = model.get_submodule(arch.backbone), arch.block_list(model)
    device = input_device(model)
    batches = []
    sink: dict = {"tuple_out": None}
    for ids, mask, _, _ in calibration.batches(batch_size):
        ids, mask = ids.to(device), mask.to(device)
        sink["calls"] = []
        with _recorders(blocks, sink), contextlib.suppress(_Stop):
            backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False)
        batches.append(_Batch(sink.pop("hidden"), mask.reshape(-1).bool(), sink.pop("calls")))
    return batches


def _to(obj, device: torch.device):
    """Tensors inside (nested tuples, lists, dicts of) `obj` on `device` (blocks under a device map)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _run_block(block: torch.nn.Module, index: int, batch: _Batch) -> torch.Tensor:
    device = next(block.parameters()).device
    rest, kwargs = _to(batch.calls[index], device)
    out = block(batch.hidden.to(device), *rest, **kwargs)
    return out[0] if isinstance(out, tuple) else out  # [b, L, d]


def _groups(arch: Architecture, roles: dict[str, str], order: str) -> list[list[str]]:
    """The block's linears (name -> role) in the groups they are pruned in (module docstring)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    if order == "block":
        return [list(roles)]

    def stage(role: str) -> int:
        if role == arch.head_out:
            return 1
        return 2 if role in arch.mlp_in else 3 if role == arch.mlp_out else 0

    return [g for g in ([n for n, r in roles.items() if stage(r) == s] for s in range(4)) if g]


@contextlib.contextmanager
def _collecting(modules: dict[str, torch.nn.Module], stats: dict, current: dict) -> Iterator[None]:
    """Forward hooks adding each linear's real-token inputs to its statistic."""

    def hook(name, x):
        keep = current["tokens"].to(x.device)  # [b * L]
        stats[name].add(x.reshape(-1, x.shape[-1])[keep].float())  # [b, L, in] or [b * L, in] -> [real, in]

    handles = [m.register_forward_hook(lambda mod, i, o, n=name: hook(n, i[0])) for name, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    training = model.training
    model.eval()  # dropout off, as in the reference code
    try:
        yield
    finally:
        model.train(training)


@torch.no_grad()
def run_sequential(
    model,
    calibration: RefSet,
    make_stat: Callable[[str, torch.nn.Module], object],
    process: Callable[[int, dict], None],
    batch_size: int = 8,
    order: str = "block",
    progress: bool = False,
) -> dict:
    """Walk the blocks in order: statistics of each linear's inputs, `process(block, {name: stat})`
    (prunes the block in place, or only reads), then the block's outputs feed the next block.

    `make_stat(name, module)` returns an object with ``add(x)``, x the real-token inputs as float32
    [tokens, in]. Returns ``{"n_tokens": real calibration tokens, "n_samples": samples}``.
    """
    if len(calibration) == 0:
        raise ValueError("the calibration set is empty; rebuild it with more samples (refsets --n)")
    arch = architecture_of(model)
    blocks = arch.block_list(model)
    by_block: dict[int, dict[str, str]] = {}
    for name, (i, role) in arch.linear_names(model).items():
        by_block.setdefault(i, {})[name] = role
    with _eval_mode(model):
        batches = capture_block_inputs(model, calibration, batch_size)
        for i in steps(range(len(blocks)), desc="blocks", enabled=progress):
            for group in _groups(arch, by_block[i], order):
                modules = {name: model.get_submodule(name) for name in group}
                stats = {name: make_stat(name, m) for name, m in modules.items()}
                current: dict = {}
                with _collecting(modules, stats, current):
                    for batch in batches:
                        current["tokens"] = batch.tokens
                        _run_block(blocks[i], i, batch)  # outputs unused: the statistics are the point
                process(i, stats)
            for batch in batches:
                batch.hidden = _run_block(blocks[i], i, batch)  # the pruned block's outputs
                batch.calls[i] = None  # this block's arguments are no longer needed
    n_tokens = sum(int(b.tokens.sum()) for b in batches)
    return {"n_tokens": n_tokens, "n_samples": len(calibration)}
