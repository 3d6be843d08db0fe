"""MIB's faithfulness areas on curves whose integrals are known, and their prompt bootstrap."""

import pytest
import torch

from attrprune.circuits.faithfulness import MIB_SIZES, areas, bootstrap_areas, curve_sparsities


def test_linear_curve_areas_are_its_integrals():
    # f(k) = k: the trapezoid is exact, ∫_0.001^1 k dk = (1 - 1e-6) / 2, ∫ (1 - k) dk = 0.999 - that
    a = areas(list(MIB_SIZES), list(MIB_SIZES))
    assert a["cpr"] == pytest.approx((1 - 0.001**2) / 2, abs=1e-12)
    assert a["cmd"] == pytest.approx(0.999 - (1 - 0.001**2) / 2, abs=1e-12)


def test_step_curve_on_a_linear_axis_not_a_log_one():
    # f = 0 up to 5 %, 1 from 10 %: the 0.05 -> 0.1 segment holds 0.05 / 2, the rest 0.9.
    # A log axis would give log(1/0.1) + log(2) / 2 = 2.65, a width-normalised one 0.925 / 0.999.
    f = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    a = areas(list(MIB_SIZES), f)
    assert a["cpr"] == pytest.approx(0.925)
    assert a["cmd"] == pytest.approx(0.999 - 0.925)
    # the order of the points does not matter
    assert areas(list(MIB_SIZES)[::-1], f[::-1]) == pytest.approx(a)


def test_cmd_counts_overshoot_as_distance():
    # f = 1.2 everywhere: CMD is the area of |1 - f| = 0.2 (a signed 1 - f would give -0.2)
    a = areas([0.5, 1.0], [1.2, 1.2])
    assert a["cpr"] == pytest.approx(0.6) and a["cmd"] == pytest.approx(0.1)


def test_areas_refuse_bad_sizes():
    with pytest.raises(ValueError, match="two distinct sizes"):
        areas([0.5, 0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match="sizes but"):
        areas([0.5, 1.0], [1.0])


def test_curve_gets_the_sparsities_of_the_sizes_once():
    grid = curve_sparsities([0.0, 0.5, 0.95], [0.05, 0.5, 1.0])
    assert grid == [0.0, 0.5, 0.95]  # 1 - 0.05 is the configured 0.95, not 0.9500000000000001
    assert curve_sparsities([0.2], list(MIB_SIZES)) == [0.0, 0.2, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999]
    assert curve_sparsities([0.2], None) == [0.2]


def _points(n: int, noise: float, seed: int = 0):
    """Per-prompt LDs of 2 seeds whose mean faithfulness at size k is k: dense 2, ablated 0."""
    g = torch.Generator().manual_seed(seed)
    sizes = [0.1, 0.5, 1.0]
    f = torch.tensor(sizes)
    points = (2 * f)[None, :, None] + noise * torch.randn(2, 3, n, generator=g)  # [seeds, sizes, prompts]
    return sizes, points, torch.full((n,), 2.0), torch.zeros(n)


def test_prompt_bootstrap_of_the_areas():
    sizes, points, dense, ablated = _points(50, 0.0)
    r = bootstrap_areas(sizes, points, dense, ablated, n_resamples=200, seed=0)
    # noiseless prompts: f = k exactly; CPR = ∫_0.1^1 k dk, every resample the same
    assert r["cpr"] == pytest.approx((1 - 0.01) / 2) and r["cpr_ci"] == pytest.approx([r["cpr"]] * 2)
    assert [s["cpr"] for s in r["per_seed"]] == pytest.approx([r["cpr"]] * 2)

    sizes, points, dense, ablated = _points(50, 0.5)
    r = bootstrap_areas(sizes, points, dense, ablated, n_resamples=500, seed=3)
    assert r["cpr_ci"][0] < r["cpr"] < r["cpr_ci"][1] and r["cmd_ci"][0] < r["cmd"] < r["cmd_ci"][1]
    # the seed-mean curve's CPR is the mean of the seeds' (the area is linear in f)
    assert r["cpr"] == pytest.approx(sum(s["cpr"] for s in r["per_seed"]) / 2)
    assert bootstrap_areas(sizes, points, dense, ablated, n_resamples=500, seed=3) == r  # deterministic
    assert bootstrap_areas(sizes, points, dense, ablated, n_resamples=500, seed=4)["cpr_ci"] != r["cpr_ci"]
    wide = r["cpr_ci"][1] - r["cpr_ci"][0]
    big = bootstrap_areas(*_points(800, 0.5), n_resamples=500, seed=3)
    assert big["cpr_ci"][1] - big["cpr_ci"][0] < wide / 2  # 16x the prompts: about a quarter the width


def test_numpy_areas_keep_the_previous_values():
    # the values of the hand-written trapezoid this module used before NumPy's
    f = [0.05, 0.1, 0.3, 0.5, 0.62, 0.7, 0.81, 0.9, 0.97, 1.0]
    a = areas(list(MIB_SIZES), f)
    assert a["cpr"] == pytest.approx(0.924325, abs=1e-12) and a["cmd"] == pytest.approx(0.074675, abs=1e-12)
    g = torch.Generator().manual_seed(0)
    points = torch.randn(2, 10, 20, generator=g) + torch.linspace(0, 3, 10)[None, :, None]
    dense, ablated = 3 + 0.5 * torch.randn(20, generator=g), 0.2 * torch.randn(20, generator=g)
    r = bootstrap_areas(list(MIB_SIZES), points, dense, ablated, 100, 0)
    assert r["cpr"] == pytest.approx(0.8852263753186793, abs=1e-12)
    assert r["cmd"] == pytest.approx(0.16889929631237155, abs=1e-12)
    assert [s["cpr"] for s in r["per_seed"]] == pytest.approx([0.8482783590208256, 0.922174391616533], abs=1e-12)


def test_the_area_interval_covers_the_reference_seeds_spread():
    # two seeds whose curves differ by a constant, noiseless prompts: the prompt-only interval would
    # be a point; drawing the seeds too spans from one seed's CPR to the other's
    sizes = [0.1, 0.5, 1.0]
    f = torch.tensor(sizes)
    points = torch.stack([2 * f, 2 * f + 0.4])[:, :, None].expand(2, 3, 30)
    r = bootstrap_areas(sizes, points, torch.full((30,), 2.0), torch.zeros(30), n_resamples=400, seed=0)
    lo_seed, hi_seed = sorted(s["cpr"] for s in r["per_seed"])
    assert r["cpr_ci"] == pytest.approx([lo_seed, hi_seed]) and r["resampled"].endswith("reference seeds")
    one = bootstrap_areas(sizes, points[:1], torch.full((30,), 2.0), torch.zeros(30), n_resamples=400, seed=0)
    assert one["cpr_ci"][0] == pytest.approx(one["cpr_ci"][1]) and "one reference seed" in one["resampled"]
