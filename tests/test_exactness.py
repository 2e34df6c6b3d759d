"""The README's table of how far the engine's gradients are from the tutorial's formulas.

Each claim is held over many batch sizes m (powers of two and not, 1 to 4096), 20 seeds, several
hidden sizes, random and breast-cancer data, both dtypes and both losses. The bounds are read from
`tinygrad_fnn.compare`, and a test checks that the README quotes the same numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import compare_gradients, datasets, fnn
from tinygrad_fnn.compare import (
    EXAMPLE_GRADIENTS,
    GRADIENTS,
    PARAMETER_GRADIENTS,
    SUM_BOUND_EXTRA,
    ULP_BOUNDS,
    Comparison,
)

README = Path(__file__).resolve().parent.parent / "README.md"
SEEDS = range(20)
DTYPES = (np.float64, np.float32)
LOSSES = ("composed", "fused")
POWERS_OF_TWO = [2**k for k in range(13)]  # 1 … 4096
OTHER_M = [3, 5, 6, 7, 9, 10, 11, 12, 13, 15, 17, 31, 33, 50, 63, 100, 127, 129, 255, 257, 300]
LARGE_M = [1000, 4095]
LOGIT_LIMIT = 15.0  # predictions reach within 3e-7 of their labels


@functools.cache
def _breast_cancer() -> datasets.Dataset:
    return datasets.load("breast_cancer", seed=0)


def case(m: int, seed: int, dtype) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A batch and parameters: odd seeds draw breast-cancer examples (30 features), even seeds
    Gaussian features with random 0/1 labels; hidden sizes 1 to 8; the first layer at the
    tutorial's scale 0.01 or at 1, the second at 0.01, 1 or 3, shrunk where a logit would pass
    ±LOGIT_LIMIT (float32's sigmoid rounds to 1 from 16.6 on, and the composed cost is nan)."""
    rng = np.random.default_rng([seed, m])
    if seed % 2:
        ds = _breast_cancer()
        columns = rng.choice(ds.X_train.shape[1], size=m)
        X, Y = ds.X_train[:, columns], ds.Y_train[:, columns]
    else:
        X = rng.standard_normal((1 + seed % 5, m))
        Y = (rng.random((1, m)) < 0.5).astype(np.float64)
    n_x, hidden = X.shape[0], (1, 2, 3, 4, 8)[seed % 5]
    s1, s2 = (0.01, 1.0)[seed % 2], (0.01, 1.0, 3.0)[seed % 3]
    params = {
        "W1": rng.standard_normal((hidden, n_x)) * s1 / np.sqrt(n_x),
        "b1": rng.standard_normal((hidden, 1)) * s1,
        "W2": rng.standard_normal((1, hidden)) * s2 / np.sqrt(hidden) / s1,
        "b2": rng.standard_normal((1, 1)),
    }
    Z2 = params["W2"] @ np.maximum(params["W1"] @ X + params["b1"], 0) + params["b2"]
    shrink = min(1.0, LOGIT_LIMIT / np.abs(Z2).max())
    params["W2"] *= shrink
    params["b2"] *= shrink
    return X.astype(dtype), Y.astype(dtype), {k: v.astype(dtype) for k, v in params.items()}


@functools.cache
def comparisons(dtype, loss: str, sizes: tuple[int, ...]) -> list[Comparison]:
    """Every comparison of one dtype and loss, over `sizes`: 20 seeds each, 4 above m = 300."""
    results = []
    for m in sizes:
        for seed in SEEDS if m <= 300 else SEEDS[:4]:
            result = compare_gradients(*case(m, seed, dtype), loss)
            # The README's conditions: a finite cost, values in the normal range.
            assert all(np.all(np.isfinite(result.engine[g])) for g in GRADIENTS), (m, seed)
            assert all(result.engine[g].dtype == dtype for g in GRADIENTS)
            assert result.in_normal_range(), (m, seed, dtype, loss)
            results.append(result)
    return results


ALL_M = tuple(sorted({*POWERS_OF_TWO, *OTHER_M, *range(1, 17), *LARGE_M}))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_loss_at_a_power_of_two_m_is_bit_identical(dtype):
    results = [r for r in comparisons(dtype, "fused", ALL_M) if r.m in POWERS_OF_TWO]
    assert len({r.m for r in results}) == len(POWERS_OF_TWO) and len(results) >= 9 * len(SEEDS)
    for r in results:
        for name in GRADIENTS:
            assert np.array_equal(r.engine[name], r.manual[name]), (r.m, name)
            assert r[name].identical and r[name].max_ulp == 0


