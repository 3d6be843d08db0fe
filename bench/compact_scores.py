"""How much 16-bit storage of per-weight scores changes the pruning masks (config `scores.storage`).

For each committed world model (world-llama, world-opt) and each scoring method (lrp, gradient,
wanda), scores are computed in-process on a general reference set of the world's text (128
windows x 64 tokens, seed 0, as the workflow's general-s0), or read from existing scores files
(``--scores``). The weight scores are written and read back through the suite's scores files
with storage float16 (`attrprune.relevance.store`: rescaled per tensor), and, for comparison,
cast to bfloat16 and back (the 16-bit format not offered), and masks are built from the float32
and the round-tripped scores with `MaskBuilder` (ranked by |score|, as compression does) at
sparsities 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, for the row, layer and global scopes.

Reported per model x method x storage x scope: the share of mask entries that differ (kept in one,
pruned in the other; a swap across the threshold counts 2), the largest over sparsities, and the
share of entries that the 16-bit rounding makes tie with another entry of their row (ties the
float32 scores do not have; masks break them by position). With ``--json`` it also writes the
numbers, including the row-scope change split by row length, to a file.

Run: ``python bench/compact_scores.py`` (about 2 minutes on 2 CPU cores), or
``python bench/compact_scores.py --scores results/world-llama/scores/lrp/general-s0.safetensors``
to measure existing scores files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from attrprune.pruning import MaskBuilder
from attrprune.relevance.methods import Scores
from attrprune.relevance.store import load_scores, save_scores

ROOT = Path(__file__).resolve().parents[1]
SPARSITIES = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
STORAGES = ("float16", "bfloat16")
SCOPES = ("row", "layer", "global")


def computed_scores(models: list[str], methods: list[str], n: int):
    """(label, weight scores) of every model x method, computed on general-s0-like text."""
    from attrprune.models import load_model
    from attrprune.refsets import general_refset, general_texts
    from attrprune.relevance import ScoreOptions, compute_scores

    data = ROOT / "world" / "data"
    for name in models:
        model, tokenizer = load_model(ROOT / "world" / "models" / name, dtype="float32")
        refset = general_refset(tokenizer, general_texts("world", data), n=n, length=64, seed=0)
        for method in methods:
            torch.manual_seed(0)
            yield name, method, compute_scores(method, model, refset, ScoreOptions(progress=False)).weights


def file_scores(paths: list[Path]):
    for path in paths:
        scores, meta = load_scores(path)
        if meta.get("storage", "float32") != "float32":
            raise SystemExit(f"{path} is stored as {meta['storage']}: measure float32 scores files")
        yield str(meta.get("model_dir", path)), meta.get("method", "?"), scores.weights


def round_trip(weights: dict[str, torch.Tensor], storage: str, tmp: Path) -> dict[str, torch.Tensor]:
    if storage == "bfloat16":  # what bfloat16 storage would be: a plain cast (float32's range)
        return {name: w.bfloat16().float() for name, w in weights.items()}
    path = tmp / f"{storage}.safetensors"
    save_scores(Scores(weights=weights), path, {}, storage=storage)
    return load_scores(path)[0].weights


def adjacent_ties(weights: dict[str, torch.Tensor]) -> int:
    """Entries equal (in |score|) to the next one of their sorted row."""
    return sum(int((s[:, 1:] == s[:, :-1]).sum()) for s in (w.abs().sort(dim=1).values for w in weights.values()))


def changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names=None) -> int:
    return sum(int((a[k] != b[k]).sum()) for k in (names or a))


def exact_masks(weights: dict[str, torch.Tensor]) -> dict:
    """{scope: {sparsity: masks}} of the float32 scores."""
    out = {}
    for scope in SCOPES:
        builder = MaskBuilder(weights, scope)
        out[scope] = {s: builder.masks(s) for s in SPARSITIES}
    return out


def measure(weights: dict[str, torch.Tensor], exact: dict, storage: str, tmp: Path) -> dict:
    stored = round_trip(weights, storage, tmp)
    numel = sum(w.numel() for w in weights.values())
    out = {"numel": numel, "ties_created": (adjacent_ties(stored) - adjacent_ties(weights)) / numel, "changed": {}}
    by_length = {}
    for scope in SCOPES:
        compact = MaskBuilder(stored, scope)
        out["changed"][scope] = {}
        for s in SPARSITIES:
            m32, m16 = exact[scope][s], compact.masks(s)
            out["changed"][scope][s] = changed(m32, m16) / numel
            if scope == "row":
                for length in sorted({w.shape[1] for w in weights.values()}):
                    names = [k for k, w in weights.items() if w.shape[1] == length]
                    total = sum(weights[k].numel() for k in names)
                    by_length.setdefault(length, {})[s] = changed(m32, m16, names) / total
    out["row_changed_by_row_length"] = by_length
    return out


def pct(x: float) -> str:
    return f"{100 * x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["world-llama", "world-opt"])
    parser.add_argument("--methods", nargs="+", default=["lrp", "gradient", "wanda"])
    parser.add_argument("--n", type=int, default=128, help="reference windows (64 tokens each)")
    parser.add_argument("--scores", nargs="+", type=Path, help="float32 scores files to measure instead")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    a = parser.parse_args()
    torch.set_num_threads(2)
    source = file_scores(a.scores) if a.scores else computed_scores(a.models, a.methods, a.n)
    rows, worst = [], {}
    print("Share of mask entries (%) that differ from the float32 scores' masks, per sparsity; ties: share of")
    print("entries the 16-bit rounding makes equal to a neighbour in their row (%).\n")
    print("| model | method | storage | scope | " + " | ".join(f"{s:g}" for s in SPARSITIES) + " | max | ties |")
    print("|---|---|---|---|" + "---|" * (len(SPARSITIES) + 2))
    with tempfile.TemporaryDirectory() as tmp:
        for model, method, weights in source:
            exact = exact_masks(weights)
            for storage in STORAGES:
                r = measure(weights, exact, storage, Path(tmp))
                rows.append({"model": model, "method": method, "storage": storage, **r})
                for scope in SCOPES:
                    values = [r["changed"][scope][s] for s in SPARSITIES]
                    key = (storage, scope)
                    worst[key] = max(worst.get(key, 0.0), max(values))
                    print(
                        f"| {model} | {method} | {storage} | {scope} | "
                        + " | ".join(pct(v) for v in values)
                        + f" | {pct(max(values))} | {pct(r['ties_created'])} |"
                    )
    print("\nLargest share changed over models, methods and sparsities (%):\n")
    print("| storage | " + " | ".join(SCOPES) + " |")
    print("|---|" + "---|" * len(SCOPES))
    for storage in STORAGES:
        print(f"| {storage} | " + " | ".join(pct(worst[(storage, scope)]) for scope in SCOPES) + " |")
    if a.json:
        a.json.write_text(json.dumps({"sparsities": SPARSITIES, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
