"""The derivative rules: one Function per operation, its forward computation beside its rules.

Read it as a table of vector-Jacobian products, as in a textbook. `forward` computes `z` from
the input arrays; for each input `x` the method `dx(self, g, z, a, b, …)` returns the gradient
of the cost with respect to `x`, given `g`, the gradient with respect to `z`. Each rule is the
formula for the full shapes: the backward walk (`engine._backprop`) skips the inputs that need
no gradient and sums a broadcast operand's gradient back to its own shape, so no rule repeats
that. The rules are Tensor operations, so they can be differentiated again.

NumPy's rules for domain errors carry through: `log` of a negative number or `(-8) ** (1/3)`
gives nan, and `log(0)` gives -inf, each with NumPy's RuntimeWarning.

The table, read from the rules' own code when this module is imported:
"""

from __future__ import annotations

import numpy as np

from tinygrad_fnn.engine import Function, Tensor

# ----- arithmetic


class Add(Function):
    op = "add"

    def forward(self, a, b):
        return a + b

    def da(self, g, z, a, b):
        return g

    def db(self, g, z, a, b):
        return g


class Sub(Function):
    op = "sub"

    def forward(self, a, b):
        return a - b

    def da(self, g, z, a, b):
        return g

    def db(self, g, z, a, b):
        return -g


class Mul(Function):
    op = "mul"

    def forward(self, a, b):
        return a * b

    def da(self, g, z, a, b):
        return g * b

    def db(self, g, z, a, b):
        return g * a


class Div(Function):
    op = "div"

    def forward(self, a, b):
        return a / b

    def da(self, g, z, a, b):
        return g / b

    def db(self, g, z, a, b):
        return -g * a / (b * b)


class Neg(Function):
    op = "neg"

    def forward(self, a):
        return -a

    def da(self, g, z, a):
        return -g


class PowConst(Function):
    """z = a ** c for a number c."""

    op = "pow"

    def __init__(self, c: float) -> None:
        self.c = c

    def forward(self, a):
        return a ** a.dtype.type(self.c)  # a scalar of a's dtype: NumPy 1.x would upcast 0-d

    def da(self, g, z, a):
        return g * self.c * a ** (self.c - 1)


class Pow(Function):
    """z = a ** b for a tensor b; the rule for b needs a > 0 (log a), as in every library."""

    op = "pow"

    def forward(self, a, b):
        return a**b

    def da(self, g, z, a, b):
        return g * b * a ** (b - 1)

    def db(self, g, z, a, b):
        return g * z * a.log()


# ----- elementwise functions


class Exp(Function):
    op = "exp"

    def forward(self, a):
        return np.exp(a)

    def da(self, g, z, a):
        return g * z


class Log(Function):
    op = "log"

    def forward(self, a):
        return np.log(a)

    def da(self, g, z, a):
        return g / a


class ReLU(Function):
    """max(a, 0); its derivative at exactly 0 is 0, as the tutorial's `A1 > 0` and PyTorch."""

    op = "relu"

    def forward(self, a):
        return np.maximum(a, 0)

    def da(self, g, z, a):
        return g * (a > 0)


class Sigmoid(Function):
    """1 / (1 + exp(-a)); exp overflows to inf for a < -709, which gives the right limit, 0."""

    op = "sigmoid"

    def forward(self, a):
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-a))

    def da(self, g, z, a):
        return g * z * (1 - z)


class Tanh(Function):
    op = "tanh"

    def forward(self, a):
        return np.tanh(a)

    def da(self, g, z, a):
        return g * (1 - z * z)


# ----- matrix product


class MatMul(Function):
    """The matrix product of two operands of two or more dimensions (a stack of matrices)."""

    op = "matmul"

    def forward(self, a, b):
        return np.matmul(a, b)

    def da(self, g, z, a, b):
        return g @ b.mT

    def db(self, g, z, a, b):
        return a.mT @ g


# ----- reductions


class _Reduction(Function):
    def __init__(self, axes: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def kept(self, t: Tensor, a: Tensor) -> Tensor:
        """A reduced result with the reduced axes put back as axes of length 1."""
        if self.keepdims or self.axes is None:
            return t.reshape([1] * a.ndim) if t.ndim != a.ndim else t
        return t.reshape([1 if i in self.axes else n for i, n in enumerate(a.shape)])


class Sum(_Reduction):
    op = "sum"

    def forward(self, a):
        return np.add.reduce(a, axis=self.axes, keepdims=self.keepdims)

    def da(self, g, z, a):
        return self.kept(g, a).broadcast_to(a.shape)


class Max(_Reduction):
    """Tied maxima share the gradient equally, as `torch.amax` does."""

    op = "max"

    def forward(self, a):
        return np.max(a, axis=self.axes, keepdims=self.keepdims)

    def da(self, g, z, a):
        return self.kept(g, a) * self.share(z, a)

    def share(self, z: Tensor, a: Tensor) -> Tensor:
        at_max = (a == self.kept(z, a)).astype(a.dtype)
        return at_max / at_max.sum(self.axes, keepdims=True)


# ----- shape and type


class Reshape(Function):
    op = "reshape"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def da(self, g, z, a):
        return g.reshape(a.shape)


class Transpose(Function):
    op = "transpose"

    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, a):
        return a.transpose(self.axes)

    def da(self, g, z, a):
        return g.transpose(self.inverse())

    def inverse(self) -> tuple[int, ...] | None:
        return None if self.axes is None else tuple(int(i) for i in np.argsort(self.axes))


class BroadcastTo(Function):
    op = "broadcast_to"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return np.broadcast_to(a, self.shape)

    def da(self, g, z, a):
        return g  # the backward walk sums it back to a's shape


class Cast(Function):
    op = "astype"

    def __init__(self, dtype: np.dtype) -> None:
        if dtype.kind != "f":
            raise TypeError(f"astype: dtype {dtype} is not a floating-point type")
        self.dtype = dtype

    def forward(self, a):
        return a.astype(self.dtype)

    def da(self, g, z, a):
        return g.astype(a.dtype)


# ----- comparisons: boolean results, no derivative


class Less(Function):
    op = "less"

    def forward(self, a, b):
        return a < b


class LessEqual(Function):
    op = "less_equal"

    def forward(self, a, b):
        return a <= b


class Greater(Function):
    op = "greater"

    def forward(self, a, b):
        return a > b


class GreaterEqual(Function):
    op = "greater_equal"

    def forward(self, a, b):
        return a >= b


class Equal(Function):
    op = "equal"

    def forward(self, a, b):
        return a == b


class NotEqual(Function):
    op = "not_equal"

    def forward(self, a, b):
        return a != b


def table(functions: list[type[Function]]) -> str:
    """The rules of `functions` as a table: each operation, then one formula per input."""
    lines = []
    for fn in functions:
        rules = fn.rules()
        if rules:
            lines.append(f"    {fn.op:<14}{rules[0]}")
            lines.extend(f"    {'':<14}{r}" for r in rules[1:])
    return "\n".join(lines)


RULES = [f for f in list(globals().values()) if isinstance(f, type) and issubclass(f, Function)]
__doc__ += "\n" + table([f for f in RULES if f.differentiable]) + "\n"
