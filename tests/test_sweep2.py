"""A hostile sweep of the backward walk on arrays, the locks and the compiled fast call: the
behaviour that held when it was made (the defects it found are fixed and tested in
`test_trust.py` and `test_engine.py`). The two comparisons with PyTorch skip without it."""

import gc
import itertools
import threading
import warnings

import numpy as np
import pytest
from torch_oracle import needs_torch, torch

import tinygrad_fnn as tg
from tinygrad_fnn import AnomalyError, Function, Tensor, compile, detect_anomaly, grad, no_grad

rng = np.random.default_rng(2026)

# One function per operation (and the composed ones), each of one or two tensors; the inputs of
# log, sqrt and pow are kept inside their domains so that every gradient is finite.
UNARY = {
    "exp": lambda x: x.exp(),
    "log": lambda x: (x * x + 1).log(),
    "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(),
    "tanh": lambda x: x.tanh(),
    "sqrt": lambda x: (x * x + 1).sqrt(),
    "abs": lambda x: abs(x),
    "sign": lambda x: x.sign() * x,
    "erf": lambda x: x.erf(),
    "softplus": lambda x: x.softplus(),
    "hardswish": lambda x: x.hardswish(),
    "clip": lambda x: x.clip(-1, 1),
    "relu6": lambda x: x.relu6(),
    "pow2": lambda x: x**2,
    "pow0": lambda x: x**0,
    "pow1.5": lambda x: (x * x) ** 1.5,
    "neg": lambda x: -x,
    "sum": lambda x: x.sum(),
    "mean": lambda x: x.mean(),
    "max": lambda x: x.max(),
    "min": lambda x: x.min(),
    "prod": lambda x: x.prod(),
    "reshape": lambda x: x.reshape(-1),
    "T": lambda x: x.T,
    "broadcast_to": lambda x: x.broadcast_to((2, *x.shape)),
    "getitem": lambda x: x[...],
    "astype": lambda x: x.astype(np.float32).astype(x.dtype),
    "maximum0": lambda x: x.maximum(0),
    "cumsum": lambda x: x.cumsum(),
    "var": lambda x: x.var(),
    "softmax": lambda x: x.reshape(-1).softmax(),
    "log_softmax": lambda x: x.reshape(-1).log_softmax(),
    "logsumexp": lambda x: x.logsumexp(),
    "leaky_relu": lambda x: x.leaky_relu(),
    "gelu": lambda x: x.gelu(),
    "gelu_tanh": lambda x: x.gelu("tanh"),
    "mish": lambda x: x.mish(),
    "flip": lambda x: x.reshape(-1).flip(0),
    "stack": lambda x: tg.stack([x, x * 2]),
    "where": lambda x: tg.where(x > 0, x, x * 3),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
}
SHAPES = [(), (3,), (2, 3)]


def gradients(f, arrays, dtype, mode, weights):
    """The leaves' gradients of sum(f(leaves) · weights), by a plain backward, a recorded one
    (create_graph) or one under detect_anomaly."""
    leaves = [Tensor(a, requires_grad=True, dtype=dtype) for a in arrays]
    out = f(*leaves)
    cost = (out * Tensor(np.resize(weights, out.shape), dtype=dtype)).sum()
    if mode == "anomaly":
        with detect_anomaly():
            cost.backward()
    else:
        cost.backward(create_graph=mode == "create_graph")
    return [None if t.grad is None else t.grad.data.copy() for t in leaves]


def assert_same_bits(x, y):
    for p, q in zip(x, y):
        assert (p is None) == (q is None)
        if p is not None:
            assert p.dtype == q.dtype and p.shape == q.shape
            assert p.tobytes() == q.tobytes(), (p, q)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data", ["whole", "normal", "special"])
def test_every_operation_gives_the_same_bits_on_arrays_and_on_tensors(dtype, data):
    """0-d, vector and matrix operands (broadcast against each other), whole numbers (ties at
    max, min, maximum, zeros at abs, relu, sign), nan, ±inf and ±0: a plain backward and a
    recorded one give the same bits and dtypes, and detect_anomaly too wherever the data are
    finite."""
    specials = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 3.0, -3.0, 25.0]
    checked = 0
    for name, f in [*UNARY.items(), *BINARY.items()]:
        arity = 1 if name in UNARY else 2
        for shapes in itertools.product(SHAPES, repeat=arity):
            if data == "whole":
                arrays = [rng.integers(-2, 3, s).astype(float) for s in shapes]
            elif data == "normal":
                arrays = [rng.standard_normal(s) for s in shapes]
            else:
                arrays = [rng.choice(specials, s) for s in shapes]
            weights = rng.standard_normal(12)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                plain = gradients(f, arrays, dtype, "arrays", weights)
                recorded = gradients(f, arrays, dtype, "create_graph", weights)
                assert_same_bits(plain, recorded)
                if data == "normal":
                    assert_same_bits(plain, gradients(f, arrays, dtype, "anomaly", weights))
            checked += 1
    assert checked == len(UNARY) * 3 + len(BINARY) * 9


