"""A hostile review of masks, grad() and the edges: each test holds a defect fixed, but the one
on random graphs, which holds grad() where no defect was found.

Oracles: PyTorch where it defines the behaviour, finite differences and hand formulas where it
refuses (PyTorch will not take `x ** mask` backward, nor `mask - mask`).
"""

from typing import Any

import numpy as np
import pytest
from eager_twin import assert_compiled_is_eager
from torch_oracle import needs_torch, torch

import tinygrad_fnn as tg
from tinygrad_fnn import ShapeError, Tensor, grad

SEEDS = range(8)
SHAPES = [(3,), (4, 5), (2, 3, 4), (1,), (6, 1)]


def data(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values with exact ties with 0 and 1 (the points where pow and maximum switch)."""
    v = np.random.default_rng(seed).standard_normal(shape)
    v.flat[0] = 0.0
    v.flat[-1] = 1.0
    return v


def finite_differences(f, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The central difference of the scalar f (on float64 arrays) at v, element by element."""
    out = np.zeros_like(v)
    for i in np.ndindex(v.shape):
        up, down = v.copy(), v.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (2 * h)
    return out


# ----- a mask beside a float tensor in pow, maximum and minimum: the gradient keeps the float
# tensor's dtype, and create_graph works (the rules computed with the mask's values: b - 1 made
# int64 arrays or float64 tensors, (a > b).astype(a.dtype) asked for a bool tensor)

MIXED = {
    "x ** m": (lambda x, m: x**m, lambda v, w: v**w),
    "m ** x": (lambda x, m: m**x, lambda v, w: w**v),
    "np.power(x, m)": (lambda x, m: np.power(x, m), lambda v, w: v**w),
    "m.maximum(x)": (lambda x, m: m.maximum(x), np.maximum.__call__),
    "x.maximum(m)": (lambda x, m: x.maximum(m), np.maximum.__call__),
    "m.minimum(x)": (lambda x, m: m.minimum(x), np.minimum.__call__),
    "np.maximum(m, x)": (lambda x, m: np.maximum(m, x), np.maximum.__call__),
    "np.minimum(m, x)": (lambda x, m: np.minimum(m, x), np.minimum.__call__),
}


def _positive(seed: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    v = data(seed, shape)
    return np.abs(v) + 0.5 if name.startswith("m **") else v  # 0 ** x needs x > 0


def _derivatives(y: Tensor, x: Tensor, weights: np.ndarray) -> tuple[Tensor, Tensor]:
    """The gradient of Σ weights·y (recorded) and the gradient of Σ of its square."""
    (g,) = grad((y * Tensor(weights, dtype=y.dtype)).sum(), [x], create_graph=True)
    if not g.requires_grad:
        return g, Tensor(np.zeros(x.shape), dtype=x.dtype)
    (h,) = grad((g * g).sum(), [x], retain_graph=True)
    return g, h


# pow's rules take log(0) and 0 ** -1 where a mask is 0, then `where` masks them (the slope is
# 0 there, as in PyTorch): NumPy warns about the masked values, as ops.py says it does
MASKED_DOMAIN = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


@MASKED_DOMAIN
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", MIXED, ids=list(MIXED))
def test_a_mask_in_pow_maximum_minimum_keeps_the_float_dtype_and_double_backward(name, dtype):
    """The mask gives what the same 0.0 and 1.0 as a float tensor give, bit for bit: values,
    gradients (plain and recorded) and second derivatives; and finite differences agree."""
    ours, numpy = MIXED[name]
    for seed in SEEDS:
        for shape in SHAPES:
            v = _positive(seed, shape, name)
            c = data(seed + 50, shape)
            weights = np.random.default_rng(seed + 9).standard_normal(shape)
            x = Tensor(v, dtype=dtype, requires_grad=True)
            y = ours(x, Tensor(c) > 0.3)
            assert y.dtype == dtype, (name, y.dtype)
            x_as = Tensor(v, dtype=dtype, requires_grad=True)
            y_as = ours(x_as, Tensor(c > 0.3, dtype=dtype))
            np.testing.assert_array_equal(y.data, y_as.data)
            with np.errstate(all="ignore"):  # 0 ** -1 in the second derivative, as PyTorch
                g, h = _derivatives(y, x, weights)
                g_as, h_as = _derivatives(y_as, x_as, weights)
            assert g.dtype == h.dtype == dtype, (name, g.dtype, h.dtype)
            np.testing.assert_array_equal(g.data, g_as.data)
            np.testing.assert_array_equal(h.data, h_as.data)
            (y * Tensor(weights, dtype=dtype)).sum().backward()  # the walk on arrays
            assert x.grad.dtype == dtype, (name, x.grad.dtype)
            np.testing.assert_array_equal(x.grad.data, g.data)
            if dtype == np.float64:
                w = (c > 0.3).astype(float)

                def f(u: np.ndarray, w: np.ndarray = w, weights: np.ndarray = weights) -> float:
                    return float((numpy(u, w) * weights).sum())

                # away from the kinks (x at 0 or 1 beside the mask's 0 and 1): finite differences
                smooth = (np.abs(v) > 1e-3) & (np.abs(v - 1) > 1e-3)
                np.testing.assert_allclose(
                    g.data[smooth], finite_differences(f, v)[smooth], rtol=1e-6, atol=1e-8
                )


@MASKED_DOMAIN
@needs_torch
def test_a_mask_in_maximum_and_pow_agrees_with_pytorch_to_the_second_derivative():
    for seed in SEEDS:
        for shape in SHAPES:
            v, c = data(seed, shape), data(seed + 50, shape) > 0.3
            for ours, theirs in (
                (lambda x, m: m.maximum(x), torch.maximum),
                (lambda x, m: x.minimum(m), torch.minimum),
                (lambda x, m: m ** (x * x), lambda x, m: m ** (x * x)),
            ):
                x, m = Tensor(v, requires_grad=True), Tensor(c.astype(float)) > 0.5
                t = torch.tensor(v, requires_grad=True)
                (g,) = grad((ours(x, m) * x).sum(), [x], create_graph=True)
                (tg_,) = torch.autograd.grad(
                    (theirs(t, torch.from_numpy(c)) * t).sum(), [t], create_graph=True
                )
                np.testing.assert_allclose(g.data, tg_.detach().numpy(), rtol=1e-12)
                (h,) = grad(g.sum(), [x])
                (th,) = torch.autograd.grad(tg_.sum(), [t])
                np.testing.assert_allclose(h.data, th.numpy(), rtol=1e-12, atol=1e-300)


@MASKED_DOMAIN
def test_a_mask_in_pow_and_maximum_in_a_compiled_step_gives_the_eager_bits():
    rng = np.random.default_rng(11)
    x = Tensor(rng.standard_normal((3, 5)), dtype=np.float32)
    w = Tensor(rng.standard_normal((3, 5)), dtype=np.float32, requires_grad=True)

    def cost(w: Tensor) -> Tensor:
        m = x > 0
        return (w**m + m.maximum(w) + np.minimum(m, w * w) + (m ** (w * w))).sum()

    assert_compiled_is_eager(cost, w, 0.01)


# ----- concatenate and stack with a mask first: the other operands were checked against the
# mask, so float32 and float64 mixed silently (x32's gradient came back float64)


@pytest.mark.parametrize("join", [tg.concatenate, tg.stack, np.concatenate, np.stack])
def test_joining_a_mask_with_floats_checks_the_floats_against_each_other(join):
    for seed, shape in enumerate(SHAPES):
        m = Tensor(data(seed, shape)) > 0
        x32 = Tensor(data(seed + 1, shape), dtype=np.float32, requires_grad=True)
        x64 = Tensor(data(seed + 2, shape), requires_grad=True)
        with pytest.raises(TypeError, match="dtypes float32 and float64 differ"):
            join([m, x32, x64])
        plain = data(seed + 3, shape)
        out = join([m, x32, plain.tolist(), m])  # a list takes the float tensor's dtype
        assert out.dtype == np.float32
        want = np.concatenate if join in (tg.concatenate, np.concatenate) else np.stack
        parts = [m.data, x32.data, plain, m.data]
        np.testing.assert_array_equal(out.data, want([p.astype(np.float32) for p in parts]))
        weights = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
        (out * weights).sum().backward()
        assert x32.grad.dtype == np.float32
        n = shape[0]
        picked = weights[n : 2 * n] if join in (tg.concatenate, np.concatenate) else weights[1]
        np.testing.assert_array_equal(x32.grad.data, picked)
        both = join([m, Tensor(m.data.copy(), dtype=np.float64) > 0.5])  # masks alone: a mask
        assert both.dtype == np.bool_


# ----- std where it is 0 (a 0-d tensor, an axis of length 1, equal values): the slope of sqrt
# at 0 is infinite, and times the variance's zero slope the gradient was nan; PyTorch gives 0


@needs_torch
def test_std_at_zero_has_gradient_zero_and_agrees_with_pytorch_elsewhere():
    cases = [((), None), ((1,), None), ((1, 4), 0), ((3, 1), 1), ((3, 4), 0), ((2, 3, 4), (0, 2))]
    for seed in SEEDS:
        for shape, axis in cases:
            for kind in ("random", "equal", "equal rows"):
                v = np.random.default_rng(seed).standard_normal(shape)
                if kind == "equal":
                    v = np.full(shape, v.flat[0])
                elif kind == "equal rows" and len(shape) == 2:
                    v[0] = v.flat[0]
                for ddof in (0, 1) if kind != "random" or shape == () else (0,):
                    x = Tensor(v, requires_grad=True)
                    dims = tuple(range(v.ndim)) if axis is None else axis
                    count = int(np.prod([v.shape[d] for d in np.atleast_1d(dims)] or [1]))
                    if ddof >= count:
                        continue
                    y = x.std(axis, ddof=ddof)
                    t = torch.tensor(v, requires_grad=True)
                    ty = torch.std(t, dim=dims, correction=ddof) if v.ndim else t * 0
                    weights = np.random.default_rng(seed + 1).standard_normal(y.shape)
                    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-13)
                    (g,) = grad((y * weights).sum(), [x], create_graph=True)
                    (tg_,) = torch.autograd.grad(
                        (ty * torch.tensor(weights)).sum(), [t], create_graph=True
                    )
                    np.testing.assert_allclose(g.data, tg_.detach().numpy(), rtol=1e-10, atol=1e-13)
                    assert np.isfinite(g.data).all()
                    if tg_.requires_grad and g.requires_grad:
                        (h,) = grad((g * g).sum(), [x])
                        (th,) = torch.autograd.grad((tg_ * tg_).sum(), [t])
                        np.testing.assert_allclose(h.data, th.numpy(), rtol=1e-9, atol=1e-12)


def test_std_is_still_the_square_root_of_var_bit_for_bit():
    for seed in SEEDS:
        for shape in SHAPES:
            for dtype in (np.float32, np.float64):
                x = Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)
                assert x.std().dtype == dtype
                np.testing.assert_array_equal(x.std(0).data, np.sqrt(x.var(0).data))
                np.testing.assert_array_equal(x.std().data, np.sqrt(x.var().data))


