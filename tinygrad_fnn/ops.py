"""The derivative rules: one Function per operation, its forward computation beside its rules.

Read it as a table of vector-Jacobian products, as in a textbook. `forward` computes `z` from
the input arrays; for each input `x` the method `dx(self, g, z, a, b, …)` returns the gradient
of the cost with respect to `x`, given `g`, the gradient with respect to `z`. Each rule is the
formula for the full shapes: the backward walk (`engine._backprop`) skips the inputs that need
no gradient and sums a broadcast operand's gradient back to its own shape, so no rule repeats
that. A rule is written with operators, the methods Tensors share with NumPy arrays (`reshape`,
`sum`, `astype`, `mT`, indexing) and the engine's functions (`exp(a)`, `where(c, x, y)`, …), so
it reads the same on either: the walk runs it on plain arrays, or on Tensors when the backward
pass is itself recorded (`create_graph=True`), and then it can be differentiated again.

NumPy's rules for domain errors carry through: `log` of a negative number or `(-8) ** (1/3)`
gives nan, and `log(0)` gives -inf, each with NumPy's RuntimeWarning.

The table, read from the rules' own code when this module is imported:
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_fnn.engine import (
    Function,
    Tensor,
    broadcast_to,
    exp,
    flip,
    log,
    matmul,
    sigmoid,
    sign,
    where,
)

# ----- arithmetic


class Add(Function):
    op = "add"
    masks = True  # two masks give a mask (or, and), as in PyTorch

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
    masks = True  # two masks give a mask (or, and), as in PyTorch

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
        return -g * (a / b) / b  # not a / (b·b): b·b underflows where a / b / b does not


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
        return a**self.c

    def da(self, g, z, a):
        return g * self.slope(a)

    def slope(self, a: Tensor) -> Tensor | float:
        """c·a^(c − 1); for c = 0 the constant 1 has slope 0 everywhere, as in PyTorch (not
        0·a^−1, nan at 0, nor 0·a, nan at ±inf)."""
        return 0.0 if self.c == 0 else self.c * a ** (self.c - 1)


class Pow(Function):
    """z = a ** b for a tensor b. As in PyTorch, where b is 0 the gradient of a is 0 whatever g
    is (g inside `where`: g·0 would be nan for the infinite g a second derivative can bring), and
    where a is 0 (and b ≥ 0) the slope in b is 0; elsewhere the rule for b needs a > 0 (log a)."""

    op = "pow"

    def forward(self, a, b):
        return a**b

    def da(self, g, z, a, b):
        return where(b == 0, 0.0, g * b * a ** (b - 1))

    def db(self, g, z, a, b):
        return g * where((a == 0) * (b >= 0), 0.0, z * log(a))


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
    """The matrix product of two operands of two or more dimensions (a stack of matrices).

    Two matrices go to `np.dot`, as in the tutorial's code: it calls BLAS directly, where
    `np.matmul` is slower on small matrices and outer products (inner dimension 1, as `W2ᵀ·dZ2`)."""

    op = "matmul"

    def forward(self, a, b):
        if a.ndim == 2 and b.ndim == 2:
            return np.dot(a, b)
        return np.matmul(a, b)

    def da(self, g, z, a, b):
        return matmul(g, b.mT)

    def db(self, g, z, a, b):
        return matmul(a.mT, g)


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
        return broadcast_to(self.kept(g, a), a.shape)


class Max(_Reduction):
    """Tied maxima share the gradient equally, as `torch.amax` does."""

    op = "max"
    masks = True  # a mask's maximum is a mask (any), as in PyTorch; its minimum (all) too

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
    masks = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return a.reshape(self.shape)

    def da(self, g, z, a):
        return g.reshape(a.shape)


class Transpose(Function):
    op = "transpose"
    masks = True

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
    masks = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a):
        return np.broadcast_to(a, self.shape)

    def da(self, g, z, a):
        return g  # the backward walk sums it back to a's shape


class Detach(Function):
    """The same array, cut from the graph: no derivative flows through it (an operation, so
    that a compiled step replays it)."""

    op = "detach"
    masks = True

    def forward(self, a):
        return a


class Cast(Function):
    op = "astype"

    def __init__(self, dtype: np.dtype) -> None:
        if dtype.char not in "fd":
            raise TypeError(f"astype: dtype {dtype} is not float64 or float32")
        self.dtype = dtype

    def forward(self, a):
        return a.astype(self.dtype)

    def da(self, g, z, a):
        return g.astype(a.dtype)


# ----- more elementwise functions


class Sqrt(Function):
    op = "sqrt"

    def forward(self, a):
        return np.sqrt(a)

    def da(self, g, z, a):
        return g / (2 * z)


class Abs(Function):
    """|a|; its derivative at exactly 0 is sign(0) = 0, as in PyTorch."""

    op = "abs"

    def forward(self, a):
        return np.abs(a)

    def da(self, g, z, a):
        return g * sign(a)


class Sign(Function):
    """-1, 0 or 1; flat wherever it is defined, so its gradient is 0 everywhere, as in PyTorch."""

    op = "sign"

    def forward(self, a):
        return np.sign(a)

    def da(self, g, z, a):
        return g * 0


class Erf(Function):
    """The error function, computed by the C library's `erf` (NumPy has none)."""

    op = "erf"
    _erf = np.frompyfunc(math.erf, 1, 1)

    def forward(self, a):
        return np.asarray(self._erf(a), dtype=a.dtype)

    def da(self, g, z, a):
        return g * (2 / math.sqrt(math.pi)) * exp(-(a * a))


