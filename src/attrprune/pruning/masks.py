"""Keep-masks (True = keep) from component scores: paper Sec. 3.1, Eqs. 2-3, App. C.

Selection (Eq. 2) prunes the q lowest-scored components. How components compete depends on the
*scope* (App. C, Fig. 7):

* ``"row"``: every output row of every linear weight loses the same fraction; elements compete
  only within their row. Wanda's protocol and the paper's default for compression ("ranked by
  magnitude per row").
* ``"layer"``: elements compete within one tensor.
* ``"global"``: all given elements compete together.
* ``"N:M"`` (e.g. ``"2:4"``): in every group of M consecutive input weights of a row, the N
  lowest are pruned (Wanda/SparseGPT convention: 2:4 is 50% sparsity).

How many a group of size n (row: a row; layer: a tensor; global: everything) loses is the
*count rule* (`COUNTS`), the one of the method's authors:

* ``"floor"``: exactly ``int(sparsity * n)``, the lowest by a stable sort (ties broken by
  position: tensor order of the dict, then flat index). Wanda's code (``sort_res[1][:, :int(W.shape[1]
  * sparsity)]``), RIA's per-row variant, OWL, and this suite's own scores (lrp, gradient, ...), so
  that a comparison with Wanda removes the same number of weights;
* ``"at_or_below"``: every element at or below the value at sorted index ``int(sparsity * n)``
  (``W_metric <= thresh``): one element more than floor, plus every tie. The magnitude baseline
  and RIA per layer, and SparseGPT per block of columns. Sparsity 0 prunes nothing here (the
  authors' code, never run at 0, would prune the smallest element);
* ``"nearest"``: ``int(sparsity * n + 0.5)`` (round half up), exactly that many as for floor: the
  default here, and the circuits sweep's rule.

A higher sparsity always prunes a superset under each rule.

Use::

    builder = MaskBuilder(scores.weights, scope="row")  # sorts once
    for s in (0.1, 0.5, 0.7):
        keep = builder.masks(s)  # {module name: BoolTensor[out, in]}

Structured masks (neurons, heads) come from `unit_masks` (``neuron_masks``/``head_masks``) and
`lowest_k` (exactly k components, as targeted correction needs).
"""

from __future__ import annotations

import math

import torch

from attrprune.registry import parse_scope


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")


COUNTS = ("floor", "at_or_below", "nearest")


def check_count(count: str) -> None:
    if count not in COUNTS:
        raise ValueError(f"unknown count rule {count!r}; valid: {', '.join(COUNTS)}")


def n_pruned(sparsity: float, size: int, count: str = "nearest") -> int:
    """Elements pruned from a group of `size` by rule `count` (``"at_or_below"``: the index of the
    threshold; ties add to it). ``int(sparsity * size)`` as the authors write it, product first:
    0.57 of 100 is 56, as in their code. ``"nearest"`` rounds half up, not Python's half to even."""
    check_count(count)
    if count == "nearest":
        return min(size, math.floor(sparsity * size + 0.5))
    return min(size, int(sparsity * size))


def _keys(scores: torch.Tensor, absolute: bool) -> torch.Tensor:
    """int32 keys whose integer order equals the float order of the (absolute) scores.

    Ranking integers makes the global threshold an exact bisection over 2^32 values (no
    kthvalue/concatenation of all scores) and makes equality tests exact.
    """
    x = scores.detach().float()
    x = x.abs() if absolute else x + 0.0  # + 0.0 turns -0.0 into 0.0, which sort ranks equal
    if torch.isnan(x).any():
        raise ValueError("scores contain NaN")
    bits = x.view(torch.int32)
    # IEEE floats order like sign-magnitude integers; flip the magnitude bits of negatives
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _keep_mask(keys: torch.Tensor, t: torch.Tensor, ties: torch.Tensor) -> torch.Tensor:
    """Keep-mask of `keys` [groups, size]: drop keys < t and the first `ties` keys == t per group.

    `t` and `ties` are [groups, 1] (or broadcastable). Dropping the first ties in index order is
    what a stable sort would do.
    """
    eq = keys == t
    drop = keys < t
    drop |= eq & (eq.cumsum(1) <= ties)
    return ~drop


