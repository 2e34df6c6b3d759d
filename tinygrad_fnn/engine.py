"""The engine: a Tensor that records the operations applied to it, and the backward walk.

Every operation is a `Function` (the rules are in `ops.py`): `forward` computes on NumPy arrays,
and one small method per input gives that input's gradient as a formula in Tensor operations.
What every rule would otherwise repeat lives here, once, in the backward walk: gradients that no
input needs are never computed, and a gradient that reaches a broadcast operand is summed back
to the operand's shape. Because the rules are Tensor operations, `create_graph=True` records the
backward pass like any forward pass, and it can be differentiated again.

Data a live graph needs cannot change under it: while a recorded operation is waiting for its
backward pass, the arrays of its leaf inputs are read-only, and results of recorded operations
are read-only from birth (see `Tensor.data`). Grad mode and anomaly mode are per thread.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
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
    tracer: Any = None  # set by `compile` while it traces a step


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
def detect_anomaly() -> Iterator[None]:
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


def _check_finite(op: str, inputs: Sequence[Tensor], data: np.ndarray, what: str) -> None:
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        kind = "nan" if np.isnan(data).any() else "inf"
        stage = "forward" if _mode.rule is None else f"backward (rule of {_mode.rule})"
        operands = ", ".join(_describe(t) for t in inputs)
        raise AnomalyError(
            f"{op} produced {kind} in the {stage} pass ({what}); operands: {operands}"
        )


# ----- read-only arrays while a graph needs them

_locks: dict[int, list] = {}  # id(array) -> [array, number of live operations that need it]
_guard = threading.Lock()  # guards `_locks` and the accumulation of `.grad` across threads


def _lock(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Make `arrays` read-only until `_unlock`; returns the ones to hand to `_unlock` later."""
    locked = []
    with _guard:
        for a in arrays:
            entry = _locks.get(id(a))
            if entry is not None:
                entry[1] += 1
            elif a.flags.writeable:
                a.setflags(write=False)
                _locks[id(a)] = [a, 1]
            else:
                continue  # read-only by nature (a broadcast view, a result of a recorded op)
            locked.append(a)
    return locked


def _unlock(locked: list[np.ndarray]) -> None:
    """Undo one `_lock` (once: the list is emptied)."""
    with _guard:
        while locked:
            a = locked.pop()
            entry = _locks[id(a)]
            entry[1] -= 1
            if entry[1] == 0:
                del _locks[id(a)]
                a.setflags(write=True)


# ----- operations


