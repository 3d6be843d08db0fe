"""SparseGPT (Frantar & Alistarh 2023): prune one linear layer and reconstruct its kept weights.

Written from the paper's equations and the reference code's defaults. For a layer
W [out, in] with calibration inputs X [in, tokens], minimise ‖WX − ŴX‖² under a sparsity mask:

* H = 2XXᵀ over the calibration tokens (`Hessian`), damped by λ = percdamp · mean(diag H)
  (percdamp = 0.01); an input that is never active (H_jj = 0, e.g. an OPT neuron whose ReLU never
  fires) gets H_jj = 1 and its weights are zeroed outright, as the reference code does (they
  never reach the output on the calibration data, and then count among the pruned); sparsity 0
  leaves the layer exactly as it was;
* U = the upper Cholesky factor of H⁻¹ (so the rows of U are the inverse Hessians of the
  remaining columns, one column eliminated at a time, the paper's "Hessian synchronisation");
* the columns are walked in blocks of ``blocksize`` = 128. At the start of each block the mask of
  the block is chosen by the OBS error w_ij² / U_jj² ("adaptive mask selection"); then each column
  j in order: the pruned entries are zeroed, the error e = (w_j − q_j) / U_jj is spread over the
  block's remaining columns (W_:,j+1: −= e · U_j,j+1:), and after the block the later columns
  receive the block's accumulated error at once ("lazy batch updates").

Comparison groups (``scope``): ``"layer"`` is the reference code's: within each block of columns
all rows compete together, and every weight whose OBS error is at or below the error at sorted
index ``int(s · n)`` of the block is pruned (``tmp <= thresh``: one more than int(s · n), plus
ties). ``"row"`` prunes within each row of each block, exactly ``int(s · in)`` per row over the
whole layer (cumulative per block); ``"N:M"`` chooses N of every M columns per row when the walk
reaches the group's first column, as the reference code does.

Run: ``sparsegpt_layer(weight, hessian.matrix(), 0.5, "layer")`` returns the new weight and the keep-mask.
"""

from __future__ import annotations

import torch

from attrprune.pruning.masks import n_pruned
from attrprune.registry import parse_scope


class Hessian:
    """Σ_t x_t x_tᵀ over real calibration tokens, for H = 2XXᵀ / n (the scale cancels in SparseGPT)."""

    def __init__(self, n_in: int, device: torch.device):
        self.xtx = torch.zeros(n_in, n_in, device=device)
        self.n_tokens = 0

    def add(self, x: torch.Tensor) -> None:
        self.xtx += x.T @ x  # x: [tokens, in] float32 -> [in, in]
        self.n_tokens += len(x)

    def matrix(self) -> torch.Tensor:
        return self.xtx * (2.0 / max(self.n_tokens, 1))


def inverse_cholesky(h: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(upper Cholesky factor of the damped H⁻¹ [in, in], dead inputs [in] bool)."""
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0  # a dead input has no correlations: its row of the factor is 0 off the diagonal
    diag = torch.arange(len(h), device=h.device)
    h[diag, diag] += percdamp * torch.diag(h).mean()
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True), dead


def _block_mask(errors: torch.Tensor, sparsity: float, scope: str, i1: int, i2: int) -> torch.Tensor:
    """Pruned entries of one block of columns [out, i2 - i1] by lowest OBS error."""
    if scope == "row":
        k = n_pruned(sparsity, i2, "floor") - n_pruned(sparsity, i1, "floor")  # per row, cumulative
        order = torch.argsort(errors, dim=1, stable=True)[:, :k]  # [out, k]
        return torch.zeros_like(errors, dtype=torch.bool).scatter_(1, order, True)
    if sparsity == 0:
        return torch.zeros_like(errors, dtype=torch.bool)
    flat = errors.flatten()
    threshold = torch.sort(flat).values[n_pruned(sparsity, flat.numel(), "at_or_below")]
    return errors <= threshold


def _obs_errors(w: torch.Tensor, d: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """OBS error w² / U_jj² of pruning each weight of some columns [out, c]; 0 for dead inputs."""
    return w.pow(2) / d.pow(2) * live


def _prune_block(
    w1: torch.Tensor, u1: torch.Tensor, live: torch.Tensor, mask1: torch.Tensor, nm: tuple[int, int] | None
) -> torch.Tensor:
    """Prune one block of columns in place, column by column, spreading each column's error over
    the block's later columns. w1 [out, B] weights, u1 [B, B] factor, mask1 [out, B] pruned (chosen
    here per group of M for N:M). Returns the scaled errors [out, B] for the lazy update."""
    d = torch.diag(u1)  # [B]
    err1 = torch.zeros_like(w1)
    for j in range(w1.shape[1]):
        if nm and j % nm[1] == 0:
            group = _obs_errors(w1[:, j : j + nm[1]], d[j : j + nm[1]], live[j : j + nm[1]])  # [out, M]
            mask1.scatter_(1, j + torch.topk(group, nm[0], dim=1, largest=False).indices, True)
        col = w1[:, j]
        q = torch.where(mask1[:, j], torch.zeros_like(col), col)
        err1[:, j] = (col - q) / d[j]
        w1[:, j:] -= err1[:, j : j + 1] @ u1[j : j + 1, j:]  # OBS update of this and the later columns
        w1[:, j] = q  # exactly zero where pruned
    return err1


@torch.no_grad()
def sparsegpt_layer(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    scope: str = "layer",
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(new weight [out, in] in float32, keep-mask [out, in]) for `weight` [out, in] and H [in, in]."""
    parsed = parse_scope(scope)
    if parsed == "global":
        raise ValueError("sparsegpt prunes one layer at a time: scope 'global' is not available; use 'layer' or 'row'")
    nm = parsed if isinstance(parsed, tuple) else None
    if nm and (blocksize % nm[1] or weight.shape[1] % nm[1]):
        raise ValueError(f"scope {scope!r}: blocksize {blocksize} and input dim {weight.shape[1]} must divide by M")
    w = weight.detach().float().clone()  # [out, in]
    u, dead = inverse_cholesky(hessian.float(), percdamp)  # [in, in] upper triangular, [in]
    if sparsity > 0:
        w[:, dead] = 0  # inputs never active: their weights are zeroed, as the reference code does
    pruned = torch.zeros_like(w, dtype=torch.bool)
    for i1 in range(0, w.shape[1], blocksize):
        i2 = min(i1 + blocksize, w.shape[1])
        w1, u1, live = w[:, i1:i2].clone(), u[i1:i2, i1:i2], ~dead[i1:i2]  # [out, B], [B, B], [B]
        mask1 = torch.zeros_like(w1, dtype=torch.bool)
        if nm is None:  # adaptive mask selection: the whole block's mask from its current weights
            mask1 = _block_mask(_obs_errors(w1, torch.diag(u1), live), sparsity, parsed, i1, i2)
        err1 = _prune_block(w1, u1, live, mask1, nm)
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]  # lazy batch update of the columns after the block
        pruned[:, i1:i2] = mask1
    return w, ~pruned