class MaskBuilder:
    """Many sparsities from one scores dict: sort once per scope, threshold many times.

    Parameters
    ----------
    scores
        Module name -> scores. ``"row"`` and ``"N:M"`` need 2-D weights [out, in]; ``"layer"``
        and ``"global"`` take any shape (also 1-D neuron or head scores).
    scope
        ``"row"`` (default: the paper's compression protocol), ``"layer"``, ``"global"`` or
        ``"N:M"``.
    absolute
        Rank by |score| (the paper's "ranked by magnitude") or by the signed score.
    count
        How many a group loses at a sparsity (`COUNTS`; module docstring): ``"nearest"`` (default;
        circuits), ``"floor"`` (Wanda's; compression's default, `attrprune.registry.count_rule`) or
        ``"at_or_below"`` (row and layer scopes only).

    Notes
    -----
    Memory: one sorted int32 copy of every score (4 bytes per weight), plus, while building one
    mask, about 13 bytes per element of that tensor. For a 7B model that is ~27 GB of sorted
    keys, versus ~110 GB for one ``torch.sort`` of the 6.7e9 concatenated scores (values plus
    int64 indices), which is why the global scope sorts per tensor and finds its threshold by
    bisection over the int32 keys (32 rounds of ``searchsorted`` per tensor).
    """

    def __init__(
        self, scores: dict[str, torch.Tensor], scope: str = "row", absolute: bool = True, count: str = "nearest"
    ):
        self.scope = parse_scope(scope)
        self.absolute = absolute
        check_count(count)
        if count == "at_or_below" and self.scope not in ("row", "layer"):
            raise ValueError(
                f"count rule 'at_or_below' thresholds each row or layer; scope {scope!r} has no such group"
            )
        self.count = count
        self._scores = dict(scores)
        self._shapes = {name: s.shape for name, s in self._scores.items()}
        for name, shape in self._shapes.items():
            if self.scope == "row" or isinstance(self.scope, tuple):
                if len(shape) != 2:
                    raise ValueError(f"scope {scope!r} needs 2-D [out, in] scores; {name} has shape {tuple(shape)}")
            if isinstance(self.scope, tuple) and shape[1] % self.scope[1]:
                raise ValueError(
                    f"scope {scope!r}: input dim {shape[1]} of {name} (shape {tuple(shape)}) "
                    f"is not divisible by M={self.scope[1]}"
                )
        self._sorted = {name: torch.sort(self._grouped(name), dim=1).values for name in self._scores}
        self.numel = sum(s.numel() for s in self._scores.values())

    def _grouped(self, name: str) -> torch.Tensor:
        """Keys of `name` as [groups, group size]; elements compete only within a group."""
        keys = _keys(self._scores[name], self.absolute)
        if self.scope == "row":
            return keys.contiguous()  # [out, in]; GPT-2's Conv1D scores are transposed views
        if isinstance(self.scope, tuple):
            return keys.reshape(-1, self.scope[1])  # [out, in] -> [out * in / M, M]
        return keys.reshape(1, -1)  # [1, numel]

    def masks(self, sparsity: float) -> dict[str, torch.Tensor]:
        """Keep-masks (True = keep) pruning `sparsity` of every group; same shapes as the scores."""
        check_sparsity(sparsity)
        if self.scope == "global":
            return self._global(n_pruned(sparsity, self.numel, self.count))
        if isinstance(self.scope, tuple):
            n, m = self.scope
            if abs(sparsity - n / m) > 1e-9:
                raise ValueError(f"scope '{n}:{m}' prunes exactly {n / m:g}; got sparsity {sparsity!r}")
            return {name: self._per_group(name, n) for name in self._scores}
        if self.count == "at_or_below":
            return {name: self._at_or_below(name, sparsity) for name in self._scores}
        return {
            name: self._per_group(name, n_pruned(sparsity, self._sorted[name].shape[1], self.count))
            for name in self._scores
        }

    def _at_or_below(self, name: str, sparsity: float) -> torch.Tensor:
        """Keep-mask pruning every key <= the key at sorted index int(sparsity * n) of each group."""
        s = self._sorted[name]  # [groups, size]
        if sparsity == 0 or s.shape[1] == 0:
            return torch.ones(self._shapes[name], dtype=torch.bool, device=s.device)
        i = n_pruned(sparsity, s.shape[1], "at_or_below")
        t = s[:, i : i + 1].contiguous()  # [groups, 1]: the threshold key
        return (self._grouped(name) > t).reshape(self._shapes[name])

    def lowest(self, k: int) -> dict[str, torch.Tensor]:
        """Keep-masks pruning exactly `k` elements per group (``"global"``: `k` overall)."""
        if self.scope == "global":
            if not 0 <= k <= self.numel:
                raise ValueError(f"k must be in [0, {self.numel}], got {k}")
            return self._global(k)
        for name, s in self._sorted.items():
            if not 0 <= k <= s.shape[1]:
                raise ValueError(f"k must be in [0, {s.shape[1]}] for {name}, got {k}")
        return {name: self._per_group(name, k) for name in self._scores}

    def _per_group(self, name: str, k: int) -> torch.Tensor:
        shape = self._shapes[name]
        if k == 0:
            return torch.ones(shape, dtype=torch.bool, device=self._sorted[name].device)
        s = self._sorted[name]  # [groups, size]
        t = s[:, k - 1 : k].contiguous()  # [groups, 1]: the k-th lowest key of each group
        ties = k - torch.searchsorted(s, t)  # how many keys == t are pruned
        return _keep_mask(self._grouped(name), t, ties).reshape(shape)

    def _global(self, k: int) -> dict[str, torch.Tensor]:
        if k == 0:
            return {
                name: torch.ones(shape, dtype=torch.bool, device=self._sorted[name].device)
                for name, shape in self._shapes.items()
            }

        def count(t: int, right: bool) -> list[int]:
            return [
                int(torch.searchsorted(s, torch.full((1, 1), t, dtype=s.dtype, device=s.device), right=right))
                for s in self._sorted.values()
            ]

        # the smallest key t with at least k keys <= t is the k-th lowest key overall
        lo = min(int(s[0, 0]) for s in self._sorted.values() if s.numel())
        hi = max(int(s[0, -1]) for s in self._sorted.values() if s.numel())
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(count(mid, right=True)) >= k:
                hi = mid
            else:
                lo = mid + 1
        below = count(lo, right=False)
        at = [le - lt for le, lt in zip(count(lo, right=True), below)]
        # ties at t go to the earliest tensors first, as a stable sort of the concatenation would
        left = k - sum(below)
        out = {}
        for (name, shape), n_at in zip(self._shapes.items(), at):
            take = min(left, n_at)
            left -= take
            keys = self._grouped(name)
            out[name] = _keep_mask(
                keys, torch.tensor(lo, dtype=keys.dtype, device=keys.device), torch.tensor(take, device=keys.device)
            ).reshape(shape)
        return out


