"""The operations beyond the tutorial's network: each against PyTorch in float64 (value, gradient
and Hessian-vector product through create_graph, 1e-12 relative), against finite differences
(gradcheck), and the choices where libraries differ (ties, kinks, bounds), one test each."""

import numpy as np
import pytest
from torch_oracle import errors_against_torch, needs_torch, torch

from tinygrad_fnn import ShapeError, Tensor, grad, gradcheck
from tinygrad_fnn.engine import concatenate, stack, where

F = torch.nn.functional
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
ROWS, COLS = np.array([2, 0, 2, 2, 1]), np.array([1, 3, 1, 0, 0])

# name: (engine function, torch function, input shapes, (low, high) of the inputs)
WIDE, POSITIVE = (-2.0, 2.0), (0.5, 2.0)
CASES = {
    "getitem int": (lambda a: a[1], lambda a: a[1], [(3, 4)], WIDE),
    "getitem negative int": (lambda a: a[-1, -2], lambda a: a[-1, -2], [(3, 4)], WIDE),
    "getitem slices": (lambda a: a[:, 1:3], lambda a: a[:, 1:3], [(3, 4)], WIDE),
    "getitem step": (lambda a: a[::-2, 1::2], lambda a: a.flip(0)[::2, 1::2], [(3, 4)], WIDE),
    "getitem None ellipsis": (
        lambda a: a[None, ..., 2],
        lambda a: a[None, ..., 2],
        [(2, 3, 4)],
        WIDE,
    ),
    "getitem repeated rows": (
        lambda a: a[[0, 2, 2, 0, 2]],
        lambda a: a[[0, 2, 2, 0, 2]],
        [(3, 4)],
        WIDE,
    ),
    "getitem pairs repeated": (
        lambda a: a[ROWS, COLS],
        lambda a: a[torch.tensor(ROWS), torch.tensor(COLS)],
        [(3, 4)],
        WIDE,
    ),
    "getitem mask": (lambda a: a[MASK], lambda a: a[torch.tensor(MASK)], [(3, 4)], WIDE),
    "getitem mask and slice": (
        lambda a: a[MASK[:, 0], 1:],
        lambda a: a[torch.tensor(MASK[:, 0]), 1:],
        [(3, 4)],
        WIDE,
    ),
    "getitem array and mask": (
        lambda a: a[[2, 2, 0]][:, MASK[0]],
        lambda a: a[[2, 2, 0]][:, torch.tensor(MASK[0])],
        [(3, 4)],
        WIDE,
    ),
    "concatenate": (
        lambda a, b: concatenate([a, b, a], axis=1),
        lambda a, b: torch.cat([a, b, a], dim=1),
        [(3, 2), (3, 4)],
        WIDE,
    ),
    "stack": (
        lambda a, b: stack([a, b], axis=1),
        lambda a, b: torch.stack([a, b], 1),
        [(3, 4), (3, 4)],
        WIDE,
    ),
    "split": (
        lambda a: a.split([1, 3], axis=1)[1] * a.split(2, axis=1)[0].sum(),
        lambda a: torch.split(a, [1, 2, 1], dim=1)[1] * torch.split(a, 2, dim=1)[0].sum(),
        [(3, 4)],
        WIDE,
    ),
    "batched matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (2, 4, 5)], WIDE),
    "broadcast matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)], WIDE),
    "matmul 3-D by vector": (lambda a, b: a @ b, lambda a, b: a @ b, [(2, 3, 4), (4,)], WIDE),
    "pow tensor exponent": (lambda a, b: a**b, lambda a, b: a**b, [(3, 4), (4,)], POSITIVE),
    "rpow": (lambda a: 2.0**a, lambda a: 2.0**a, [(3, 4)], WIDE),
    "sqrt": (lambda a: a.sqrt(), torch.sqrt, [(3, 4)], POSITIVE),
    "abs": (lambda a: abs(a), torch.abs, [(3, 4)], WIDE),
    "abs method": (lambda a: a.abs(), torch.abs, [(3, 4)], WIDE),
    "sign": (lambda a: a.sign() * a, lambda a: torch.sign(a) * a, [(3, 4)], WIDE),
    "clip": (lambda a: a.clip(-1, 0.5), lambda a: a.clamp(-1, 0.5), [(3, 4)], WIDE),
    "clip lower only": (lambda a: a.clip(lo=0.2), lambda a: a.clamp(min=0.2), [(3, 4)], WIDE),
    "where": (
        lambda a, b: where(a > b, a * b, b),
        lambda a, b: torch.where(a > b, a * b, b),
        [(3, 4), (3, 1)],
        WIDE,
    ),
    "maximum": (lambda a, b: a.maximum(b), torch.maximum, [(3, 4), (4,)], WIDE),
    "minimum": (lambda a, b: a.minimum(b), torch.minimum, [(3, 1), (3, 4)], WIDE),
    "min": (lambda a: a.min(axis=1), lambda a: a.amin(dim=1), [(3, 4)], WIDE),
    "min all": (lambda a: a.min(), lambda a: a.amin(), [(3, 4)], WIDE),
    "prod": (lambda a: a.prod(), lambda a: a.prod(), [(3, 4)], WIDE),
    "prod axis": (lambda a: a.prod(axis=0), lambda a: a.prod(dim=0), [(3, 4)], WIDE),
    "prod axes keepdims": (
        lambda a: a.prod(axis=(0, 2), keepdims=True),
        lambda a: a.prod(dim=2, keepdim=True).prod(dim=0, keepdim=True),
        [(2, 3, 4)],
        WIDE,
    ),
    "var": (lambda a: a.var(), lambda a: a.var(correction=0), [(3, 4)], WIDE),
    "var ddof axis": (lambda a: a.var(axis=1, ddof=1), lambda a: a.var(dim=1), [(3, 4)], WIDE),
    "std": (lambda a: a.std(axis=0), lambda a: a.std(dim=0, correction=0), [(3, 4)], WIDE),
    "std ddof": (lambda a: a.std(ddof=1), lambda a: a.std(), [(3, 4)], WIDE),
    "cumsum": (lambda a: a.cumsum(axis=1), lambda a: a.cumsum(dim=1), [(3, 4)], WIDE),
    "cumsum flat": (lambda a: a.cumsum(), lambda a: a.reshape(-1).cumsum(0), [(3, 4)], WIDE),
    "logsumexp": (lambda a: a.logsumexp(axis=1), lambda a: a.logsumexp(dim=1), [(3, 4)], WIDE),
    "logsumexp all": (lambda a: a.logsumexp(), lambda a: a.logsumexp(dim=(0, 1)), [(3, 4)], WIDE),
    "softmax": (lambda a: a.softmax(axis=0), lambda a: a.softmax(dim=0), [(3, 4)], WIDE),
    "log_softmax": (lambda a: a.log_softmax(), lambda a: a.log_softmax(dim=-1), [(3, 4)], WIDE),
    "leaky_relu": (lambda a: a.leaky_relu(0.1), lambda a: F.leaky_relu(a, 0.1), [(3, 4)], WIDE),
    "softplus": (lambda a: a.softplus(), F.softplus, [(3, 4)], (-30.0, 30.0)),
    "relu6": (lambda a: a.relu6(), F.relu6, [(3, 4)], (-3.0, 9.0)),
    "hardswish": (lambda a: a.hardswish(), F.hardswish, [(3, 4)], (-5.0, 5.0)),
    "mish": (lambda a: a.mish(), F.mish, [(3, 4)], (-5.0, 5.0)),
    "gelu": (lambda a: a.gelu(), F.gelu, [(3, 4)], (-4.0, 4.0)),
    "gelu tanh": (
        lambda a: a.gelu(approximate="tanh"),
        lambda a: F.gelu(a, approximate="tanh"),
        [(3, 4)],
        (-4.0, 4.0),
    ),
    "squeeze": (lambda a: a.squeeze(), lambda a: a.squeeze(), [(3, 1, 4, 1)], WIDE),
    "squeeze axis": (lambda a: a.squeeze(axis=1), lambda a: a.squeeze(1), [(3, 1, 4, 1)], WIDE),
    "expand_dims": (
        lambda a: a.expand_dims(1) * a.expand_dims(0),
        lambda a: a.unsqueeze(1) * a.unsqueeze(0),
        [(3,)],
        WIDE,
    ),
    "unsqueeze negative": (lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1), [(3, 4)], WIDE),
    "flatten": (lambda a: a.flatten(), lambda a: a.flatten(), [(2, 3, 4)], WIDE),
    "ravel": (lambda a: a.T.ravel(), lambda a: a.T.reshape(-1), [(3, 4)], WIDE),
    "repeat": (
        lambda a: a.repeat(3, axis=1),
        lambda a: a.repeat_interleave(3, dim=1),
        [(3, 4)],
        WIDE,
    ),
    "repeat counts": (
        lambda a: a.repeat([2, 0, 1], axis=0),
        lambda a: a.repeat_interleave(torch.tensor([2, 0, 1]), dim=0),
        [(3, 4)],
        WIDE,
    ),
    "repeat flat": (
        lambda a: a.repeat(2),
        lambda a: a.reshape(-1).repeat_interleave(2),
        [(3, 4)],
        WIDE,
    ),
    "pad": (
        lambda a: a.pad(((1, 0), (2, 3)), constant_values=0.5),
        lambda a: F.pad(a, (2, 3, 1, 0), value=0.5),
        [(3, 4)],
        WIDE,
    ),
    "trace": (lambda a: a.trace(), torch.trace, [(3, 4)], WIDE),
    "trace offset": (lambda a: a.trace(1), lambda a: torch.diagonal(a, 1).sum(), [(3, 4)], WIDE),
    "diag of vector": (lambda a: a.diag(), torch.diag, [(4,)], WIDE),
    "diag of vector, offset": (lambda a: a.diag(-2), lambda a: torch.diag(a, -2), [(3,)], WIDE),
    "diag of matrix": (lambda a: a.diag(1), lambda a: torch.diag(a, 1), [(3, 4)], WIDE),
    "tril": (lambda a: a.tril(), torch.tril, [(3, 4)], WIDE),
    "tril batched": (lambda a: a.tril(-1), lambda a: torch.tril(a, -1), [(2, 3, 4)], WIDE),
    "triu": (lambda a: a.triu(1), lambda a: torch.triu(a, 1), [(4, 3)], WIDE),
}


