"""NumPy, differentiated: NumPy's functions on Tensors run the engine's operations, so the
tutorial's own NumPy code can be handed Tensors; and a learner's first steps, checked against
finite differences."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import Tensor, datasets, fnn, grad, gradcheck, manual
from tinygrad_fnn.compare import difference
from tinygrad_fnn.numpy_dispatch import FUNCTIONS, UFUNCS, catch_conversions

NAMES = ("W1", "b1", "W2", "b2")


def tutorial_code_differentiated(X, Y, arrays):
    """The tutorial's unchanged `forward_propagation` and `compute_cost`, run on Tensors: the
    cost (a Python float, as the tutorial returns it), and the gradient of the Tensor behind it."""
    params = {k: Tensor(arrays[k], requires_grad=True, name=k) for k in NAMES}
    with catch_conversions() as converted:
        A2, _ = manual.forward_propagation(X, params)
        cost = manual.compute_cost(A2, Y)
    gradients = grad(converted[-1], [params[k] for k in NAMES])
    return cost, {"d" + k: g.data for k, g in zip(NAMES, gradients)}


def hand_derived(X, Y, arrays):
    A2, cache = manual.forward_propagation(X, arrays)
    return manual.compute_cost(A2, Y), manual.backpropagation(X, Y, arrays, cache)


def composed(X, Y, arrays):
    params = {k: Tensor(arrays[k], requires_grad=True) for k in NAMES}
    A2, _ = fnn.forward_propagation(X, params)
    fnn.compute_cost(A2, Y).backward()
    return {"d" + k: params[k].grad.data for k in NAMES}


def parameters(seed, hidden, scale):
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.standard_normal((hidden, 30)) * scale,
        "b1": rng.standard_normal((hidden, 1)) * scale,
        "W2": rng.standard_normal((1, hidden)) * scale,
        "b2": rng.standard_normal((1, 1)) * scale,
    }


DATA = datasets.load("breast_cancer", seed=0)


@pytest.mark.parametrize("m", [1, 3, 64, 100, 455])
@pytest.mark.parametrize("scale", [0.01, 0.3])
def test_the_tutorials_own_code_differentiated_agrees_with_its_hand_derived_backprop(m, scale):
    """Same code, two derivations: the engine's gradients of the tutorial's NumPy code, and the
    tutorial's hand-derived ones, within 1e-12 of the gradient's norm, over many seeds."""
    X, Y = DATA.X_train[:, :m], DATA.Y_train[:, :m]
    worst = 0.0
    for seed in range(8):
        arrays = parameters(seed, 16, scale)
        cost, engine = tutorial_code_differentiated(X, Y, arrays)
        manual_cost, by_hand = hand_derived(X, Y, arrays)
        assert cost == manual_cost  # the same NumPy calls on the same numbers: the same bits
        reference = composed(X, Y, arrays)
        for name in ("dW1", "db1", "dW2", "db2"):
            worst = max(worst, difference(engine[name], by_hand[name]).relative)
            worst = max(worst, difference(engine[name], reference[name]).relative)
    assert worst <= 1e-12, worst


def test_the_comparison_can_fail():
    """A gradient one rounding away is seen: the agreement above is not vacuous."""
    X, Y = DATA.X_train[:, :64], DATA.Y_train[:, :64]
    _, engine = tutorial_code_differentiated(X, Y, parameters(0, 16, 0.3))
    wrong = engine["dW1"] * (1 + 1e-11)
    assert difference(wrong, engine["dW1"]).relative > 1e-12


def test_relu_written_as_np_maximum_has_the_tutorials_slope_at_zero():
    """Rows of W1 and b1 set to zero make Z1 exactly 0 there. `np.maximum(0, Z1)` is relu, whose
    slope at 0 is 0, as the tutorial's `(A1 > 0)`: those rows get no gradient, exactly as by hand.
    (torch.maximum would give them half: the test shows that rule would differ.)"""
    X, Y = DATA.X_train[:, :64], DATA.Y_train[:, :64]
    arrays = parameters(1, 16, 0.3)
    arrays["W1"][:5] = 0.0
    arrays["b1"][:5] = 0.0
    _, engine = tutorial_code_differentiated(X, Y, arrays)
    _, by_hand = hand_derived(X, Y, arrays)
    assert np.all(engine["dW1"][:5] == 0) and np.all(engine["db1"][:5] == 0)
    assert np.array_equal(engine["dW1"][:5], by_hand["dW1"][:5])
    assert difference(engine["dW1"], by_hand["dW1"]).relative <= 1e-12

    split = Tensor(arrays["W1"], requires_grad=True)
    Z1 = split @ X + arrays["b1"]
    (Z1.maximum(Tensor(0.0)) * arrays["W2"].T).sum().backward()  # the halving rule
    assert np.any(split.grad.data[:5] != 0)


# ----- the dispatch tables, entry by entry

rng = np.random.default_rng(3)
A = rng.uniform(0.5, 2.0, (3, 4))
B = rng.uniform(0.5, 2.0, (3, 4))

# ufunc: its arguments, with "t" standing for the Tensor (A), "u" for a second Tensor (B), and
# "m", "n" for their masks (t > 1, u > 1)
UFUNC_CALLS = {
    np.add: ("t", "u"),
    np.subtract: (B, "t"),
    np.multiply: ("t", 2.5),
    np.true_divide: (1.0, "t"),
    np.power: ("t", "u"),
    np.negative: ("t",),
    np.positive: ("t",),
    np.square: ("t",),
    np.reciprocal: ("t",),
    np.exp: ("t",),
    np.log: ("t",),
    np.sqrt: ("t",),
    np.absolute: ("t",),
    np.sign: ("t",),
    np.tanh: ("t",),
    np.maximum: ("t", B),
    np.minimum: (B, "t"),
    np.matmul: ("t", B.T),
    np.greater: ("t", B),
    np.greater_equal: ("t", B),
    np.less: (B, "t"),
    np.less_equal: ("t", B),
    np.equal: ("t", "t"),
    np.not_equal: ("t", B),
    np.logical_not: ("m",),
    np.logical_and: ("m", "n"),
    np.logical_or: (B > 1, "m"),
    np.logical_xor: ("m", "n"),
    np.invert: ("m",),
    np.bitwise_and: (True, "m"),
    np.bitwise_or: ("m", "n"),
    np.bitwise_xor: ("m", B > 1),
}


def _fill(template, t, u):
    out = []
    for a in template:
        if isinstance(a, str) and a == "t":
            out.append(t)
        elif isinstance(a, str) and a == "u":
            out.append(u)
        elif isinstance(a, str) and a in "mn":
            out.append((t if a == "m" else u) > 1)
        else:
            out.append(a)
    return out


def test_every_ufunc_in_the_table_is_tested():
    assert set(UFUNC_CALLS) == set(UFUNCS)


@pytest.mark.parametrize("ufunc", list(UFUNC_CALLS), ids=lambda f: f.__name__)
def test_ufuncs_on_tensors_give_numpys_value_as_a_recorded_tensor(ufunc):
    template = UFUNC_CALLS[ufunc]
    expected = ufunc(*_fill(template, A, B))
    t, u = Tensor(A, requires_grad=True), Tensor(B, requires_grad=True)
    out = ufunc(*_fill(template, t, u))
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.data, expected)
    if out.dtype == np.bool_:
        return  # comparisons: constant boolean tensors, as the operators give
    assert out.requires_grad and (out.grad_fn is not None or ufunc is np.positive)
    assert gradcheck(
        lambda t, u: ufunc(*_fill(template, t, u)),
        Tensor(A, requires_grad=True),
        Tensor(B, requires_grad=True),
    )


# function: (arguments, keyword arguments); "t" is a Tensor of V (3, 4), "u" of W (3, 4)
V, W = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
FUNCTION_CALLS = {
    np.dot: (("t", W.T), {}),
    np.outer: (("t", W[0]), {}),
    np.sum: (("t",), {"axis": 1, "keepdims": True}),
    np.mean: (("t",), {"axis": 0}),
    np.max: (("t",), {"axis": 1}),
    np.amax: (("t",), {}),
    np.min: (("t",), {"axis": 0, "keepdims": True}),
    np.amin: (("t",), {}),
    np.prod: (("t",), {"axis": 1}),
    np.var: (("t",), {"axis": 1, "ddof": 1}),
    np.std: (("t",), {}),
    np.cumsum: (("t",), {"axis": 0}),
    np.concatenate: ((["t", W, "u"],), {"axis": 1}),
    np.stack: ((["t", "u"],), {"axis": 2}),
    np.split: (("t", 2), {"axis": 1}),
    np.where: ((V > 0, "t", "u"), {}),
    np.clip: (("t", -0.5, 0.5), {}),
    np.reshape: (("t", (2, 6)), {}),
    np.ravel: (("t",), {}),
    np.transpose: (("t",), {}),
    np.squeeze: (("t",), {}),
    np.expand_dims: (("t", 1), {}),
    np.repeat: (("t", 2), {"axis": 0}),
    np.pad: (("t", 1), {}),
    np.flip: (("t",), {"axis": 1}),
    np.trace: (("t",), {}),
    np.diagonal: (("t",), {"offset": 1}),
    np.diag: (("t",), {"k": -1}),
    np.tril: (("t",), {}),
    np.triu: (("t",), {"k": 1}),
    np.shape: (("t",), {}),
    np.ndim: (("t",), {}),
    np.size: (("t",), {}),
    np.zeros_like: (("t",), {}),
    np.ones_like: (("t",), {}),
}


def _fill_nested(args, t, u):
    return [_fill(a, t, u) if isinstance(a, list) else _fill([a], t, u)[0] for a in args]


def test_every_function_in_the_table_is_tested():
    assert set(FUNCTION_CALLS) == set(FUNCTIONS)


@pytest.mark.parametrize("func", list(FUNCTION_CALLS), ids=lambda f: f.__name__)
def test_functions_on_tensors_give_numpys_value_as_a_recorded_tensor(func):
    args, kwargs = FUNCTION_CALLS[func]
    expected = func(*_fill_nested(args, V, W), **kwargs)
    t, u = Tensor(V, requires_grad=True), Tensor(W, requires_grad=True)
    out = func(*_fill_nested(args, t, u), **kwargs)
    if func in (np.shape, np.ndim, np.size):
        assert out == expected
        return
    if func is np.split:
        assert len(out) == len(expected)
        for piece, e in zip(out, expected):
            np.testing.assert_array_equal(piece.data, e)
        out = out[1]
    else:
        np.testing.assert_allclose(out.data, expected, rtol=1e-15, atol=0)
    assert isinstance(out, Tensor)
    if func in (np.zeros_like, np.ones_like):
        assert not out.requires_grad  # depends on the shape only
        return
    assert out.requires_grad

    def f(t, u):
        result = func(*_fill_nested(args, t, u), **kwargs)
        return result[1] if func is np.split else result

    assert gradcheck(f, Tensor(V, requires_grad=True), Tensor(W, requires_grad=True))


def test_clip_with_array_bounds_passes_the_gradient_to_the_bound_applied():
    x = Tensor([-2.0, 0.0, 2.0], requires_grad=True)
    lo = Tensor([-1.0, -1.0, -1.0], requires_grad=True)
    np.clip(x, lo, np.array([1.0, 1.0, 1.0])).sum().backward()
    assert x.grad.data.tolist() == [0.0, 1.0, 0.0]
    assert lo.grad.data.tolist() == [1.0, 0.0, 0.0]


# ----- what is refused, and what still converts

X_GRAD = Tensor([3.0, -1.0], requires_grad=True, name="x")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda x: np.sort(x), "np.sort is not one of"),
        (lambda x: np.median(x), "np.median is not one of"),
        (lambda x: np.linalg.norm(x), "np.linalg.norm is not one of"),
        (lambda x: np.sin(x), "np.sin is not one of"),
        (lambda x: np.add.reduce(x), "np.add.reduce is not supported"),
        (lambda x: np.multiply.outer(x, x), "np.multiply.outer"),
        (lambda x: np.add.accumulate(x), "np.add.accumulate"),
        (lambda x: np.exp(x, out=np.empty(2)), "out="),
        (lambda x: np.add(x, 1, dtype=np.float32), "not supported"),
        (lambda x: np.sum(x, dtype=np.float32), "np.sum"),
        (lambda x: np.sum(x, out=np.empty(())), "np.sum"),
        (lambda x: np.mean(x, where=np.array([True, False])), "np.mean"),
        (lambda x: np.pad(x, 1, mode="reflect"), "mode"),
    ],
)
def test_what_the_engine_does_not_differentiate_is_refused_by_name(call, words):
    with pytest.raises(TypeError, match=words) as info:
        call(X_GRAD)
    assert "x (2,)" in str(info.value) or "supported" in str(info.value)


def test_an_in_place_numpy_update_with_a_tensor_that_requires_grad_is_refused():
    a = np.zeros(2)
    with pytest.raises(TypeError, match="out="):
        a += X_GRAD
    assert a.tolist() == [0.0, 0.0]


def test_constants_still_convert_and_unsupported_functions_compute_on_their_values():
    c = Tensor([3.0, 1.0, 2.0])
    assert np.asarray(c).tolist() == [3.0, 1.0, 2.0]
    assert np.sort(c).tolist() == [1.0, 2.0, 3.0]
    assert isinstance(np.sort(c), np.ndarray)
    assert np.allclose(c, [3.0, 1.0, 2.0])
    a = np.zeros(3)
    a += c
    assert a.tolist() == [3.0, 1.0, 2.0]


def test_tensors_that_require_grad_do_not_become_arrays_implicitly():
    with pytest.raises(TypeError, match="detach"):
        np.asarray(X_GRAD)
    with pytest.raises(TypeError, match="detach"):
        np.array([X_GRAD, X_GRAD])


def test_np_concatenate_keeps_the_gradient_issue_8_example():
    x = Tensor([3.0], requires_grad=True)
    (x * np.concatenate([x])).sum().backward()
    assert x.grad.data.tolist() == [6.0]


def test_arrays_and_numpy_scalars_beside_tensors_work_from_either_side():
    x = Tensor([1.0, 2.0], requires_grad=True)
    a = np.array([10.0, 20.0])
    for out in (a + x, x + a, a * x, np.float64(2.0) * x, x * np.float64(2.0), a - x, a / x):
        assert isinstance(out, Tensor) and out.requires_grad
    assert (a - x).data.tolist() == [9.0, 18.0]
    assert (np.float32(2.0) ** x).data.tolist() == [2.0, 4.0]
    assert (x ** np.int64(2)).grad_fn.op == "pow"
    x32 = Tensor([1.0], requires_grad=True, dtype=np.float32)
    assert (np.array([0.5]) * x32).dtype == np.float32


def test_catch_conversions_gives_the_tensor_behind_a_float():
    x = Tensor([2.0], requires_grad=True)
    with catch_conversions() as converted:
        value = float((x * x).sum())
    assert value == 4.0 and len(converted) == 1
    converted[0].backward()
    assert x.grad.data.tolist() == [4.0]


# ----- a learner's first steps, each against finite differences


def test_first_steps_pick_the_labels_log_probability():
    """Cross-entropy of a softmax by hand: the log-softmax of each row, at the label's column."""
    logits = Tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    labels = np.array([0, 2, 1, 1, 0])

    def nll(z):
        return -z.log_softmax(axis=1)[np.arange(5), labels].mean()

    assert gradcheck(nll, logits, atol=1e-8, rtol=1e-6)
    nll(logits).backward()
    probs = np.exp(logits.data) / np.exp(logits.data).sum(axis=1, keepdims=True)
    expected = (probs - np.eye(3)[labels]) / 5  # the textbook softmax gradient
    np.testing.assert_allclose(logits.grad.data, expected, rtol=1e-12, atol=1e-15)


