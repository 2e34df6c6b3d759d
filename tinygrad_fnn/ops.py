"""The derivative rules: one Function per operation, forward beside backward.

Read it as a table of vector-Jacobian products. `g` is the gradient of the loss with respect to
the operation's output; `backward` returns the gradient with respect to each input, or None where
that input needs none. Every rule is written in Tensor operations, so it is differentiable again.

    z = a + b        da = g                      db = g
    z = a - b        da = g                      db = -g
    z = a * b        da = g * b                  db = g * a
    z = a / b        da = g / b                  db = -g * a / b²
    z = -a           da = -g
    z = a ** c       da = g * c * a ** (c - 1)
    z = exp(a)       da = g * z
    z = log(a)       da = g / a
    z = relu(a)      da = g * (a > 0)            (0 at a == 0, as the tutorial's A1 > 0)
    z = sigmoid(a)   da = g * z * (1 - z)
    z = tanh(a)      da = g * (1 - z²)
    z = a @ b        da = g @ bᵀ                 db = aᵀ @ g
    z = sum(a)       da = g broadcast back to a's shape
    z = broadcast(a) da = g summed back to a's shape
    z = max(a)       da = g shared equally among the tied maxima
    z = reshape(a)   da = g reshaped back
    z = transpose(a) da = g transposed back
    z = astype(a)    da = g cast back to a's dtype
    z = bce_logits(a, y) = mean(max(a, 0) - a·y + log(1 + exp(-|a|)))
                     da = (sigmoid(a) - y) * g / N   dy = -a * g / N

Where an operand was broadcast, its gradient is summed back to its own shape (`unbroadcast`).
NumPy's rules for domain errors carry through: `log` of a negative number or `(-8) ** (1/3)`
gives nan, and `log(0)` gives -inf, each with NumPy's RuntimeWarning.
"""

from __future__ import annotations

import numpy as np

