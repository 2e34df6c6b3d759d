"""Masks (the boolean results of comparisons) and the edges of softmax, pad and var.

A mask met by arithmetic used to give NumPy's types silently: `mask + 1.0` was `True`
everywhere (the 1.0 was cast to bool), `mask > 0.5` compared with `True`, `exp(mask)` was
float16 and `mask.sum()` int64. Now a mask counts as 0.0 and 1.0: beside a float tensor in that
tensor's dtype, alone in float64 (PyTorch computes these in its default float type); two masks
added or multiplied stay a mask (or, and), as in PyTorch. The oracles are NumPy on the mask as
float64 zeros and ones, and PyTorch where it is installed.
"""

import math
import re
import warnings

import numpy as np
import pytest
from eager_twin import assert_compiled_is_eager
from torch_oracle import needs_torch, torch

import tinygrad_fnn as tg
from tinygrad_fnn import ShapeError, Tensor, where

SHAPES = [(3,), (4, 5), (2, 3, 4), (1, 1), (6, 1)]


def masks(seed: int, shape: tuple[int, ...]) -> tuple[Tensor, np.ndarray]:
    """A mask made by a comparison, and the same values as float64 zeros and ones."""
    x = np.random.default_rng(seed).standard_normal(shape)
    x[..., 0] = 0.0  # an exact tie with the threshold: False
    m = Tensor(x) > 0
    assert m.dtype == np.bool_
    return m, (x > 0).astype(np.float64)


erf = np.vectorize(math.erf)


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# each: the engine on the mask, NumPy on the mask as 0.0 and 1.0
ALONE = {
    "m + 1.0": (lambda m: m + 1.0, lambda v: v + 1.0),
    "1.0 + m": (lambda m: 1.0 + m, lambda v: 1.0 + v),
    "m * 2": (lambda m: m * 2, lambda v: v * 2.0),
    "1 - m": (lambda m: 1 - m, lambda v: 1.0 - v),
    "m / 4": (lambda m: m / 4, lambda v: v / 4.0),
    "2 ** m": (lambda m: 2**m, lambda v: 2.0**v),
    "m ** 2": (lambda m: m**2, lambda v: v**2.0),
    "-m": (lambda m: -m, lambda v: -v),
    "exp": (lambda m: m.exp(), np.exp),
    "tanh": (lambda m: m.tanh(), np.tanh),
    "sqrt": (lambda m: m.sqrt(), np.sqrt),
    "sigmoid": (lambda m: m.sigmoid(), sigmoid),
    "erf": (lambda m: m.erf(), erf),
    "abs": (lambda m: abs(m), np.abs),
    "sign": (lambda m: m.sign(), np.sign),
    "relu": (lambda m: m.relu(), lambda v: np.maximum(v, 0.0)),
    "sum": (lambda m: m.sum(), np.sum),
    "mean": (lambda m: m.mean(), np.mean),
    "prod": (lambda m: m.prod(), np.prod),
    "cumsum": (lambda m: m.cumsum(), np.cumsum),
    "softmax": (lambda m: m.softmax(), softmax),
    "np.exp": (lambda m: np.exp(m), np.exp),
    "np.sum": (lambda m: np.sum(m), np.sum),
    "m - (m > 0.5)": (lambda m: m - (m > 0.5), lambda v: v - (v > 0.5)),
}


@pytest.mark.parametrize("case", ALONE, ids=list(ALONE))
def test_a_mask_in_arithmetic_counts_as_zero_and_one_in_float64(case):
    ours, numpy = ALONE[case]
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        got = ours(m)
        assert got.dtype == np.float64, (case, got.dtype)
        want = numpy(v)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got.data, want, rtol=1e-15, atol=0, err_msg=case)


def test_a_mask_compared_with_a_number_compares_numbers():
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        for threshold in (0.5, -0.5, 1.0, 0.0, 1.5):
            assert np.array_equal((m > threshold).data, v > threshold)
            assert np.array_equal((m <= threshold).data, v <= threshold)
            assert np.array_equal((m == threshold).data, v == threshold)
        assert np.array_equal((m == True).data, v == 1.0)  # noqa: E712 (a comparison of tensors)


