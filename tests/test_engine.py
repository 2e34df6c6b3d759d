"""The engine against finite differences and against the behaviour it promises."""

import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_fnn import (
    AnomalyError,
    Function,
    GradcheckError,
    ShapeError,
    Tensor,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    detect_anomaly,
    grad,
    gradcheck,
    is_grad_enabled,
    no_grad,
)
from tinygrad_fnn.engine import _topological_order, as_array
from tinygrad_fnn.ops import MatMul

rng = np.random.default_rng(1234)


def leaf(*shape, low=-2.0, high=2.0, name=None):
    return Tensor(rng.uniform(low, high, size=shape), requires_grad=True, name=name)


# Every operation, at plain and broadcast shapes: (function, input shapes, value range).
UNARY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "relu": lambda a: a.relu(),
    "sigmoid": lambda a: a.sigmoid(),
    "tanh": lambda a: a.tanh(),
    "pow2": lambda a: a**2,
    "pow_frac": lambda a: a**1.5,
    "pow_neg": lambda a: a**-1.0,
    "sum": lambda a: a.sum(),
    "sum_axis": lambda a: a.sum(axis=1),
    "sum_keep": lambda a: a.sum(axis=0, keepdims=True),
    "mean": lambda a: a.mean(),
    "mean_axis": lambda a: a.mean(axis=(0, 2)),
    "max": lambda a: a.max(),
    "max_axis": lambda a: a.max(axis=1),
    "max_keep": lambda a: a.max(axis=-1, keepdims=True),
    "reshape": lambda a: a.reshape(-1, 2),
    "transpose": lambda a: a.transpose(2, 0, 1),
    "T": lambda a: a.T,
    "broadcast_to": lambda a: a.broadcast_to((2, 3, 3, 4)),
    "astype": lambda a: a.astype(np.float64) * 2.0,
    "scalar_ops": lambda a: 3.0 - 2.0 * a / 4.0 + 1.0,
    "rtruediv": lambda a: 1.0 / (a * a + 1.0),
    "mul_self": lambda a: a * a * a,
}
POSITIVE = {"log", "pow_frac"}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_pass_gradcheck(name):
    low = 0.5 if name in POSITIVE else -2.0
    a = leaf(3, 3, 4, low=low)
    assert gradcheck(UNARY[name], a)


BINARY_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (3, 1)),  # b1 of shape (h, 1) added to (h, m): the tutorial's case
    ((3, 4), (1, 4)),
    ((3, 4), (4,)),
    ((3, 4), ()),
    ((1, 4), (3, 1)),
    ((2, 1, 4), (3, 1)),
]
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops_pass_gradcheck_with_broadcasting(name, shapes):
    a = leaf(*shapes[0])
    b = leaf(*shapes[1], low=0.5) if name == "div" else leaf(*shapes[1])
    assert gradcheck(BINARY[name], a, b)
    assert gradcheck(BINARY[name], b, a) if name != "div" else gradcheck(BINARY[name], a + 0, b)


@pytest.mark.parametrize(
    "shapes", [((3, 4), (4, 5)), ((3, 1), (1, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,))]
)
def test_matmul_passes_gradcheck(shapes):
    a, b = leaf(*shapes[0]), leaf(*shapes[1])
    assert gradcheck(lambda a, b: a @ b, a, b)


def test_matmul_with_arrays_on_either_side():
    a = leaf(3, 4)
    m = rng.standard_normal((4, 2))
    assert gradcheck(lambda a: a @ m, a)
    assert gradcheck(lambda a: m.T @ a.T, a)


def test_losses_pass_gradcheck():
    z = leaf(1, 8, low=-4, high=4)
    y = Tensor((rng.uniform(size=(1, 8)) > 0.5).astype(float))
    p = leaf(1, 8, low=0.05, high=0.95)
    assert gradcheck(lambda z: binary_cross_entropy_with_logits(z, y), z)
    assert gradcheck(lambda p: binary_cross_entropy(p, y), p)
    soft = leaf(1, 8, low=0.1, high=0.9)
    assert gradcheck(lambda z, t: binary_cross_entropy_with_logits(z, t), z, soft)


def test_fused_loss_equals_composed_loss_and_its_gradient_is_sigmoid_minus_y_over_n():
    z = leaf(2, 5, low=-6, high=6)
    y = (rng.uniform(size=(2, 5)) > 0.5).astype(float)
    fused = binary_cross_entropy_with_logits(z, y)
    composed = binary_cross_entropy(z.sigmoid(), y)
    assert fused.item() == pytest.approx(composed.item(), rel=1e-13)
    fused.backward()
    expected = (1 / (1 + np.exp(-z.data)) - y) / z.size
    np.testing.assert_array_equal(z.grad.data, expected)


