"""The engine: a Tensor that records the operations applied to it and back-propagates.

Every operation is a `Function` (see `ops.py`): `forward` computes on NumPy arrays and
`backward` maps the gradient of the output to gradients of the inputs. The derivative rules are
written in Tensor operations, so with `create_graph=True` the backward pass is recorded like any
forward pass and can be differentiated again.

Grad mode and anomaly mode are per thread, as in PyTorch.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np


class ShapeError(ValueError):
    """An operation was given operands whose shapes do not fit; the message names both."""


class AnomalyError(FloatingPointError):
    """Raised inside `detect_anomaly()` when an operation produces a NaN or an infinity."""


class _Mode(threading.local):
    grad_enabled = True
    anomaly = False
    rule: str | None = None  # the derivative rule being run, for anomaly messages


_mode = _Mode()


class _GradMode(contextlib.ContextDecorator):
    """Switches gradient recording on or off for a block; nests and works as a decorator."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(_mode.grad_enabled)
        _mode.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        _mode.grad_enabled = self._previous.pop()


def no_grad() -> _GradMode:
    """Nothing computed inside `with no_grad():`, or in a function decorated `@no_grad()`,
    is recorded."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Turns recording back on inside a `no_grad()` block."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are being recorded."""
    return _mode.grad_enabled


@contextlib.contextmanager
def detect_anomaly():
    """Raise `AnomalyError` at the first operation whose output or gradient is NaN or infinite.

    The error names the operation, its operands (names and shapes) and the pass. The classic case
    is the tutorial's cost on a saturated sigmoid: `A2` rounds to exactly 1.0, `log(1 - A2)` is
    `-inf`, and the cost is `nan` with no hint where it came from; here the `log` is named.
    """
    previous = _mode.anomaly
    _mode.anomaly = True
    try:
        yield
    finally:
        _mode.anomaly = previous


def _describe(t: Tensor) -> str:
    return f"{t.name or 'tensor'} {t.shape}"


def _check_finite(fn: Function, data: np.ndarray, what: str, stage: str) -> None:
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        kind = "nan" if np.isnan(data).any() else "inf"
        operands = ", ".join(_describe(t) for t in fn.parents)
        raise AnomalyError(
            f"{fn.op} produced {kind} in the {stage} pass ({what}); operands: {operands}"
        )