def weight_masks(
    scores: dict[str, torch.Tensor], sparsity: float, scope: str = "row", absolute: bool = True
) -> dict[str, torch.Tensor]:
    """One-off `MaskBuilder(scores, scope, absolute).masks(sparsity)`."""
    return MaskBuilder(scores, scope, absolute).masks(sparsity)


def lowest_k(scores: dict[str, torch.Tensor], k: int, absolute: bool = False) -> dict[str, torch.Tensor]:
    """Keep-masks pruning exactly the `k` lowest-scored components across all tensors (Eq. 2).

    Ranks the signed scores unless `absolute`. Targeted correction uses it to prune exactly k
    neurons or heads (pass negated scores to prune the k most relevant).
    """
    return MaskBuilder(scores, "global", absolute).lowest(k)


def unit_masks(
    scores: dict[str, torch.Tensor], amount: int | float, scope: str = "global", absolute: bool = True
) -> dict[str, torch.Tensor]:
    """Structured keep-masks: neurons ({linear module: [out]}) or heads ({attention module: [heads]}).

    `amount` is a count when an int (``"global"``: overall, ``"layer"``: per module) and a
    fraction when a float. ``"global"`` is the paper's globally structured scale (App. C).
    """
    if scope not in ("global", "layer"):
        raise ValueError(f"unknown structured scope {scope!r}; valid: 'global', 'layer'")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"amount must be an int count or a float fraction, got {amount!r}")
    builder = MaskBuilder(scores, scope, absolute)
    return builder.lowest(amount) if isinstance(amount, int) else builder.masks(amount)


neuron_masks = unit_masks  # {linear module name: Tensor[out]} -> {name: BoolTensor[out]}
head_masks = unit_masks  # {attention module name: Tensor[heads]} -> {name: BoolTensor[heads]}


def measured_sparsity(masks: dict[str, torch.Tensor]) -> dict:
    """``{"per_layer": {name: fraction pruned}, "overall": fraction pruned}`` of keep-masks."""
    per_layer = {name: 1.0 - m.sum().item() / m.numel() if m.numel() else 0.0 for name, m in masks.items()}
    total = sum(m.numel() for m in masks.values())
    pruned = sum(m.numel() - m.sum().item() for m in masks.values())
    return {"per_layer": per_layer, "overall": pruned / total if total else 0.0}
