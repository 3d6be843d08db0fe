"""The scoring methods, named in `attrprune.registry.METHODS`.

All methods share the signature ``method(model, refset, options) -> Scores``:

* ``lrp``: R = w ⊙ (LRP-modified gradient of the explained target) per token (paper Eq. 8),
  |R| summed over tokens (``aggregation="abs"``; or R summed, ``"signed"``) and averaged over
  samples (Eq. 1), through lxt's efficient mode (AttnLRP, or CP-LRP);
* ``gradient``: |w ⊙ ∂target/∂w| with the plain gradient, same aggregation;
* ``wanda``: |W| · ‖X‖₂ per input channel over the reference tokens (Sun et al. 2023);
* ``magnitude``: |W|;
* ``activation``: mean |output| per neuron and per head (structured only);
* ``atp``: attribution patching (structured only; IOI sets with corrupted prompts): per prompt
  (a_corrupted − a_clean) · ∂target/∂a at the clean run, summed over the positions and the
  head's dimensions, |.| averaged over prompts;
* ``random``: seeded uniform scores, a control.

Neuron and head scores of the gradient-type methods are the relevance at a layer's output unit
(z_j·g_j per token; for z = Wx + b that is Σ_i R_ji plus the bias share) and at a head's output,
i.e. at its columns of the output projection's input.
In AttnLRP this equals the relevance at the head's softmax output summed over keys (for
out = A·V, Σ_k A_qk ∂out/∂A_qk · g = Σ_d out_qd g_qd), so no attention hooks are needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attrprune import registry
from attrprune.architectures import Architecture, architecture_of
from attrprune.logs import steps
from attrprune.models import input_device
from attrprune.refsets import RefSet, explained_target


@dataclass
class Scores:
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # module -> [out, in]
    neurons: dict[str, torch.Tensor] = field(default_factory=dict)  # module -> [out]
    heads: dict[str, torch.Tensor] = field(default_factory=dict)  # attention module -> [heads]

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for kind, table in (("weight", self.weights), ("neuron", self.neurons), ("head", self.heads)):
            out.update({f"{kind}/{name}": t.detach().float().contiguous().cpu() for name, t in table.items()})
        return out


@dataclass(frozen=True)
class ScoreOptions:
    batch_size: int = 16
    seed: int = 0
    lrp_variant: str = "attnlrp"  # or "cp" (CP-LRP: no relevance through the softmax)
    # "abs": |R| per token, summed (the predecessor code's default, abs_flag); "signed": R summed
    # over tokens, then |.| only for `gradient`. Signed sums cancel across tokens: on the world
    # models, row-wise pruning by signed LRP at 50 % gave perplexity 9.5 against 7.4 with "abs".
    aggregation: str = "abs"
    progress: bool = True


def _linears(model, arch: Architecture) -> dict[str, torch.nn.Module]:
    return {name: model.get_submodule(name) for name in arch.linear_names(model)}


def _weights(model, arch: Architecture) -> dict[str, torch.Tensor]:
    """Every prunable weight as [out, in], whatever its storage layout (GPT-2's Conv1D is [in, out])."""
    return {name: arch.weight(lin) for name, lin in _linears(model, arch).items()}


def _head_module(name: str) -> str:
    # "model.layers.3.self_attn.o_proj" -> "model.layers.3.self_attn"
    return name.rsplit(".", 1)[0]


def _heads_from_columns(columns: torch.Tensor, n_heads: int) -> torch.Tensor:
    return columns.view(n_heads, -1).sum(-1)  # [hidden] -> [heads, head_dim] -> [heads]


def _batches(refset: RefSet, options: ScoreOptions, desc: str):
    n_batches = -(-len(refset) // options.batch_size)
    return steps(refset.batches(options.batch_size), total=n_batches, desc=desc, enabled=options.progress)


@contextlib.contextmanager
def _grad_only_on(params: list[torch.nn.Parameter], model):
    """Gradients for `params` only (the embeddings and norms need none); restores flags on exit."""
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
            p.grad = None
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None


def modified_gradient_scores(model, refset: RefSet, options: ScoreOptions, absolute: bool, desc: str) -> Scores:
    """Relevance R = w ⊙ ∂target/∂w with whatever gradient autograd computes (plain, or
    LRP-modified when lxt's patch is active), aggregated over tokens as `options.aggregation` says
    and averaged over samples."""
    if options.aggregation == "signed":
        return _signed_scores(model, refset, options, absolute, desc)
    if options.aggregation == "abs":
        return _token_abs_scores(model, refset, options, desc)
    raise ValueError(f"unknown aggregation {options.aggregation!r}; valid: ['abs', 'signed']")


def _signed_scores(model, refset: RefSet, options: ScoreOptions, absolute: bool, desc: str) -> Scores:
    """Σ over tokens of R, from the accumulated weight gradient multiplied by the weight once."""
    arch = architecture_of(model)
    linears = _linears(model, arch)
    params = [p for lin in linears.values() for p in (lin.weight, lin.bias) if p is not None]
    n = len(refset)
    device = input_device(model)
    with _grad_only_on(params, model):
        for ids, mask, plus, minus in _batches(refset, options, desc):
            ids, mask, plus, minus = (t.to(device) for t in (ids, mask, plus, minus))
            logits = model(input_ids=ids, attention_mask=mask).logits  # [b, L, V]
            explained_target(logits.float(), plus, minus).backward()
        scores = Scores()
        n_heads = arch.n_heads(model)
        roles = arch.linear_names(model)
        for name, lin in linears.items():
            rel = (arch.weight(lin).float() * arch.as_out_in(lin.weight.grad).float()) / n  # [out, in]
            neuron = rel.sum(1)
            if lin.bias is not None:
                neuron = neuron + lin.bias.float() * lin.bias.grad.float() / n
            scores.weights[name] = rel.abs() if absolute else rel
            scores.neurons[name] = neuron.abs() if absolute else neuron
            if roles[name][1] == arch.head_out:
                head = _heads_from_columns(rel.sum(0), n_heads)
                scores.heads[_head_module(name)] = head.abs() if absolute else head
    return scores


def _token_abs_scores(model, refset: RefSet, options: ScoreOptions, desc: str) -> Scores:
    """Σ over tokens of |R|. Per token, R_ji = w_ji x_i g_j, so Σ_t |R_ji| = |w_ji| (|G|ᵀ|X|)_ji:
    one matmul of absolute activations and output gradients per layer, collected by hooks, in
    place of the weight-gradient matmul (no weight requires grad). Neurons: Σ_t |z_j g_j|;
    heads: Σ_t |Σ_{d in head} x_d (g W)_d| at the head-output projection's input."""
    arch = architecture_of(model)
    linears = _linears(model, arch)
    roles = arch.linear_names(model)
    n_heads = arch.n_heads(model)
    device = input_device(model)
    weights = _weights(model, arch)  # [out, in] views
    # Each accumulator lives with its layer (layers sit on different GPUs under a device map).
    acc_w = {name: torch.zeros(w.shape, device=w.device) for name, w in weights.items()}
    acc_n = {name: torch.zeros(w.shape[0], device=w.device) for name, w in weights.items()}
    acc_h = {
        name: torch.zeros(n_heads, device=weights[name].device) for name in linears if roles[name][1] == arch.head_out
    }

    def on_forward(name, x, out):
        x, z = x.detach(), out.detach()

        def on_grad(g):
            g2 = g.reshape(-1, g.shape[-1]).float()  # [tokens, out]
            x2 = x.reshape(-1, x.shape[-1]).float()  # [tokens, in]
            acc_w[name] += g2.abs().T @ x2.abs()  # [out, in]
            acc_n[name] += (z.reshape(-1, z.shape[-1]).float() * g2).abs().sum(0)
            if name in acc_h:
                per_head = (x2 * (g2 @ weights[name].float())).view(len(x2), n_heads, -1).sum(-1)  # [tokens, heads]
                acc_h[name] += per_head.abs().sum(0)

        out.register_hook(on_grad)

    hooks = [
        lin.register_forward_hook(lambda m, i, o, name=name: on_forward(name, i[0], o)) for name, lin in linears.items()
    ]
    # Gradients must flow through the network but no weight needs one: start the graph at the
    # token embeddings.
    hooks.append(model.get_input_embeddings().register_forward_hook(lambda m, i, o: o.requires_grad_(True)))
    try:
        with _grad_only_on([], model):
            for ids, mask, plus, minus in _batches(refset, options, desc):
                ids, mask, plus, minus = (t.to(device) for t in (ids, mask, plus, minus))
                logits = model(input_ids=ids, attention_mask=mask).logits  # [b, L, V]
                explained_target(logits.float(), plus, minus).backward()
    finally:
        for h in hooks:
            h.remove()
    n = len(refset)
    scores = Scores()
    for name in linears:
        # In place and off the device layer by layer: for an 8B model a second fp32 copy of
        # every accumulator would not fit next to the first on an 80 GB GPU.
        scores.weights[name] = acc_w.pop(name).mul_(weights[name].detach().abs()).div_(n).cpu()
        scores.neurons[name] = acc_n[name] / n
        if name in acc_h:
            scores.heads[_head_module(name)] = acc_h[name] / n
    return scores


def lrp(model, refset: RefSet, options: ScoreOptions) -> Scores:
    from attrprune.relevance.lrp import lrp_patched

    with lrp_patched(model, options.lrp_variant):
        return modified_gradient_scores(model, refset, options, absolute=False, desc=f"lrp ({options.lrp_variant})")


def gradient(model, refset: RefSet, options: ScoreOptions) -> Scores:
    return modified_gradient_scores(model, refset, options, absolute=True, desc="gradient")


@contextlib.contextmanager
def _forward_hooks(modules: dict[str, torch.nn.Module], hook: Callable):
    handles = [
        m.register_forward_hook(lambda mod, inp, out, name=name: hook(name, inp[0], out)) for name, m in modules.items()
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def _forward_statistics(
    model, refset: RefSet, options: ScoreOptions, desc: str, stat: Callable
) -> dict[str, torch.Tensor]:
    """Σ over real (unpadded) reference tokens of stat(input, output) per linear layer."""
    arch = architecture_of(model)
    linears = _linears(model, arch)
    device = input_device(model)
    sums: dict[str, torch.Tensor] = {}
    current_mask: list[torch.Tensor] = []

    def hook(name, x, y):
        keep = current_mask[0].to(x.device).bool().reshape(-1)  # [b*L]
        # [b, L, d] (Llama) or already [b*L, d] (OPT's MLP) -> [real tokens, d]
        x, y = (t.reshape(-1, t.shape[-1])[keep].float() for t in (x, y))
        value = stat(x, y).sum(0)
        sums[name] = sums[name] + value if name in sums else value

    with _forward_hooks(linears, hook):
        for ids, mask, _, _ in _batches(refset, options, desc):
            current_mask[:] = [mask.to(device)]
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
    return sums


def wanda(model, refset: RefSet, options: ScoreOptions) -> Scores:
    sq = _forward_statistics(model, refset, options, "wanda", lambda x, y: x.pow(2))  # [in]
    scores = Scores()
    for name, weight in _weights(model, architecture_of(model)).items():
        w = weight.detach().float().abs() * sq[name].sqrt()[None, :]  # [out, in]
        scores.weights[name] = w
        scores.neurons[name] = w.sum(1)
    return scores


def magnitude(model, refset: RefSet, options: ScoreOptions) -> Scores:
    scores = Scores()
    for name, weight in _weights(model, architecture_of(model)).items():
        w = weight.detach().float().abs()
        scores.weights[name] = w
        scores.neurons[name] = w.sum(1)
    return scores


def activation(model, refset: RefSet, options: ScoreOptions) -> Scores:
    arch = architecture_of(model)
    n_tokens = refset.attention_mask.sum().item()
    # One pass: |output| for the neurons and |input| for the heads, side by side per layer.
    sums = _forward_statistics(model, refset, options, "activation", lambda x, y: torch.cat([y.abs(), x.abs()], -1))
    scores = Scores()
    roles = arch.linear_names(model)
    for name, w in _weights(model, arch).items():
        out_abs, in_abs = sums[name].split(list(w.shape))  # [out + in] -> [out], [in]
        scores.neurons[name] = out_abs / n_tokens
        if roles[name][1] == arch.head_out:
            scores.heads[_head_module(name)] = _heads_from_columns(in_abs / n_tokens, arch.n_heads(model))
    return scores


def atp(model, refset: RefSet, options: ScoreOptions) -> Scores:
    """Attribution patching (Nanda 2023; Kramár et al. 2024): the first-order estimate of how
    the explained target (IOI: logit(IO) − logit(S) at the last token) changes when a
    component's activation a is patched from the corrupted prompt into the clean one,
    (a_corrupted − a_clean) · ∂target/∂a, the gradient taken on the clean run. One corrupted
    forward pass and one clean forward and backward pass per batch.

    A head's activation is its slice of the head-output projection's input (o_proj / out_proj /
    c_proj), a neuron's is its input column of the MLP's down projection (down / fc2), keyed by
    the neuron-role module (up / fc1) as neuron scores and masks are. Per prompt the estimate is
    summed over positions (patching the whole component); over prompts, the mean of |estimate|
    (``aggregation="abs"``, importance whatever the sign) or the signed mean (``"signed"``)."""
    if options.aggregation not in ("abs", "signed"):
        raise ValueError(f"unknown aggregation {options.aggregation!r}; valid: ['abs', 'signed']")
    if refset.corrupted_ids is None:
        raise ValueError(
            "atp needs corrupted prompts and this reference set has none: build an ioi reference set "
            "(`python -m attrprune refset --kind ioi`) from prompts with at least five distinct names"
        )
    if refset.corrupted_ids.shape != refset.input_ids.shape:
        raise ValueError(
            f"corrupted prompts {tuple(refset.corrupted_ids.shape)} do not align with the prompts "
            f"{tuple(refset.input_ids.shape)}; rebuild the reference set"
        )
    arch = architecture_of(model)
    roles = arch.linear_names(model)
    n_heads = arch.n_heads(model)
    device = input_device(model)
    heads = {name: _head_module(name) for name in arch.names_with_roles(model, (arch.head_out,))}
    neuron_of_block = {roles[name][0]: name for name in arch.names_with_roles(model, (arch.neuron_role,))}
    neurons = {name: neuron_of_block[roles[name][0]] for name in arch.names_with_roles(model, (arch.mlp_out,))}
    readers = {name: model.get_submodule(name) for name in (*heads, *neurons)}
    sums: dict[str, torch.Tensor] = {}
    corrupted: dict[str, torch.Tensor] = {}
    batch: dict[str, torch.Tensor] = {}

    def keep_corrupted(name, x, out):
        corrupted[name] = x.detach()

    def on_clean(name, x, out):
        b, length = batch["mask"].shape
        # OPT's MLP runs on [b*L, d]: every activation as [b, L, d].
        delta = (corrupted[name] - x.detach()).reshape(b, length, -1).float()  # [b, L, d]
        mask = batch["mask"].to(x.device)[:, :, None].float()  # [b, L, 1]

        def on_grad(g):
            effect = delta * g.reshape(b, length, -1).float() * mask  # [b, L, d]
            if name in heads:
                per_prompt = effect.view(b, length, n_heads, -1).sum((1, 3))  # [b, L, heads, head_dim] -> [b, heads]
            else:
                per_prompt = effect.sum(1)  # [b, neurons]
            total = (per_prompt.abs() if options.aggregation == "abs" else per_prompt).sum(0)
            sums[name] = sums[name] + total if name in sums else total

        x.register_hook(on_grad)

    # The gradient must reach every reader's input but no weight needs one: start the graph at
    # the token embeddings.
    start_graph = model.get_input_embeddings().register_forward_hook(lambda m, i, o: o.requires_grad_(True))
    try:
        with _grad_only_on([], model):
            for i in steps(range(0, len(refset), options.batch_size), desc="atp batches", enabled=options.progress):
                part = slice(i, i + options.batch_size)
                ids, mask, plus, minus, bad = (
                    t[part].to(device)
                    for t in (refset.input_ids, refset.attention_mask, refset.plus, refset.minus, refset.corrupted_ids)
                )
                batch["mask"] = mask
                with torch.no_grad(), _forward_hooks(readers, keep_corrupted):
                    model(input_ids=bad, attention_mask=mask)
                with _forward_hooks(readers, on_clean):
                    logits = model(input_ids=ids, attention_mask=mask).logits  # [b, L, V]
                    explained_target(logits.float(), plus, minus).backward()
                corrupted.clear()
    finally:
        start_graph.remove()
    n = len(refset)
    scores = Scores()
    # A reader no gradient reached (nothing it computes reaches the target) scores 0.
    for name, module in heads.items():
        scores.heads[module] = sums.get(name, torch.zeros(n_heads)) / n
    for name, key in neurons.items():
        scores.neurons[key] = sums.get(name, torch.zeros(arch.weight(readers[name]).shape[1])) / n
    return scores


def random_scores(model, refset: RefSet, options: ScoreOptions) -> Scores:
    arch = architecture_of(model)
    gen = torch.Generator().manual_seed(options.seed)
    scores = Scores()
    roles = arch.linear_names(model)
    for name, w in _weights(model, arch).items():
        scores.weights[name] = torch.rand(w.shape, generator=gen)
        scores.neurons[name] = torch.rand(w.shape[0], generator=gen)
        if roles[name][1] == arch.head_out:
            scores.heads[_head_module(name)] = torch.rand(arch.n_heads(model), generator=gen)
    return scores


def compute_scores(method: str, model, refset: RefSet, options: ScoreOptions = ScoreOptions()) -> Scores:
    """Score `model` with `method` on `refset`; the model is put in eval mode and its weights
    are left exactly as they were."""
    score = registry.score_function(method)  # the registry names every method and its function
    if len(refset) == 0:
        raise ValueError("the reference set is empty; rebuild it with more samples (refsets --n)")
    model.eval()
    scores = score(model, refset, options)
    for key, t in scores.tensors().items():
        if not torch.isfinite(t).all():
            raise FloatingPointError(
                f"{method} produced non-finite scores in {key}; in bfloat16 / float16 use float32 "
                "(--dtype float32; models.<alias>.dtype in the config), or check the reference set for degenerate samples"
            )
    return scores
