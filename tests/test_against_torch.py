"""Every operation's value and gradient against torch.autograd, in float64, to 1e-12 relative.

PyTorch is an optional test extra (`.ci/run` installs it); without it these tests are skipped
with the reason shown in pytest's summary.
"""

import numpy as np
import pytest

from tinygrad_fnn import Tensor, binary_cross_entropy, binary_cross_entropy_with_logits, grad

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch")
F = torch.nn.functional

rng = np.random.default_rng(7)

# name: (engine function, torch function, input shapes, smallest input value)
CASES = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 1)], -2),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, [(3, 4), (4,)], -2),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, [(1, 4), (3, 1)], -2),
    "div": (lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (3, 1)], 0.5),
    "neg": (lambda a: -a, lambda a: -a, [(3, 4)], -2),
    "pow": (lambda a: a**2.5, lambda a: a**2.5, [(3, 4)], 0.5),
    "pow_int": (lambda a: a**3, lambda a: a**3, [(3, 4)], -2),
    "exp": (lambda a: a.exp(), torch.exp, [(3, 4)], -2),
    "log": (lambda a: a.log(), torch.log, [(3, 4)], 0.5),
    "relu": (lambda a: a.relu(), torch.relu, [(3, 4)], -2),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, [(3, 4)], -2),
    "tanh": (lambda a: a.tanh(), torch.tanh, [(3, 4)], -2),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4, 5)], -2),
    "outer": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 1), (1, 5)], -2),
    "matvec": (lambda a, b: a @ b, lambda a, b: a @ b, [(3, 4), (4,)], -2),
    "sum": (lambda a: a.sum(), lambda a: a.sum(), [(3, 4)], -2),
    "sum_axis": (lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [(3, 4)], -2),
    "sum_keep": (
        lambda a: a.sum(axis=0, keepdims=True),
        lambda a: a.sum(dim=0, keepdim=True),
        [(3, 4)],
        -2,
    ),
    "mean": (lambda a: a.mean(axis=0), lambda a: a.mean(dim=0), [(3, 4)], -2),
    "max": (lambda a: a.max(axis=1), lambda a: a.amax(dim=1), [(3, 4)], -2),
    "max_all": (lambda a: a.max(), lambda a: a.amax(), [(3, 4)], -2),
    "reshape": (lambda a: a.reshape(2, 6), lambda a: a.reshape(2, 6), [(3, 4)], -2),
    "transpose": (lambda a: a.transpose(1, 0), lambda a: a.permute(1, 0), [(3, 4)], -2),
    "T": (lambda a: a.T, lambda a: a.T, [(3, 4)], -2),
    "broadcast_to": (
        lambda a: a.broadcast_to((2, 3, 4)),
        lambda a: a.broadcast_to((2, 3, 4)),
        [(3, 1)],
        -2,
    ),
    "rsub_scalar": (lambda a: 1.0 - a / 3.0, lambda a: 1.0 - a / 3.0, [(3, 4)], -2),
    "bce": (
        lambda p, y: binary_cross_entropy(p, y),
        lambda p, y: F.binary_cross_entropy(p, y),
        [(1, 6), (1, 6)],
        0.05,
    ),
    "bce_logits": (
        lambda z, y: binary_cross_entropy_with_logits(z, y),
        lambda z, y: F.binary_cross_entropy_with_logits(z, y),
        [(1, 6), (1, 6)],
        -2,
    ),
}


def inputs_for(shapes, low):
    high = 0.95 if low == 0.05 else 2.0
    return [rng.uniform(low, high, size=s) for s in shapes]


def assert_close(ours, theirs):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_torch(name):
    ours_fn, torch_fn, shapes, low = CASES[name]
    arrays = inputs_for(shapes, low)
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours), torch_fn(*theirs)
    assert_close(out.data, ref)
    weights = rng.standard_normal(out.shape)
    (out * weights).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for t, r in zip(ours, theirs):
        assert_close(t.grad.data, r.grad)


def test_max_ties_match_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours.max(axis=1).sum().backward()
    theirs.amax(dim=1).sum().backward()
    assert_close(ours.grad.data, theirs.grad)


def test_relu_at_zero_matches_torch():
    x = np.array([-1.0, 0.0, 1.0])
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours.relu().sum().backward()
    theirs.relu().sum().backward()
    assert_close(ours.grad.data, theirs.grad)


def test_hessian_vector_product_matches_torch():
    W, x, v = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(3)
    Wt, xt = Tensor(W, requires_grad=True), Tensor(x, requires_grad=True)
    (gx,) = grad((Wt @ xt).tanh().sum(), [xt], create_graph=True)
    (hv,) = grad((gx * v).sum(), [xt])

    Wr, xr = torch.tensor(W, requires_grad=True), torch.tensor(x, requires_grad=True)
    (gr,) = torch.autograd.grad((Wr @ xr).tanh().sum(), [xr], create_graph=True)
    (hr,) = torch.autograd.grad((gr * torch.tensor(v)).sum(), [xr])
    assert_close(gx.data, gr)
    assert_close(hv.data, hr)


def test_mixed_second_derivative_matches_torch():
    """d/dW of a gradient penalty ||d cost / d x||², the other classic use of create_graph."""
    W, x = rng.standard_normal((4, 3)), rng.standard_normal(3)
    Wt, xt = Tensor(W, requires_grad=True), Tensor(x, requires_grad=True)
    (gx,) = grad((Wt @ xt).sigmoid().sum(), [xt], create_graph=True)
    (gx * gx).sum().backward()

    Wr, xr = torch.tensor(W, requires_grad=True), torch.tensor(x, requires_grad=True)
    (gr,) = torch.autograd.grad((Wr @ xr).sigmoid().sum(), [xr], create_graph=True)
    (gr * gr).sum().backward()
    assert_close(Wt.grad.data, Wr.grad)
