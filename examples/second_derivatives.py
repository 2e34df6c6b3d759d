"""Gradients of gradients: a Hessian-vector product, checked against finite differences.

Every derivative rule is a formula that runs on Tensors as well as on arrays: with
`create_graph=True` the backward pass runs it on Tensors and so is recorded like any forward
pass, and differentiating the gradient again gives second derivatives.

Run: python examples/second_derivatives.py
"""

import numpy as np

from tinygrad_fnn import Tensor, grad

rng = np.random.default_rng(0)
W = Tensor(rng.standard_normal((4, 3)), name="W")
x = Tensor(rng.standard_normal(3), requires_grad=True, name="x")
v = rng.standard_normal(3)  # the direction


def f(x):
    return (W @ x).tanh().sum()


# First derivative, recorded so that it can be differentiated: g(x) = ∂f/∂x.
(g,) = grad(f(x), [x], create_graph=True)
# Second derivative along v: ∂(g·v)/∂x = H·v, without ever forming the Hessian H.
(Hv,) = grad((g * v).sum(), [x])


def gradient_at(point):
    p = Tensor(point, requires_grad=True)
    return grad(f(p), [p])[0].data


eps = 1e-6
numeric = (gradient_at(x.data + eps * v) - gradient_at(x.data - eps * v)) / (2 * eps)
print("H·v from the engine:       ", np.round(Hv.data, 8))
print("H·v by finite differences: ", np.round(numeric, 8))
print(f"largest difference: {np.max(np.abs(Hv.data - numeric)):.2e}")