# ----- a rule may give None (the input has no derivative, as `Where`'s condition): when that
# input came from another operation, the walk looked up a gradient that never came (KeyError)


class _Stop(tg.Function):
    """The identity in the forward pass, with no derivative: its rule gives None."""

    op = "stop"

    def forward(self, a):
        return a.copy()

    def da(self, g, z, a):
        return None


@needs_torch
@pytest.mark.parametrize("create_graph", [False, True])
def test_a_rule_giving_none_for_a_computed_input_stops_the_gradient_there(create_graph):
    class TorchStop(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a.clone()

        @staticmethod
        def backward(ctx, g):
            return None

    for seed, shape in enumerate(SHAPES):
        v = data(seed, shape)
        x = Tensor(v, requires_grad=True)
        y = (_Stop()((x * 2).exp()) * x).sum() + (x * x).sum()
        (got,) = grad(y, [x], retain_graph=True, create_graph=create_graph)
        y.backward(create_graph=create_graph)
        t = torch.tensor(v, requires_grad=True)
        ty = (TorchStop.apply((t * 2).exp()) * t).sum() + (t * t).sum()
        ty.backward()
        np.testing.assert_allclose(got.data, t.grad.numpy(), rtol=1e-14)
        np.testing.assert_array_equal(x.grad.data, got.data)
        alone = Tensor(v, requires_grad=True)
        _Stop()(alone * 3).sum().backward()  # no gradient reaches it at all: none, as PyTorch
        assert alone.grad is None


# ----- a mask has no gradient: one made to require grad got a boolean `.grad` (exp's cast back
# to the mask's dtype), grad() gave boolean zeros for one, and in-place arithmetic on a mask
# gave NumPy's casting errors


def test_a_mask_that_is_made_to_require_grad_is_refused_at_backward():
    for seed, shape in enumerate(SHAPES):
        x = Tensor(data(seed, shape), requires_grad=True)
        for make in (lambda m: m.exp(), lambda m, x=x: m * x, lambda m, x=x: tg.where(m, x, m)):
            m = Tensor(data(seed, shape)) > 0
            m.requires_grad = True
            y = make(m).sum()
            with pytest.raises(TypeError, match="mask .* has no gradient"):
                y.backward()
            assert m.grad is None
        with pytest.raises(TypeError, match="mask .* has no gradient"):
            grad((x * x).sum(), [x, x > 0])


def test_in_place_arithmetic_on_a_mask_is_a_clear_error_and_or_stays_a_mask():
    for seed, shape in enumerate(SHAPES):
        v = data(seed, shape)
        for update in (
            lambda m: m.__iadd__(1.0),
            lambda m: m.__isub__(m),
            lambda m: m.__imul__(2),
            lambda m: m.__itruediv__(2.0),
            lambda m: m.__ipow__(2),
        ):
            m = Tensor(v) > 0
            with pytest.raises(TypeError, match="in place: .* is a mask"):
                update(m)
            assert np.array_equal(m.data, v > 0)  # untouched
        m, n = Tensor(v) > 0, Tensor(v) < 0.5
        m += n  # or, as `m + n`
        assert m.dtype == np.bool_ and np.array_equal(m.data, (v > 0) | (v < 0.5))
        x = Tensor(v)
        x -= Tensor(v) > 0  # a mask into floats counts as 0.0 and 1.0
        assert np.array_equal(x.data, v - (v > 0))


# ----- grad() on random graphs: leaves and intermediates wanted, shared subgraphs, a later
# backward() through the same graph, second derivatives (no defect found: held here)

_GRAPH_OPS = [
    lambda a, b: a * b,
    lambda a, b: a + b.tanh(),
    lambda a, b: (a - b).sigmoid(),
    lambda a, b: a.exp() * 0.1 + b,
    lambda a, b: a.maximum(b),
    lambda a, b: (a * a + 1).log() - b,
]
_TORCH_OPS = [
    lambda a, b: a * b,
    lambda a, b: a + b.tanh(),
    lambda a, b: (a - b).sigmoid(),
    lambda a, b: a.exp() * 0.1 + b,
    lambda a, b: torch.maximum(a, b),
    lambda a, b: (a * a + 1).log() - b,
]


def _random_graph(seed: int, leaf: Any, ops: list) -> tuple[list, Any, Any, list[int], int]:
    rng = np.random.default_rng(seed)
    nodes = [leaf(rng.standard_normal(3)) for _ in range(rng.integers(1, 4))]
    leaves = len(nodes)
    for _ in range(rng.integers(2, 9)):
        i, j, k = rng.integers(len(nodes), size=2).tolist() + [rng.integers(len(ops))]
        nodes.append(ops[k](nodes[i], nodes[j]))
    first, second = nodes[-1].sum(), (nodes[-2] * nodes[-1]).sum()
    wanted = sorted(set(rng.integers(0, len(nodes) - 1, size=rng.integers(1, 4)).tolist()))
    return nodes, first, second, wanted, leaves


@needs_torch
def test_grad_on_random_graphs_agrees_with_pytorch_then_backward_still_runs():
    for seed in range(150):
        create_graph = bool(seed % 2)
        nodes, y, z, wanted, leaves = _random_graph(
            seed, lambda v: Tensor(v, requires_grad=True), _GRAPH_OPS
        )
        t_nodes, ty, tz, _, _ = _random_graph(
            seed, lambda v: torch.tensor(v, requires_grad=True), _TORCH_OPS
        )
        got = grad(y, [nodes[i] for i in wanted], retain_graph=True, create_graph=create_graph)
        want = torch.autograd.grad(
            ty,
            [t_nodes[i] for i in wanted],
            retain_graph=True,
            create_graph=create_graph,
            allow_unused=True,
            materialize_grads=True,
        )
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.data, w.detach().numpy(), rtol=1e-12, atol=1e-14)
        pairs = [(g, w) for g, w in zip(got, want) if g.requires_grad]
        if pairs:  # second derivatives through the recorded gradients
            h = grad(sum((g * g).sum() for g, _ in pairs), nodes[:leaves], retain_graph=True)
            th = torch.autograd.grad(
                sum((w * w).sum() for _, w in pairs),
                t_nodes[:leaves],
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )
            for a, b in zip(h, th):
                np.testing.assert_allclose(a.data, b.numpy(), rtol=1e-11, atol=1e-13)
        assert all(t.grad is None for t in nodes)  # grad() touches no .grad
        z.backward()  # the graph grad() ran through, and below it, still works
        tz.backward()
        for t, tt in zip(nodes[:leaves], t_nodes[:leaves]):
            if tt.grad is None:
                assert t.grad is None
            else:
                np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ----- where() of two non-tensors took their NumPy result type: long doubles made a float128
