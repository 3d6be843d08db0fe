"""Scores storage (config `scores.storage`): per-weight scores in float16 take half the file, are
read back as float32, survive any magnitude (rescaled per tensor, not cast), and change almost no
mask entries; neuron and head scores stay float32."""

import pytest
import torch
from safetensors import safe_open
from tiny_models import calibration, tiny_llama

from attrprune.pruning import MaskBuilder
from attrprune.relevance import ScoreOptions, compute_scores
from attrprune.relevance.methods import Scores
from attrprune.relevance.store import load_scores, save_scores
from attrprune.store import load_tensors

HALF_ULP = 2.0**-11  # float16's relative rounding error


def _scores(magnitudes=(1.0,)) -> Scores:
    g = torch.Generator().manual_seed(0)
    weights = {f"w{i}": m * torch.rand(32, 48, generator=g) for i, m in enumerate(magnitudes)}
    return Scores(
        weights=weights,
        neurons={"w0": torch.rand(32, generator=g) * 1e-9},  # would underflow in float16: must stay float32
        heads={"attn": torch.rand(4, generator=g) * 1e6},  # would overflow
    )


def _dtypes(path) -> dict[str, torch.dtype]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k).dtype for k in f.keys()}


@pytest.mark.parametrize("storage", ["float32", "float16"])
def test_round_trip_returns_float32_and_records_the_storage(tmp_path, storage):
    scores, path = _scores(), tmp_path / "s.safetensors"
    save_scores(scores, path, {"method": "lrp"}, storage=storage)
    loaded, meta = load_scores(path)
    assert meta["storage"] == storage and meta["method"] == "lrp"
    assert "storage_scale_log2" not in meta  # an encoding detail, not provenance for metrics.json
    stored = _dtypes(path)
    assert stored["weight/w0"] == getattr(torch, storage)
    assert stored["neuron/w0"] == stored["head/attn"] == torch.float32
    for table in ("weights", "neurons", "heads"):
        for name, want in getattr(scores, table).items():
            got = getattr(loaded, table)[name]
            assert got.dtype == torch.float32
            if table == "weights" and storage == "float16":
                assert not torch.equal(got, want)  # really rounded
                assert ((got - want).abs() <= HALF_ULP * want.abs()).all()
            else:
                assert torch.equal(got, want)


def test_old_files_without_storage_read_as_float32(tmp_path):
    from attrprune.store import save_tensors

    w = torch.rand(3, 4)
    save_tensors(tmp_path / "old.safetensors", {"weight/m": w}, {"method": "lrp"}, key="scores")
    loaded, meta = load_scores(tmp_path / "old.safetensors")
    assert torch.equal(loaded.weights["m"], w) and "storage" not in meta


@pytest.mark.parametrize("magnitude", [1e-12, 1e-7, 1.0, 1e6, 1e30])
def test_float16_rescales_each_tensor_so_nothing_underflows_or_overflows(tmp_path, magnitude):
    """A plain float16 cast turns scores below 6e-8 into 0 and above 65504 into inf; the stored
    tensor is scaled by a power of two (recorded), so every magnitude keeps 11 bits."""
    scores, path = _scores((magnitude, 1.0, 0.0)), tmp_path / "s.safetensors"
    save_scores(scores, path, {"method": "lrp"}, storage="float16")
    raw, record = load_tensors(path, key="scores")
    scales = record["storage_scale_log2"]
    assert scales["weight/w2"] == 0 and not raw["weight/w2"].any()  # all zero stays zero, unscaled
    for key in ("weight/w0", "weight/w1"):
        top = raw[key].float().abs().max()
        assert 2**14 <= top <= 2**15  # the largest score at the top of float16's range
    loaded = load_scores(path)[0].weights
    for name, want in scores.weights.items():
        got = loaded[name]
        assert torch.isfinite(got).all() and (got > 0).sum() == (want > 0).sum()
        assert ((got - want).abs() <= HALF_ULP * want.abs()).all(), name