class Function:
    """One recorded operation. Subclasses define `forward(self, a, b, …)` on arrays and, for each
    input `x`, a method `dx(self, g, z, a, b, …)` that returns the gradient for `x` as a Tensor
    formula: `g` is the gradient of the output `z`, and `a, b, …` are the inputs as Tensors.
    An operation with a variable number of inputs defines `backward(self, g, z, *inputs)`
    returning one gradient per input instead. An operation without either is not differentiable.
    """

    __slots__ = ("parents", "needs_grad", "out", "locked", "freed")
    op = "function"
    vjps: tuple[Callable[..., Tensor], ...] = ()  # filled in from the `dx` methods, in order
    differentiable = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" not in cls.__dict__:
            return
        names = [
            p.name
            for p in inspect.signature(cls.forward).parameters.values()
            if p.name != "self" and p.kind is not p.VAR_POSITIONAL
        ]
        methods = [getattr(cls, f"d{n}", None) for n in names]
        if all(m is not None for m in methods) and names:
            cls.vjps = tuple(methods)
            cls.differentiable = True
        else:
            cls.vjps = ()
            cls.differentiable = "backward" in cls.__dict__

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: Tensor, z: Tensor, *inputs: Tensor) -> Sequence[Tensor | None]:
        """The gradient for every input, for an operation with no `dx` rules of its own."""
        raise NotImplementedError

    @classmethod
    def rules(cls) -> list[str]:
        """The derivative rules as formulas, read from the code itself: `["da = g * b", …]`."""
        found = []
        for rule in cls.vjps or ([cls.backward] if cls.differentiable else []):
            source = inspect.getsource(rule)
            body = source[source.index("return ") + len("return ") :].strip()
            body = " ".join(body.split("#")[0].replace("self.", "").split())
            name = rule.__name__ if rule.__name__ != "backward" else "d(inputs)"
            found.append(f"{name} = {body}")
        return found

    @property
    def rule(self) -> str:
        """The derivative rules in one line, for pictures of the backward pass."""
        return _rule_line(type(self))

    def __call__(self, *inputs: Tensor) -> Tensor:
        try:
            data = self.forward(*[t._data for t in inputs])
        except ValueError as e:
            shapes = " and ".join(_describe(t) for t in inputs)
            raise ShapeError(f"{self.op}: cannot apply to {shapes}: {e}") from None
        if type(data) is not np.ndarray:
            data = np.asarray(data)  # NumPy returns scalars for 0-d results
        out = Tensor._wrap(data)
        mode = _mode
        if mode.grad_enabled and self.differentiable:
            needs = tuple([t.requires_grad for t in inputs])
            if True in needs:
                self.record(inputs, needs, out)
        if mode.tracer is not None:
            mode.tracer.record(self, inputs, out)
        if mode.anomaly:
            _check_finite(self.op, inputs, data, "output")
        return out

    def record(self, inputs: tuple[Tensor, ...], needs: tuple[bool, ...], out: Tensor) -> None:
        """Remember the inputs for backward, and keep the data it will read from changing."""
        self.parents = inputs
        self.needs_grad = needs
        self.freed = False
        leaves = [t._data for t in inputs if t._ctx is None]
        self.locked = locked = _lock(leaves) if leaves else []
        # The lock ends at backward (`release`) or when the output is dropped unused.
        self.out = weakref.ref(out, lambda _: _unlock(locked)) if locked else weakref.ref(out)
        if out._data.flags.writeable:
            out._data.setflags(write=False)
        out.requires_grad = True
        out._ctx = self

    def release(self) -> None:
        """Backward has run through this operation: its inputs may change from now on."""
        self.freed = True
        _unlock(self.locked)


_rule_lines: dict[type, str] = {}


