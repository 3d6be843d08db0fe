"""Wanda per row, pruned by this suite and by Wanda's published procedure re-stated here, on the
same model and calibration set: the masks must be identical, and so must the perplexities.

The re-statement follows the authors' `prune_wanda` (one calibration sample at a time through
each decoder layer in turn; a running mean of the squared input norms per linear from forward
hooks; score |W| · sqrt(scaler_row); a stable sort of each row; the first int(n · s) indices
pruned; then the pruned layer's outputs become the next layer's inputs). The authors' running mean
of the squared norms rounds differently from a plain sum in float32, which flips near-ties:
world-llama at 70 % differs in 26 of 524,288 mask entries (perplexity 7.1192 vs 7.1176); with
``--plain-sum`` (the same arithmetic as attrprune) the masks are identical. Llama-style models only
(the layers under `model.model.layers`, as the authors' code assumes); it is a check, not a method.

Run: ``python bench/authors_wanda.py --model-dir world/models/world-llama
--calibration resources/refsets/world-llama/general-s0.safetensors --sparsity 0.7``
(the calibration set is the default run's first general reference set).
"""

from __future__ import annotations

import argparse
import copy

import torch


class _Stop(Exception):
    pass


@torch.no_grad()
def wanda_as_published(model, input_ids: torch.Tensor, sparsity: float, plain_sum: bool = False) -> None:
    """Prune `model` in place as the Wanda repository's prune_wanda does (unstructured, per row);
    `plain_sum` accumulates Σ x² instead of the authors' running mean (the same ranking in exact
    arithmetic)."""
    layers = model.model.layers
    inps, kwargs = [], []

    def catch(module, args, kw):
        inps.append(args[0] if args else kw.pop("hidden_states"))
        kwargs.append({k: v for k, v in kw.items() if k != "hidden_states"})
        raise _Stop

    handle = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    for row in input_ids:
        try:
            model(row[None], use_cache=False)
        except _Stop:
            pass
    handle.remove()
    for layer in layers:
        subset = {n: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}
        scaler = {n: torch.zeros(m.weight.shape[1]) for n, m in subset.items()}
        count = dict.fromkeys(subset, 0)

        def add_batch(name, scaler=scaler, count=count):
            def hook(module, inp, out):
                x = inp[0].reshape(-1, inp[0].shape[-1]).float()  # [tokens, in]
                if plain_sum:
                    scaler[name] += x.pow(2).sum(0)
                    return
                tmp = inp[0].shape[0]  # samples in this batch (the authors count samples, not tokens)
                scaler[name] *= count[name] / (count[name] + tmp)
                count[name] += tmp
                scaler[name] += torch.norm(x, p=2, dim=0) ** 2 / count[name]

            return hook

        hooks = [m.register_forward_hook(add_batch(n)) for n, m in subset.items()]
        for x, kw in zip(inps, kwargs):
            layer(x, **kw)
        for h in hooks:
            h.remove()
        for name, m in subset.items():
            metric = m.weight.abs() * torch.sqrt(scaler[name].reshape(1, -1))
            mask = torch.zeros_like(metric, dtype=torch.bool)
            indices = torch.sort(metric, dim=-1, stable=True)[1][:, : int(metric.shape[1] * sparsity)]
            mask.scatter_(1, indices, True)
            m.weight[mask] = 0
        outs = []
        for x, kw in zip(inps, kwargs):
            out = layer(x, **kw)
            outs.append(out[0] if isinstance(out, tuple) else out)
        inps = outs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--calibration", required=True, help="a general refset file (safetensors)")
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--data-dir", default="world/data")
    parser.add_argument("--ppl-windows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="samples per block forward in attrprune's pruner")
    parser.add_argument("--plain-sum", action="store_true", help="sum the squared norms instead of a running mean")
    args = parser.parse_args()

    from attrprune.evaluation.lm import evaluate_lm, flatten_results
    from attrprune.evaluation.perplexity import perplexity_texts, token_perplexity
    from attrprune.models import load_model
    from attrprune.pruning.pruners import WandaOptions, prune
    from attrprune.refsets import load_refset

    model, tokenizer = load_model(args.model_dir, dtype="float32", device_map="cpu")
    refset = load_refset(args.calibration)
    assert bool(refset.attention_mask.all()), "the re-statement takes unpadded windows"
    ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
    prune("wanda", ours, refset, args.sparsity, "row", WandaOptions(batch_size=args.batch_size))
    wanda_as_published(theirs, refset.input_ids, args.sparsity, args.plain_sum)
    names = [n for n, p in ours.named_parameters() if n.endswith("proj.weight")]
    differ = sum(
        int(((dict(ours.named_parameters())[n] == 0) != (dict(theirs.named_parameters())[n] == 0)).sum()) for n in names
    )
    texts = perplexity_texts("world", args.data_dir)
    seqlen = model.config.max_position_embeddings
    for label, m in (("attrprune", ours), ("as published", theirs)):
        token = token_perplexity(m, tokenizer, texts, seqlen, documents=True, max_windows=args.ppl_windows)["value"]
        rows = flatten_results(evaluate_lm(m, tokenizer, ["world_ppl"], data_dir=args.data_dir, limit=100))
        word = next(r["value"] for r in rows if r["metric"] == "word_perplexity")
        print(
            f"{label:13s} wanda row {args.sparsity:.2f}: token perplexity {token:.4f}, lm-eval word perplexity {word:.4f}"
        )
    print(f"mask entries that differ: {differ} of {sum(dict(ours.named_parameters())[n].numel() for n in names)}")


if __name__ == "__main__":
    main()