@needs_torch
def test_grad_of_intermediates_is_the_same_bits_in_both_walks_and_matches_torch():
    """grad() of non-leaf inputs (one reached through views) with the leaves beside them."""
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)

    def ours(create_graph):
        x, w = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
        h = (x * w).tanh()
        h2 = h.T.reshape(2, 6)
        cost = (h2.sigmoid() * h2).sum() + h.max()
        return [t.data for t in grad(cost, [h, x, h2, w], create_graph=create_graph)]

    plain = ours(False)
    assert_same_bits(plain, ours(True))
    x, w = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    h = (x * w).tanh()
    h2 = h.T.reshape(2, 6)
    cost = (h2.sigmoid() * h2).sum() + h.max()
    for got, want in zip(plain, torch.autograd.grad(cost, [h, x, h2, w])):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("create_graph", [False, True])
def test_retain_graph_then_a_second_backward_doubles_the_gradients(create_graph):
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    h = x.exp()
    h.retain_grad()
    cost = (h * h).sum()
    cost.backward(retain_graph=True, create_graph=create_graph)
    first_x, first_h = x.grad.data.copy(), h.grad.data.copy()
    cost.backward(create_graph=create_graph)
    assert np.array_equal(x.grad.data, 2 * first_x)  # g + g is 2g exactly
    assert np.array_equal(h.grad.data, 2 * first_h)
    assert np.array_equal(first_h, 2 * h.data)
    assert np.array_equal(first_x, 2 * h.data * h.data)


class Square(Function):
    """A rule written with operators only."""

    op = "square"

    def forward(self, a):
        return a * a

    def da(self, g, z, a):
        return 2 * g * a


class Triple(Function):
    """A rule that returns a constant Tensor it makes itself."""

    op = "triple"

    def forward(self, a):
        return 3 * a

    def da(self, g, z, a):
        return Tensor(np.full(a.shape, 3.0)) * g


@pytest.mark.parametrize("op, slope", [(Square, lambda a: 2 * a), (Triple, lambda a: 3.0)])
def test_a_custom_function_runs_in_both_walks_with_the_same_bits(op, slope):
    a = rng.standard_normal(5)
    results = []
    for create_graph in (False, True):
        x = Tensor(a, requires_grad=True)
        (op()(x) * x).sum().backward(create_graph=create_graph)
        results.append([x.grad.data])
    assert_same_bits(*results)
    np.testing.assert_allclose(results[0][0], slope(a) * a + op().forward(a), rtol=1e-15)


def test_gradients_passed_on_unchanged_never_share_memory():
    """A leaf used several times, a retained intermediate, and + handing one gradient to all:
    every gradient (and the data) is its own array, and editing one changes no other."""
    a, b, c = (Tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(3))
    h = a + b
    h.retain_grad()
    (h + c + a).backward(np.ones((2, 3)))
    arrays = [a.grad.data, b.grad.data, c.grad.data, h.grad.data, a.data, b.data, c.data]
    for i, x in enumerate(arrays):
        for y in arrays[i + 1 :]:
            assert not np.shares_memory(x, y)
    assert np.array_equal(a.grad.data, np.full((2, 3), 2.0))
    b.grad.data[:] = 0.0
    assert np.array_equal(c.grad.data, np.ones((2, 3)))
    assert np.array_equal(h.grad.data, np.ones((2, 3)))


# ----- locks


def test_a_rule_that_raises_leaves_the_data_locked_until_the_graph_is_dropped():
    class Broken(Function):
        op = "broken"

        def forward(self, a):
            return a * 1.0

        def da(self, g, z, a):
            raise RuntimeError("broken rule")

    x = Tensor(np.ones(3), requires_grad=True)
    cost = (Broken()(x) * x).sum()
    with pytest.raises(RuntimeError, match="broken rule"):
        cost.backward()
    assert not x.data.flags.writeable
    del cost
    gc.collect()
    assert x.data.flags.writeable
    with no_grad():
        x += 1.0
    assert np.array_equal(x.data, np.full(3, 2.0))