def test_two_masks_added_or_multiplied_stay_a_mask():
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        n, w = masks(seed + 100, shape)
        assert (m + n).dtype == np.bool_ and np.array_equal((m + n).data, (v + w) > 0)
        assert (m * n).dtype == np.bool_ and np.array_equal((m * n).data, v * w > 0)
        assert where(m, m, n).dtype == np.bool_
        assert np.array_equal(where(m, m, n).data, np.where(v > 0, v, w) > 0)
        difference = m - n  # NumPy refuses; the engine counts
        assert difference.dtype == np.float64 and np.array_equal(difference.data, v - w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_mask_beside_a_float_tensor_takes_its_dtype_and_passes_the_gradient(dtype):
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        a = Tensor(
            np.random.default_rng(seed).standard_normal(shape), dtype=dtype, requires_grad=True
        )
        out = a * m + 2.0 * (m * a) + where(m, a, 0.0)  # (m * 2.0 alone is float64)
        assert out.dtype == dtype
        out.sum().backward()
        assert a.grad.dtype == dtype
        assert np.array_equal(a.grad.data, (v + 2.0 * v + v).astype(dtype))  # d/da, by hand


def test_a_mask_in_a_compiled_step_gives_the_eager_bits():
    rng = np.random.default_rng(7)
    x = Tensor(rng.standard_normal((3, 8)))

    def cost(w: Tensor) -> Tensor:
        m = x > 0
        return ((m + 1.0) * w + m.exp() * w * w - (m.sum() / 4) * w).sum()

    assert_compiled_is_eager(cost, Tensor(rng.standard_normal((3, 8)), requires_grad=True), 0.05)


@needs_torch
def test_masks_agree_with_pytorch():
    cases = {
        "m + 1.0": (lambda m: m + 1.0, lambda t: t + 1.0),
        "m * 2.5": (lambda m: m * 2.5, lambda t: t * 2.5),
        "exp": (lambda m: m.exp(), torch.exp),
        "tanh": (lambda m: m.tanh(), torch.tanh),
        "sigmoid": (lambda m: m.sigmoid(), torch.sigmoid),
        "sqrt": (lambda m: m.sqrt(), torch.sqrt),
        "mean": (lambda m: m.mean(), lambda t: t.double().mean()),
        "m + n": (lambda m: m + (m > 0.5), lambda t: t + (t > 0.5)),
        "m * n": (lambda m: m * (m < 0.5), lambda t: t * (t < 0.5)),
        "m > 0.5": (lambda m: m > 0.5, lambda t: t > 0.5),
    }
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # PyTorch's default float is ours: float64
    try:
        for seed, shape in enumerate(SHAPES):
            m, v = masks(seed, shape)
            t = torch.from_numpy(v > 0)
            for name, (ours, theirs) in cases.items():
                got, want = ours(m), theirs(t)
                assert str(want.dtype).endswith(str(got.dtype)), (name, got.dtype, want.dtype)
                np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-15, err_msg=name)
    finally:
        torch.set_default_dtype(previous)


def test_tensors_hold_float64_or_float32_only():
    for dtype in (np.float16, np.longdouble, np.int64, bool):
        with pytest.raises(TypeError, match="float64 or float32"):
            Tensor(np.ones(3), dtype=dtype)
        with pytest.raises(TypeError, match="float64 or float32"):
            Tensor(np.ones(3)).astype(dtype)
        t = Tensor(np.ones(3))
        with pytest.raises(TypeError, match="float64 or float32"):
            t.data = np.ones(3, dtype)
    x = Tensor(np.ones(3), dtype=np.float32)
    assert (x * np.ones(3, np.float16)).dtype == np.float32  # an array operand takes the dtype


# ----- softmax, logsumexp, pad, len and var at the edges


@pytest.mark.parametrize("axis", [0, -1, np.int64(-1)])
def test_softmax_and_logsumexp_of_a_scalar_treat_it_as_one_class(axis):
    """As PyTorch: softmax of a 0-d tensor along 0 or -1 is 1, log_softmax 0, logsumexp the
    value itself; the gradients are 0, 0 and 1."""
    for value in (-3.0, 0.0, 0.7, 50.0):
        for f, want, slope in (("softmax", 1.0, 0.0), ("log_softmax", 0.0, 0.0)):
            x = Tensor(value, requires_grad=True)
            y = getattr(x, f)(axis)
            assert y.shape == () and float(y) == want
            y.backward()
            assert float(x.grad) == slope
        x = Tensor(value, requires_grad=True)
        y = x.logsumexp(axis)
        assert y.shape == () and float(y) == value
        y.backward()
        assert float(x.grad) == 1.0
    with pytest.raises(ShapeError, match="out of range"):
        Tensor(1.0).softmax(1)


