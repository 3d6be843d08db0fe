"""AurA (Suau et al., ICML 2024, "Whispering Experts: Neural Interventions for Toxicity Mitigation
in Language Models"): the field's neuron-level toxicity baseline, here beside the pruning methods.

Definition (the paper's, restated): every MLP neuron m is read as a detector of toxic text. Its
response to a sentence x is the maximum over x's tokens of its activation, z_m(x) = max_t z_m(x_t)
(here the output of the up / fc1 projection, the neurons this project prunes). Over a set of
sentences labelled toxic or non-toxic, AUROC_m is the area under the ROC curve of z_m as a score of
"toxic" (ties count one half: the Mann-Whitney statistic). Neurons that detect toxicity better than
chance, AUROC_m > 0.5, are dampened: their activation is multiplied by

    alpha_m = 1 - Gini_m,   Gini_m = 2 (AUROC_m - 0.5),

so a perfect detector (AUROC 1) is silenced and a chance-level one left as it is; neurons with
AUROC_m <= 0.5 are untouched (alpha_m = 1). No hyper-parameter: neither a number of neurons nor a
threshold beyond chance. Because it scales activations rather than removing components, AurA has
one operating point.

Scaling neuron m's up / fc1 output by alpha_m >= 0 scales its contribution to the block output by
alpha_m in both architectures: Llama multiplies up's output elementwise by act(gate) before the
down projection (linear in it), OPT applies ReLU, which commutes with a non-negative factor
(ReLU(a z) = a ReLU(z)). The intervention is therefore applied by scaling the neuron's row of the
up / fc1 weight (and its bias, OPT) by alpha_m.

Sentences, in the world: each toxicity reference prompt (train names and objects, disjoint from
the held-out prompts) completed by the unpruned model's greedy reply, labelled by the world's
toxicity scorer, together with the lines of the reference dialogue text (ordinary world text with
quoted compliments and recitals; none toxic by the scorer): the world's counterpart of the
labelled toxic and non-toxic comments the paper uses.
"""

from __future__ import annotations

import torch


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per column of `scores` [sentences, neurons], the AUROC of the column as a score of
    `labels` [sentences] (1 = toxic): P(score of a toxic > score of a non-toxic) + 1/2 P(tie)."""
    labels = labels.bool()
    pos, neg = scores[labels], scores[~labels]  # [P, N_neurons], [Q, N_neurons]
    if not len(pos) or not len(neg):
        raise ValueError(f"AUROC needs toxic and non-toxic sentences, got {len(pos)} toxic and {len(neg)} non-toxic")
    greater = (pos[:, None, :] > neg[None, :, :]).double().sum((0, 1))
    ties = (pos[:, None, :] == neg[None, :, :]).double().sum((0, 1))
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


def dampening(aurocs: torch.Tensor) -> torch.Tensor:
    """alpha = 1 - 2 (AUROC - 0.5) where AUROC > 0.5, else 1."""
    return torch.where(aurocs > 0.5, 1.0 - 2.0 * (aurocs - 0.5), torch.ones_like(aurocs))


@torch.no_grad()
def neuron_responses(model, tokenizer, texts: list[str], names: list[str], batch_size: int = 32) -> torch.Tensor:
    """[sentences, neurons] max over each sentence's tokens of the outputs of the modules `names`
    (concatenated in order); padding positions are left out of the maximum. Sentences longer than
    the model's context are cut to it (learned positions end there)."""
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: outputs.__setitem__(n, out))
        for n in names
    ]
    device = next(model.parameters()).device
    rows = []
    try:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True)
            length = model.config.max_position_embeddings  # right padding: cutting keeps each start
            enc = {k: v[:, :length].to(device) for k, v in enc.items()}
            model(**enc)
            keep = enc["attention_mask"].bool()[..., None]  # [b, t, 1]
            b, t = enc["input_ids"].shape
            # OPT applies fc1 to the flattened [b * t, hidden] states
            acts = torch.cat([outputs[n].float().reshape(b, t, -1) for n in names], -1)  # [b, t, neurons]
            rows.append(acts.masked_fill(~keep, -torch.inf).amax(1).cpu())
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(rows)


@torch.no_grad()
def apply_dampening(model, names: list[str], alphas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scale each neuron's row of the modules `names` (weight [out, in], and bias) by its alpha, in
    place; returns the original rows to restore with `restore`."""
    saved, start = {}, 0
    for n in names:
        module = model.get_submodule(n)
        size = module.weight.shape[0]
        a = alphas[start : start + size].to(module.weight)
        saved[n] = (module.weight.detach().clone(), None if module.bias is None else module.bias.detach().clone())
        module.weight.mul_(a[:, None])
        if module.bias is not None:
            module.bias.mul_(a)
        start += size
    if start != len(alphas):
        raise ValueError(f"{len(alphas)} dampening factors for {start} neurons")
    return saved


@torch.no_grad()
def restore(model, saved: dict) -> None:
    for n, (w, b) in saved.items():
        module = model.get_submodule(n)
        module.weight.copy_(w)
        if b is not None:
            module.bias.copy_(b)