def _rule_line(cls: type[Function]) -> str:
    line = _rule_lines.get(cls)
    if line is None:
        line = _rule_lines[cls] = ", ".join(cls.rules())
    return line


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    `data` is a NumPy array (float64 unless `dtype` says otherwise; float32 is supported), 0-d
    for a scalar. Operators broadcast as NumPy does and accept Python numbers and arrays on
    either side; such operands take the tensor's dtype, so `x32 * 0.5` stays float32.
    """

    __slots__ = ("_data", "grad", "requires_grad", "name", "_ctx", "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # `ndarray + Tensor` defers to `Tensor.__radd__`

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data._data
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Tensor holds floating-point data; dtype {dtype} is not one")
        given = np.asarray(data) if not isinstance(data, np.ndarray) else data
        if given.dtype.kind not in "biuf":
            raise TypeError(
                f"Tensor: cannot make a tensor of {type(data).__name__} data "
                f"(NumPy reads it as {given.dtype}); give numbers, nested lists or an array"
            )
        self._data = np.array(given, dtype=dtype)
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._ctx: Function | None = None
        self._retains_grad = False
        if _mode.tracer is not None:
            _mode.tracer.made(self, data)  # `compile` binds a tensor made from an argument

    @staticmethod
    def _wrap(data: np.ndarray) -> Tensor:
        """A constant tensor around `data`, without a copy."""
        t = Tensor.__new__(Tensor)
        t._data = data
        t.grad = None
        t.requires_grad = False
        t.name = None
        t._ctx = None
        t._retains_grad = False
        return t

    # ----- what a tensor is
    @property
    def data(self) -> np.ndarray:
        """The array. Read-only while a recorded graph still needs it (until its backward), and
        always for results of recorded operations; replace a leaf's array by assigning here."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        if self._ctx is not None:
            raise RuntimeError(
                f"cannot replace the data of {_describe(self)}: it is the result of a recorded "
                "operation; detach() it first"
            )
        if id(self._data) in _locks:
            raise RuntimeError(
                f"cannot replace the data of {_describe(self)}: a recorded graph still needs it; "
                "call backward() on that graph first (or let it go)"
            )
        value = np.asarray(value)
        if value.shape != self._data.shape or value.dtype != self._data.dtype:
            raise ShapeError(
                f"data of {_describe(self)} ({self._data.dtype}) cannot become an array of shape "
                f"{value.shape} ({value.dtype})"
            )
        self._data = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

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

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped: the transpose of each matrix in a stack."""
        n = self.ndim
        return Transpose(None if n == 2 else (*range(n - 2), n - 1, n - 2))(self)

    # ----- leaving the graph, explicitly
    def _no_trace(self, what: str) -> None:
        if _mode.tracer is not None:
            _mode.tracer.refuse(self, what)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        self._no_trace(".numpy()")
        return self._data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        self._no_trace(".item()")
        return self._scalar("item").item()

    def tolist(self) -> Any:
        self._no_trace(".tolist()")
        return self._data.tolist()

    def _scalar(self, what: str) -> np.ndarray:
        if self._data.size != 1:
            raise ValueError(
                f"{what}: only a one-element tensor converts to a Python number; "
                f"{_describe(self)} has {self._data.size} elements"
            )
        return self._data

    def __float__(self) -> float:
        self._no_trace("float()")
        return float(self._scalar("float()").item())

    def __int__(self) -> int:
        self._no_trace("int()")
        return int(self._scalar("int()").item())

    def __bool__(self) -> bool:
        self._no_trace("bool()")
        return bool(self._scalar("bool()").item())

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        self._no_trace("format()")
        return format(self._scalar("format()").item(), spec)

    def detach(self) -> Tensor:
        """The same data as a constant: no history, no gradient."""
        return Tensor._wrap(self._data)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this intermediate after backward (leaves keep theirs anyway)."""
        if self._ctx is not None:
            self._retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self.requires_grad:
            raise TypeError(
                f"NumPy asked for the array of {_describe(self)}, which requires grad: the "
                "result would silently drop it from the graph. Use .detach() (or .data, "
                ".numpy(), .item()) to take the values out on purpose"
            )
        self._no_trace("np.asarray()")
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def __len__(self) -> int:
        return len(self._data)

    __hash__ = object.__hash__  # `==` builds a Tensor, so identity is the hash

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, separator=", ", prefix="Tensor(")
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

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
            return PowConst(float(exponent))(self)
        return Pow()(self, _operand(exponent, self, "pow"))

    def __rpow__(self, base: Any) -> Tensor:
        return Pow()(_operand(base, self, "pow"), self)

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, _operand(other, self, "matmul"))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(_operand(other, self, "matmul"), self)

    # ----- in-place updates: only on data no graph needs, and never recorded
    def _inplace(self, ufunc: np.ufunc, other: Any, symbol: str) -> Tensor:
        if _mode.grad_enabled and (self.requires_grad or self._ctx is not None):
            raise RuntimeError(
                f"{symbol}: {_describe(self)} requires grad, and an in-place update of it cannot "
                f"be recorded; update parameters inside `with no_grad():`, or write "
                f"`x = x {symbol[0]} y` to record a new tensor"
            )
        if self._ctx is not None:
            raise RuntimeError(f"{symbol}: {_describe(self)} is the result of a recorded operation")
        value = _value(other)
        if isinstance(value, np.ndarray) and value.dtype != self.dtype and value.dtype.kind == "f":
            raise TypeError(f"{symbol}: dtypes {self.dtype} and {value.dtype} differ")
        if not self._data.flags.writeable:
            raise RuntimeError(
                f"{symbol}: the data of {_describe(self)} is read-only"
                + (
                    ": a recorded graph still needs it; call backward() on that graph first"
                    if id(self._data) in _locks
                    else ""
                )
            )
        try:
            ufunc(self._data, value, out=self._data, casting="same_kind")
        except ValueError as e:
            raise ShapeError(f"{symbol}: cannot update {_describe(self)} in place: {e}") from None
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(np.true_divide, other, "/=")

    # ----- comparisons: constant boolean tensors, no gradient
    def __lt__(self, other: Any) -> Tensor:
        return Less()(self, _operand(other, self, "<"))

    def __le__(self, other: Any) -> Tensor:
        return LessEqual()(self, _operand(other, self, "<="))

    def __gt__(self, other: Any) -> Tensor:
        return Greater()(self, _operand(other, self, ">"))

    def __ge__(self, other: Any) -> Tensor:
        return GreaterEqual()(self, _operand(other, self, ">="))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Equal()(self, _operand(other, self, "=="))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return NotEqual()(self, _operand(other, self, "!="))

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
        return Sum(_axes(axis, self.ndim, "sum"), bool(keepdims))(self)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim, "mean")
        count = self.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        return Sum(axes, bool(keepdims))(self) / count

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; tied maxima share the gradient equally, as `torch.amax` does."""
        return Max(_axes(axis, self.ndim, "max"), bool(keepdims))(self)

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return Reshape(_ints(shape, "reshape"))(self)

    def transpose(self, *axes: int | Sequence[int] | None) -> Tensor:
        if axes == (None,):
            axes = ()
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = tuple(axes[0])
        return Transpose(_ints(axes, "transpose") or None)(self)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return BroadcastTo(_ints(shape, "broadcast_to"))(self)

    # ----- back-propagation
    def backward(
        self,
        gradient: Any = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        A scalar needs no `gradient`; any other output needs one of its shape and dtype. Without
        `retain_graph` the graph is released and a second backward through it is an error.
        `create_graph=True` records the backward pass, so the gradients can be differentiated.
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward: {_describe(self)} does not require grad and has no recorded history"
            )
        if retain_graph is None:
            retain_graph = create_graph
        _backprop(self, _seed(self, gradient, "backward"), retain_graph, create_graph, None)


def _seed(out: Tensor, gradient: Any, caller: str) -> Tensor:
    """The gradient that starts backward: ones for a scalar, else a copy of `gradient`."""
    data = out._data
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"{caller}: {_describe(out)} is not a scalar; pass `gradient` of shape {data.shape}"
            )
        return Tensor._wrap(np.ones(data.shape, data.dtype))
    given = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient)
    if given.dtype.kind == "f" and given.dtype != data.dtype:
        raise TypeError(
            f"{caller}: the gradient given is {given.dtype}, but {_describe(out)} is {data.dtype}; "
            "convert it with .astype()"
        )
    seed = gradient if isinstance(gradient, Tensor) else Tensor(given, dtype=data.dtype)
    if seed.shape != data.shape:
        raise ShapeError(
            f"{caller}: gradient of shape {seed.shape} given for {_describe(out)}; "
            "they must have the same shape"
        )
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


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum `g` over the axes along which an operand of `shape` was broadcast."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    summed = Sum(axes, True)(g) if axes else g
    return summed.reshape(shape) if summed.shape != shape else summed


def _backprop(
    root: Tensor,
    seed: Tensor,
    retain_graph: bool,
    create_graph: bool,
    wanted: dict[Tensor, Tensor | None] | None,
) -> None:
    """Walk the graph behind `root` from the output back, one operation at a time.

    For each operation, only the inputs that need a gradient get one; a gradient whose shape
    differs from its input's (the input was broadcast) is summed back to that shape; gradients
    reaching one tensor from several uses are added. With `wanted` None, leaf gradients
    accumulate into `.grad`; otherwise the gradients of the tensors in `wanted` are stored
    there and no `.grad` is touched (this is `grad()`).
    """
    if root._ctx is None:
        _deliver(root, seed, wanted)
        return
    grads: dict[Function, Tensor] = {root._ctx: seed}
    mode = _mode
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
            z = fn.out()
            if mode.tracer is not None:
                mode.tracer.gradient(z, g)  # `compile` names the gradient after z
            if z._retains_grad or (wanted and z in wanted):
                _deliver(z, g, wanted)
            parents = fn.parents
            mode.rule = fn.op
            try:
                if fn.vjps:  # one rule per input, run only for the inputs that need it
                    input_grads = [
                        rule(fn, g, z, *parents) if need else None
                        for rule, need in zip(fn.vjps, fn.needs_grad)
                    ]
                else:
                    input_grads = fn.backward(g, z, *parents)
            finally:
                mode.rule = None
            for t, tg, need in zip(parents, input_grads, fn.needs_grad):
                if not need:
                    continue
                if tg.shape != t.shape:
                    tg = unbroadcast(tg, t.shape)
                if mode.anomaly:
                    _check_finite(fn.op, fn.parents, tg._data, f"gradient for {_describe(t)}")
                c = t._ctx
                if c is None:
                    _deliver(t, tg, wanted)
                else:
                    previous_grad = grads.get(c)
                    grads[c] = tg if previous_grad is None else previous_grad + tg
            if not retain_graph:
                fn.release()
    finally:
        mode.grad_enabled = previous


def _deliver(t: Tensor, g: Tensor, wanted: dict[Tensor, Tensor | None] | None) -> None:
    """Add `g` to the gradient kept for `t`: its `.grad`, or its entry in `wanted`."""
    if wanted is None:
        with _guard:  # several threads may back-propagate into one shared leaf
            t.grad = g if t.grad is None else t.grad + g
    elif t in wanted:
        previous = wanted[t]
        wanted[t] = g if previous is None else previous + g


def grad(
    output: Tensor,
    inputs: Tensor | Sequence[Tensor],
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """d(output)/d(input) for each input, returned rather than accumulated into `.grad`.

    As `torch.autograd.grad`: `inputs` is one tensor or a sequence, and the result is always a
    list; with `create_graph=True` the results can be differentiated again, which is how a
    Hessian-vector product is computed. An input that `output` does not depend on gets a
    gradient of zeros.
    """
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    if not output.requires_grad:
        raise RuntimeError(f"grad: {_describe(output)} does not require grad")
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs must be Tensors, got {type(t).__name__}")
    wanted: dict[Tensor, Tensor | None] = {t: None for t in inputs}
    if retain_graph is None:
        retain_graph = create_graph
    _backprop(output, _seed(output, gradient, "grad"), retain_graph, create_graph, wanted)
    return [
        Tensor._wrap(np.zeros(t.shape, t.dtype)) if wanted[t] is None else wanted[t] for t in inputs
    ]


# ----- helpers for the operators


def _value(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def _operand(x: Any, like: Tensor, op: str) -> Tensor:
    """`x` as a Tensor beside `like`: numbers and arrays take `like`'s dtype."""
    if isinstance(x, Tensor):
        a, b = x._data.dtype, like._data.dtype
        if a is not b and a != b and a.kind != "b" and b.kind != "b":
            raise TypeError(f"{op}: dtypes {b} and {a} differ; convert one with .astype()")
        return x
    given = np.asarray(x)
    if given.dtype.kind not in "biuf":
        raise TypeError(
            f"{op}: cannot combine {_describe(like)} with {type(x).__name__} "
            f"(NumPy reads it as {given.dtype})"
        )
    return Tensor._wrap(given.astype(like._data.dtype, copy=False))