from tinygrad_fnn.engine import Function, Tensor


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum `g` over the axes along which an operand of `shape` was broadcast."""
    g_shape = g.data.shape
    if g_shape == shape:
        return g
    lead = len(g_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g_shape[lead + i] != 1
    )
    summed = Sum(axes, True)(g) if axes else g
    return summed.reshape(shape) if summed.data.shape != shape else summed


class Add(Function):
    __slots__ = ()
    op = "add"
    rule = "da = g, db = g"

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        a, b = self.parents
        da, db = self.needs_grad
        return (
            unbroadcast(g, a.data.shape) if da else None,
            unbroadcast(g, b.data.shape) if db else None,
        )


class Sub(Function):
    __slots__ = ()
    op = "sub"
    rule = "da = g, db = -g"

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        a, b = self.parents
        da, db = self.needs_grad
        return (unbroadcast(g, a.shape) if da else None, unbroadcast(-g, b.shape) if db else None)


class Mul(Function):
    __slots__ = ()
    op = "mul"
    rule = "da = g·b, db = g·a"

    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.parents
        da, db = self.needs_grad
        return (
            unbroadcast(g * b, a.shape) if da else None,
            unbroadcast(g * a, b.shape) if db else None,
        )


class Div(Function):
    __slots__ = ()
    op = "div"
    rule = "da = g / b, db = -g·a / b²"

    def forward(self, a, b):
        return a / b

    def backward(self, g):
        a, b = self.parents
        da, db = self.needs_grad
        return (
            unbroadcast(g / b, a.shape) if da else None,
            unbroadcast(-g * a / (b * b), b.shape) if db else None,
        )


class Neg(Function):
    __slots__ = ()
    op = "neg"
    rule = "da = -g"

    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    __slots__ = ("c",)
    op = "pow"
    rule = "da = g·c·a^(c-1)"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, a):
        return a ** a.dtype.type(self.c)  # a scalar of a's dtype: NumPy 1.x would upcast 0-d

    def backward(self, g):
        (a,) = self.parents
        if self.c == 0:
            return (g * 0.0,)
        return (g * (self.c * a ** (self.c - 1)),)


class Exp(Function):
    __slots__ = ()
    op = "exp"
    rule = "da = g·z"

    def forward(self, a):
        return np.exp(a)

    def backward(self, g):
        return (g * self.out(),)


class Log(Function):
    __slots__ = ()
    op = "log"
    rule = "da = g / a"

    def forward(self, a):
        return np.log(a)

    def backward(self, g):
        return (g / self.parents[0],)


class ReLU(Function):
    __slots__ = ()
    op = "relu"
    rule = "da = g·(a > 0)"

    def forward(self, a):
        return np.maximum(0, a)

    def backward(self, g):
        return (g * (self.parents[0] > 0),)


class Sigmoid(Function):
    """1 / (1 + exp(-a)); exp overflows to inf for a < -709, which is the right limit (0.0)."""

    __slots__ = ()
    op = "sigmoid"
    rule = "da = g·z·(1 - z)"

    def forward(self, a):
        with np.errstate(over="ignore"):
            e = np.exp(-a)
        e += 1
        return np.reciprocal(e, out=e)  # 1 / (1 + exp(-a)), bit for bit, without temporaries

    def backward(self, g):
        z = self.out()
        return (g * z * (1 - z),)


class Tanh(Function):
    __slots__ = ()
    op = "tanh"
    rule = "da = g·(1 - z²)"

    def forward(self, a):
        return np.tanh(a)

    def backward(self, g):
        z = self.out()
        return (g * (1 - z * z),)


OUTER_BY_MULTIPLY = 1 << 19  # elements from which an outer product is a broadcast multiply


class MatMul(Function):
    """2-D matrix product A @ B, where A is `a` or aᵀ and B is `b` or bᵀ (the flags `ta`, `tb`).

    The flags let the backward pass multiply by transposes without recording a transpose
    operation each time. With an inner dimension of 1 the product is an outer product, which a
    broadcast multiply computes exactly as BLAS does (one product per element); measured here,
    it is faster than BLAS from about half a million elements on (1.6× at 1024 × 4096), and
    slower below that, hence the threshold.
    """

    __slots__ = ("ta", "tb")
    op = "matmul"
    rule = "da = g @ bᵀ, db = aᵀ @ g"

    def __init__(self, ta: bool = False, tb: bool = False) -> None:
        self.ta = ta
        self.tb = tb

    def forward(self, a, b):
        A = a.T if self.ta else a
        B = b.T if self.tb else b
        if A.shape[1] != B.shape[0]:
            raise ValueError(f"inner dimensions {A.shape[1]} and {B.shape[0]} differ")
        if A.shape[1] == 1 and A.shape[0] * B.shape[1] >= OUTER_BY_MULTIPLY:
            return A * B
        return np.dot(A, B)

    def backward(self, g):
        # dA = g @ Bᵀ and dB = Aᵀ @ g, each transposed back where the operand was transposed.
        a, b = self.parents
        da, db = self.needs_grad
        ta, tb = self.ta, self.tb
        grad_a = grad_b = None
        if da:
            grad_a = MatMul(tb, True)(b, g) if ta else MatMul(False, not tb)(g, b)
        if db:
            grad_b = MatMul(True, ta)(g, a) if tb else MatMul(not ta, False)(a, g)
        return grad_a, grad_b


class Sum(Function):
    __slots__ = ("axes", "keepdims")
    op = "sum"
    rule = "da = g broadcast to a"

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, a):
        return np.add.reduce(a, axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        shape = self.parents[0].shape
        if not self.keepdims and self.axes is not None:
            g = g.reshape(_kept_shape(shape, self.axes))
        return (g.broadcast_to(shape),)


class Max(Function):
    __slots__ = ("axes", "keepdims")
    op = "max"
    rule = "da = g shared among the maxima"

    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def forward(self, a):
        return np.max(a, axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        a = self.parents[0]
        at_max = a.data == np.max(a.data, axis=self.axes, keepdims=True)
        share = at_max / np.sum(at_max, axis=self.axes, keepdims=True)
        if not self.keepdims and self.axes is not None:
            g = g.reshape(_kept_shape(a.shape, self.axes))
        return (g * Tensor._wrap(share.astype(a.dtype)),)


class Reshape(Function):
    __slots__ = ("shape",)
    op = "reshape"
    rule = "da = g reshaped to a"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def backward(self, g):
        return (g.reshape(self.parents[0].shape),)


class Transpose(Function):
    __slots__ = ("axes",)
    op = "transpose"
    rule = "da = g transposed back"

    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, a):
        return a.transpose(self.axes)

    def backward(self, g):
        inverse = None if self.axes is None else tuple(np.argsort(self.axes))
        return (g.transpose(inverse) if inverse else g.T,)


class BroadcastTo(Function):
    __slots__ = ("shape",)
    op = "broadcast_to"
    rule = "da = g summed to a"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return np.broadcast_to(a, self.shape)

    def backward(self, g):
        return (unbroadcast(g, self.parents[0].shape),)


class Cast(Function):
    __slots__ = ("dtype",)
    op = "astype"
    rule = "da = g cast back"

    def __init__(self, dtype: np.dtype) -> None:
        if dtype.kind != "f":
            raise TypeError(f"astype: dtype {dtype} is not a floating-point type")
        self.dtype = dtype

    def forward(self, a):
        return a.astype(self.dtype)

    def backward(self, g):
        return (g.astype(self.parents[0].dtype),)


class BCEWithLogits(Function):
    __slots__ = ()
    op = "binary_cross_entropy_with_logits"
    rule = "da = (sigmoid(a) - y)·g / N, dy = -a·g / N"

    def forward(self, z, y):
        loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return np.asarray(np.add.reduce(loss, axis=None) / loss.size, dtype=z.dtype)

    def backward(self, g):
        z, y = self.parents
        dz, dy = self.needs_grad
        n = z.size
        return ((z.sigmoid() - y) / n * g if dz else None, -z / n * g if dy else None)


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))