class Softplus(Function):
    """log(1 + exp(a)), and a itself above 20 where they agree to float64's precision, as PyTorch
    computes it."""

    op = "softplus"

    def forward(self, a):
        return np.where(a > 20, a, np.logaddexp(0, a))

    def da(self, g, z, a):
        return g * where(a > 20, 1.0, sigmoid(a))


class Hardswish(Function):
    """a·relu6(a + 3)/6; the slope is 0 up to -3 included and 1 from 3 included, as in PyTorch."""

    op = "hardswish"

    def forward(self, a):
        return a * np.clip(a + 3, 0, 6) / 6

    def da(self, g, z, a):
        return g * where(a <= -3, 0.0, where(a < 3, a / 3 + 0.5, 1.0))


class Clip(Function):
    """a limited to [lo, hi] (either may be None). At a bound the gradient passes (1), as
    `torch.clamp` has it; `ReLU6` below is the exception PyTorch makes."""

    op = "clip"
    inclusive = True

    def __init__(self, lo, hi) -> None:
        self.lo = lo
        self.hi = hi

    def forward(self, a):
        return np.clip(a, self.lo, self.hi)

    def da(self, g, z, a):
        return g * self.passes(a)

    def passes(self, a: Tensor) -> Tensor:
        """True where the gradient goes through, False where `a` was clipped."""
        masks = []
        if self.lo is not None:
            masks.append((a >= self.lo) if self.inclusive else (a > self.lo))
        if self.hi is not None:
            masks.append((a <= self.hi) if self.inclusive else (a < self.hi))
        return masks[0] if len(masks) == 1 else masks[0] * masks[1]


class ReLU6(Clip):
    """min(max(a, 0), 6); the gradient is 0 at exactly 0 and at 6, as PyTorch's `relu6`."""

    op = "relu6"
    inclusive = False

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)


class Maximum(Function):
    """The larger of a and b, elementwise; at a tie each gets half the gradient, as
    `torch.maximum`. (`np.maximum(0, Z)` with the number 0 is `relu`, whose slope at 0 is 0.)"""

    op = "maximum"
    masks = True

    def forward(self, a, b):
        return np.maximum(a, b)

    def da(self, g, z, a, b):
        return g * self.share(a, b)

    def db(self, g, z, a, b):
        return g * (1 - self.share(a, b))

    def share(self, a: Tensor, b: Tensor) -> Tensor:
        """a's part of the gradient: 1 where a wins, 0.5 at a tie, 0 where b wins."""
        return where(a == b, 0.5, (a > b).astype(a.dtype))


class Minimum(Maximum):
    """The smaller of a and b, elementwise; ties split as in `torch.minimum`."""

    op = "minimum"

    def forward(self, a, b):
        return np.minimum(a, b)

    def share(self, a: Tensor, b: Tensor) -> Tensor:
        return where(a == b, 0.5, (a < b).astype(a.dtype))


class Where(Function):
    """x where the boolean condition c holds, y elsewhere; the condition has no gradient."""

    op = "where"
    masks = True

    def forward(self, c, x, y):
        return np.where(c, x, y)

    def dc(self, g, z, c, x, y):
        return None  # never asked: a condition is a boolean tensor, which cannot require grad

    def dx(self, g, z, c, x, y):
        return where(c, g, 0.0)

    def dy(self, g, z, c, x, y):
        return where(c, 0.0, g)


# ----- more reductions


class Min(Max):
    """Tied minima share the gradient equally, as `torch.amin` (and `torch.min` without a dim)."""

    op = "min"

    def forward(self, a):
        return np.min(a, axis=self.axes, keepdims=self.keepdims)


class Prod(_Reduction):
    """The product; each element's gradient is the product of the others, computed as such (not
    z / a), so zeros in `a` give the right answer, as in PyTorch."""

    op = "prod"

    def forward(self, a):
        return np.prod(a, axis=self.axes, keepdims=self.keepdims)

    def da(self, g, z, a):
        return self.kept(g, a) * self.others(a)

    def others(self, a: Tensor) -> Tensor:
        """For each element, the product of the other elements of its group: the reduced axes are
        moved last and flattened to k, each element is lined up against a copy of its group with
        itself replaced by 1 (a k×k grid), and each row is multiplied out."""
        axes = tuple(range(a.ndim)) if self.axes is None else self.axes
        order = [i for i in range(a.ndim) if i not in axes] + list(axes)
        moved = a.transpose(order)
        k = int(np.prod([a.shape[i] for i in axes]))
        rows = moved.reshape(moved.shape[: a.ndim - len(axes)] + (1, k))
        grid = where(Eye(k)(), 1.0, rows)
        products = Prod((grid.ndim - 1,), False)(grid)
        return products.reshape(moved.shape).transpose(np.argsort(order).tolist())


