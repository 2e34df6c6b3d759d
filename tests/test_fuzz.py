"""Random expression graphs over every operation, with broadcasting, against PyTorch.

Each graph starts from two or three leaves of shapes (4, 4), (4, 1), (1, 4) or (1, 1), so any
two operands broadcast, and applies random operations to random earlier nodes; every operation
maps these shapes to these shapes (the shape-changing ones are paired with their way back, e.g.
a split with a product of the pieces). The graph's output is every node, flattened and joined.
For each graph the value, the gradient of a random weighting of the output, and a
Hessian-vector product of that gradient (through `create_graph`) are compared with PyTorch in
float64, relative to the norm of PyTorch's result. The worst errors are printed (`pytest -s`).
"""

import itertools
import time

import numpy as np
import pytest

from tinygrad_fnn import Tensor, binary_cross_entropy, binary_cross_entropy_with_logits, grad
from tinygrad_fnn import ops as engine_ops
from tinygrad_fnn.engine import _topological_order, concatenate, detect_anomaly, stack, where

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch")
from torch_oracle import errors_against_torch  # noqa: E402

F = torch.nn.functional
GRAPHS = 1000
BOUND = 1e-12


def pos(a):
    """A positive operand for log, sqrt, division, pow (a·a + 0.5 in either library)."""
    return a * a + 0.5


def small(a):
    """A bounded operand for the operations that grow fast (exp, powers, products)."""
    return a.tanh()


def idx(n):
    """Rows to pick, with repeats: [3, 0, 0, 1] of four, [0] of one."""
    return [3, 0, 0, 1] if n == 4 else [0]


def composed_bce(p, y):
    return -(y * p.log() + (1 - y) * (1 - p).log()).mean()