def test_logsumexp_and_softmax_of_nothing():
    for shape in [(0,), (0, 3), (2, 0)]:
        x = Tensor(np.zeros(shape), requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log(0), as NumPy warns
            total = x.logsumexp(0)
        assert total.shape == shape[1:]
        assert np.all(total.data == -np.inf)  # the log of an empty sum, as PyTorch
        assert x.softmax(0).shape == shape


def test_pad_len_and_var_refuse_what_has_no_axis_or_no_element():
    with pytest.raises(ShapeError, match="no axis to pad"):
        Tensor(1.0).pad(1)
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(Tensor(1.0))
    for shape in [(0,), (0, 3)]:
        with pytest.raises(ShapeError, match="no elements"):
            Tensor(np.zeros(shape)).var()
        with pytest.raises(ShapeError, match="no elements"):
            Tensor(np.zeros(shape)).std(axis=0)


def test_a_function_of_ones_own_gives_floats_or_says_it_gives_masks():
    class ArgMax(tg.Function):
        op = "argmax"

        def forward(self, a):
            return np.argmax(a)

    class Positive(tg.Function):
        op = "positive"
        masks = True

        def forward(self, a):
            return a > 0

    with pytest.raises(TypeError, match="argmax: gave int64 data"):
        ArgMax()(Tensor(np.ones(3)))
    x = np.random.default_rng(3).standard_normal(5)
    assert np.array_equal(Positive()(Tensor(x)).data, x > 0)


LOGIC = {
    "~m": (lambda m, n: ~m, lambda v, w: ~v),
    "m & n": (lambda m, n: m & n, lambda v, w: v & w),
    "m | n": (lambda m, n: m | n, lambda v, w: v | w),
    "m ^ n": (lambda m, n: m ^ n, lambda v, w: v ^ w),
    "True & m": (lambda m, n: True & m, lambda v, w: True & v),
    "m | False": (lambda m, n: m | False, lambda v, w: v | False),
    "array ^ m": (lambda m, n: n.data ^ m, lambda v, w: w ^ v),
    "np.logical_and": (lambda m, n: np.logical_and(m, n), np.logical_and),
    "np.logical_or": (lambda m, n: np.logical_or(n.data, m), lambda v, w: w | v),
    "np.logical_xor": (lambda m, n: np.logical_xor(m, n), np.logical_xor),
    "np.logical_not": (lambda m, n: np.logical_not(m), lambda v, w: ~v),
    "np.invert": (lambda m, n: np.invert(m), lambda v, w: ~v),
    "~(m & n) | m": (lambda m, n: ~(m & n) | m, lambda v, w: ~(v & w) | v),
}


@pytest.mark.parametrize("case", LOGIC, ids=list(LOGIC))
def test_the_logic_of_masks_is_numpys_on_booleans(case):
    ours, numpy = LOGIC[case]
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        n, w = masks(seed + 50, shape)
        got = ours(m, n)
        assert got.dtype == np.bool_, case
        assert np.array_equal(got.data, numpy(v > 0, w > 0)), case
    m, v = masks(0, (4, 5))
    n, w = masks(1, (1, 5))  # broadcast, as NumPy
    assert np.array_equal((m & n).data, (v > 0) & (w > 0))


def test_the_logic_of_masks_refuses_numbers():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    m = x > 0
    for f in (lambda: ~x, lambda: x & m, lambda: m | x, lambda: m ^ 1.5, lambda: np.invert(x)):
        with pytest.raises(TypeError, match="works on masks"):
            f()


def test_the_logic_of_masks_names_the_operand_as_given():
    """A number or an array beside a mask is named as the user wrote it, not as the tensor the
    engine made of it."""
    m = Tensor(np.array([1.0, -1.0])) > 0
    cases = {
        "not on 1 (int)": lambda: m & 1,
        "not on 2.5 (float)": lambda: 2.5 | m,
        "not on ndarray of shape (2,)": lambda: m ^ np.array([1.0, 2.0]),
        "not on list of shape (2,)": lambda: m & [3, 0],
        "not on tensor (2,) of float64": lambda: m & Tensor([1.0, 2.0]),
    }
    for message, f in cases.items():
        with pytest.raises(TypeError, match=re.escape(message)):
            f()
    assert np.array_equal((m & True).data, [True, False])


@needs_torch
def test_the_logic_of_masks_agrees_with_pytorch():
    for seed, shape in enumerate(SHAPES):
        m, v = masks(seed, shape)
        n, w = masks(seed + 50, shape)
        t, u = torch.from_numpy(v > 0), torch.from_numpy(w > 0)
        for ours, theirs in ((~m, ~t), (m & n, t & u), (m | n, t | u), (m ^ n, t ^ u)):
            assert ours.dtype == np.bool_ and theirs.dtype == torch.bool
            assert np.array_equal(ours.data, theirs.numpy())


def test_the_logic_of_masks_in_a_compiled_step_gives_the_eager_bits():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((4, 6)))

    def cost(w: Tensor) -> Tensor:
        inside = (x > -0.5) & (x < 0.5)
        return (where(~inside | (w > 0), w * w, -w) + (inside ^ (x > 0)) * w).sum()

    assert_compiled_is_eager(cost, Tensor(rng.standard_normal((4, 6)), requires_grad=True), 0.1)