def test_an_anomaly_in_the_forward_pass_unlocks_once_the_error_is_dropped():
    x = Tensor([-1.0, 2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(AnomalyError, match="log produced nan") as caught:
            with detect_anomaly():
                x.log()
    del caught
    gc.collect()
    assert x.data.flags.writeable


def test_a_graph_in_a_reference_cycle_unlocks_when_collected():
    x = Tensor(np.ones(3), requires_grad=True)
    gc.disable()  # so that only the collect() below frees the cycle
    try:
        holder: dict = {"y": x * 2.0}
        holder["self"] = holder
        del holder
        assert not x.data.flags.writeable  # the cycle still holds the graph
        gc.collect()
    finally:
        gc.enable()
    assert x.data.flags.writeable


def test_retain_graph_keeps_the_lock_until_the_last_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    cost = (x * x).sum()
    cost.backward(retain_graph=True)
    assert not x.data.flags.writeable
    cost.backward()
    assert x.data.flags.writeable
    assert np.array_equal(x.grad.data, np.full(3, 4.0))


def test_threads_back_propagating_into_one_leaf_add_every_gradient_and_unlock():
    x = Tensor(np.arange(3.0), requires_grad=True)
    runs, threads = 50, 4

    def work():
        for _ in range(runs):
            (x * x).sum().backward()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert np.array_equal(x.grad.data, runs * threads * 2 * np.arange(3.0))
    assert x.data.flags.writeable


# ----- the compiled fast call with the fused update


def twin_params(dtype):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))

    def make():
        return {
            "W": Tensor(a, requires_grad=True, dtype=dtype, name="X"),
            "V": Tensor(b, requires_grad=True, dtype=dtype, name="__x2"),
        }

    return make(), make()


def step_cost(p, x):
    return ((p["W"] @ p["V"]).sigmoid() * x).sum()


def eager_step(p, x, lr):
    cost = step_cost(p, x)
    cost.backward()
    with no_grad():
        for t in p.values():
            t -= lr * t.grad.data
    return cost


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lr", [0.1, np.float32(0.1)])
@pytest.mark.parametrize("change", ["accumulate", "grad set", "replaced", "rebound"])
def test_the_fused_update_follows_eager_through_changes_between_calls(dtype, lr, change):
    """compile(lr=...) against the eager step, bit for bit, when gradients accumulate (no
    zero_grad), when `.grad` is set to a tensor in between, when a parameter is replaced and when
    its data is rebound; the parameters are named X and __x2, names the fast call also uses."""
    comp, eager = twin_params(dtype)
    x = Tensor(rng.standard_normal((3, 2)), dtype=dtype)
    step = compile(lambda: step_cost(comp, x), lr=lr)
    for i in range(6):
        for p in (comp, eager):
            if change == "grad set":
                for t in p.values():
                    t.grad = Tensor(np.full(t.shape, 0.5), dtype=dtype) if i % 2 else None
            elif change != "accumulate":
                for t in p.values():
                    t.grad = None
            if i == 3 and change == "replaced":
                p["W"] = Tensor(np.ones((3, 4)), requires_grad=True, dtype=dtype)
            if i == 3 and change == "rebound":
                p["W"].data = np.full((3, 4), 0.25, dtype)
        got, want = step(), eager_step(eager, x, lr)
        assert got.dtype == want.dtype and np.array_equal(got.data, want.data)
        for k in comp:
            assert np.array_equal(comp[k].data, eager[k].data), (i, k)
            assert np.array_equal(comp[k].grad.data, eager[k].grad.data), (i, k)
    assert step.traces == (1 if change == "rebound" else 2)  # a .grad held or not: a new key


# ----- the public functions


@pytest.mark.parametrize("name", ["exp", "log", "sigmoid", "sign", "broadcast_to"])
@pytest.mark.parametrize("value", [2.0, 2, [1.0, 2.0], np.array([1, 2]), np.array(1.5)])
def test_public_functions_refuse_what_is_not_a_tensor_by_name(name, value):
    function = getattr(tg, name)
    args = (value, (2, 2)) if name == "broadcast_to" else (value,)
    with pytest.raises(TypeError, match=f"{name}: expects Tensors, got {type(value).__name__}"):
        function(*args)


@needs_torch
@pytest.mark.parametrize("name", ["exp", "log", "sigmoid", "sign", "logsumexp"])
def test_public_functions_on_0d_tensors_match_torch(name):
    value = 0.7
    x = Tensor(value, requires_grad=True)
    y = getattr(tg, name)(x)
    y.backward()
    t = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    u = torch.logsumexp(t, 0) if name == "logsumexp" else getattr(torch, name)(t)
    u.backward()
    assert y.shape == () and x.grad.shape == ()
    np.testing.assert_allclose(y.data, u.item(), rtol=1e-15)
    np.testing.assert_allclose(x.grad.data, t.grad.item(), rtol=1e-15)