# name: (arity, engine function, torch function). Each maps shapes in {1, 4}² to the same set.
SPECS = {
    "add": (2, lambda a, b: a + b, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b, lambda a, b: a - b),
    "rsub": (1, lambda a: 1.5 - a, lambda a: 1.5 - a),
    "mul": (2, lambda a, b: a * b, lambda a, b: a * b),
    "div": (2, lambda a, b: a / pos(b), lambda a, b: a / pos(b)),
    "neg": (1, lambda a: -a, lambda a: -a),
    "pow const": (1, lambda a: small(a) ** 3, lambda a: small(a) ** 3),
    "pow fraction": (1, lambda a: pos(a) ** 1.5, lambda a: pos(a) ** 1.5),
    "pow tensor": (2, lambda a, b: pos(a) ** small(b), lambda a, b: pos(a) ** small(b)),
    "rpow": (1, lambda a: 2.0 ** small(a), lambda a: 2.0 ** small(a)),
    "exp": (1, lambda a: small(a).exp(), lambda a: small(a).exp()),
    "log": (1, lambda a: pos(a).log(), lambda a: pos(a).log()),
    "relu": (1, lambda a: a.relu(), torch.relu),
    "sigmoid": (1, lambda a: a.sigmoid(), torch.sigmoid),
    "tanh": (1, lambda a: a.tanh(), torch.tanh),
    "sqrt": (1, lambda a: pos(a).sqrt(), lambda a: pos(a).sqrt()),
    "abs": (1, lambda a: abs(a), torch.abs),
    "sign": (2, lambda a, b: a.sign() * b, lambda a, b: torch.sign(a) * b),
    "clip": (1, lambda a: a.clip(-1.0, 0.5), lambda a: a.clamp(-1.0, 0.5)),
    "where": (2, lambda a, b: where(a > b, a * b, b), lambda a, b: torch.where(a > b, a * b, b)),
    "maximum": (2, lambda a, b: a.maximum(b), torch.maximum),
    "minimum": (2, lambda a, b: a.minimum(b), torch.minimum),
    "leaky_relu": (1, lambda a: a.leaky_relu(0.1), lambda a: F.leaky_relu(a, 0.1)),
    "softplus": (1, lambda a: (a * 15).softplus(), lambda a: F.softplus(a * 15)),
    "relu6": (1, lambda a: (a * 4).relu6(), lambda a: F.relu6(a * 4)),
    "hardswish": (1, lambda a: (a * 3).hardswish(), lambda a: F.hardswish(a * 3)),
    "mish": (1, lambda a: a.mish(), F.mish),
    "gelu": (1, lambda a: a.gelu(), F.gelu),
    "gelu tanh": (
        1,
        lambda a: a.gelu(approximate="tanh"),
        lambda a: F.gelu(a, approximate="tanh"),
    ),
    "astype": (
        1,
        lambda a: a.astype(np.float32).astype(np.float64),
        lambda a: a.float().double(),
    ),
    "matmul": (1, lambda a: a @ a.T, lambda a: a @ a.T),
    "matmul of a product": (
        2,
        lambda a, b: (a * b) @ small(a * b).T,
        lambda a, b: (a * b) @ small(a * b).T,
    ),
    "batched matmul": (
        1,
        lambda a: (stack([a, small(a).exp()]) @ stack([a.T, a.T])).sum(axis=0),
        lambda a: (torch.stack([a, small(a).exp()]) @ torch.stack([a.T, a.T])).sum(0),
    ),
    "stacked matmul by matrix": (
        1,
        lambda a: (stack([a, a * 2]) @ a.T)[1],
        lambda a: (torch.stack([a, a * 2]) @ a.T)[1],
    ),
    "sum": (1, lambda a: a.sum(axis=1, keepdims=True), lambda a: a.sum(1, keepdim=True)),
    "sum all": (1, lambda a: a.sum().reshape(1, 1), lambda a: a.sum().reshape(1, 1)),
    "mean": (1, lambda a: a.mean(axis=0, keepdims=True), lambda a: a.mean(0, keepdim=True)),
    "max": (1, lambda a: a.max(axis=1, keepdims=True), lambda a: a.amax(1, keepdim=True)),
    "min": (1, lambda a: a.min(axis=0, keepdims=True), lambda a: a.amin(0, keepdim=True)),
    "prod": (
        1,
        lambda a: (small(a) + 1).prod(axis=1, keepdims=True),
        lambda a: (small(a) + 1).prod(1, keepdim=True),
    ),
    "stack prod": (
        2,
        lambda a, b: stack([a * b, (a * b).exp()]).prod(axis=0),
        lambda a, b: torch.stack([a * b, (a * b).exp()]).prod(0),
    ),
    "var": (
        1,
        lambda a: concatenate([a, a * a + 1], axis=1).var(axis=1, ddof=1, keepdims=True),
        lambda a: torch.cat([a, a * a + 1], 1).var(1, keepdim=True),
    ),
    "std": (
        1,
        lambda a: concatenate([a, a * a + 1], axis=0).std(axis=0, keepdims=True),
        lambda a: torch.cat([a, a * a + 1], 0).std(0, correction=0, keepdim=True),
    ),
    "cumsum": (1, lambda a: a.cumsum(axis=1), lambda a: a.cumsum(1)),
    "cumsum rows": (1, lambda a: a.cumsum(axis=0), lambda a: a.cumsum(0)),
    "logsumexp": (
        1,
        lambda a: a.logsumexp(axis=1, keepdims=True),
        lambda a: a.logsumexp(1, keepdim=True),
    ),
    "softmax": (1, lambda a: a.softmax(axis=0), lambda a: a.softmax(0)),
    "log_softmax": (1, lambda a: a.log_softmax(axis=1), lambda a: a.log_softmax(1)),
    "transpose": (1, lambda a: a.T, lambda a: a.T),
    "reshape": (1, lambda a: a.reshape(a.shape[::-1]), lambda a: a.reshape(a.shape[::-1])),
    "broadcast_to": (
        2,
        lambda a, b: a.broadcast_to((a * b).shape) * b,
        lambda a, b: a.expand((a * b).shape) * b,
    ),
    "squeeze": (
        1,
        lambda a: a.expand_dims(0).squeeze(0),
        lambda a: a.unsqueeze(0).squeeze(0),
    ),
    "unsqueeze": (
        1,
        lambda a: (a.unsqueeze(2) * a.unsqueeze(2)).squeeze(2),
        lambda a: (a.unsqueeze(2) * a.unsqueeze(2)).reshape(a.shape),
    ),
    "flatten": (
        1,
        lambda a: a.flatten()[::-1].reshape(a.shape),
        lambda a: a.flatten().flip(0).reshape(a.shape),
    ),
    "ravel": (
        1,
        lambda a: a.T.ravel().reshape(a.shape),
        lambda a: a.T.reshape(-1).reshape(a.shape),
    ),
    "getitem rows": (1, lambda a: a[idx(a.shape[0])], lambda a: a[idx(a.shape[0])]),
    "getitem pairs": (
        1,
        lambda a: a[idx(a.shape[0]), idx(a.shape[1])].reshape(-1, 1),
        lambda a: a[idx(a.shape[0]), idx(a.shape[1])].reshape(-1, 1),
    ),
    "getitem steps": (1, lambda a: a[::-1, ::-1], lambda a: a.flip(0, 1)),
    "getitem None ellipsis": (1, lambda a: a[None, ..., :][0], lambda a: a[None, ..., :][0]),
    "getitem mask": (
        1,
        lambda a: (a[a > 0] ** 2).sum().reshape(1, 1),
        lambda a: (a[a > 0] ** 2).sum().reshape(1, 1),
    ),
    "getitem int": (1, lambda a: a[-1].reshape(1, -1), lambda a: a[-1].reshape(1, -1)),
    "concatenate": (
        2,
        lambda a, b: concatenate([a * b, a.broadcast_to((a * b).shape)], axis=1)[:, 1::2],
        lambda a, b: torch.cat([a * b, a.expand((a * b).shape)], 1)[:, 1::2],
    ),
    "split": (
        1,
        lambda a: (lambda p: p[0] * p[1])(concatenate([a, a.sigmoid()], axis=1).split(2, axis=1)),
        lambda a: (lambda p: p[0] * p[1])(
            torch.split(torch.cat([a, a.sigmoid()], 1), a.shape[1], 1)
        ),
    ),
    "repeat": (
        1,
        lambda a: a.repeat(2, axis=1).reshape(a.shape[0], a.shape[1], 2).prod(axis=2),
        lambda a: a.repeat_interleave(2, 1).reshape(a.shape[0], a.shape[1], 2).prod(2),
    ),
    "pad": (
        1,
        lambda a: a.pad(((1, 0), (0, 1)), constant_values=0.5)[:-1, 1:] * a,
        lambda a: F.pad(a, (0, 1, 1, 0), value=0.5)[:-1, 1:] * a,
    ),
    "trace": (2, lambda a, b: a.trace() * b, lambda a, b: torch.diagonal(a).sum() * b),
    "diag": (1, lambda a: a.diag().diag(), lambda a: torch.diag(torch.diag(a))),
    "tril": (1, lambda a: a.tril(-1) + a.triu(1) * 2, lambda a: a.tril(-1) + a.triu(1) * 2),
    "triu": (1, lambda a: a.triu() * a, lambda a: a.triu() * a),
    "bce with logits": (
        2,
        lambda a, b: binary_cross_entropy_with_logits(a * b, (a * b).sigmoid()).reshape(1, 1),
        lambda a, b: F.binary_cross_entropy_with_logits(a * b, (a * b).sigmoid()).reshape(1, 1),
    ),
    # PyTorch's own binary_cross_entropy is one fused kernel with its own second derivative;
    # the engine's is composed of log, mul, sub and mean, so the oracle is the same composition
    # (the fused loss is compared with PyTorch's fused one above).
    "bce": (
        2,
        lambda a, b: binary_cross_entropy(
            small(a * b).sigmoid(), b.sigmoid().broadcast_to((a * b).shape)
        ).reshape(1, 1),
        lambda a, b: composed_bce(
            small(a * b).sigmoid(), b.sigmoid().expand((a * b).shape)
        ).reshape(1, 1),
    ),
}
NAMES = sorted(SPECS)
SHAPES = [(4, 4), (4, 1), (1, 4), (1, 1)]