def _ints(values: Sequence[Any], op: str) -> tuple[int, ...]:
    for v in values:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{op}: expects whole numbers, got {v!r} ({type(v).__name__})")
    return tuple(int(v) for v in values)


def _axes(axis: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    axes = _ints((axis,) if not isinstance(axis, (tuple, list)) else axis, f"{op}: axis")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor of {ndim} dimensions")
    normal = tuple(sorted(a % ndim for a in axes))
    if len(set(normal)) != len(normal):
        raise ShapeError(f"{op}: axis {axis} repeats an axis")
    return normal


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product as `np.matmul`: a 1-D operand is a row (left) or a column (right)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: needs operands of at least one dimension, got {_describe(a)} and "
            f"{_describe(b)}; use * to scale"
        )
    inner_a, inner_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ShapeError(
            f"matmul: cannot multiply {_describe(a)} by {_describe(b)}: inner dimensions "
            f"{inner_a} and {inner_b} differ"
        )
    if a.ndim >= 2 and b.ndim >= 2:
        return MatMul()(a, b)
    out = MatMul()(a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b)
    rows = out.shape[-2:-1] if a.ndim > 1 else ()
    columns = out.shape[-1:] if b.ndim > 1 else ()
    return out.reshape(out.shape[:-2] + rows + columns)


# The derivative rules refer back to Tensor, so they are imported last.
from tinygrad_fnn.ops import (  # noqa: E402
    Add,
    BroadcastTo,
    Cast,
    Div,
    Equal,
    Exp,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    Log,
    MatMul,
    Max,
    Mul,
    Neg,
    NotEqual,
    Pow,
    PowConst,
    ReLU,
    Reshape,
    Sigmoid,
    Sub,
    Sum,
    Tanh,
    Transpose,
)