def arrays_for(name, rng):
    _, _, shapes, (low, high) = CASES[name]
    return [rng.uniform(low, high, size=s) for s in shapes]


@needs_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_value_gradient_and_hessian_vector_product_match_torch(name):
    ours_fn, torch_fn, _, _ = CASES[name]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        errors = errors_against_torch(ours_fn, torch_fn, arrays_for(name, rng), rng)
        assert max(errors.values()) <= 1e-12, (seed, errors)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    ours_fn = CASES[name][0]
    inputs = [Tensor(a, requires_grad=True) for a in arrays_for(name, np.random.default_rng(5))]
    assert gradcheck(ours_fn, *inputs, atol=1e-7, rtol=1e-6)


def _grads(fn, x):
    t = Tensor(np.array(x, dtype=float), requires_grad=True)
    fn(t).sum().backward()
    return t.grad.data


def _torch_grads(fn, x):
    t = torch.tensor(np.array(x, dtype=float), requires_grad=True)
    fn(t).sum().backward()
    return t.grad.numpy()


@pytest.mark.parametrize(
    ("ours", "theirs", "points"),
    [
        (abs, torch.abs, [0.0, -1.0, 2.0]),
        (lambda t: t.sign(), torch.sign, [0.0, -1.0]),
        (lambda t: t.clip(0.0, 1.0), lambda t: t.clamp(0.0, 1.0), [0.0, 1.0, 0.5, 2.0]),
        (lambda t: t.relu6(), F.relu6, [0.0, 6.0, 3.0, 7.0]),
        (lambda t: t.leaky_relu(), F.leaky_relu, [0.0, -1.0]),
        (lambda t: t.hardswish(), F.hardswish, [-3.0, 3.0, 0.0, -4.0, 4.0]),
        (
            lambda t: t.maximum(1.0),
            lambda t: torch.maximum(t, torch.tensor(1.0, dtype=t.dtype)),
            [1.0, 0.0],
        ),
        (lambda t: t.minimum(t), lambda t: torch.minimum(t, t), [1.0, -2.0]),
        (lambda t: t.max(), lambda t: t.amax(), [2.0, 2.0, 1.0]),
        (lambda t: t.min(), lambda t: t.amin(), [1.0, 1.0, 1.0, 3.0]),
        (lambda t: t.prod(), lambda t: t.prod(), [0.0, 2.0, 3.0]),
        (lambda t: t.prod(), lambda t: t.prod(), [0.0, 0.0, 3.0]),
        (lambda t: t.sqrt(), torch.sqrt, [0.0, 4.0]),
    ],
)
@needs_torch
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # sqrt's slope at 0 is inf
def test_kinks_ties_and_bounds_follow_torch(ours, theirs, points):
    """Where the derivative is a choice (a kink, a tie, a bound, a zero factor), it is PyTorch's."""
    np.testing.assert_array_equal(_grads(ours, points), _torch_grads(theirs, points))