class Eye(Function):
    """The k×k identity, as booleans: a constant that depends only on a shape, made by an
    operation so that a compiled step replays it rather than freezing an array."""

    op = "eye"
    masks = True

    def __init__(self, k: int) -> None:
        self.k = k

    def forward(self):
        return np.eye(self.k, dtype=bool)


class Cumsum(Function):
    """Running sum along one axis; each element's gradient is the sum of the gradients from its
    position to the end: the running sum of g taken backwards."""

    op = "cumsum"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, a):
        return np.cumsum(a, axis=self.axis)

    def da(self, g, z, a):
        return flip(flip(g, self.axis).cumsum(self.axis), self.axis)


# ----- indexing, joining, padding


class Getitem(Function):
    """a[index] with NumPy's indexing; the gradient is scattered back, repeated indices summed."""

    op = "getitem"
    masks = True

    def __init__(self, index: tuple) -> None:
        self.index = index

    def forward(self, a):
        return a[self.index]

    def da(self, g, z, a):
        return ScatterAdd(self.index, a.shape)(g)


class ScatterAdd(Function):
    """A zero array of `shape` with a added at `index` (repeated positions accumulate): the
    gradient of `Getitem`, and `Getitem` is its gradient."""

    op = "scatter_add"
    masks = True  # a mask scattered (`diag`) is a mask, False elsewhere (repeats: or, as +)

    def __init__(self, index: tuple, shape: tuple[int, ...]) -> None:
        self.index = index
        self.shape = shape
        self.repeats = any(isinstance(i, np.ndarray) and i.dtype.kind != "b" for i in index)

    def forward(self, a):
        out = np.zeros(self.shape, a.dtype)
        if self.repeats:
            np.add.at(out, self.index, a)
        else:
            out[self.index] = a  # slices and masks: every position at most once
        return out

    def da(self, g, z, a):
        return g[self.index]


class Concatenate(Function):
    """The inputs joined along an existing axis; each gets back its own slice of the gradient."""

    op = "concatenate"
    masks = True

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *arrays):
        return np.concatenate(arrays, axis=self.axis)

    def backward(self, g, z, *inputs):
        return [g[self.piece(inputs, i)] for i in range(len(inputs))]

    def piece(self, inputs: tuple[Tensor, ...], i: int) -> tuple[slice, ...]:
        """The index of input i's part of the result."""
        start = sum(t.shape[self.axis] for t in inputs[:i])
        return (slice(None),) * self.axis + (slice(start, start + inputs[i].shape[self.axis]),)


class Pad(Function):
    """a surrounded by a constant (`np.pad`'s constant mode); the gradient is g's middle."""

    op = "pad"
    masks = True

    def __init__(self, widths: tuple[tuple[int, int], ...], value: float) -> None:
        self.widths = widths
        self.value = value

    def forward(self, a):
        return np.pad(a, self.widths, mode="constant", constant_values=self.value)

    def da(self, g, z, a):
        return g[self.middle(a)]

    def middle(self, a: Tensor) -> tuple[slice, ...]:
        return tuple(slice(lo, lo + n) for (lo, _), n in zip(self.widths, a.shape))


# ----- comparisons and the logic of masks: boolean results, no derivative


class Less(Function):
    op = "less"
    masks = True

    def forward(self, a, b):
        return a < b


class LessEqual(Function):
    op = "less_equal"
    masks = True

    def forward(self, a, b):
        return a <= b


class Greater(Function):
    op = "greater"
    masks = True

    def forward(self, a, b):
        return a > b


class GreaterEqual(Function):
    op = "greater_equal"
    masks = True

    def forward(self, a, b):
        return a >= b


class Equal(Function):
    op = "equal"
    masks = True

    def forward(self, a, b):
        return a == b


class NotEqual(Function):
    op = "not_equal"
    masks = True

    def forward(self, a, b):
        return a != b


class LogicalNot(Function):
    op = "logical_not"
    masks = True

    def forward(self, a):
        return np.logical_not(a)


class LogicalAnd(Function):
    op = "logical_and"
    masks = True

    def forward(self, a, b):
        return np.logical_and(a, b)


class LogicalOr(Function):
    op = "logical_or"
    masks = True

    def forward(self, a, b):
        return np.logical_or(a, b)


class LogicalXor(Function):
    op = "logical_xor"
    masks = True

    def forward(self, a, b):
        return np.logical_xor(a, b)


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