def test_first_steps_mean_squared_error_by_hand():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    w = Tensor(rng.standard_normal(3), requires_grad=True)

    def mse(w):
        residual = X @ w - y
        return (residual**2).sum() / len(y)

    assert gradcheck(mse, w, atol=1e-8, rtol=1e-6)
    mse(w).backward()
    np.testing.assert_allclose(w.grad.data, 2 * X.T @ (X @ w.data - y) / 20, rtol=1e-12)


def test_first_steps_np_exp_and_friends_on_a_tensor():
    x = Tensor(np.random.default_rng(2).uniform(0.5, 2.0, (2, 3)), requires_grad=True)

    def f(t):
        return np.sum(np.exp(t) * np.log(t) + np.sqrt(t), axis=0)

    assert gradcheck(f, x, atol=1e-8, rtol=1e-6)
    out = f(x)
    assert isinstance(out, Tensor) and out.grad_fn.op == "sum"


def test_the_example_runs_and_agrees():
    script = Path(__file__).resolve().parents[1] / "examples" / "tutorial_numpy_differentiated.py"
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    worst = float(result.stdout.split("largest relative difference: ")[1].split()[0])
    assert worst <= 1e-12
    assert "at Z1 = -1, 0, 2: [0.0, 0.0, 1.0]" in result.stdout
