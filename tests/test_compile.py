"""`compile`: the generated program gives the eager engine's bits, retraces when it must, and
refuses to freeze data-dependent values. The oracle is always the eager engine itself, run on a
twin set of tensors with the same values, step after step."""

from __future__ import annotations

import importlib
import inspect
import itertools
import linecache
import re
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import TraceError, compile, concatenate, fnn, losses, manual, ops, where
from tinygrad_fnn.engine import Function, Tensor, as_array, detect_anomaly, no_grad

# `tinygrad_fnn.compile` is the function; its module, for the lowering table:
compiler = importlib.import_module("tinygrad_fnn.compile")
README = Path(__file__).resolve().parent.parent / "README.md"
STEPS = 20
LR = 0.05


def twins(arrays: dict[str, np.ndarray], dtype) -> tuple[dict, dict]:
    """Two sets of parameters with equal values: one for the eager run, one for the compiled."""

    def make() -> dict[str, Tensor]:
        return {k: Tensor(v, requires_grad=True, dtype=dtype, name=k) for k, v in arrays.items()}

    return make(), make()


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor], step: int) -> None:
    for k in a:
        assert np.array_equal(a[k].data, b[k].data, equal_nan=True), (step, k, "parameter")
        ga, gb = a[k].grad, b[k].grad
        assert (ga is None) == (gb is None), (step, k)
        if ga is not None:
            assert ga.dtype == gb.dtype and ga.shape == gb.shape
            assert np.array_equal(ga.data, gb.data, equal_nan=True), (step, k, "gradient")


def run_both(cost_fn, arrays, dtype, steps=STEPS, inputs=(), lr=LR):
    """`cost_fn(params, *inputs)` eagerly and compiled, `steps` SGD steps each; every cost,
    gradient and parameter must be the same bits. Returns the compiled function."""
    eager, comp = twins(arrays, dtype)
    step = compile(lambda *xs: cost_fn(comp, *xs))
    for i in range(steps):
        for p in (*eager.values(), *comp.values()):
            p.grad = None
        ce = cost_fn(eager, *inputs)
        ce.backward()
        cc = step(*inputs)
        assert cc.dtype == ce.dtype and cc.shape == ce.shape
        assert np.array_equal(ce.data, cc.data, equal_nan=True), (i, ce, cc)
        assert_same(eager, comp, i)
        with no_grad():
            for p in eager.values():
                if p.grad is not None:
                    p -= lr * p.grad
        step.sgd(lr)
        assert_same(eager, comp, i)
    assert step.traces == 1
    return step


# ----- every operation on its own

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
POS = rng.uniform(0.5, 2.0, (3, 4))
COL = rng.standard_normal((3, 1))
M = rng.standard_normal((4, 5))
T01 = (rng.uniform(size=(3, 4)) > 0.5).astype(float)
INDEX = (np.array([0, 0, 2]), slice(1, None))  # rows 0, 0, 2 and columns 1 … 3
TIES = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0], [-1.0, 0.0, -1.0, 0.0]])

CASES = {  # op class -> (cost of parameters p, parameter arrays)
    ops.Add: (lambda p: (p["a"] + p["c"]).sum(), {"a": A, "c": COL}),
    ops.Sub: (lambda p: (p["a"] - p["c"] * 2.0).sum(), {"a": A, "c": COL}),
    ops.Mul: (lambda p: (p["a"] * p["b"] * 3.0).sum(), {"a": A, "b": B}),
    ops.Div: (lambda p: (p["a"] / p["b"]).sum(), {"a": A, "b": POS}),
    ops.Neg: (lambda p: (-p["a"] * p["b"]).sum(), {"a": A, "b": B}),
    ops.PowConst: (
        lambda p: (p["a"] ** 2 + p["b"] ** 0.5 + p["b"] ** -1.5).sum(),
        {"a": A, "b": POS},
    ),
    ops.Pow: (lambda p: (p["b"] ** p["a"]).sum(), {"a": A, "b": POS}),
    ops.Exp: (lambda p: p["a"].exp().mean(), {"a": A}),
    ops.Log: (lambda p: (p["b"] * p["b"] + 1.0).log().sum(), {"b": POS}),
    ops.ReLU: (lambda p: (p["a"].relu() * p["b"]).sum(), {"a": A, "b": B}),
    ops.Sigmoid: (lambda p: (p["a"] * 30.0).sigmoid().sum(), {"a": A}),
    ops.Tanh: (lambda p: p["a"].tanh().sum(), {"a": A}),
    ops.MatMul: (lambda p: (p["a"] @ p["m"]).sum(), {"a": A, "m": M}),
    ops.Sum: (
        lambda p: p["a"].sum(axis=1).sum() + (p["a"].sum(axis=0, keepdims=True) * p["b"]).sum(),
        {"a": A, "b": B},
    ),
    ops.Max: (lambda p: p["t"].max(axis=1).sum() + p["t"].max(), {"t": TIES}),
    ops.Reshape: (lambda p: (p["a"].reshape(4, 3) @ p["a"]).sum(), {"a": A}),
    ops.Transpose: (lambda p: (p["a"].T @ p["b"]).sum(), {"a": A, "b": B}),
    ops.BroadcastTo: (lambda p: (p["c"].broadcast_to((3, 4)) * p["a"]).sum(), {"a": A, "c": COL}),
    ops.Cast: (
        lambda p: (p["a"].astype(np.float32).astype(p["a"].dtype) * p["b"]).sum(),
        {"a": A, "b": B},
    ),
    losses.BCEWithLogits: (
        lambda p: losses.binary_cross_entropy_with_logits(p["a"] * 5.0, T01),
        {"a": A},
    ),
    # the learner's next operations, which replay through their own forward
    ops.Clip: (lambda p: (p["a"].clip(-0.5, 0.5) * p["b"]).sum(), {"a": A, "b": B}),
    ops.Min: (lambda p: p["t"].min(axis=0).sum() + p["t"].min(), {"t": TIES}),
    ops.Prod: (lambda p: p["b"].prod(axis=1).sum() + p["b"].prod(), {"b": POS}),
    ops.Cumsum: (lambda p: (p["a"].cumsum(axis=1) * p["b"]).sum(), {"a": A, "b": B}),
    ops.Getitem: (
        lambda p: (p["a"][[0, 0, 2], 1:] * 2.0).sum() + p["a"][A > 0].sum() + p["a"][1].sum(),
        {"a": A},
    ),
    ops.ScatterAdd: (
        lambda p: (ops.ScatterAdd(INDEX, (3, 4))(p["s"]) * p["b"]).sum(),
        {"s": A[:, :3], "b": B},
    ),
    ops.Concatenate: (
        lambda p: (concatenate([p["a"], p["b"] * 2.0], axis=1) ** 2).sum(),
        {"a": A, "b": B},
    ),
    ops.Eye: (lambda p: (where(ops.Eye(4)(), p["m"][:, :4], 0.0) * 2.0).sum(), {"m": M}),
    ops.Pad: (
        lambda p: (p["a"].pad(1) * 1.5).sum() + p["a"].pad(((0, 1), (2, 0))).mean(),
        {"a": A},
    ),
}