def test_fused_loss_at_other_m_is_not_always_bit_identical():
    """Why the claim above names powers of two: (1/m)·x and x/m round differently otherwise,
    db2 included (the README used to say db2 stayed identical)."""
    results = comparisons(np.float64, "fused", ALL_M)
    for m in (7, 10, 50, 100, 127):
        assert not all(r["db2"].identical for r in results if r.m == m), m


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_per_example_gradients_are_within_the_readme_ulp_bounds(dtype, loss):
    results = comparisons(dtype, loss, ALL_M)
    worst = {name: max(r[name].max_ulp for r in results) for name in EXAMPLE_GRADIENTS}
    print(f"{loss} {np.dtype(dtype).name}: worst ULPs {worst} over {len(results)} batches")
    for r in results:
        for name in EXAMPLE_GRADIENTS:
            assert r[name].max_ulp <= ULP_BOUNDS[loss][name], (r.m, name, r[name])
    if loss == "composed":  # the bound is not idle: the composed loss does round differently
        assert max(worst.values()) >= 1


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_parameter_gradients_are_within_m_plus_6_eps_of_their_magnitude(dtype, loss):
    results = comparisons(dtype, loss, ALL_M)
    worst = max(
        r.rounding_ratio(n) / (r.m + SUM_BOUND_EXTRA) for r in results for n in PARAMETER_GRADIENTS
    )
    print(f"{loss} {np.dtype(dtype).name}: worst |Δ| / ((m + 6)·eps·Ĝ) = {worst:.3f}")
    for r in results:
        for name in PARAMETER_GRADIENTS:
            ratio = r.rounding_ratio(name)
            assert ratio <= r.m + SUM_BOUND_EXTRA, (r.m, name, ratio, r[name])
    # Relative to the gradient itself there is no bound: cancellation makes some sum small.
    relative = max(r[n].relative for r in results for n in PARAMETER_GRADIENTS)
    print(f"{loss} {np.dtype(dtype).name}: worst relative difference {relative:.3g}")
    assert relative > 100 * np.finfo(dtype).eps


@pytest.mark.parametrize(
    "dtype, loss",
    [(np.float64, "composed"), (np.float64, "fused"), (np.float32, "fused")],
    ids=["float64-composed", "float64-fused", "float32-fused"],
)
def test_the_bounds_hold_for_trained_parameters(dtype, loss):
    """Near a minimum the gradients are small beside the terms they sum: cancellation at work.
    (In float32 these trained predictions round to 1.0, where the composed cost is nan.)"""
    ds = _breast_cancer()
    X, Y = ds.X_train.astype(dtype), ds.Y_train.astype(dtype)
    params = fnn.initialize_parameters(30, 8, seed=3, dtype=dtype)
    fnn.train(X, Y, params, 300, 0.1, print_every=None)
    trained = {k: p.data.copy() for k, p in params.items()}
    for m in (64, 100, 256, 455):
        r = compare_gradients(X[:, :m], Y[:, :m], trained, loss)
        assert r.in_normal_range()
        for name in EXAMPLE_GRADIENTS:
            assert r[name].max_ulp <= ULP_BOUNDS[loss][name], (m, name, r[name])
        for name in PARAMETER_GRADIENTS:
            assert r.rounding_ratio(name) <= m + SUM_BOUND_EXTRA, (m, name, r[name])
        if loss == "fused" and m & (m - 1) == 0:
            assert all(r[name].identical for name in GRADIENTS), m


def test_the_readme_example_differs_by_many_ulps_and_stays_within_the_bound():
    """`tinygrad-fnn graph --data breast_cancer --hidden 4 --m 8 --loss composed`: db2 is
    thousands of ULPs from the formula, yet a fraction of eps·Ĝ."""
    ds = datasets.load("breast_cancer", m=8, test_fraction=0.0, seed=0)
    X, Y = ds.X_train[:, :8], ds.Y_train[:, :8]
    r = compare_gradients(X, Y, fnn.initialize_parameters(ds.n_x, 4, seed=0), "composed")
    assert r["db2"].max_ulp > 1000 and r["db2"].relative > 1e-12
    assert r.rounding_ratio("db2") <= 8 + SUM_BOUND_EXTRA


def test_the_composed_bound_needs_labels_of_0_or_1():
    """With a label of 0.3 both log terms count, and they cancel where A2 is near 0.3."""
    m = 64
    X = np.linspace(-1.0, 1.0, m)[None, :]
    Y = np.full((1, m), 0.3)
    logit = np.log(0.3 / 0.7)
    params = {"W1": np.ones((1, 1)), "b1": np.ones((1, 1)), "W2": np.full((1, 1), 1e-6)}
    params["b2"] = np.full((1, 1), logit - 1e-6)  # A2 within 1e-6 of 0.3
    composed = compare_gradients(X, Y, params, "composed")
    assert composed.in_normal_range()
    assert composed["dZ2"].max_ulp > 100 * ULP_BOUNDS["composed"]["dZ2"]
    fused = compare_gradients(X, Y, params, "fused")
    assert fused["dZ2"].max_ulp <= ULP_BOUNDS["fused"]["dZ2"]