# Tensor, which a Tensor cannot hold (they are refused now, as by `Tensor(x)`: test_leftovers)


def test_where_of_two_arrays_gives_a_float64_tensor():
    for seed, shape in enumerate(SHAPES):
        v = data(seed, shape)
        c = Tensor(v) > 0
        for x, y in (
            (v.astype(np.float16), 0.0),
            (1.5, v.astype(np.float32)),
            (v.astype(np.float16), v.astype(np.float32)),
            (v.tolist(), 2),
        ):
            out = tg.where(c, x, y)
            assert out.dtype == np.float64, out.dtype
            want = np.where(v > 0, np.asarray(x, np.float64), np.asarray(y, np.float64))
            np.testing.assert_array_equal(out.data, want)
            assert np.where(c, x, y).dtype == np.float64  # through NumPy's dispatch
        with pytest.raises(TypeError, match="complex128"):
            tg.where(c, v.astype(complex), 0.0)


# ----- grad() with no inputs ran the whole backward pass and released the graph for nothing;
# a generator of inputs was used up by the type check, which gave the same


def test_grad_takes_inputs_from_any_iterable_and_refuses_none():
    for seed, shape in enumerate(SHAPES):
        v = data(seed, shape)
        x = Tensor(v, requires_grad=True)
        w = Tensor(v * 2, requires_grad=True)
        y = (x * w).sum()
        with pytest.raises(ValueError, match="no inputs"):
            grad(y, [])
        got = grad(y, (t for t in (x, w)), retain_graph=True)
        assert len(got) == 2
        np.testing.assert_array_equal(got[0].data, v * 2)
        np.testing.assert_array_equal(got[1].data, v)
        y.backward()  # the graph was kept, as asked
        np.testing.assert_array_equal(x.grad.data, v * 2)


# ----- logsumexp of a 0-d tensor along (0,) or [-1]: PyTorch takes the one axis as a list too


@needs_torch
@pytest.mark.parametrize("axis", [(0,), [-1], (np.int64(0),)])
def test_logsumexp_of_a_scalar_along_a_list_of_its_one_axis_agrees_with_pytorch(axis):
    for value in (-3.0, 0.0, 0.7, 50.0):
        for keepdims in (False, True):
            x = Tensor(value, requires_grad=True)
            t = torch.tensor(value, dtype=torch.float64, requires_grad=True)
            y = x.logsumexp(axis, keepdims)
            ty = torch.logsumexp(t, dim=[int(a) for a in axis], keepdim=keepdims)
            assert y.shape == tuple(ty.shape) and float(y) == float(ty.detach())
            y.backward()
            ty.backward()
            assert float(x.grad) == float(t.grad)
            assert x.softmax(axis).shape == () and float(x.softmax(axis)) == 1.0
    with pytest.raises(ShapeError, match="out of range"):
        Tensor(1.0).logsumexp((0, 1))