COMPARISONS = {  # boolean results used as masks: no gradient of their own
    ops.Less: lambda a, b: a < b,
    ops.LessEqual: lambda a, b: a <= b,
    ops.Greater: lambda a, b: a > b,
    ops.GreaterEqual: lambda a, b: a >= b,
    ops.Equal: lambda a, b: a == b,
    ops.NotEqual: lambda a, b: a != b,
}


def uncovered() -> list[type]:
    known = set(CASES) | set(COMPARISONS)
    return [
        f for f in ops.RULES if f not in known and f is not Function and "forward" in f.__dict__
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_other_operation_is_bit_identical_on_generic_inputs(dtype):
    """An operation without a case above (a new one) is built without arguments and applied to
    inputs in (0.5, 2) of shape (3, 4); one that needs arguments needs a case in CASES."""
    needs_a_case = []
    for op in uncovered():
        arity = len([n for n in inspect.signature(op.forward).parameters if n != "self"])
        try:
            op()
        except TypeError:
            needs_a_case.append(op.__name__)
            continue
        arrays = {f"x{i}": POS + 0.1 * i for i in range(arity)}
        if op.differentiable:
            run_both(lambda p, op=op: op()(*p.values()).sum(), arrays, dtype, steps=STEPS, lr=1e-3)
        else:  # a comparison-like operation: used as a mask
            run_both(lambda p, op=op: (p["x0"] * op()(*p.values())).sum(), arrays, dtype)
    assert not needs_a_case, f"add cases to CASES in tests/test_compile.py for: {needs_a_case}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", list(CASES), ids=lambda c: c.__name__)
def test_each_operation_is_bit_identical(op, dtype):
    cost, arrays = CASES[op]
    step = run_both(cost, arrays, dtype)
    lowered = op in compiler._TABLE or op in compiler._VIEWS
    if len(inspect.signature(op.forward).parameters) > 1:  # one without inputs is a constant
        assert (f"{op.op}_op.forward(" not in step.source) == lowered, step.source
    else:
        assert f"{op.op}_op.forward(" not in step.source, step.source


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", list(COMPARISONS), ids=lambda c: c.__name__)
def test_each_comparison_is_bit_identical(op, dtype):
    compare = COMPARISONS[op]
    run_both(lambda p: (p["a"] * compare(p["a"], p["b"] * 0.5)).sum(), {"a": A, "b": B}, dtype)


def test_operations_in_the_table_are_lowered_and_the_rest_call_their_forward():
    step = run_both(CASES[ops.Sigmoid][0], CASES[ops.Sigmoid][1], np.float64, steps=2)
    assert "forward" not in step.source and "exp(" in step.source
    step = run_both(CASES[ops.Pow][0], CASES[ops.Pow][1], np.float64, steps=2)
    assert "pow_op.forward(" in step.source


def test_parameters_of_two_dtypes_get_two_flat_stores():
    arrays = {"a": A, "b": B}
    eager, comp = twins(arrays, np.float64)
    eager["b"] = Tensor(B, requires_grad=True, dtype=np.float32)
    comp["b"] = Tensor(B, requires_grad=True, dtype=np.float32)

    def cost(p):
        return (p["a"] * p["b"].astype(np.float64)).sum() + (p["b"] * p["b"]).sum().astype(
            np.float64
        )

    step = compile(lambda: cost(comp))
    for i in range(STEPS):
        for p in (*eager.values(), *comp.values()):
            p.grad = None
        ce = cost(eager)
        ce.backward()
        assert np.array_equal(step().data, ce.data)
        with no_grad():
            for p in eager.values():
                p -= LR * p.grad
        step.sgd(LR)
        assert_same(eager, comp, i)
    assert len(step._last.stores) == 2 and comp["b"].dtype == np.float32


def test_an_operation_outside_the_table_runs_its_own_forward():
    class Cube(Function):
        op = "cube"

        def forward(self, a):
            return a * a * a

        def da(self, g, z, a):
            return g * 3.0 * a * a

    class Flip(Function):  # a view of its input: must not be overwritten while in use
        op = "flip"

        def forward(self, a):
            return a[::-1]

        def da(self, g, z, a):
            return Flip()(g)

    step = run_both(
        lambda p: (Cube()(Flip()(p["a"])) * p["b"]).sum() + Flip()(p["a"] * p["b"]).sum(),
        {"a": A, "b": B},
        np.float64,
        lr=1e-3,
    )
    assert "cube_op.forward(" in step.source and "flip_op.forward(" in step.source


def test_an_edited_forward_is_not_lowered_from_the_table():
    class MyAdd(ops.Add):  # same class family, its own forward: the table entry must not apply
        def forward(self, a, b):
            return np.add(a, b) * 1.0

    step = run_both(lambda p: MyAdd()(p["a"], p["b"]).sum(), {"a": A, "b": B}, np.float64, steps=3)
    assert "add_op.forward(" in step.source


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_into_a_buffer_gives_the_same_bits(dtype):
    """The lowering writes matrix products with `out=` (`np.dot` for two matrices, as `MatMul`'s
    forward, `np.matmul` for stacks); NumPy must not take another path into a buffer."""
    r = np.random.default_rng(7)
    shapes = [(4, 2, 4), (16, 1, 256), (1, 16, 256), (64, 30, 512), (256, 784, 64), (3, 3, 3)]
    for n, k, m in shapes:
        a = r.standard_normal((n, k)).astype(dtype)
        b = r.standard_normal((k, m)).astype(dtype)
        bt = np.ascontiguousarray(b.T)
        at = np.ascontiguousarray(a.T)
        for x, y in [(a, b), (a, bt.T), (at.T, b), (at.T, bt.T)]:  # transposed views too
            out = np.empty((n, m), dtype)
            np.dot(x, y, out=out)
            assert np.array_equal(out, np.dot(x, y)), (n, k, m)
            assert np.array_equal(out, ops.MatMul().forward(x, y)), (n, k, m)
        stack_a, stack_b = np.stack([a, a * 2.0]), np.stack([b, -b])
        out = np.empty((2, n, m), dtype)
        np.matmul(stack_a, stack_b, out=out)
        assert np.array_equal(out, ops.MatMul().forward(stack_a, stack_b)), (n, k, m)


def test_matrices_lower_to_dot_and_stacks_to_matmul():
    stack = rng.standard_normal((2, 4, 3))

    def cost(p):
        return (p["a"] @ p["m"]).sum() + ((p["s"] @ p["a"]) * 0.5).sum()

    step = run_both(cost, {"a": A, "m": M, "s": stack}, np.float64)
    assert re.search(r"^    dot\(a, m, out=", step.source, re.M), step.source
    assert re.search(r"^    matmul\(s, a, out=", step.source, re.M), step.source


# ----- lowerings written differently from the forward, with the forward's bits