def test_maximum_with_the_number_zero_is_relu():
    """`maximum(Z, 0)` has slope 0 at exactly 0, as relu and the tutorial's (A1 > 0); any other
    tie splits the gradient as torch.maximum does."""
    assert _grads(lambda t: t.maximum(0), [0.0, 1.0, -1.0]).tolist() == [0.0, 1.0, 0.0]
    assert _grads(lambda t: t.maximum(Tensor(0.0)), [0.0]).tolist() == [0.5]
    assert _grads(lambda t: np.maximum(0, t), [0.0, 2.0]).tolist() == [0.0, 1.0]
    assert _grads(lambda t: np.maximum(t, 0.0), [0.0, 2.0]).tolist() == [0.0, 1.0]


def test_repeated_indices_accumulate():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert x.grad.data.tolist() == [3.0, 0.0, 1.0]


def test_second_derivative_of_indexing_is_an_indexing():
    """The scatter-add and the gather are each other's gradient, so create_graph works through
    both: d²/dx² of Σ x[i]³ over repeated i is 6·count·x."""
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = grad((x[[0, 0, 2]] ** 3).sum(), x, create_graph=True)
    assert g.data.tolist() == [6.0, 0.0, 27.0]
    (h,) = grad(g.sum(), x)
    assert h.data.tolist() == [12.0, 0.0, 18.0]