def test_fused_loss_with_very_negative_logits_gives_exact_zero_gradient_and_no_warning():
    z = Tensor([[-800.0, -1000.0, 5.0]], requires_grad=True)
    y = np.array([[0.0, 0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = binary_cross_entropy_with_logits(z, y)
        loss.backward()
    assert np.isfinite(loss.item())
    assert z.grad.data[0, 0] == 0.0 and z.grad.data[0, 1] == 0.0


# ----- broadcasting, as properties over random shapes


@st.composite
def broadcastable_pair(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    other = list(shape)
    for i in range(len(other)):
        if draw(st.booleans()):
            other[i] = 1
    drop = draw(st.integers(0, len(other)))
    return shape, tuple(other[drop:])


@settings(max_examples=60, deadline=None)
@given(broadcastable_pair(), st.sampled_from(sorted(BINARY)), st.booleans())
def test_gradient_of_a_broadcast_operand_has_its_shape_and_sums_the_broadcast(pair, op, swap):
    big, small = pair
    a = Tensor(rng.uniform(0.5, 2.0, size=big), requires_grad=True)
    b = Tensor(rng.uniform(0.5, 2.0, size=small), requires_grad=True)
    x, y = (b, a) if swap else (a, b)
    out = BINARY[op](x, y)
    assert out.shape == np.broadcast_shapes(big, small)
    out.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    if op == "add":
        # every element of the small operand fed out.size / b.size outputs
        np.testing.assert_allclose(b.grad.data, np.full(small, out.size / b.size))
    assert gradcheck(BINARY[op], x, y)


# ----- the engine's promises


def test_a_tensor_used_several_times_gets_the_sum_of_its_gradients():
    x = Tensor(3.0, requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad.item() == 7.0
    z = Tensor(2.0, requires_grad=True)
    (z + z + z).backward()
    assert z.grad.item() == 3.0


def test_backward_is_iterative_for_a_chain_of_100000_operations():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_inputs_that_need_no_gradient_get_none_and_no_work(monkeypatch):
    W = leaf(4, 3, name="W")
    X = Tensor(rng.standard_normal((3, 5)), name="X")
    cost = (W @ X).relu().sum()
    assert X.requires_grad is False
    calls = []
    da, db = MatMul.vjps
    monkeypatch.setattr(
        MatMul,
        "vjps",
        (lambda *a: calls.append("da") or da(*a), lambda *a: calls.append("db") or db(*a)),
    )
    cost.backward()
    assert X.grad is None and W.grad is not None
    assert calls == ["da"]  # g @ Xᵀ for W, and nothing for X
    # and nothing at all is recorded for operations on constants
    assert (X * 2.0 + 1.0)._ctx is None


def test_shape_mismatch_names_the_operation_and_both_shapes():
    a = Tensor(np.ones((3, 4)), name="Z1")
    b = Tensor(np.ones((5, 1)), name="b1")
    with pytest.raises(ShapeError, match=r"add.*Z1 \(3, 4\).*b1 \(5, 1\)"):
        a + b
    with pytest.raises(ShapeError, match=r"matmul.*\(3, 4\).*\(3, 4\).*inner dimensions 4 and 3"):
        a @ a
    with pytest.raises(ShapeError, match=r"binary_cross_entropy_with_logits.*\(3, 4\).*\(5, 1\)"):
        binary_cross_entropy_with_logits(a, b)
    with pytest.raises(ShapeError, match="reshape"):
        a.reshape(5, 5)


def test_relu_derivative_at_zero_is_zero():
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0])


def test_max_shares_the_gradient_equally_among_tied_maxima():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    y = Tensor([5.0, 1.0, 5.0], requires_grad=True)
    y.max().backward()
    np.testing.assert_array_equal(y.grad.data, [0.5, 0.0, 0.5])


def test_domain_errors_follow_numpy_with_its_warning():
    with pytest.warns(RuntimeWarning):
        r = Tensor([-8.0]) ** (1 / 3)
    assert np.isnan(r.item())
    with pytest.warns(RuntimeWarning):
        assert Tensor([0.0]).log().item() == -np.inf
    with pytest.warns(RuntimeWarning):
        assert np.isnan(Tensor([-1.0]).log().item())


def test_gradients_accumulate_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [4.0, 8.0])


def test_second_backward_without_retain_graph_is_an_error():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_non_scalar_backward_needs_a_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"not a scalar.*gradient.*\(2,\)"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.data, [2.0, 20.0])
    with pytest.raises(ShapeError):
        (x * 2.0).backward(np.ones(3))


def test_backward_on_a_constant_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(1.0).backward()


def test_only_leaves_keep_grad_unless_retain_grad_is_asked():
    x = Tensor([1.0, -2.0], requires_grad=True)
    h = x * 3.0
    k = (x * 2.0).retain_grad()
    (h.sum() + (k * k).sum()).backward()
    assert h.grad is None
    np.testing.assert_array_equal(k.grad.data, 2 * k.data)
    np.testing.assert_array_equal(x.grad.data, 3.0 + 4 * k.data)


def test_no_grad_as_context_manager_and_decorator():
    x = Tensor(2.0, requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * x
    assert is_grad_enabled()
    assert y._ctx is None and not y.requires_grad

    @no_grad()
    def square(t):
        return t * t

    assert square(x)._ctx is None
    assert (x * x)._ctx is not None


def test_detect_anomaly_names_the_log_of_a_saturated_sigmoid():
    """The tutorial's cost when A2 rounds to exactly 1.0: log(1 - A2) is -inf."""
    Z2 = Tensor([[40.0, -3.0]], requires_grad=True, name="Z2")
    A2 = Z2.sigmoid()
    A2.name = "A2"
    Y = np.array([[0.0, 1.0]])
    with np.errstate(divide="ignore"):
        assert not np.isfinite(binary_cross_entropy(A2, Y).item())  # silent without the mode
        with detect_anomaly(), pytest.raises(AnomalyError, match=r"log produced inf.*forward"):
            binary_cross_entropy(A2, Y)


def test_detect_anomaly_catches_a_non_finite_gradient():
    x = Tensor([0.0, 1.0], requires_grad=True, name="x")
    y = (x**0.5).sum()  # finite forward, infinite slope at 0
    with (
        detect_anomaly(),
        pytest.raises(
            AnomalyError, match=r"pow produced inf in the backward \(rule of pow\).*x \(2,\)"
        ),
    ):
        with np.errstate(divide="ignore"):
            y.backward()


def test_float32_stays_float32_with_python_scalars():
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float32)
    y = (2.0 * x + 1.0) / 3.0
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    with pytest.raises(TypeError, match="float32 and float64"):
        x + Tensor([1.0, 2.0])


def test_tensor_basics():
    t = Tensor([[1, 2], [3, 4]], name="A")
    assert t.dtype == np.float64 and t.shape == (2, 2) and t.ndim == 2
    assert np.asarray(t) is t.data
    assert t.T.shape == (2, 2) and t.T.data[0, 1] == 3
    assert t.sum().item() == 10.0
    assert "name='A'" in repr(t)
    assert "grad_fn=<mul>" in repr(Tensor(1.0, requires_grad=True) * 2.0)
    assert (t > 2).data.tolist() == [[False, False], [True, True]]
    assert (t == 1).data.dtype == np.bool_
    assert isinstance(np.ones((2, 2)) + t, Tensor)
    d = (Tensor(1.0, requires_grad=True) * 2.0).detach()
    assert d._ctx is None and not d.requires_grad
    with pytest.raises(TypeError):
        Tensor([1, 2], dtype=np.int64)


def test_topological_order_puts_each_op_after_its_inputs():
    x = leaf(2)
    y = (x * 2.0).exp() + x.tanh()
    z = (y * y).sum()
    order = _topological_order(z._ctx)
    position = {fn: i for i, fn in enumerate(order)}
    for fn in order:
        for p in fn.parents:
            if p._ctx is not None:
                assert position[p._ctx] < position[fn]
    assert order[-1] is z._ctx


# ----- gradients of gradients


def hvp_fn(W, x):
    return (W @ x).tanh().sum()


def test_hessian_vector_product_matches_finite_differences_of_the_gradient():
    W = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x = Tensor(rng.standard_normal(3), requires_grad=True)
    v = rng.standard_normal(3)
    (gx,) = grad(hvp_fn(W, x), [x], create_graph=True)
    (hv,) = grad((gx * v).sum(), [x])

    def gradient_at(xv):
        xt = Tensor(xv, requires_grad=True)
        return grad(hvp_fn(W, xt), [xt])[0].data

    eps = 1e-6
    numeric = (gradient_at(x.data + eps * v) - gradient_at(x.data - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv.data, numeric, rtol=1e-6, atol=1e-8)


def test_backward_with_create_graph_makes_grad_differentiable():
    x = Tensor(1.5, requires_grad=True)
    y = x**3
    y.backward(create_graph=True)
    assert x.grad._ctx is not None
    g = x.grad
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(6 * 1.5)  # d²(x³)/dx² = 6x


@pytest.mark.parametrize(
    "name", ["exp", "log", "sigmoid", "tanh", "pow_frac", "rtruediv", "mul_self"]
)
def test_second_derivatives_of_elementwise_ops_pass_gradcheck(name):
    a = leaf(2, 3, low=0.5 if name in POSITIVE else -2.0)

    def first_gradient(a):
        return grad(UNARY[name](a).sum(), [a], create_graph=True)[0]

    assert gradcheck(first_gradient, a)


def test_grad_does_not_touch_dot_grad():
    x = leaf(3)
    (g,) = grad((x * x).sum(), [x])
    assert x.grad is None
    np.testing.assert_allclose(g.data, 2 * x.data)


def test_grad_with_respect_to_an_intermediate_leaves_the_graph_below_it():
    """As `torch.autograd.grad`: only the operations between the output and the wanted tensors
    run (and are released); a later backward through the part below still works. Before, grad
    ran every rule down to the leaves and released them all."""
    for n in (1, 3, 6):
        x = leaf(n)
        h = (x * x).exp()  # below h: mul, exp
        y = (h * 3.0 + h * h).sum()
        (g,) = grad(y, h)
        np.testing.assert_allclose(g.data, 3.0 + 2 * h.data, rtol=1e-15)
        assert x.grad is None
        h.sum().backward()  # through exp and mul, which grad did not release
        np.testing.assert_allclose(x.grad.data, h.data * 2 * x.data, rtol=1e-15)
        with pytest.raises(RuntimeError, match="a second time"):
            y.backward()  # the part grad ran through was released, as in PyTorch
    x = leaf(4)
    h = x.exp()
    y = (h * x).sum()  # both h and x wanted: the walk goes below h for x
    gh, gx = grad(y, [h, x])
    np.testing.assert_allclose(gh.data, x.data, rtol=1e-15)
    np.testing.assert_allclose(gx.data, h.data + x.data * h.data, rtol=1e-15)


# ----- gradcheck itself must be able to fail


class WrongSquare(Function):
    op = "wrong_square"

    def forward(self, a):
        return a * a

    def da(self, g, z, a):
        return g * a * 3.0  # should be 2


def test_gradcheck_reports_a_wrong_rule():
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    with pytest.raises(
        GradcheckError, match=r"x \(2,\), element \(1,\): engine 6.0, finite differences 4.0"
    ):
        gradcheck(lambda t: WrongSquare()(t).sum(), x)


def test_grad_mode_is_per_thread():

    x = Tensor(1.0, requires_grad=True)
    seen = {}

    def other():
        seen["enabled"] = is_grad_enabled()
        seen["recorded"] = (x * 2.0)._ctx is not None

    with no_grad():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == {"enabled": True, "recorded": True}


def test_create_graph_adds_a_constant_gradient_to_a_recorded_one_without_deadlock():
    """x receives g (a constant) through `+ x` and g·x (recorded) through `x * x`: adding them
    records an operation on a constant, which takes the array locks. It once did so while
    holding the lock that guards `.grad`, and hung."""

    x = Tensor([1.0, 2.0], requires_grad=True)
    done = []
    worker = threading.Thread(
        target=lambda: done.append((x * x + x).sum().backward(create_graph=True)), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert done, "backward(create_graph=True) hung"
    assert np.array_equal(x.grad.data, [3.0, 5.0]) and x.grad.requires_grad
    (hessian_diagonal,) = grad(x.grad.sum(), x)
    assert np.array_equal(hessian_diagonal.data, [2.0, 2.0])


def test_the_functions_the_rules_use_are_the_methods():
    """exp(x), matmul(a, b), … (what the rules are written with) give what the methods and
    operators give, value and gradient; a non-Tensor is a clear error, not a wrong number."""
    import tinygrad_fnn as tg

    a = rng.standard_normal((3, 4))
    cases = [
        (lambda x: tg.exp(x), lambda x: x.exp()),
        (lambda x: tg.log(x * x + 1), lambda x: (x * x + 1).log()),
        (lambda x: tg.sigmoid(x), lambda x: x.sigmoid()),
        (lambda x: tg.sign(x) * x, lambda x: x.sign() * x),
        (lambda x: tg.matmul(x, x.T), lambda x: x @ x.T),
        (lambda x: tg.broadcast_to(x[:1], (3, 4)), lambda x: x[:1].broadcast_to((3, 4))),
        (lambda x: tg.flip(x, -1), lambda x: x.flip(1)),
        (lambda x: tg.softmax(x, 0), lambda x: x.softmax(axis=0)),
        (lambda x: tg.log_softmax(x, 1), lambda x: x.log_softmax(axis=1)),
        (lambda x: tg.logsumexp(x), lambda x: x.logsumexp()),
    ]
    for function, method in cases:
        x, y = Tensor(a, requires_grad=True), Tensor(a, requires_grad=True)
        u, v = function(x), method(y)
        assert np.array_equal(u.data, v.data)
        (u * u).sum().backward()
        (v * v).sum().backward()
        assert np.array_equal(x.grad.data, y.grad.data)
    with pytest.raises(TypeError, match="exp: expects Tensors, got ndarray"):
        tg.exp(a)


def test_no_two_gradients_share_memory():
    """a + b hands the same gradient to a and b, and backward(gradient=g) starts from g: each
    .grad is its own array, so an in-place edit of one (gradient clipping, say) changes no other
    and not the gradient given."""
    for make in (lambda x: x, lambda x: Tensor(x)):
        a, b = leaf(3, 2), leaf(3, 2)
        given = make(np.full((3, 2), 2.0))
        (a + b).backward(given)
        arrays = [a.grad.data, b.grad.data, as_array(given)]
        for i, x in enumerate(arrays):
            for y in arrays[i + 1 :]:
                assert not np.shares_memory(x, y)
        a.grad.data[:] = 0.0
        assert np.array_equal(b.grad.data, np.full((3, 2), 2.0))
        assert np.array_equal(as_array(given), np.full((3, 2), 2.0))
    x = leaf(2, 2)
    (g,) = grad((x * x).sum(), x, create_graph=True)
    (x * g).backward(g)  # a gradient that requires grad stays itself (in its graph)
    assert x.grad is not None


def test_a_rule_written_with_tensor_only_methods_gets_a_clear_error():
    """A plain backward runs rules on NumPy arrays: a rule that calls `a.exp()` cannot, and says
    so (with create_graph, on Tensors, it works)."""

    class TensorOnly(Function):
        op = "tensor_only"

        def forward(self, a):
            return np.exp(a)

        def da(self, g, z, a):
            return g * a.exp()

    x = leaf(3)
    with pytest.raises(TypeError, match=r"rule of tensor_only ran on NumPy arrays.*exp\(a\)"):
        TensorOnly()(x).sum().backward()
    y = leaf(3)
    TensorOnly()(y).sum().backward(create_graph=True)
    assert np.allclose(y.grad.data, np.exp(y.data))


def test_detect_anomaly_checks_what_a_rule_gives_not_what_it_masks():
    """pow's rule takes log(0) where x is 0 and masks it with where: the gradient is finite, and
    anomaly mode (which checks each rule's result, as PyTorch's does) agrees with the plain
    walk."""
    x, p = Tensor([0.0, 1.0], requires_grad=True), Tensor([2.0, 2.0], requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (x**p).sum().backward()
        x2, p2 = Tensor([0.0, 1.0], requires_grad=True), Tensor([2.0, 2.0], requires_grad=True)
        with detect_anomaly():
            (x2**p2).sum().backward()
    assert np.array_equal(x.grad.data, x2.grad.data) and np.array_equal(p.grad.data, p2.grad.data)
    assert np.array_equal(x.grad.data, [0.0, 2.0]) and np.array_equal(p.grad.data, [0.0, 0.0])


def test_the_engine_functions_refuse_what_is_not_a_tensor():
    import tinygrad_fnn as tg

    ints = np.arange(4).reshape(2, 2)
    for call, name in (
        (lambda: tg.matmul(ints, ints), "matmul"),
        (lambda: tg.flip(np.arange(3), 0), "flip"),
        (lambda: tg.softmax(np.ones(3)), "softmax"),
        (lambda: tg.log_softmax([1.0, 2.0]), "log_softmax"),
        (lambda: tg.logsumexp(2.0), "logsumexp"),
    ):
        with pytest.raises(TypeError, match=f"{name}: expects a Tensor, got"):
            call()
    w = tg.where([True, False], [1.0, 2.0], 0.0)  # lists are fine where NumPy takes them
    assert isinstance(w, Tensor) and np.array_equal(w.data, [1.0, 0.0])
    assert isinstance(tg.matmul(ints.astype(float), Tensor(np.eye(2))), Tensor)