def random_program(rng):
    """Leaf shapes and a list of (operation, operand positions); operands are earlier nodes."""
    leaves = [SHAPES[i] for i in rng.integers(0, len(SHAPES), rng.integers(2, 4))]
    steps = []
    for _ in range(rng.integers(3, 7)):
        name = NAMES[rng.integers(len(NAMES))]
        arity = SPECS[name][0]
        # Prefer the newest nodes, so that graphs are deep as well as wide.
        available = len(leaves) + len(steps)
        operands = [
            int(available - 1 - min(rng.geometric(0.5) - 1, available - 1)) for _ in range(arity)
        ]
        steps.append((name, operands))
    return leaves, steps


def run(steps, leaves, library):
    """Every node of the program, computed with the engine (library 1) or torch (2)."""
    nodes = list(leaves)
    for name, operands in steps:
        nodes.append(SPECS[name][library](*[nodes[i] for i in operands]))
    return nodes


def joined_engine(steps):
    return lambda *leaves: concatenate([n.ravel() for n in run(steps, leaves, 1)[len(leaves) :]])


def joined_torch(steps):
    return lambda *leaves: torch.cat([n.reshape(-1) for n in run(steps, leaves, 2)[len(leaves) :]])


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_maps_the_shapes_to_the_shapes(name):
    arity, ours, theirs = SPECS[name]
    for shapes in itertools.product(SHAPES, repeat=arity):
        arrays = [np.linspace(-1.5, 2.0, int(np.prod(s))).reshape(s) for s in shapes]
        out = ours(*[Tensor(a) for a in arrays])
        assert out.shape in SHAPES, (shapes, out.shape)
        assert tuple(theirs(*[torch.tensor(a) for a in arrays]).shape) == out.shape