class Function:
    """One recorded operation: its inputs (`parents`), which of them need a gradient, and a weak
    reference to its output. Subclasses define `forward` on arrays and `backward` on Tensors."""

    __slots__ = ("parents", "needs_grad", "out", "freed")
    op = "function"
    rule = ""  # the derivative rule in one line, for pictures of the backward pass

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: Tensor) -> tuple[Tensor | None, ...]:
        """Gradients of the inputs given `g`, the gradient of the output (None where not needed)."""
        raise NotImplementedError

    def __call__(self, *inputs: Tensor) -> Tensor:
        try:
            arity = len(inputs)
            if arity == 2:
                data = self.forward(inputs[0].data, inputs[1].data)
            elif arity == 1:
                data = self.forward(inputs[0].data)
            else:
                data = self.forward(*[t.data for t in inputs])
        except ValueError as e:
            shapes = " and ".join(_describe(t) for t in inputs)
            raise ShapeError(f"{self.op}: cannot apply to {shapes}: {e}") from None
        out = _new_tensor(Tensor)  # Tensor._wrap(data), inlined: this is the hottest path
        out.data = data
        out.grad = None
        out.name = None
        out._retains_grad = False
        out.requires_grad = False
        out._ctx = None
        mode = _mode
        if mode.grad_enabled:
            needs = [t.requires_grad for t in inputs]
            if True in needs:
                self.parents = inputs
                self.needs_grad = needs
                self.out = weakref.ref(out)
                self.freed = False
                out.requires_grad = True
                out._ctx = self
        if mode.anomaly:
            self.parents = inputs
            stage = "forward" if mode.rule is None else f"backward (rule of {mode.rule})"
            _check_finite(self, data, "output", stage)
        return out


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    `data` is a NumPy array (float64 unless `dtype` says otherwise; float32 is supported).
    Operators broadcast as NumPy does and accept Python numbers and arrays on either side; such
    operands take the tensor's dtype, so `x32 * 0.5` stays float32.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "_ctx", "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # `ndarray + Tensor` defers to `Tensor.__radd__`

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Tensor holds floating-point data; dtype {dtype} is not one")
        self.data = np.array(data, dtype=dtype)
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._ctx: Function | None = None
        self._retains_grad = False

    @staticmethod
    def _wrap(data: np.ndarray) -> Tensor:
        """A constant tensor around `data`, without a copy."""
        t = Tensor.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = False
        t.name = None
        t._ctx = None
        t._retains_grad = False
        return t

    # ----- what a tensor is
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def grad_fn(self) -> Function | None:
        """The operation that produced this tensor, if it was recorded."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        return Transpose(None)(self)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data as a constant: no history, no gradient."""
        return Tensor._wrap(self.data)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this intermediate after backward (leaves keep theirs anyway)."""
        if self._ctx is not None:
            self._retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    __hash__ = object.__hash__  # `==` builds a Tensor, so identity is the hash

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        extras = []
        if self.dtype != np.float64 and self.dtype != np.bool_:
            extras.append(f"dtype={self.dtype}")
        if self.name:
            extras.append(f"name={self.name!r}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.op}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({', '.join([body, *extras])})"

    # ----- arithmetic (the derivative rules are in ops.py)
    def __add__(self, other: Any) -> Tensor:
        return Add()(self, _operand(other, self, "add"))

    def __radd__(self, other: Any) -> Tensor:
        return Add()(_operand(other, self, "add"), self)

    def __sub__(self, other: Any) -> Tensor:
        return Sub()(self, _operand(other, self, "sub"))

    def __rsub__(self, other: Any) -> Tensor:
        return Sub()(_operand(other, self, "sub"), self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul()(self, _operand(other, self, "mul"))

    def __rmul__(self, other: Any) -> Tensor:
        return Mul()(_operand(other, self, "mul"), self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div()(self, _operand(other, self, "div"))

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div()(_operand(other, self, "div"), self)

    def __neg__(self) -> Tensor:
        return Neg()(self)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor) or np.ndim(exponent) != 0:
            raise TypeError("pow: the exponent must be a number, not a tensor or an array")
        return Pow(float(exponent))(self)

    def __matmul__(self, other: Any) -> Tensor:
        other = _operand(other, self, "matmul")
        if self.data.ndim == 2 and other.data.ndim == 2:
            return MatMul()(self, other)
        return _matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(_operand(other, self, "matmul"), self)

    # ----- comparisons: constant boolean tensors, no gradient
    def __lt__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data < _value(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data <= _value(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data > _value(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor._wrap(self.data >= _value(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data == _value(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(self.data != _value(other))

    # ----- elementwise functions
    def exp(self) -> Tensor:
        return Exp()(self)

    def log(self) -> Tensor:
        return Log()(self)

    def relu(self) -> Tensor:
        return ReLU()(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid()(self)

    def tanh(self) -> Tensor:
        return Tanh()(self)

    def astype(self, dtype: Any) -> Tensor:
        return Cast(np.dtype(dtype))(self)

    # ----- reductions and shape
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return Sum(_axes(axis, self.ndim), keepdims)(self)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim)
        count = self.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        return Sum(axes, keepdims)(self) / count

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; tied maxima share the gradient equally, as `torch.amax` does."""
        return Max(_axes(axis, self.ndim), keepdims)(self)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return Reshape(shape)(self)

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        return Transpose(axes or None)(self)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return BroadcastTo(tuple(shape))(self)

    # ----- back-propagation
    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        A scalar needs no `gradient`; any other output needs one of its shape. Without
        `retain_graph` the graph is released and a second backward through it is an error.
        `create_graph=True` records the backward pass, so the gradients can be differentiated.
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward: {_describe(self)} does not require grad and has no recorded history"
            )
        seed = _seed(self, gradient)
        if retain_graph is None:
            retain_graph = create_graph
        _backprop(self, seed, retain_graph, create_graph, None)


_new_tensor = object.__new__


def _seed(out: Tensor, gradient: Any) -> Tensor:
    """The gradient that starts backward: ones for a scalar, else a copy of `gradient`."""
    data = out.data
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward: {_describe(out)} is not a scalar; pass `gradient` of shape {data.shape}"
            )
        return Tensor._wrap(np.ones(data.shape, data.dtype))
    if isinstance(gradient, Tensor):
        seed = gradient
    elif isinstance(gradient, np.ndarray) and gradient.dtype == data.dtype:
        seed = Tensor._wrap(gradient.copy())
    else:
        seed = Tensor(gradient, dtype=data.dtype)
    if seed.data.shape != data.shape:
        raise ShapeError(f"backward: gradient of shape {seed.shape} given for {_describe(out)}")
    return seed


def _topological_order(root: Function) -> list[Function]:
    """The recorded operations behind `root`, each after all that feed it (no recursion)."""
    order: list[Function] = []
    seen = {root}
    stack = [(root, iter(root.parents))]
    while stack:
        fn, parents = stack[-1]
        for p in parents:
            c = p._ctx
            if c is not None and c not in seen:
                seen.add(c)
                stack.append((c, iter(c.parents)))
                break
        else:
            stack.pop()
            order.append(fn)
    return order