def test_float16_file_is_about_half(tmp_path):
    g = torch.Generator().manual_seed(0)
    scores = Scores(
        weights={f"layers.{i}.proj": torch.rand(128, 256, generator=g) for i in range(4)},
        neurons={f"layers.{i}.proj": torch.rand(128, generator=g) for i in range(4)},
    )
    save_scores(scores, tmp_path / "f32.safetensors", {"method": "lrp"}, storage="float32")
    save_scores(scores, tmp_path / "f16.safetensors", {"method": "lrp"}, storage="float16")
    ratio = (tmp_path / "f16.safetensors").stat().st_size / (tmp_path / "f32.safetensors").stat().st_size
    assert 0.48 < ratio < 0.53, ratio


def test_unknown_storage_is_refused_on_writing_and_reading(tmp_path):
    from attrprune.store import save_tensors

    with pytest.raises(ValueError, match=r"unknown scores storage 'bfloat16'; valid: \['float32', 'float16'\]"):
        save_scores(_scores(), tmp_path / "s.safetensors", {"method": "lrp"}, storage="bfloat16")
    assert not (tmp_path / "s.safetensors").exists()
    path = tmp_path / "b.safetensors"
    save_tensors(path, {"weight/m": torch.rand(2, 2)}, {"method": "lrp", "storage": "int8"}, key="scores")
    with pytest.raises(ValueError, match="b.safetensors records an unknown scores storage 'int8'"):
        load_scores(path)
    save_tensors(path, {"weight/m": torch.rand(2, 2).half()}, {"method": "lrp", "storage": "float32"}, key="scores")
    with pytest.raises(ValueError, match="holds weight/m as float16 but records float32 storage"):
        load_scores(path)


def _changed(a: dict, b: dict) -> float:
    return sum(int((a[k] != b[k]).sum()) for k in a) / sum(m.numel() for m in a.values())


@pytest.mark.parametrize("method", ["lrp", "wanda"])
def test_float16_masks_match_float32_masks_on_a_tiny_model(tmp_path, method):
    """On real scores, float16 storage moves at most 0.1 % of mask entries at any sparsity and
    scope (bench/compact_scores.py: at most 0.016 % on the world models), whatever the scores'
    scale; a plain bfloat16 cast, 8 times coarser, moves more."""
    model = tiny_llama()
    refset = calibration(n=8, length=16)
    refset.plus[:, :-1] = torch.where(refset.attention_mask[:, 1:] > 0, refset.input_ids[:, 1:], -1)  # next token
    scores = compute_scores(method, model, refset, ScoreOptions(progress=False))
    save_scores(scores, tmp_path / "s.safetensors", {"method": "lrp"}, storage="float16")
    stored = load_scores(tmp_path / "s.safetensors")[0].weights
    bf16 = {k: w.bfloat16().float() for k, w in scores.weights.items()}
    assert any(not torch.equal(stored[k], w) for k, w in scores.weights.items())
    total16 = total_bf16 = 0.0
    for scope in ("row", "layer", "global"):
        exact, compact, coarse = (MaskBuilder(w, scope) for w in (scores.weights, stored, bf16))
        for s in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9):
            m32 = exact.masks(s)
            share = _changed(m32, compact.masks(s))
            assert share <= 1e-3, (scope, s, share)
            total16 += share
            total_bf16 += _changed(m32, coarse.masks(s))
    assert total16 < total_bf16
    # Relevance scales with the explained target: scores 2^-20 times smaller (hub-model sizes, far
    # below float16's 6e-8) are stored as the same bits, so they give the same masks.
    small = Scores(weights={k: w * 2.0**-20 for k, w in scores.weights.items()})
    save_scores(small, tmp_path / "small.safetensors", {"method": "lrp"}, storage="float16")
    for k, w in load_scores(tmp_path / "small.safetensors")[0].weights.items():
        assert torch.equal(w, stored[k] * 2.0**-20), k