def test_every_operation_has_a_fuzz_spec():
    """Every differentiable operation of the engine is reached by some spec (their graphs and
    the graphs of their derivative rules), so a new operation cannot be left out."""
    seen = set()
    for name in NAMES:
        arity, ours, _ = SPECS[name]
        leaves = [Tensor(np.linspace(-1.5, 2.0, 16).reshape(4, 4), requires_grad=True)] * arity
        out = ours(*leaves)
        seen |= {fn.op for fn in _topological_order(out.grad_fn)}
        (g,) = grad((out * out).sum(), leaves[0], create_graph=True)
        if g.grad_fn is not None:
            seen |= {fn.op for fn in _topological_order(g.grad_fn)}
    differentiable = {f.op for f in engine_ops.RULES if f.differentiable}
    assert differentiable <= seen, differentiable - seen


def test_random_graphs_agree_with_torch_to_the_last_digits(capsys):
    rng = np.random.default_rng(20261130)
    worst = {"value": 0.0, "gradient": 0.0, "hvp": 0.0}
    worst_graph = {}
    used = dict.fromkeys(NAMES, 0)
    start = time.perf_counter()
    for graph in range(GRAPHS):
        leaves, steps = random_program(rng)
        arrays = [rng.uniform(-2.0, 2.0, shape) for shape in leaves]
        errors = errors_against_torch(joined_engine(steps), joined_torch(steps), arrays, rng)
        for kind, e in errors.items():
            if e >= worst[kind]:
                worst[kind], worst_graph[kind] = e, (graph, leaves, steps)
        for name, _ in steps:
            used[name] += 1
        assert max(errors.values()) <= BOUND, (graph, leaves, steps, errors)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(
            f"\nfuzz: {GRAPHS} random graphs, {sum(used.values())} operations "
            f"({len(NAMES)} kinds, each used at least {min(used.values())} times) in "
            f"{elapsed:.1f} s; worst relative error: value {worst['value']:.1e}, gradient "
            f"{worst['gradient']:.1e}, Hessian-vector product {worst['hvp']:.1e}"
        )
    assert min(used.values()) >= 5, used


def test_the_fuzz_comparison_catches_a_wrong_rule(monkeypatch):
    """The harness can fail: a rule off by one rounding's worth is caught on the first graph."""
    monkeypatch.setattr(
        engine_ops.Tanh, "vjps", (lambda self, g, z, a: g * (1 - z * z) * (1 + 1e-9),)
    )
    rng = np.random.default_rng(0)
    errors = errors_against_torch(
        joined_engine([("tanh", [0])]),
        joined_torch([("tanh", [0])]),
        [rng.uniform(-2, 2, (4, 4))],
        rng,
    )
    assert errors["gradient"] > BOUND


def test_rules_give_the_same_bits_on_arrays_and_on_tensors():
    """A plain backward runs the rules on NumPy arrays; create_graph and anomaly mode run them on
    Tensors. Over random graphs of every operation, every leaf's gradient is the same bits."""
    rng = np.random.default_rng(7)
    for graph in range(300):
        leaves, steps = random_program(rng)
        arrays = [rng.uniform(-2.0, 2.0, shape) for shape in leaves]
        weights = None
        grads = []
        for mode in ("arrays", "create_graph", "anomaly"):
            tensors = [Tensor(a, requires_grad=True) for a in arrays]
            out = joined_engine(steps)(*tensors)
            if weights is None:
                weights = rng.standard_normal(out.shape)
            cost = (out * weights).sum()
            if mode == "anomaly":
                with detect_anomaly():
                    cost.backward()
            else:
                cost.backward(create_graph=mode == "create_graph")
            grads.append([None if t.grad is None else t.grad.data for t in tensors])
        for other in grads[1:]:
            for x, y in zip(grads[0], other):
                assert (x is None and y is None) or np.array_equal(x, y), (graph, leaves, steps)