def test_below_the_normal_range_a_power_of_two_m_is_no_longer_bit_identical():
    """The README's exception: a float32 prediction within 1e-37 of its label 0 makes the
    engine's (A2 − Y)/m subnormal, which keeps fewer bits; the difference is then absolute, at
    most m times half the smallest subnormal."""
    m = 256
    X = np.linspace(-1.0, 1.0, m, dtype=np.float32)[None, :]
    Y = np.zeros((1, m), dtype=np.float32)
    params = {
        "W1": np.array([[1.0]], np.float32),
        "b1": np.array([[1.0]], np.float32),
        "W2": np.array([[1.0]], np.float32),
        "b2": np.array([[-86.0]], np.float32),  # A2 ≈ e^-86 ≈ 4e-38, A2 / 256 subnormal
    }
    r = compare_gradients(X, Y, params, "fused")
    assert not r.in_normal_range()
    assert not r["dZ2"].identical
    smallest = float(np.nextafter(np.float32(0), np.float32(1)))
    assert r["dZ2"].max_abs <= m * smallest / 2


def test_the_readme_quotes_the_bounds_the_tests_hold():
    text = README.read_text()
    section = text.split("## Manual and automatic gradients, compared")[1].split("\n## ")[0]
    assert f"(m + {SUM_BOUND_EXTRA})·eps·Ĝ" in section
    for loss, bounds in ULP_BOUNDS.items():
        rows = section.splitlines()
        row = next(line for line in rows if line.startswith(f"| {loss} loss, any m"))
        quoted = f"dZ2 ≤ {bounds['dZ2']} ULP, dA1 and dZ1 ≤ {bounds['dA1']} ULP"
        assert quoted in row and bounds["dA1"] == bounds["dZ1"], row
    for stale in ("relative ≤ 1e-12", "relative ≤ 1e-5", "`db2` is still identical"):
        assert stale not in section


def test_compare_takes_tensors_without_numpy_converting_them(monkeypatch):
    """Parameters that require grad are read through `.data`: NumPy may refuse to convert them."""
    from tinygrad_fnn.engine import Tensor

    X, Y, arrays = case(10, 1, np.float64)
    expected = compare_gradients(X, Y, arrays, "composed")

    def refuse(self, *args, **kwargs):
        raise TypeError("a Tensor that requires grad is not converted implicitly")

    monkeypatch.setattr(Tensor, "__array__", refuse)
    tensors = {k: Tensor(v, requires_grad=True, name=k) for k, v in arrays.items()}
    got = compare_gradients(Tensor(X), Tensor(Y), tensors, "composed")
    for name in GRADIENTS:
        np.testing.assert_array_equal(got.engine[name], expected.engine[name])
        np.testing.assert_array_equal(got.manual[name], expected.manual[name])


def test_the_magnitudes_are_the_formulas_on_absolute_values():
    """Ĝ, computed here element by element from its definition, as an independent check."""
    X, Y, params = case(7, 3, np.float64)
    r = compare_gradients(X, Y, params, "fused")
    m, dZ2, dZ1 = 7, r.manual["dZ2"], r.manual["dZ1"]
    A1 = np.maximum(params["W1"] @ X + params["b1"], 0)
    for i in range(dZ1.shape[0]):
        assert r.magnitude["db1"][i, 0] == pytest.approx(sum(abs(dZ1[i, k]) for k in range(m)) / m)
        for j in range(X.shape[0]):
            g = sum(abs(dZ1[i, k] * X[j, k]) for k in range(m)) / m
            assert r.magnitude["dW1"][i, j] == pytest.approx(g, rel=1e-14)
        g = sum(abs(dZ2[0, k] * A1[i, k]) for k in range(m)) / m
        assert r.magnitude["dW2"][0, i] == pytest.approx(g, rel=1e-14)
    assert r.magnitude["db2"][0, 0] == pytest.approx(np.abs(dZ2).sum() / m)
    np.testing.assert_array_equal(r.magnitude["dZ2"], np.abs(dZ2))
    # a gradient that differs where Ĝ is zero is infinitely far off, never silently within bound
    r.engine["dZ1"] = r.engine["dZ1"].copy()
    r.engine["dZ1"][r.magnitude["dZ1"] == 0] = 1e-300
    assert (r.magnitude["dZ1"] == 0).any() and r.rounding_ratio("dZ1") == float("inf")