SPECIAL = np.array(
    [[0.0, -0.0, 1.5, -2.5], [np.inf, -np.inf, np.nan, 5e-324], [-5e-324, 1e308, -1e-310, 3.0]]
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_one_element_operand_is_read_through_a_0d_view(dtype):
    """A (1, 1) operand on either side of +, −, ×, ÷ and every comparison is read through a 0-d
    view made once; the results are the eager ones on special values too (±0, ±inf, nan,
    subnormals)."""

    def cost(p):
        a, s = p["a"], p["s"]
        total = (a + s) * (s - a) + a * s + s / (a * a + 1.0) + (a - s) / s
        for mask in (a < s, s <= a, a > s, s >= a, a == s, s != a):
            total = total + a * mask
        return total.sum()

    for value in (0.75, -0.0, np.inf, np.nan):
        with np.errstate(all="ignore"):
            step = run_both(cost, {"a": SPECIAL, "s": np.full((1, 1), value)}, dtype, steps=5)
        assert "s_0d = s.reshape(())" in step.source
        assert re.search(r"\badd\(a, s_0d, out=", step.source), step.source


def test_copysign_is_negative_absolute_to_the_bit():
    """The fused loss writes −|z| as copysign(z, −1): the same sign bit set, nan and ±0 too."""
    for dtype, bits in ((np.float64, np.uint64), (np.float32, np.uint32)):
        with np.errstate(over="ignore"):  # 1e308 is inf in float32
            z = np.concatenate([SPECIAL.ravel(), rng.standard_normal(200) * 1e3]).astype(dtype)
        minus_one = np.asarray(-1.0, dtype)
        want = np.negative(np.absolute(z)).view(bits)
        assert np.array_equal(np.copysign(z, minus_one).view(bits), want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fused_loss_is_bit_identical_on_special_logits(dtype):
    y = (rng.uniform(size=SPECIAL.shape) > 0.5).astype(float)
    with np.errstate(all="ignore"):
        step = run_both(
            lambda p: losses.binary_cross_entropy_with_logits(p["z"] * 1.5, y),
            {"z": SPECIAL},
            dtype,
            steps=5,
        )
    assert "copysign(" in step.source


def test_0d_results_are_assigned_and_every_reader_gets_what_the_eager_one_gets():
    """A 0-d result only NumPy calls read is the NumPy scalar the call returns (no buffer); one
    that an operation's own forward reads, or the cost, is a 0-d array as in the eager engine."""
    arrays_seen = []

    class Cube(Function):
        op = "cube"

        def forward(self, a):
            arrays_seen.append(type(a))
            return a * a * a

        def da(self, g, z, a):
            return g * 3.0 * a * a

    def cost(p):
        total = p["a"].sum() / 3.0
        return Cube()(p["b"].sum() * 0.5) + (total - 1.0) * 2.0

    step = run_both(cost, {"a": A, "b": B}, np.float64, lr=1e-3)
    assert re.search(r"^    div\w* = divide\(sum\w*, ", step.source, re.M), step.source
    assert re.search(r"^    \w+ = asarray\(", step.source, re.M), step.source  # the cost
    assert arrays_seen and all(issubclass(t, np.ndarray) for t in arrays_seen), arrays_seen
    composed = fnn.derive("composed")
    assert re.search(r"^    cost = asarray\(negative\(", composed, re.M), composed


@pytest.mark.parametrize("loss", ["fused", "composed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fused_update_keeps_the_gradients_a_caller_holds(dtype, loss):
    """`compile(fn, lr=...)`: forward, backward and the update in one call, the eager bits at
    every step, the fast path taken, and no gradient a caller kept is written over."""
    X, Y, params = tutorial(m=16, dtype=dtype)
    eager = {
        k: Tensor(v.data.copy(), requires_grad=True, dtype=dtype, name=k) for k, v in params.items()
    }
    opt = fnn.SGD(eager, 0.3)
    step = compile(lambda: fnn.step_cost(X, Y, params, loss), lr=0.3)
    kept = []
    for i in range(20):
        for p in params.values():
            p.grad = None
        c = step()
        ce = fnn.train_step(X, Y, eager, opt, loss)
        assert np.array_equal(c.data, ce.data)
        for k in params:
            assert np.array_equal(params[k].data, eager[k].data), (i, k)
            assert np.array_equal(params[k].grad.data, eager[k].grad.data), (i, k)
        if i % 3 == 0:
            kept.append({k: (p.grad, p.grad.data.copy()) for k, p in params.items()})
    assert step._fast is step._last.fast_call is not None and step.traces == 1
    for grads in kept:
        for k, (tensor, values) in grads.items():
            assert np.array_equal(tensor.data, values), k


def test_tensor_names_cannot_shadow_the_names_of_the_fast_call():
    """The fast call shares the program's namespace; its own names all begin with `__`, and a
    tensor named so is renamed in the source."""
    x = Tensor(A, requires_grad=True, name="__x2")
    y = Tensor(B, name="__K1")

    def cost():
        h = (x * y).relu()
        h.name = "__cost"
        return (h * x).sum()

    eager_x = Tensor(A, requires_grad=True)
    step = compile(cost, lr=0.1)
    for _ in range(5):
        x.grad = eager_x.grad = None
        got = step()
        want = ((eager_x * y).relu() * eager_x).sum()
        want.backward()
        assert np.array_equal(got.data, want.data)
        assert np.array_equal(x.grad.data, eager_x.grad.data)
        with no_grad():
            eager_x -= 0.1 * eager_x.grad
        assert np.array_equal(x.data, eager_x.data)
    assert step._fast is step._last.fast_call is not None
    assert "t__cost" in step.source and not re.search(r"\b__", step.source), step.source


# ----- random expression graphs

UNARY = [
    lambda x: x.relu(),
    lambda x: x.sigmoid(),
    lambda x: x.tanh(),
    lambda x: (x * 0.5).exp(),
    lambda x: (x * x + 1.0).log(),
    lambda x: -x,
    lambda x: x * 2.0 - 1.0,
    lambda x: x.T.T,
    lambda x: x.sum(axis=1, keepdims=True) / 3.0,
    lambda x: x.max(axis=0, keepdims=True) + x,
    lambda x: x**2,
]
BINARY = [
    lambda x, y: x + y,
    lambda x, y: x - y,
    lambda x, y: x * y,
    lambda x, y: x / (y * y + 1.0),
    lambda x, y: x * (y > 0),
    lambda x, y: x.T @ y,
]


def random_cost(seed: int):
    pick = np.random.default_rng(seed)
    plan = []
    for _ in range(pick.integers(3, 9)):
        if pick.uniform() < 0.5:
            plan.append(("u", int(pick.integers(len(UNARY))), int(pick.integers(0, 10))))
        else:
            plan.append(
                (
                    "b",
                    int(pick.integers(len(BINARY))),
                    int(pick.integers(0, 10)),
                    int(pick.integers(0, 10)),
                )
            )

    def cost(p, X):
        pool = [p["w"], p["v"], X, p["c"] * X]
        for step in plan:
            if step[0] == "u":
                x = pool[step[2] % len(pool)]
                pool.append(UNARY[step[1]](x))
            else:
                x, y = pool[step[2] % len(pool)], pool[step[3] % len(pool)]
                pool.append(BINARY[step[1]](x, y))
        total = None
        for t in pool[4:] or pool:
            term = (t * t).sum() if t.size > 1 else t.sum()
            total = term if total is None else total + term
        return total + (p["w"] * p["v"]).sum() * 1e-3

    return cost


@pytest.mark.parametrize("seed", range(30))
def test_random_expression_graphs_are_bit_identical(seed):
    shapes = np.random.default_rng(1000 + seed)
    n = int(shapes.integers(1, 5))
    r = np.random.default_rng(seed)
    arrays = {
        "w": r.standard_normal((n, n)) * 0.3,
        "v": r.standard_normal((n, n)) * 0.3,
        "c": r.standard_normal((n, 1)),
    }
    dtype = np.float32 if seed % 2 else np.float64
    X = Tensor(r.standard_normal((n, n)), dtype=dtype, name="X")
    run_both(random_cost(seed), arrays, dtype, steps=STEPS, inputs=(X,), lr=1e-3)


# ----- the tutorial network


@pytest.mark.parametrize("loss", fnn.LOSSES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", [1, 4, 37, 256])
def test_tutorial_network_is_bit_identical(loss, dtype, m):
    r = np.random.default_rng(m)
    X = fnn.as_tensor(r.standard_normal((3, m)), dtype, "X")
    Y = fnn.as_tensor((r.uniform(size=(1, m)) > 0.5).astype(float), dtype, "Y")
    arrays = {k: v.data for k, v in fnn.initialize_parameters(3, 5, seed=m, dtype=dtype).items()}
    arrays = {k: v + 0.3 * r.standard_normal(v.shape) for k, v in arrays.items()}

    def cost(p):
        cache = fnn.forward_logits(X, p) if loss == "fused" else fnn.forward_propagation(X, p)[1]
        return fnn.cost_of(cache, Y, loss)

    run_both(cost, arrays, dtype, steps=25, lr=0.5)


@pytest.mark.parametrize("loss", fnn.LOSSES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_cost_curve_is_bit_identical_to_eager(loss, dtype):
    X = np.random.default_rng(1).standard_normal((2, 64))
    Y = (X[:1] * X[1:] > 0).astype(float)
    pa = fnn.initialize_parameters(2, 8, seed=3, dtype=dtype)
    pb = fnn.initialize_parameters(2, 8, seed=3, dtype=dtype)
    eager = fnn.train(X, Y, pa, 200, 0.8, loss, print_every=0, compiled=False)
    compiled = fnn.train(X, Y, pb, 200, 0.8, loss, print_every=0)
    assert eager == compiled and eager[-1] < eager[0]
    for k in pa:
        assert np.array_equal(pa[k].data, pb[k].data)


def test_train_stops_at_the_same_epoch_on_a_non_finite_cost():
    X = np.array([[50.0, -50.0, 40.0, -40.0]])
    Y = np.array([[1.0, 0.0, 1.0, 0.0]])
    found = []
    for compiled in (False, True):
        p = fnn.initialize_parameters(1, 3, seed=0)
        with pytest.raises(fnn.NonFiniteCostError) as e, np.errstate(all="ignore"):
            fnn.train(X, Y, p, 500, 50.0, "composed", print_every=0, compiled=compiled)
        found.append((str(e.value), {k: v.data.copy() for k, v in p.items()}))
    assert found[0][0] == found[1][0]
    for k in found[0][1]:
        assert np.array_equal(found[0][1][k], found[1][1][k])


# ----- retracing: each kind of signature change, never a stale program


def tutorial(loss="fused", dtype=np.float64, m=4, seed=0):
    r = np.random.default_rng(seed)
    X = fnn.as_tensor(r.standard_normal((2, m)), dtype, "X")
    Y = fnn.as_tensor((r.uniform(size=(1, m)) > 0.5).astype(float), dtype, "Y")
    return X, Y, fnn.initialize_parameters(2, 4, seed=seed, dtype=dtype)


def eager_grads(X, Y, params, loss="fused"):
    twin = {k: Tensor(v.data, requires_grad=True, dtype=v.dtype, name=k) for k, v in params.items()}
    if loss == "fused":
        cost = fnn.cost_of(fnn.forward_logits(X, twin), Y, loss)
    else:
        cost = fnn.compute_cost(fnn.forward_propagation(X, twin)[0], Y)
    cost.backward()
    return cost.data, {k: t.grad.data for k, t in twin.items()}


def check_against_eager(step, args, X, Y, params, loss="fused"):
    for p in params.values():
        p.grad = None
    want_cost, want = eager_grads(X, Y, params, loss)
    got = step(*args)
    assert np.array_equal(got.data, want_cost)
    for k in params:
        assert np.array_equal(params[k].grad.data, want[k]), k


def test_retraces_when_argument_shapes_dtypes_or_layouts_change():
    X, Y, params = tutorial()
    step = compile(lambda X, Y: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    check_against_eager(step, (X, Y), X, Y, params)
    check_against_eager(step, (X, Y), X, Y, params)
    assert step.traces == 1
    X8, Y8, _ = tutorial(m=8, seed=1)
    check_against_eager(step, (X8, Y8), X8, Y8, params)
    assert step.traces == 2
    XF = Tensor(np.asfortranarray(X8.data), name="X")
    check_against_eager(step, (XF, Y8), XF, Y8, params)
    assert step.traces == 3
    X_new, Y_new, _ = tutorial(m=8, seed=5)  # new values, same signature: replayed
    check_against_eager(step, (X_new, Y_new), X_new, Y_new, params)
    assert step.traces == 3


def test_retraces_when_the_dtype_changes():
    X, Y, params = tutorial(dtype=np.float32)
    step = compile(lambda X, Y, p: fnn.cost_of(fnn.forward_logits(X, p), Y, "fused"))
    check_against_eager(step, (X, Y, params), X, Y, params)
    X64, Y64, p64 = tutorial()
    check_against_eager(step, (X64, Y64, p64), X64, Y64, p64)
    assert step.traces == 2 and step(X64, Y64, p64).dtype == np.float64


def test_static_arguments_are_part_of_the_signature():
    X, Y, params = tutorial()
    step = compile(
        lambda loss: fnn.cost_of(
            fnn.forward_logits(X, params)
            if loss == "fused"
            else fnn.forward_propagation(X, params)[1],
            Y,
            loss,
        )
    )
    check_against_eager(step, ("fused",), X, Y, params, "fused")
    check_against_eager(step, ("composed",), X, Y, params, "composed")
    check_against_eager(step, ("fused",), X, Y, params, "fused")
    assert step.traces == 2
    with pytest.raises(TypeError, match="hashable"):
        step({"fused"})  # a set: neither hashable nor a container compile walks


def test_no_stale_program_after_a_parameter_is_replaced():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    check_against_eager(step, (), X, Y, params)
    params["W1"] = Tensor(
        np.random.default_rng(9).standard_normal((4, 2)), requires_grad=True, name="W1"
    )
    check_against_eager(step, (), X, Y, params)
    assert step.traces == 2
    old = params["W1"]
    params["W1"] = Tensor(old.data.copy(), requires_grad=True, name="W1")
    check_against_eager(step, (), X, Y, params)
    assert step.traces == 3


def test_a_global_rebound_to_another_tensor_retraces():
    global GLOBAL_W
    GLOBAL_W = Tensor(np.ones((2, 2)), requires_grad=True)
    step = compile(lambda: (GLOBAL_W * GLOBAL_W).sum())
    step()
    assert np.array_equal(GLOBAL_W.grad.data, 2 * np.ones((2, 2)))
    GLOBAL_W = Tensor(np.full((2, 2), 3.0), requires_grad=True)
    step()
    assert np.array_equal(GLOBAL_W.grad.data, np.full((2, 2), 6.0)) and step.traces == 2


def test_globals_are_the_names_the_code_loads_not_its_attribute_names():
    global GLOBAL_W
    GLOBAL_W = Tensor(np.ones((2, 2)), requires_grad=True)
    holder = _Holder()
    holder.weight_of_sum = 2.0  # an attribute name that is no global: not watched

    def cost():
        def inner():
            return GLOBAL_W.sum() * holder.weight_of_sum

        return (GLOBAL_W * GLOBAL_W).sum() + inner()

    step = compile(cost)
    assert step._global_names == ["GLOBAL_W"]
    for _ in range(3):
        GLOBAL_W.grad = None
        step()
    GLOBAL_W = Tensor(np.full((2, 2), 3.0), requires_grad=True)  # read in a nested function
    step()
    assert step.traces == 2 and np.array_equal(GLOBAL_W.grad.data, np.full((2, 2), 8.0))


def test_parameter_data_rebound_or_updated_in_place_is_read():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    check_against_eager(step, (), X, Y, params)
    params["W2"].data = np.full((1, 4), 0.25)
    check_against_eager(step, (), X, Y, params)
    with no_grad():
        params["b1"] -= 0.125
    check_against_eager(step, (), X, Y, params)
    assert step.traces == 1


def test_captured_data_replaced_by_another_shape_or_dtype_retraces():
    """A (1, 4) and a (2, 4) float64 array have the same strides; so has a float32 array that
    skips every other element. The program baked in the size of the first (`mean` divides by
    it), so replaying it would give a wrong number without an error (found in review: the key
    held only the strides)."""
    for old, new in [((2, 4), (1, 4)), ((1, 4), (2, 4)), ((3, 2), (5, 2))]:
        check_replaced_constant(old, new)
    x, w = Tensor(np.ones((2, 4))), Tensor(np.ones(4), requires_grad=True)
    step = compile(lambda: (x * w).sum())
    step()
    x.data = np.ones((2, 8), np.float32)[:, ::2]  # float32, strides of a (2, 4) float64 array
    assert x.data.strides == (32, 8)
    with pytest.raises(TypeError, match="dtypes"):  # as the eager engine says
        step()


def check_replaced_constant(old: tuple[int, ...], new: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(old) + old[0])
    x = Tensor(rng.standard_normal(old))
    w = Tensor(rng.standard_normal(3), requires_grad=True)

    def cost():
        return (x.mean() * w + x.sum() * w * w).sum()

    step = compile(cost)
    for _ in range(2):
        w.grad = None
        step()
    x.data = rng.standard_normal(new)
    assert x.data.strides == np.empty(old).strides  # the case that was missed
    for _ in range(2):
        w.grad = None
        got = step()
        w_grad = w.grad.data.copy()
        w.grad = None
        want = cost()
        want.backward()
        assert np.array_equal(got.data, want.data), (old, new)
        assert np.array_equal(w_grad, w.grad.data), (old, new)
    assert step.traces == 2


def test_parameter_data_replaced_by_another_shape_or_dtype_retraces():
    rng = np.random.default_rng(5)
    x = Tensor(rng.standard_normal((2, 4)))
    v = Tensor(np.ones((1, 4)), requires_grad=True)
    step = compile(lambda: (x * v).mean(), lr=0.125)
    for _ in range(2):
        v.grad = None
        step()
    shapes = {(1, 4)}
    for shape in [(2, 4), (4,), (1, 4)]:  # the last one's program is there already
        shapes.add(shape)
        start = rng.standard_normal(shape)
        v.data = start.copy()
        v.grad = None
        got = step()  # with the update: v ← v − 0.125·∂cost/∂v
        twin = Tensor(start.copy(), requires_grad=True)
        want = (x * twin).mean()
        want.backward()
        assert np.array_equal(got.data, want.data), shape
        assert np.array_equal(v.grad.data, twin.grad.data), shape
        after = start - 0.125 * twin.grad.data
        assert np.array_equal(v.data, after), shape
        assert step.traces == len(shapes)
        step.sgd(0.5)  # and the separate update follows the parameter's new storage
        assert np.array_equal(v.data, after - 0.5 * twin.grad.data), shape
    v.data = np.ones((1, 4), np.float32)
    v.grad = None
    with pytest.raises(TypeError, match="dtypes"):  # as the eager engine says
        step()


def test_grad_accumulation_is_part_of_the_signature():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    eager = {k: Tensor(v.data.copy(), requires_grad=True, name=k) for k, v in params.items()}
    for i in range(5):  # never zeroed: gradients add up, in both
        cost = fnn.cost_of(fnn.forward_logits(X, eager), Y, "fused")
        cost.backward()
        step()
        for k in params:
            assert np.array_equal(params[k].grad.data, eager[k].grad.data), (i, k)
    assert step.traces == 2  # once without .grad, once with


def test_grad_mode_is_part_of_the_signature():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    step()
    with no_grad(), pytest.raises(RuntimeError, match="does not require grad"):
        step()
    assert step.traces == 2


def test_one_tensor_passed_twice_is_not_confused_with_two():
    w = Tensor(A, requires_grad=True)
    step = compile(lambda x, y: (w * x - y).sum() * (w * y).sum())
    X1, X2 = Tensor(B), Tensor(POS)
    for x, y in [(X1, X1), (X1, X2), (X2, X2), (X2, X1)]:
        w.grad = None
        twin = Tensor(A, requires_grad=True)
        want = (twin * x - y).sum() * (twin * y).sum()
        want.backward()
        got = step(x, y)
        assert np.array_equal(got.data, want.data)
        assert np.array_equal(w.grad.data, twin.grad.data)
    assert step.traces == 2


class _Holder:
    pass


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_runs_only_the_program_of_the_calls_signature(seed):
    """A call whose signature is the last one's skips building the key (a generated guard reads
    the same things); under random changes of everything the key reads, every call must run the
    program its key names and give the eager cost, and the third call in a row with one
    signature must take the fast path (the first traces, the second builds the guard)."""
    global GLOBAL_U
    r = np.random.default_rng(seed)
    params = {"w": Tensor(r.standard_normal((3, 1)), requires_grad=True)}
    holder = _Holder()
    holder.v = Tensor(r.standard_normal((2, 2)), requires_grad=True)
    GLOBAL_U = Tensor(r.standard_normal((2, 2)), requires_grad=True)
    c = Tensor(r.standard_normal((2, 2)))

    def cost(x, y, scale, arr):
        fit = ((params["w"] * x - y) ** 2).sum() * scale
        return fit + (holder.v * c).sum() + (GLOBAL_U * Tensor(arr)).sum()

    def fresh(*shape):
        return r.standard_normal(shape)

    step = compile(cost)
    slow = []
    signature = step._signature
    step._signature = lambda *a: slow.append(1) or signature(*a)
    x, y, scale, arr = Tensor(fresh(3, 4)), Tensor(fresh(3, 4)), 1.0, fresh(2, 2)
    keys: list = []
    fast = 0
    for _ in range(60):
        change = r.integers(30)  # 13 and up: no change
        if change == 1:
            params["w"] = Tensor(fresh(3, 1), requires_grad=True)
        elif change == 2:  # keep the gradients: the next call accumulates
            pass
        elif change == 3:
            x = Tensor(fresh(*x.shape))
        elif change == 4:
            m = 12 - x.shape[1]
            x, y = Tensor(fresh(3, m)), Tensor(fresh(3, m))
        elif change == 5:
            scale = [1.0, 2.0, 2][r.integers(3)]  # 2 and 2.0 differ in type
        elif change == 6:
            y = x if y is not x else Tensor(fresh(*x.shape))
        elif change == 7:
            holder.v = Tensor(fresh(2, 2), requires_grad=True)
        elif change == 8:
            c = Tensor(fresh(2, 2))
        elif change == 9:
            GLOBAL_U = Tensor(fresh(2, 2), requires_grad=True)
        elif change == 10:
            arr = arr.astype(np.float32) if arr.dtype == np.float64 else fresh(2, 2)
        elif change == 11:
            x = Tensor(np.asfortranarray(x.data))
        elif change == 12:
            c.requires_grad = not c.requires_grad
            c.grad = None
        if change != 2:
            for t in (params["w"], holder.v, GLOBAL_U, c):
                t.grad = None
        key, _ = signature((x, y, scale, arr), {})
        with no_grad():
            want = cost(x, y, scale, arr)
        before = len(slow)
        got = step(x, y, scale, arr)
        assert step._programs.get(key) is step._last, change
        assert np.array_equal(got.data, want.data), change
        if keys[-2:] == [key, key]:
            assert len(slow) == before, "the fast path was not taken"
            fast += 1
        keys.append(key)
    assert fast >= 5


def test_the_fast_path_is_taken_and_refuses_a_changed_call():
    X, Y, params = tutorial()
    step = compile(lambda X: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    for _ in range(3):
        check_against_eager(step, (X,), X, Y, params)
    program = step._last
    assert program.fast_call is not None and step._fast is program.fast_call
    for p in params.values():
        p.grad = None
    assert program.fast_call((X,), {}) is not None  # taken
    for p in params.values():
        p.grad = None
    assert program.fast_call((X, X), {}) is None  # another signature: refused
    assert program.fast_call((X,), {"extra": 1}) is None
    assert program.fast_call((X.data,), {}) is None
    with no_grad():
        assert program.fast_call((X,), {}) is None
    params["W1"].grad = params["W1"] * 1.0
    assert program.fast_call((X,), {}) is None
    assert step.traces == 1


def test_array_arguments_are_read_each_call():
    _, _, params = tutorial()

    def cost(X, Y):
        return fnn.cost_of(fnn.forward_logits(fnn.as_tensor(X), params), Y, "fused")

    step = compile(cost)
    for seed in range(4):
        r = np.random.default_rng(seed)
        X, Y = r.standard_normal((2, 4)), (r.uniform(size=(1, 4)) > 0.5).astype(float)
        check_against_eager(step, (X, Y), Tensor(X), Tensor(Y), params)
    assert step.traces == 1


def test_a_tensor_copied_from_an_input_reads_the_input_each_call():
    w = Tensor(A, requires_grad=True)
    step = compile(
        lambda x: (w * Tensor(x, dtype=np.float32).astype(np.float64)).sum() + (w * Tensor(w)).sum()
    )
    for seed in range(3):
        x = Tensor(np.random.default_rng(seed).standard_normal((3, 4)))
        w.grad = None
        got = step(x).item()
        assert got == ((A * x.data.astype(np.float32).astype(np.float64)).sum() + (A * A).sum())
        assert np.array_equal(w.grad.data, x.data.astype(np.float32).astype(np.float64) + A)
    assert step.traces == 1


def test_array_arguments_converted_to_another_dtype():
    _, _, params = tutorial(dtype=np.float32)
    step = compile(
        lambda X: (fnn.forward_logits(Tensor(X, dtype=np.float32), params)["Z2"] ** 2).sum()
    )
    for seed in range(3):
        X = np.random.default_rng(seed).standard_normal((2, 4))
        for p in params.values():
            p.grad = None
        got = step(X)
        twin = {k: Tensor(v.data, requires_grad=True, dtype=np.float32) for k, v in params.items()}
        want = (fnn.forward_logits(Tensor(X, dtype=np.float32), twin)["Z2"] ** 2).sum()
        want.backward()
        assert np.array_equal(got.data, want.data)
        assert np.array_equal(params["W1"].grad.data, twin["W1"].grad.data)
    assert step.traces == 1


# ----- what is returned is not overwritten behind the caller's back


def test_kept_gradients_and_costs_are_never_overwritten():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    kept_costs, kept_grads = [], []
    for _ in range(4):
        for p in params.values():
            p.grad = None
        kept_costs.append(step())
        kept_grads.append({k: (p.grad, p.grad.data.copy()) for k, p in params.items()})
        step.sgd(0.5)
    for grads in kept_grads:
        for k, (tensor, values) in grads.items():
            assert np.array_equal(tensor.data, values), k
    costs = [c.item() for c in kept_costs]
    assert len(set(costs)) == 4
    with pytest.raises(ValueError):
        params["W1"].grad.data[0, 0] = 1.0  # read-only, as an eager gradient is


def test_gradient_storage_is_reused_when_nothing_keeps_it():
    X, Y, params = tutorial()
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    step()
    first = params["W1"].grad
    address = first.data.__array_interface__["data"][0]
    del first
    for p in params.values():
        p.grad = None
    step()
    assert params["W1"].grad.data.__array_interface__["data"][0] == address


# ----- tracing errors


def net_cost(X, Y, params):
    return fnn.cost_of(fnn.forward_logits(X, params), Y, "fused")


@pytest.mark.parametrize(
    "escape, what",
    [
        (lambda c: c.item(), r"\.item\(\)"),
        (lambda c: float(c), r"float\(\)"),
        (lambda c: bool(c > 0), r"bool\(\)"),
        (lambda c: c.numpy(), r"\.numpy\(\)"),
        (lambda c: np.asarray(c.detach()), r"np\.asarray\(\)"),
        (lambda c: f"{c:.3f}", r"format\(\)"),
        (lambda c: np.exp(c.data), r"np\.exp"),
        (lambda c: c.data * 2, r"np\.multiply"),
        (lambda c: float(c.data), r"float\(\)"),
        (lambda c: c.data[()], r"indexing"),
        (lambda c: Tensor(c.data), r"Tensor\(\.\.\.\) made from the data"),
    ],
)
def test_values_taken_out_while_tracing_are_errors(escape, what):
    X, Y, params = tutorial()

    def cost():
        c = net_cost(X, Y, params)
        escape(c)
        return c

    with pytest.raises(TraceError, match=what):
        compile(cost)()
    for p in params.values():  # the parameters are usable afterwards
        p.grad = None
    assert np.isfinite(compile(lambda: net_cost(X, Y, params))().item())


def test_a_rule_that_computes_outside_the_operations_is_an_error():
    class LeakyMask(Function):
        op = "leaky"

        def forward(self, a):
            return np.where(a > 0, a, 0.1 * a)

        def da(self, g, z, a):
            return g * np.where(as_array(a) > 0, 1.0, 0.1)  # a mask made with plain NumPy

    w = Tensor(A, requires_grad=True)
    LeakyMask()(w).sum().backward()  # fine eagerly
    with pytest.raises(TraceError, match="rule of leaky used an array of shape"):
        compile(lambda: LeakyMask()(w).sum())()


def test_a_rule_that_reuses_an_array_its_forward_kept_is_an_error():
    class KeptMask(Function):
        op = "kept_mask"

        def forward(self, a):
            self.mask = (a > 0).astype(a.dtype)  # kept for the rule: frozen if traced
            return a * self.mask

        def da(self, g, z, a):
            return g * Tensor._wrap(self.mask)

    w = Tensor(A, requires_grad=True)
    with pytest.raises(TraceError, match="rule of kept_mask used an array"):
        compile(lambda: KeptMask()(w).sum())()
    constant = Tensor(np.full((3, 4), 2.0))  # a constant made in forward is fine in a rule
    run_both(
        lambda p: (p["a"] * Tensor(np.full((3, 4), 2.0)) * constant).sum(), {"a": A}, np.float64
    )


def test_a_parameter_reached_another_way_is_an_error():
    class Model:
        def __init__(self):
            self.layers = [{"W": Tensor(A, requires_grad=True)}]

    model = Model()
    holder = [model]
    with pytest.raises(TraceError, match="reached neither"):
        compile(lambda: (holder[0].layers[0]["W"] ** 2).sum())()


def test_other_misuse_is_named():
    w = Tensor(A, requires_grad=True)
    with pytest.raises(TypeError, match="must return the cost as a Tensor"):
        compile(lambda: 1.0)()
    inner = compile(lambda: (w * w).sum())
    with pytest.raises(TraceError, match="do not nest"):
        compile(lambda: inner())()
    with pytest.raises(RuntimeError, match="first call"):
        compile(lambda: (w * w).sum()).source  # noqa: B018
    with pytest.raises(ValueError, match="lr must be"):
        compile(lambda: (w * w).sum(), lr=float("nan"))


def test_under_detect_anomaly_the_step_runs_eagerly_and_names_the_operation():
    w = Tensor(np.array([[0.0, 1.0]]), requires_grad=True, name="w")
    step = compile(lambda: w.log().sum())
    with detect_anomaly(), pytest.raises(Exception, match="log"), np.errstate(all="ignore"):
        step()
    assert step.traces == 0


# ----- the fused update, the decorator, the source


def test_fused_update_and_decorator():
    X, Y, params = tutorial()
    eager = {k: Tensor(v.data.copy(), requires_grad=True, name=k) for k, v in params.items()}

    @compile(lr=0.5)
    def step():
        return net_cost(X, Y, params)

    opt = fnn.SGD(eager, 0.5)
    for i in range(20):
        for p in params.values():
            p.grad = None
        c = step()
        ce = fnn.train_step(X, Y, eager, opt, "fused")
        assert np.array_equal(c.data, ce.data)
        for k in params:
            assert np.array_equal(params[k].data, eager[k].data), (i, k)


def test_sgd_uses_the_gradient_in_grad_even_if_replaced():
    w = Tensor(A, requires_grad=True)
    step = compile(lambda: (w * w).sum())
    step()
    w.grad = Tensor(np.ones_like(A))
    step.sgd(0.5)
    assert np.array_equal(w.data, A - 0.5)


def test_sgd_refuses_parameters_a_live_graph_needs():
    w = Tensor(A, requires_grad=True)
    step = compile(lambda: (w * w).sum())
    step()
    pending = (w * 2.0).sum()  # recorded, not yet back-propagated: w's data is locked
    with pytest.raises(RuntimeError, match="read-only"):
        step.sgd(0.1)
    assert np.array_equal(w.data, A)
    pending.backward()
    step.sgd(0.1)
    assert np.array_equal(w.data, A - 0.1 * (2 * A + 2.0))  # .grad now holds both gradients


def test_source_names_the_tutorial_quantities():
    fused = fnn.derive("fused")
    for line in (
        "dot(W1, X, out=matmul1)",
        "add(matmul1, b1, out=Z1)",
        "maximum(Z1, zero, out=A1)",
        "add.reduce(dZ2, axis=(1,), keepdims=True, out=db2)",
        "dot(dZ2, A1T, out=dW2)",
        "dot(W2T, dZ2, out=dA1)",
        "multiply(dA1, greater1, out=dZ1)",
        "dot(dZ1, XT, out=dW1)",
    ):
        assert line in fused, line
    composed = fnn.derive("composed")
    assert "out=A2" in composed and "out=dZ2" in composed and "return cost" in composed
    # 1 − A2 appears in the cost and in sigmoid's rule: computed once, the same bits
    assert composed.count("subtract(one, A2, out=") == 1


def readme_block(name: str) -> str:
    text = README.read_text()
    found = re.search(
        rf"<!-- derive:{name}:start.*?-->\n```py\n(.*?)```\n<!-- derive:{name}:end -->",
        text,
        re.S,
    )
    assert found, f"README has no derive:{name} block"
    return found.group(1)


def test_readme_shows_the_source_the_code_generates():
    assert readme_block("fused") == fnn.derive("fused")
    assert readme_block("hand") == inspect.getsource(manual.backpropagation)


def test_cli_derive_prints_the_source(capsys):
    from tinygrad_fnn.cli import main

    assert main(["derive", "--loss", "composed", "--m", "8"]) == 0
    assert capsys.readouterr().out == fnn.derive("composed", 8)


def test_cli_train_prints_the_same_costs_compiled_and_eager(capsys):
    from tinygrad_fnn.cli import main

    outputs = []
    for extra in ([], ["--eager"]):
        argv = ["train", "--data", "xor", "--epochs", "300", "--print-every", "50", *extra]
        assert main(argv) == 0
        out = capsys.readouterr().out
        outputs.append([line for line in out.splitlines() if not line.startswith("trained in")])
    assert outputs[0] == outputs[1]
    assert sum(line.startswith("Epoch") for line in outputs[0]) == 6


def test_errstate_set_around_a_call_is_respected():
    w = Tensor(np.array([[-800.0, 1.0]]), requires_grad=True)
    step = compile(lambda: w.sigmoid().sum())
    for _ in range(3):  # sigmoid's own overflow is silent, eager and compiled
        w.grad = None
        with np.errstate(over="raise"):
            assert step().item() == pytest.approx(1 / (1 + np.exp(-1.0)))
    overflow = compile(lambda: (w * 1e300 * 1e10).sum())
    with np.errstate(over="ignore", invalid="ignore"):
        overflow()  # traced
    w.grad = None
    with np.errstate(over="raise", invalid="ignore"), pytest.raises(FloatingPointError):
        overflow()  # replayed: the caller's error state applies to the program too


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_compiled_step_holds_less_memory_than_an_eager_step_allocates(dtype):
    import tracemalloc

    X, Y, _ = tutorial(dtype=dtype, m=512)
    X = fnn.as_tensor(np.random.default_rng(0).standard_normal((30, 512)), dtype, "X")
    eager = fnn.initialize_parameters(30, 64, seed=0, dtype=dtype)
    optimizer = fnn.SGD(eager, 0.1)
    fnn.train_step(X, Y, eager, optimizer, "fused")
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fnn.train_step(X, Y, eager, optimizer, "fused")
    eager_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    step = fnn.compiled_step(X, Y, fnn.initialize_parameters(30, 64, seed=0, dtype=dtype), "fused")
    step()
    buffers = 64 * 512 * np.dtype(dtype).itemsize  # Z1, A1 and the (64, 512) gradients use these
    assert 2 * buffers <= step.nbytes < eager_peak


def test_a_warning_in_the_program_points_at_its_line():
    w = Tensor(np.array([[0.5, 2.0]]), requires_grad=True)
    step = compile(lambda: (w - 1.0).log().sum())
    with np.errstate(invalid="ignore"):
        step()  # traced
    w.grad = None
    with pytest.warns(RuntimeWarning, match="invalid value encountered in log") as caught:
        step()
    assert "compiled" in caught[0].filename
    assert "log(" in linecache.getline(caught[0].filename, caught[0].lineno)


@pytest.mark.parametrize(
    "use",
    [
        lambda u, arr: (u * arr).sum(),
        lambda u, arr: (arr * u).sum(),
        lambda u, arr: np.multiply(arr, u).sum(),
        lambda u, arr: (u - arr + u / arr).sum(),
    ],
)
def test_an_array_argument_used_directly_is_read_afresh_at_every_call(use):
    u = Tensor(np.ones((2, 3)), requires_grad=True)
    step = compile(lambda arr: use(u, arr))
    for k in range(4):
        arr = np.full((2, 3), float(k + 1))
        with no_grad():
            expected = use(u.detach(), arr)
        u.grad = None
        assert step(arr).item() == expected.item()
        eager_u = Tensor(u.data, requires_grad=True)
        use(eager_u, arr).backward()
        np.testing.assert_array_equal(u.grad.data, eager_u.grad.data)


@pytest.mark.parametrize(
    "use", [lambda u, arr: (u @ arr.T).sum(), lambda u, arr: (u + arr.astype(np.float64)).sum()]
)
def test_numpy_work_on_an_array_argument_inside_a_compiled_function_is_refused(use):
    u = Tensor(np.ones((2, 3)), requires_grad=True)
    step = compile(lambda arr: use(u, arr))
    with pytest.raises(TraceError, match="frozen"):
        step(np.ones((2, 3)))


def test_numpy_work_on_an_array_argument_is_an_error_that_says_what_to_do():
    """The function is given a plain array: NumPy work on it while tracing would freeze the
    result, and the error says to do it on a Tensor (found by a new user: the message spoke of a
    traced tensor and of Tensor(...), which the user had not written)."""
    W = Tensor(np.ones((3, 5)), requires_grad=True)
    for body in (lambda X: (W @ X.T).sum(), lambda X: (W @ (X * 2).T).sum()):
        with pytest.raises(TraceError, match=r"Tensor\(X\)"):
            compile(body)(np.ones((6, 5)))
    step = compile(lambda X: (W @ Tensor(X).T).sum())  # as the message says
    for i in range(3):
        X = np.random.default_rng(i).standard_normal((6, 5))
        W.grad = None
        got = step(X)
        assert np.array_equal(got.data, (W.data @ X.T).sum())
        assert np.array_equal(W.grad.data, np.ones((3, 6)) @ X)


# ----- a function that is not a function of what the signature sees: the first replay of a
# program is held to the plain function run once more, so a frozen value is never replayed


def _impure(kind: str, seed: int):
    """A cost that reads something compile cannot see: a random draw of each kind."""
    import random

    rng = np.random.default_rng(seed)
    draws = random.Random(seed)
    w = Tensor(np.linspace(0.5, 2.0, 4), requires_grad=True)
    costs = {
        "numpy generator": lambda: (w * float(rng.uniform())).sum(),
        "python random": lambda: (w * draws.random()).sum(),
        "a tensor of fresh data": lambda: (w * Tensor(rng.uniform(size=4))).sum(),
        "a mask of fresh data": lambda: (w * Tensor(rng.uniform(size=(32, 4)) > 0.5)).sum(),
    }
    return w, costs[kind]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "kind", ["numpy generator", "python random", "a tensor of fresh data", "a mask of fresh data"]
)
def test_a_function_of_random_draws_is_refused_at_its_first_replay(kind, seed):
    w, cost = _impure(kind, seed)
    step = compile(cost)
    with pytest.raises(TraceError, match="reads something compile cannot see"):
        for _ in range(4):  # traced (twice: .grad None, then held), then replayed
            w.grad = None
            step()
    assert w.grad is None  # the refused call delivered nothing
    assert step._programs == {} or all(p.fast_built is False for p in step._programs.values())


def test_a_refused_program_is_forgotten_and_traced_again():
    w, cost = _impure("numpy generator", 3)
    step = compile(cost)
    w.grad = None
    step()
    w.grad = None
    with pytest.raises(TraceError):
        step()
    traces = step.traces
    w.grad = None
    step()  # a new trace, never the refused program
    assert step.traces == traces + 1


def test_constants_made_inside_a_pure_function_are_replayed():
    """Arrays made inside the function that are the same at every call (np.arange, np.eye, a
    mask of fixed data) are constants: the program keeps them and replays on the fast path."""
    ticks = itertools.count()  # (a list would be part of the signature, and change it)
    w = Tensor(np.linspace(-1.0, 1.0, 3), requires_grad=True)

    def cost():
        next(ticks)
        scale = Tensor(np.arange(1.0, 4.0)) + Tensor(np.eye(3)).sum(axis=0)
        return (w * scale * Tensor(np.array([1.0, -1.0, 2.0]) > 0)).sum()

    step = compile(cost)
    for _ in range(6):
        w.grad = None
        got = step()
        w.grad = None
        want = cost()
        want.backward()
        assert np.array_equal(got.data, want.data)
    # 6 traced or replayed calls and 6 eager ones: the function ran once more, at the first
    # replay, and on no other call
    assert step.traces == 1
    assert next(ticks) == 6 + step.traces + 1


# ----- a global function or class the function names, redefined (as a notebook cell does)

_ACTIVATION = Tensor.relu


class _Scale(Function):
    op = "scale"

    def forward(self, a):
        return 2.0 * a

    def da(self, g, z, a):
        return 2.0 * g


def _uses_the_helpers(w: Tensor) -> Tensor:
    return _Scale()(_ACTIVATION(w)).sum()


class _Cube(Function):
    op = "cube"

    def forward(self, a):
        return a * a * a

    def da(self, g, z, a):
        return 3.0 * g * a * a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_redefined_global_function_or_class_traces_again(seed, monkeypatch):
    w = Tensor(np.random.default_rng(seed).standard_normal((3, 4)), requires_grad=True)
    step = compile(lambda: _Scale()(_ACTIVATION(w)).sum())  # it names both helpers
    helpers = [
        ("_ACTIVATION", Tensor.relu),
        ("_ACTIVATION", Tensor.tanh),  # a function rebound
        ("_Scale", _Cube),  # a class rebound
        ("_ACTIVATION", lambda t: t.sigmoid()),
    ]
    for name, value in helpers:
        monkeypatch.setitem(globals(), name, value)
        for _ in range(3):  # traced, then the general path, then the fast path
            w.grad = None
            want = _uses_the_helpers(w)
            want.backward()
            want_grad = w.grad.data.copy()
            w.grad = None
            got = step()
            assert np.array_equal(got.data, want.data), name
            assert np.array_equal(w.grad.data, want_grad), name