def test_indexing_with_a_boolean_tensor_from_a_comparison():
    x = Tensor([-1.0, 2.0, -3.0, 4.0], requires_grad=True)
    (x[x > 0] ** 2).sum().backward()
    assert x.grad.data.tolist() == [0.0, 4.0, 0.0, 8.0]


@pytest.mark.parametrize(
    ("index", "error"),
    [(1.5, IndexError), ("a", IndexError), (np.array([0.5]), IndexError), (7, IndexError)],
)
def test_bad_indices_are_refused_with_the_tensor_named(index, error):
    x = Tensor(np.ones((3, 2)), requires_grad=True, name="x")
    with pytest.raises(error, match="getitem"):
        x[index]


def test_an_index_that_requires_grad_is_refused():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="cannot require grad"):
        x[Tensor([0.0], requires_grad=True)]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda x: x.split(4, axis=1), ShapeError, "cannot divide"),
        (lambda x: concatenate([x, Tensor(np.ones((2, 2)))], axis=0), ShapeError, "concatenate"),
        (lambda x: stack([x, x.T]), ShapeError, "one shape"),
        (lambda x: x.squeeze(0), ShapeError, "not of length 1"),
        (lambda x: x.var(ddof=6), ValueError, "ddof"),
        (lambda x: x.clip(), ValueError, "at least one"),
        (lambda x: x.clip(2, 1), ValueError, "above"),
        (lambda x: x.repeat(-1), ValueError, "at least 0"),
        (lambda x: x.repeat([1, 2, 3], axis=0), ShapeError, "does not fit"),
        (lambda x: x.pad(-1), ValueError, "at least 0"),
        (lambda x: x.gelu("fast"), ValueError, "approximate"),
        (lambda x: x.leaky_relu("0.1"), TypeError, "number"),
        (lambda x: x.sum().diag(), ShapeError, "vector or a matrix"),
        (lambda x: x.sum().tril(), ShapeError, "two dimensions"),
        (lambda x: x.cumsum(axis=2), ShapeError, "out of range"),
    ],
)
def test_bad_arguments_get_clear_errors(call, error, words):
    x = Tensor(np.ones((2, 3)), requires_grad=True, name="x")
    with pytest.raises(error, match=words):
        call(x)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log(0) = -inf, on purpose
def test_logsumexp_is_stable_and_handles_minus_infinity():
    x = Tensor([[1000.0, 1000.0], [-np.inf, -np.inf]], requires_grad=True)
    out = x.logsumexp(axis=1)
    assert out.data[0] == 1000.0 + np.log(2.0)
    assert out.data[1] == -np.inf
    sm = x[:1].softmax(axis=1)
    assert sm.data.tolist() == [[0.5, 0.5]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_stays_float32(name):
    ours_fn = CASES[name][0]
    arrays = arrays_for(name, np.random.default_rng(2))
    inputs = [Tensor(a, requires_grad=True, dtype=np.float32) for a in arrays]
    out = ours_fn(*inputs)
    assert out.dtype == np.float32
    out.sum().backward()
    for t in inputs:
        assert t.grad.dtype == np.float32
    reference = ours_fn(*[Tensor(a) for a in arrays])
    np.testing.assert_allclose(out.data, reference.data, rtol=1e-5, atol=1e-5)


def test_iteration_gives_the_rows_and_refuses_a_scalar():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.data.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    (rows[0] * rows[1]).sum().backward()
    assert x.grad.data.tolist() == [[3.0, 4.0], [1.0, 2.0]]
    with pytest.raises(TypeError, match="0-d"):
        list(x.sum())