def _backprop(
    root: Tensor,
    seed: Tensor,
    retain_graph: bool,
    create_graph: bool,
    wanted: dict[Tensor, Tensor | None] | None,
) -> None:
    """Walk the graph behind `root` from the output back, one operation at a time.

    With `wanted` None, leaf gradients accumulate into `.grad`; otherwise the gradients of the
    tensors in `wanted` are stored there and no `.grad` is touched (this is `grad()`).
    """
    if root._ctx is None:
        _deliver(root, seed, wanted)
        return
    grads: dict[Function, Tensor] = {root._ctx: seed}
    mode = _mode
    anomaly = mode.anomaly
    previous = mode.grad_enabled
    mode.grad_enabled = create_graph
    try:
        for fn in reversed(_topological_order(root._ctx)):
            g = grads.pop(fn)
            if fn.freed:
                raise RuntimeError(
                    f"backward through {fn.op} a second time: its graph was released by the "
                    "first backward; pass retain_graph=True to that call to keep it"
                )
            out = fn.out()
            if out is not None and (out._retains_grad or (wanted and out in wanted)):
                _deliver(out, g, wanted)
            if anomaly:
                mode.rule = fn.op
                try:
                    input_grads = fn.backward(g)
                finally:
                    mode.rule = None
            else:
                input_grads = fn.backward(g)
            for t, tg in zip(fn.parents, input_grads):
                if tg is None:
                    continue
                if anomaly:
                    _check_finite(fn, tg.data, f"gradient for {_describe(t)}", "backward")
                c = t._ctx
                if c is None:
                    _deliver(t, tg, wanted)
                else:
                    previous_grad = grads.get(c)
                    grads[c] = tg if previous_grad is None else previous_grad + tg
            if not retain_graph:
                fn.freed = True
    finally:
        mode.grad_enabled = previous


def _deliver(t: Tensor, g: Tensor, wanted: dict[Tensor, Tensor | None] | None) -> None:
    """Add `g` to the gradient kept for `t`: its `.grad`, or its entry in `wanted`."""
    if wanted is None:
        t.grad = g if t.grad is None else t.grad + g
    elif t in wanted:
        previous = wanted[t]
        wanted[t] = g if previous is None else previous + g


def grad(
    output: Tensor,
    inputs: Sequence[Tensor],
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """d(output)/d(input) for each input, returned rather than accumulated into `.grad`.

    As `torch.autograd.grad`: with `create_graph=True` the results can be differentiated again,
    which is how a Hessian-vector product is computed. An input that `output` does not depend on
    gets a gradient of zeros.
    """
    if not output.requires_grad:
        raise RuntimeError(f"grad: {_describe(output)} does not require grad")
    wanted: dict[Tensor, Tensor | None] = {t: None for t in inputs}
    if retain_graph is None:
        retain_graph = create_graph
    _backprop(output, _seed(output, gradient), retain_graph, create_graph, wanted)
    return [
        Tensor._wrap(np.zeros(t.shape, t.dtype)) if wanted[t] is None else wanted[t] for t in inputs
    ]


# ----- helpers for the operators


def _value(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _operand(x: Any, like: Tensor, op: str) -> Tensor:
    """`x` as a Tensor beside `like`: numbers and arrays take `like`'s dtype."""
    if isinstance(x, Tensor):
        a, b = x.data.dtype, like.data.dtype
        if a is not b and a != b and a.kind != "b" and b.kind != "b":
            raise TypeError(f"{op}: dtypes {b} and {a} differ; convert one with .astype()")
        return x
    return Tensor._wrap(np.asarray(x, dtype=like.data.dtype))


def _axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for a tensor of {ndim} dimensions")
    return tuple(sorted(a % ndim for a in axes))


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product; a 1-D operand is a row (left) or a column (right), as in NumPy."""
    if a.ndim == 2 and b.ndim == 2:
        return MatMul()(a, b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ShapeError(
            f"matmul: takes 1-D and 2-D operands, got {_describe(a)} and {_describe(b)}"
        )
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    out = MatMul()(a2, b2)
    shape = (a.shape[:1] if a.ndim == 2 else ()) + (b.shape[1:] if b.ndim == 2 else ())
    return out.reshape(shape)


def binary_cross_entropy(probs: Tensor, targets: Any) -> Tensor:
    """The textbook cost, mean over all elements: -mean(y·log(p) + (1 − y)·log(1 − p)).

    Composed of `log`, `*`, `-` and `mean`, so its gradient is whatever those rules give; a
    probability of exactly 0 or 1 makes it inf or nan (see `detect_anomaly`).
    """
    y = _operand(targets, probs, "binary_cross_entropy")
    if y.shape != probs.shape:
        raise ShapeError(
            f"binary_cross_entropy: probs {probs.shape} and targets {y.shape} differ in shape"
        )
    return -(y * probs.log() + (1.0 - y) * (1.0 - probs).log()).mean()


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any) -> Tensor:
    """Sigmoid and cross-entropy fused into one stable operation, mean over all elements.

    Its gradient is `(sigmoid(logits) − targets) / N`: the tutorial's `dZ2 = A2 − Y`.
    """
    y = _operand(targets, logits, "binary_cross_entropy_with_logits")
    if y.shape != logits.shape:
        raise ShapeError(
            f"binary_cross_entropy_with_logits: logits {_describe(logits)} and targets "
            f"{_describe(y)} differ in shape"
        )
    return BCEWithLogits()(logits, y)


# The derivative rules refer back to Tensor, so they are imported last.
from tinygrad_fnn.ops import (  # noqa: E402
    Add,
    BCEWithLogits,
    BroadcastTo,
    Cast,
    Div,
    Exp,
    Log,
    MatMul,
    Max,
    Mul,
    Neg,
    Pow,
    ReLU,
    Reshape,
    Sigmoid,
    Sub,
    Sum,
    Tanh,
    Transpose,
)
