"""The engine: a Tensor that records the operations applied to it, and the backward walk.

Every operation is a `Function` (the rules are in `ops.py`): `forward` computes on NumPy arrays,
and one small method per input gives that input's gradient as a formula that reads the same on
arrays and on Tensors (operators, shared methods, and the functions `exp`, `where`, `matmul`, …
defined here). What every rule would otherwise repeat lives here, once, in the backward walk:
gradients that no input needs are never computed, and a gradient that reaches a broadcast operand
is summed back to the operand's shape. A plain backward runs the rules on the arrays;
`create_graph=True` runs them on the Tensors, so the backward pass is recorded like any forward
pass and can be differentiated again.

Data a live graph needs cannot change under it: while a recorded operation is waiting for its
backward pass, the arrays of its leaf inputs (and the arrays those are views of) are read-only,
and the array of a recorded result is read-only once it is handed out (see `Tensor.data`). Grad
mode and anomaly mode are per thread.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import operator
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np


class ShapeError(ValueError):
    """An operation was given operands whose shapes do not fit; the message names both."""


class AnomalyError(FloatingPointError):
    """Raised inside `detect_anomaly()` when an operation produces a NaN or an infinity."""


class _Mode(threading.local):
    grad_enabled = True
    arrays = False  # the backward walk runs the rules on plain arrays (see `_backprop`)
    rule: str | None = None  # the derivative rule being run, for anomaly messages
    watched = False  # anomaly mode is on or a tracer listens: every operation reports to them
    _anomaly = False
    _tracer: Any = None

    @property
    def anomaly(self) -> bool:
        return self._anomaly

    @anomaly.setter
    def anomaly(self, on: bool) -> None:
        self._anomaly = on
        self.watched = on or self._tracer is not None

    @property
    def tracer(self) -> Any:
        """Set by `compile` while it traces a step."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Any) -> None:
        self._tracer = tracer
        self.watched = self._anomaly or tracer is not None


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


def _check_finite(
    op: str, inputs: Sequence[Tensor], data: np.ndarray, what: str, stage: str = "forward"
) -> None:
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        kind = "nan" if np.isnan(data).any() else "inf"
        operands = ", ".join(_describe(t) for t in inputs)
        raise AnomalyError(
            f"{op} produced {kind} in the {stage} pass ({what}); operands: {operands}"
        )


# ----- read-only arrays while a graph needs them

# id(array) -> [the array, number of live operations that need it]; holding the array keeps its id
# from being reused while the entry exists
_locks: dict[int, list] = {}
# (`setflags(False)` sets `write`, its first parameter; naming it costs a dict of keywords a call)
_guard = threading.RLock()  # guards `_locks` (re-entrant: a graph freed while locking unlocks)
_adding = threading.Lock()  # guards the accumulation of `.grad` across threads


def _lock(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Make `arrays` read-only until `_unlock`, and the arrays that own their memory if they are
    views (so that neither the view nor its owner can be edited); returns what to unlock, which
    also keeps those arrays (and so their ids) alive."""
    locked: list[np.ndarray] = []
    if not arrays:
        return locked
    with _guard:
        for a in arrays:
            for x in (a,) if a.base is None else _owner_and(a):
                entry = _locks.get(id(x))
                if entry is not None:
                    entry[1] += 1
                elif x.flags.writeable:
                    x.setflags(False)
                    _locks[id(x)] = [x, 1]
                else:
                    continue  # read-only by nature (a broadcast view, a recorded result)
                locked.append(x)
    return locked


def _owner_and(view: np.ndarray) -> tuple[np.ndarray, ...]:
    """The array that owns a view's memory, and the view."""
    owner = view
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    return (owner, view) if owner is not view else (view,)


def _unlock(*lists: list[np.ndarray]) -> None:
    """Undo `_lock`s (each once: the lists are emptied). A view whose owner is still locked by
    another operation cannot be made writeable yet (NumPy refuses); it waits for its owner."""
    with _guard:
        for locked in lists:
            for x in locked:
                entry = _locks[id(x)]
                if entry[1] > 1:
                    entry[1] -= 1
                    continue
                del _locks[id(x)]
                try:
                    x.setflags(True)
                except ValueError:  # its owner is still locked: made writeable when it is
                    _wait_for_owner(x)
                    continue
                if _waiting:
                    _release_waiting(x)
            locked.clear()


_waiting: dict[int, list[np.ndarray]] = {}  # id(owner) -> its views waiting for it to unlock


def _wait_for_owner(view: np.ndarray) -> None:
    owner = _owner_and(view)[0]
    _waiting.setdefault(id(owner), []).append(view)


def _release_waiting(owner: np.ndarray) -> None:
    """Make writeable the views that waited for `owner` to be unlocked."""
    for view in _waiting.pop(id(owner), ()):
        if id(view) in _locks:  # locked again meanwhile: it waits for that lock
            continue
        try:
            view.setflags(True)
        except ValueError:  # an owner between them is still locked
            _wait_for_owner(view)
            continue
        if _waiting:
            _release_waiting(view)


# the references to outputs whose death unlocks what their operation locked: held here, apart
# from the graph, so that they outlive a graph freed as a whole by the garbage collector
_unlocking: dict[int, tuple[weakref.ref, list[np.ndarray]]] = {}  # id(reference) -> it, locked


def _dropped(ref: weakref.ref) -> None:
    """An output died before backward ran through its operation: unlock what that locked."""
    _, locked = _unlocking.pop(id(ref), (None, None))
    if locked:
        _unlock(locked)


# ----- operations


class Function:
    """One recorded operation. Subclasses define `forward(self, a, b, …)` on arrays and, for each
    input `x`, a method `dx(self, g, z, a, b, …)` that returns the gradient for `x` as a formula:
    `g` is the gradient of the output `z`, and `a, b, …` are the inputs, all NumPy arrays or all
    Tensors (see `_backprop`).
    An operation with a variable number of inputs defines `backward(self, g, z, *inputs)`
    returning one gradient per input instead. An operation without either is not differentiable.
    """

    __slots__ = ("parents", "arrays", "z", "needs_grad", "out", "locked", "freed")
    op = "function"
    masks = False  # may give a boolean result: a comparison, or a move that keeps a mask a mask
    retains = False  # set by `Tensor.retain_grad` on the output: it keeps its gradient
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
        mode = _mode
        if mode.arrays:  # a rule run by the backward walk on plain arrays: compute, no record
            if Tensor in map(type, inputs):  # a rule that brought in a Tensor of its own
                inputs = tuple(_value(x) for x in inputs)
            return self.forward(*inputs)
        try:
            arrays = list(map(_array_of, inputs))
        except AttributeError:
            given = ", ".join(type(t).__name__ for t in inputs)
            raise TypeError(f"{self.op}: expects Tensors, got {given}") from None
        try:
            data = self.forward(*arrays)
        except ValueError as e:
            shapes = " and ".join(_describe(t) for t in inputs)
            raise ShapeError(f"{self.op}: cannot apply to {shapes}: {e}") from None
        except TypeError:  # NumPy refuses some arithmetic on booleans (-mask)
            if not any(a.dtype == np.bool_ for a in arrays):
                raise
            return self(*_masks_as_numbers(inputs))
        if type(data) is not np.ndarray:
            data = np.asarray(data)  # NumPy returns scalars for 0-d results
        if data.dtype.char not in _FLOATS and not self.masks:  # a mask met arithmetic
            if not any(a.dtype == np.bool_ for a in arrays):
                raise TypeError(
                    f"{self.op}: gave {data.dtype} data, but a Tensor holds float64 or float32 "
                    "(a Function whose result is boolean says so with `masks = True`)"
                )
            return self(*_masks_as_numbers(inputs))
        out = Tensor._wrap(data)
        if mode.grad_enabled and self.differentiable:
            needs_grad = list(map(_requires_grad, inputs))
            if True in needs_grad:
                self.record(inputs, arrays, needs_grad, out)
        if mode.watched:
            if mode.tracer is not None:
                mode.tracer.record(self, inputs, out)
            if mode.anomaly and mode.rule is None:  # inside a rule only its result is checked,
                _check_finite(self.op, inputs, data, "output")  # as PyTorch (`where` may mask)
        return out

    def record(
        self,
        inputs: tuple[Tensor, ...],
        arrays: list[np.ndarray],
        needs_grad: list[bool],
        out: Tensor,
    ) -> None:
        """Remember the inputs (and their arrays and the output's, which the rules read) for
        backward, and keep the data it will read from changing."""
        self.parents = inputs
        self.arrays = arrays
        self.z = out._array
        self.needs_grad = needs_grad
        self.freed = False
        self.locked = locked = _lock([t._array for t in inputs if t._ctx is None])
        if locked:  # the lock ends when backward has run through this operation, or when the
            # output is dropped unused (then this reference, held apart from the graph so that it
            # outlives a graph freed as a whole by the garbage collector, unlocks)
            self.out = weakref.ref(out, _dropped)
            _unlocking[id(self.out)] = (self.out, locked)
        else:
            self.out = weakref.ref(out)
        out.requires_grad = True
        out._ctx = self


def _masks_as_numbers(inputs: tuple[Tensor, ...]) -> list[Tensor]:
    """Boolean inputs as 0.0 and 1.0 in float64 (the default dtype), as PyTorch computes
    `exp(mask)` or `mask.sum()` in its default floating-point type (NumPy would give float16
    or int64)."""
    return [Cast(np.dtype(np.float64))(t) if t.dtype == np.bool_ else t for t in inputs]


_FLOATS = "fd"  # the dtypes of Tensors (`dtype.char`): float32 and float64


def _not_wide(given: np.ndarray, op: str, hint: str = "") -> None:
    """Refuse floats wider than float64 (NumPy's long double) where no dtype was asked for: the
    default, float64, would round them silently. PyTorch refuses them too; asking for a dtype
    (or an operand beside a float tensor, which takes the tensor's dtype) rounds them."""
    if given.dtype.kind == "f" and given.dtype.itemsize > 8:
        raise TypeError(
            f"{op}: the data is {given.dtype}, wider than float64, and would be rounded; "
            f"convert it with .astype(np.float64){hint}"
        )


_array_of = operator.attrgetter("_array")
_requires_grad = operator.attrgetter("requires_grad")
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

    __slots__ = ("_array", "grad", "requires_grad", "name", "_ctx", "__weakref__")

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        name: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data._array
        given = np.asarray(data) if not isinstance(data, np.ndarray) else data
        if dtype is None:
            _not_wide(given, "Tensor", " or pass dtype=np.float64")
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        if dtype.char not in _FLOATS:
            raise TypeError(f"Tensor holds float64 or float32 data; dtype {dtype} is not one")
        if given.dtype.kind not in "biuf":
            raise TypeError(
                f"Tensor: cannot make a tensor of {type(data).__name__} data "
                f"(NumPy reads it as {given.dtype}); give numbers, nested lists or an array"
            )
        self._array = np.array(given, dtype=dtype)
        self.grad: Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._ctx: Function | None = None
        if _mode.tracer is not None:
            _mode.tracer.made(self, data)  # `compile` binds a tensor made from an argument

    @staticmethod
    def _wrap(data: np.ndarray) -> Tensor:
        """A constant tensor around `data`, without a copy."""
        t = Tensor.__new__(Tensor)
        t._array = data
        t.grad = None
        t.requires_grad = False
        t.name = None
        t._ctx = None
        return t

    # ----- what a tensor is
    @property
    def data(self) -> np.ndarray:
        """The array. Read-only while a recorded graph still needs it (until its backward), and
        from here on for a recorded result; replace a leaf's array by assigning here."""
        return self._shared()

    def _shared(self) -> np.ndarray:
        """The array, handed out: a recorded result's array becomes read-only first."""
        data = self._array
        if self._ctx is not None and data.flags.writeable:
            data.setflags(False)
        return data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        if self._ctx is not None:
            raise RuntimeError(
                f"cannot replace the data of {_describe(self)}: it is the result of a recorded "
                "operation; detach() it first"
            )
        if id(self._array) in _locks:
            raise RuntimeError(
                f"cannot replace the data of {_describe(self)}: a recorded graph still needs it; "
                "call backward() on that graph first (or let it go)"
            )
        value = np.asarray(value)
        if value.dtype.char not in _FLOATS:
            raise TypeError(
                f"data of {_describe(self)} must be float64 or float32, not {value.dtype}"
            )
        self._array = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def size(self) -> int:
        return self._array.size

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

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
        n = self._array.ndim
        return Transpose(None if n == 2 else (*range(n - 2), n - 1, n - 2))(self)

    # ----- leaving the graph, explicitly
    def _no_trace(self, what: str) -> None:
        if _mode.tracer is not None:
            _mode.tracer.refuse(self, what)

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        self._no_trace(".numpy()")
        return self._shared()

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        self._no_trace(".item()")
        return self._scalar("item").item()

    def tolist(self) -> Any:
        self._no_trace(".tolist()")
        return self._array.tolist()

    def _scalar(self, what: str) -> np.ndarray:
        if self._array.size != 1:
            raise ValueError(
                f"{what}: only a one-element tensor converts to a Python number; "
                f"{_describe(self)} has {self._array.size} elements"
            )
        return self._array

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
        self._shared()
        return Detach()(self)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this intermediate after backward (leaves keep theirs anyway)."""
        if self._ctx is not None:
            self._ctx.retains = True
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
        if dtype is not None and dtype != self._array.dtype:
            return self._array.astype(dtype)
        return self._array.copy() if copy else self._shared()

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """`np.exp(t)`, `ndarray + t`, …: the engine's operation (see `numpy_dispatch`)."""
        return numpy_dispatch.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        """`np.dot(W, X)`, `np.sum(t)`, …: the engine's operation (see `numpy_dispatch`)."""
        return numpy_dispatch.array_function(func, args, kwargs)

    def __len__(self) -> int:
        if self._array.ndim == 0:
            raise TypeError(f"len() of a 0-d tensor ({_describe(self)})")
        return len(self._array)

    __hash__ = object.__hash__  # `==` builds a Tensor, so identity is the hash

    def __repr__(self) -> str:
        body = np.array2string(self._array, precision=4, separator=", ", prefix="Tensor(")
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
        return Pow()(*_numbers_beside(self, _operand(exponent, self, "pow")))

    def __rpow__(self, base: Any) -> Tensor:
        return Pow()(*_numbers_beside(_operand(base, self, "pow"), self))

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
                f"`x = x {symbol[:-1]} y` to record a new tensor"
            )
        if self._ctx is not None:
            raise RuntimeError(f"{symbol}: {_describe(self)} is the result of a recorded operation")
        value = _value(other)
        if isinstance(value, np.ndarray) and value.dtype != self.dtype and value.dtype.kind == "f":
            raise TypeError(f"{symbol}: dtypes {self.dtype} and {value.dtype} differ")
        if not self._array.flags.writeable:
            raise RuntimeError(
                f"{symbol}: the data of {_describe(self)} is read-only"
                + (
                    ": a recorded graph still needs it; call backward() on that graph first"
                    if id(self._array) in _locks
                    else ""
                )
            )
        try:
            ufunc(self._array, value, out=self._array, casting="same_kind")
        except ValueError as e:
            raise ShapeError(f"{symbol}: cannot update {_describe(self)} in place: {e}") from None
        except TypeError:
            if self._array.dtype.kind != "b":
                raise
            raise TypeError(
                f"{symbol}: cannot update in place: {_describe(self)} is a mask (booleans), "
                f"which holds no numbers; write m = m {symbol[:-1]} y for a new tensor"
            ) from None
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(np.true_divide, other, "/=")

    def __ipow__(self, other: Any) -> Tensor:
        return self._inplace(np.power, other, "**=")

    def __imatmul__(self, other: Any) -> Tensor:
        raise TypeError("@=: in-place matrix products are not supported; write x = x @ y")

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

    # ----- the logic of masks (booleans only, as PyTorch's `~`, `&`, `|`, `^` on bool tensors)
    def __invert__(self) -> Tensor:
        return LogicalNot()(_mask(self, "~"))

    def __and__(self, other: Any) -> Tensor:
        return LogicalAnd()(*_masks(self, other, "&"))

    __rand__ = __and__  # (each is symmetric: the reflected form is the same)

    def __or__(self, other: Any) -> Tensor:
        return LogicalOr()(*_masks(self, other, "|"))

    __ror__ = __or__

    def __xor__(self, other: Any) -> Tensor:
        return LogicalXor()(*_masks(self, other, "^"))

    __rxor__ = __xor__

    # ----- elementwise functions
    def exp(self) -> Tensor:
        return exp(self)

    def log(self) -> Tensor:
        return log(self)

    def relu(self) -> Tensor:
        return ReLU()(self)

    def sigmoid(self) -> Tensor:
        return sigmoid(self)

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
        if not axes:
            return Transpose(None)(self)
        n = self.ndim
        normal = tuple(a % n if -n <= a < n else a for a in _ints(axes, "transpose"))
        if sorted(normal) != list(range(n)):
            raise ShapeError(
                f"transpose: axes {axes} are not an order of the {n} axes of {_describe(self)}"
            )
        return Transpose(normal)(self)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return broadcast_to(self, shape)

    # ----- the operations a learner reaches for next (rules in ops.py)
    def __getitem__(self, index: Any) -> Tensor:
        """NumPy indexing: integers, slices, None, Ellipsis, integer arrays and boolean masks.
        The gradient is scattered back; an element picked several times gets the sum."""
        key = _index(index)
        try:
            return Getitem(key)(self)
        except IndexError as e:
            raise IndexError(
                f"getitem: cannot index {_describe(self)} with {index!r}: {e}"
            ) from None

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along the first axis, each a recorded `t[i]`."""
        if self.ndim == 0:
            raise TypeError(f"iteration over {_describe(self)}: it has no axis (0-d)")
        return (self[i] for i in range(self.shape[0]))

    def flip(self, axis: int) -> Tensor:
        """The elements along `axis` in reverse order."""
        return flip(self, axis)

    def __abs__(self) -> Tensor:
        return Abs()(self)

    def abs(self) -> Tensor:
        """|x|; the gradient at exactly 0 is 0 (sign(0)), as in PyTorch."""
        return Abs()(self)

    def sign(self) -> Tensor:
        """-1, 0 or 1, with gradient 0."""
        return sign(self)

    def sqrt(self) -> Tensor:
        return Sqrt()(self)

    def erf(self) -> Tensor:
        return Erf()(self)

    def clip(self, lo: float | None = None, hi: float | None = None) -> Tensor:
        """Values limited to [lo, hi]; at a bound the gradient passes, as `torch.clamp`."""
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of lo and hi")
        lo, hi = (None if v is None else _number(v, "clip") for v in (lo, hi))
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip: lo {lo} is above hi {hi}")
        return Clip(lo, hi)(self)

    def maximum(self, other: Any) -> Tensor:
        """Elementwise larger of the two; ties split the gradient half and half, as
        `torch.maximum`. With the number 0 it is `relu` (slope 0 at 0, as the tutorial's A1 > 0)."""
        if _is_zero(other):
            return ReLU()(self)
        return Maximum()(*_numbers_beside(self, _operand(other, self, "maximum")))

    def minimum(self, other: Any) -> Tensor:
        """Elementwise smaller of the two; ties split the gradient, as `torch.minimum`."""
        return Minimum()(*_numbers_beside(self, _operand(other, self, "minimum")))

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum; tied minima share the gradient equally, as `torch.amin` does."""
        return Min(_axes(axis, self.ndim, "min"), bool(keepdims))(self)

    def prod(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        return Prod(_axes(axis, self.ndim, "prod"), bool(keepdims))(self)

    def var(
        self, axis: int | Sequence[int] | None = None, ddof: int = 0, keepdims: bool = False
    ) -> Tensor:
        """Variance, NumPy's way: ddof=0 by default (PyTorch's default is 1)."""
        return self._variance(axis, ddof, keepdims, "var")

    def _variance(self, axis: Any, ddof: Any, keepdims: bool, op: str) -> Tensor:
        """The variance; `op` is the method called (var or std), which a mistake names."""
        axes = _axes(axis, self.ndim, op)
        count = self.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        if count == 0:
            what = "variance" if op == "var" else "standard deviation"
            raise ShapeError(f"{op}: {_describe(self)} has no elements to take the {what} of")
        if not isinstance(ddof, (int, np.integer)) or not 0 <= ddof < count:
            raise ValueError(
                f"{op}: ddof must be a whole number from 0 to {count - 1}, got {ddof!r}"
            )
        centred = self - self.mean(axes, keepdims=True)
        return (centred * centred).sum(axes, keepdims=keepdims) / (count - ddof)

    def std(
        self, axis: int | Sequence[int] | None = None, ddof: int = 0, keepdims: bool = False
    ) -> Tensor:
        """Standard deviation, the square root of `var` (same ddof). Where it is 0 its gradient
        is 0, as PyTorch's (sqrt's slope there is infinite, and times var's 0 it would be nan)."""
        variance = self._variance(axis, ddof, keepdims, "std")
        zero = variance == 0
        return where(zero, 0.0, where(zero, 1.0, variance).sqrt())

    def cumsum(self, axis: int | None = None) -> Tensor:
        """Running sum along `axis`; without one, of the flattened tensor, as `np.cumsum`."""
        if axis is None:
            return Cumsum(0)(self.ravel())
        (a,) = _axes(axis, self.ndim, "cumsum")
        return Cumsum(a)(self)

    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """log(Σ exp(x)), computed stably by shifting by the maximum (a constant: it cancels)."""
        return logsumexp(self, axis, keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / Σ exp(x) along `axis`, shifted by the maximum (a constant: it cancels)."""
        return softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x − logsumexp(x) along `axis`: the log-probabilities, without overflow."""
        return log_softmax(self, axis)

    def leaky_relu(self, slope: float = 0.01) -> Tensor:
        """x above 0, slope·x elsewhere; the slope at exactly 0 is `slope`, as in PyTorch."""
        return where(self > 0, self, self * _number(slope, "leaky_relu"))

    def softplus(self) -> Tensor:
        """log(1 + exp(x)), as PyTorch's (x itself above 20)."""
        return Softplus()(self)

    def relu6(self) -> Tensor:
        """min(max(x, 0), 6); gradient 0 at exactly 0 and 6, as PyTorch's."""
        return ReLU6()(self)

    def hardswish(self) -> Tensor:
        """x·relu6(x + 3)/6, with PyTorch's slopes at ±3."""
        return Hardswish()(self)

    def mish(self) -> Tensor:
        """x·tanh(softplus(x))."""
        return self * self.softplus().tanh()

    def gelu(self, approximate: str = "none") -> Tensor:
        """x·Φ(x) with Φ the normal distribution, through erf; `approximate="tanh"` is the tanh
        formula, as PyTorch's `gelu`."""
        if approximate == "none":
            return 0.5 * self * (1 + (self * (1 / math.sqrt(2))).erf())
        if approximate == "tanh":
            inner = math.sqrt(2 / math.pi) * (self + 0.044715 * self * self * self)
            return 0.5 * self * (1 + inner.tanh())
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """The axes of length 1 removed (all of them, or those in `axis`, which must be 1)."""
        axes = tuple(range(self.ndim)) if axis is None else _axes(axis, self.ndim, "squeeze")
        if axis is not None:
            for a in axes:
                if self.shape[a] != 1:
                    raise ShapeError(f"squeeze: axis {a} of {_describe(self)} is not of length 1")
        return self.reshape([n for i, n in enumerate(self.shape) if not (i in axes and n == 1)])

    def expand_dims(self, axis: int | Sequence[int]) -> Tensor:
        """New axes of length 1 at the positions `axis` of the result, as `np.expand_dims`."""
        return self._new_axes(axis, "expand_dims")

    def _new_axes(self, axis: Any, op: str) -> Tensor:
        """`expand_dims`; `op` is the method called, which a mistake names."""
        positions = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
        axes = _axes(positions, self.ndim + len(positions), op)
        shape = iter(self.shape)
        return self.reshape([1 if i in axes else next(shape) for i in range(self.ndim + len(axes))])

    def unsqueeze(self, axis: int) -> Tensor:
        """One new axis of length 1 at `axis` (PyTorch's name for `expand_dims`)."""
        return self._new_axes(axis, "unsqueeze")

    def flatten(self) -> Tensor:
        """All elements in one axis, row by row (a copy in NumPy; here a recorded reshape)."""
        return self.reshape(-1)

    def ravel(self) -> Tensor:
        return self.reshape(-1)

    def repeat(self, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
        """Each element repeated, as `np.repeat` (PyTorch's `repeat_interleave`); the gradient
        of the copies is summed back."""
        source = self.ravel() if axis is None else self
        (a,) = (0,) if axis is None else _axes(axis, self.ndim, "repeat")
        counts = np.asarray(repeats)
        if counts.dtype.kind not in "iu" or (counts < 0).any():
            raise ValueError(
                f"repeat: repeats must be whole numbers of at least 0, got {repeats!r}"
            )
        try:
            picks = np.repeat(np.arange(source.shape[a]), counts)
        except ValueError as e:
            raise ShapeError(f"repeat: {repeats!r} does not fit {_describe(self)}: {e}") from None
        return source[(slice(None),) * a + (picks,)]

    def pad(self, pad_width: Any, constant_values: float = 0.0) -> Tensor:
        """Surrounded by a constant, as `np.pad(x, pad_width)` in its constant mode."""
        if self.ndim == 0:
            raise ShapeError(f"pad: {_describe(self)} has no axis to pad")
        try:
            widths = np.broadcast_to(np.asarray(pad_width), (self.ndim, 2))
        except ValueError:
            raise ShapeError(
                f"pad: pad_width {pad_width!r} does not fit {_describe(self)}"
            ) from None
        if widths.dtype.kind not in "iu" or (widths < 0).any():
            raise ValueError(f"pad: widths must be whole numbers of at least 0, got {pad_width!r}")
        value = _number(constant_values, "pad")
        return Pad(tuple((int(lo), int(hi)) for lo, hi in widths), value)(self)

    def diagonal(self, offset: int = 0) -> Tensor:
        """The diagonal of a matrix (above it for offset > 0, below for < 0)."""
        return self._diagonal_of(offset, "diagonal")

    def _diagonal_of(self, offset: Any, op: str) -> Tensor:
        """`diagonal`; `op` is the method called, which a mistake names."""
        if self.ndim != 2:
            raise ShapeError(f"{op}: needs a matrix, got {_describe(self)}")
        rows, columns = _diagonal(self.shape, _ints((offset,), op)[0])
        return self[rows, columns]

    def diag(self, k: int = 0) -> Tensor:
        """As `np.diag`: a vector becomes the matrix with it on diagonal k; a matrix gives its
        diagonal k."""
        (k,) = _ints((k,), "diag")
        if self.ndim == 2:
            return self.diagonal(k)
        if self.ndim != 1:
            raise ShapeError(f"diag: needs a vector or a matrix, got {_describe(self)}")
        n = self.shape[0] + abs(k)
        return ScatterAdd(_diagonal((n, n), k), (n, n))(self)

    def trace(self, offset: int = 0) -> Tensor:
        """The sum of the diagonal of a matrix."""
        return self._diagonal_of(offset, "trace").sum()

    def tril(self, k: int = 0) -> Tensor:
        """The matrix with zeros above diagonal k (of the last two axes)."""
        return self._triangle(k, "tril")

    def triu(self, k: int = 0) -> Tensor:
        """The matrix with zeros below diagonal k (of the last two axes)."""
        return self._triangle(k, "triu")

    def _triangle(self, k: int, which: str) -> Tensor:
        if self.ndim < 2:
            raise ShapeError(f"{which}: needs at least two dimensions, got {_describe(self)}")
        (k,) = _ints((k,), which)
        rows, columns = self.shape[-2:]
        keep = np.tri(rows, columns, k, dtype=bool)
        zero = False if self._array.dtype.kind == "b" else 0.0  # a mask's triangle is a mask
        return where(
            keep if which == "tril" else ~np.tri(rows, columns, k - 1, dtype=bool), self, zero
        )

    def split(self, sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
        """Pieces along `axis`, as `np.split`: `sections` equal pieces, or the cut positions."""
        (a,) = _axes(axis, self.ndim, "split")
        n = self.shape[a]
        if isinstance(sections, (int, np.integer)) and not isinstance(sections, bool):
            if sections <= 0 or n % sections:
                raise ShapeError(
                    f"split: {_describe(self)} has {n} along axis {a}, which {sections} "
                    "equal pieces cannot divide"
                )
            cuts = [n // sections * i for i in range(1, int(sections))]
        else:
            cuts = [min(max(c + n if c < 0 else c, 0), n) for c in _ints(sections, "split")]
        bounds = [0, *cuts, n]
        return [
            self[(slice(None),) * a + (slice(lo, max(lo, hi)),)]
            for lo, hi in zip(bounds, bounds[1:])
        ]

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
        _backprop(
            self, _seed(self, gradient, "backward", create_graph), retain_graph, create_graph, None
        )


def _seed(out: Tensor, gradient: Any, caller: str, create_graph: bool) -> Tensor:
    """The gradient that starts backward: ones for a scalar, else a copy of `gradient` (so that
    no `.grad` shares memory with it), or, with `create_graph`, `gradient` itself if it requires
    grad (a gradient of gradients: it stays in its graph)."""
    data = out._array
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"{caller}: {_describe(out)} is not a scalar; pass `gradient` of shape {data.shape}"
            )
        return Tensor._wrap(np.ones(data.shape, data.dtype))
    given = gradient._array if isinstance(gradient, Tensor) else np.asarray(gradient)
    if given.dtype.kind == "f" and given.dtype != data.dtype:
        raise TypeError(
            f"{caller}: the gradient given is {given.dtype}, but {_describe(out)} is {data.dtype}; "
            "convert it with .astype()"
        )
    if create_graph and isinstance(gradient, Tensor) and gradient.requires_grad:
        seed = gradient
    else:
        seed = Tensor(given, dtype=data.dtype)
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


def _made(fn: Function) -> Tensor | None:
    """The output of `fn`, if it is alive and its graph not released."""
    return None if fn.out is None else fn.out()


def _leading_to(order: list[Function], wanted: dict[Tensor, Any]) -> set[Function]:
    """The operations of `order` (each after those that feed it) with an input that is wanted
    or made by such an operation: those a gradient flows through to a wanted tensor."""
    on_path: set[Function] = set()
    for fn in order:
        if any(t in wanted or t._ctx in on_path for t in fn.parents):
            on_path.add(fn)
    return on_path


def unbroadcast(g: Tensor, shape: tuple[int, ...], fn: Function) -> Tensor:
    """Sum `g` over the axes along which an operand of `shape` was broadcast by `fn`."""
    g_shape = g.shape
    lead = len(g_shape) - len(shape)
    axes = list(range(lead))
    for i, n in enumerate(shape):
        if lead < 0 or (n != g_shape[lead + i] and n != 1):
            raise ShapeError(
                f"the rule of {fn.op} gave a gradient of shape {g_shape} for an input of shape "
                f"{shape}; a rule must give the input's shape or one it broadcasts to"
            )
        if n != g_shape[lead + i]:
            axes.append(lead + i)
    summed = Sum(tuple(axes), True)(g) if axes else g
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
    there and no leaf's `.grad` is touched (this is `grad()`). A tensor that retains its
    gradient (`retain_grad`) gets it in `.grad` either way, as in PyTorch.

    The rules are formulas that read the same on Tensors and on NumPy arrays. When nothing
    records this pass (no `create_graph`, no `compile` tracing, no anomaly mode), they run on
    the plain arrays, and NumPy evaluates each formula directly; otherwise on the Tensors, so
    that the pass is recorded like any other. Both give the same bits: an operation on Tensors
    runs the very NumPy expression it would run on arrays.
    """
    given: set[int] = set()  # the arrays handed out as gradients: see `_deliver`
    if root._ctx is None:
        _deliver(root, seed, wanted, given)
        return
    mode = _mode
    watched = mode.watched  # anomaly mode or a tracer: each rule is reported to them
    on_arrays = not create_graph and not watched
    grads: dict[Function, Any] = {root._ctx: seed._array if on_arrays else seed}
    previous = mode.grad_enabled, mode.arrays
    mode.grad_enabled = create_graph
    mode.arrays = on_arrays
    released: list[list[np.ndarray]] = []  # the locks of the operations backward has run through
    try:
        order = _topological_order(root._ctx)
        through = None  # every operation, or (for `grad`) those on a path to a wanted tensor
        if wanted:
            through = _leading_to(order, wanted)
            order = [fn for fn in order if fn in through or _made(fn) in wanted]
        for fn in reversed(order):
            try:
                g = grads.pop(fn)
            except KeyError:  # every rule that read its output gave None: no gradient flows here
                continue
            if fn.freed:
                raise RuntimeError(
                    f"backward through {fn.op} a second time: its graph was released by the "
                    "first backward; pass retain_graph=True to that call to keep it"
                )
            if watched or fn.retains or wanted:
                out = fn.out()
                if watched:
                    if mode.tracer is not None:
                        mode.tracer.gradient(out, g)  # `compile` names the gradient after it
                    mode.rule = fn.op  # anomaly messages name the rule running
                if wanted and out in wanted:
                    _deliver(out, g, wanted, given)
                if fn.retains:  # into `.grad`, under `grad()` too (as PyTorch)
                    _deliver(out, g, None, given)
                if through is not None and fn not in through:
                    continue  # it made a wanted tensor, and no gradient wanted flows below it
            parents = fn.parents
            if on_arrays:
                z, inputs = fn.z, fn.arrays
            else:
                z, inputs = fn.out(), parents
            try:
                if fn.vjps:  # one rule per input, run only for the inputs that need it
                    input_grads = [
                        rule(fn, g, z, *inputs) if need else None
                        for rule, need in zip(fn.vjps, fn.needs_grad)
                    ]
                else:
                    input_grads = fn.backward(g, z, *inputs)
            except AttributeError as e:
                if not on_arrays:
                    raise
                raise TypeError(
                    f"the rule of {fn.op} ran on NumPy arrays (a backward that records nothing) "
                    f"and used what only a Tensor has ({e}); write rules with operators and the "
                    "engine's functions, which take either: exp(a), not a.exp()"
                ) from e
            if watched:
                mode.rule = None
            for t, x, tg, need in zip(parents, inputs, input_grads, fn.needs_grad):
                if not need or tg is None:  # None: this input has no derivative
                    continue
                if tg.shape != x.shape:
                    tg = unbroadcast(tg, x.shape, fn)
                if watched and mode.anomaly:
                    _check_finite(
                        fn.op,
                        parents,
                        tg._array,
                        f"gradient for {_describe(t)}",
                        f"backward (rule of {fn.op})",
                    )
                c = t._ctx
                if c is None:
                    _deliver(t, tg, wanted, given)
                else:
                    previous_grad = grads.get(c)
                    grads[c] = tg if previous_grad is None else previous_grad + tg
            if not retain_graph:  # backward has run through fn: its inputs may change now
                fn.freed = True
                if fn.locked:
                    released.append(fn.locked)
                    del _unlocking[id(fn.out)]  # its output's death need not unlock anything
                    fn.out = None
    finally:
        mode.grad_enabled, mode.arrays = previous
        mode.rule = None
        if released:
            _unlock(*released)


def _deliver(
    t: Tensor, g: Any, wanted: dict[Tensor, Tensor | None] | None, given: set[int]
) -> None:
    """Add `g` (a Tensor, or an array from a walk on arrays) to the gradient kept for `t`: its
    `.grad`, or its entry in `wanted`. An array that may share memory (one already handed out, as
    `a + b` passes g to both; a view, as transpose's rule gives; a read-only broadcast) is copied
    first, so that every gradient is its own writeable array, as in PyTorch."""
    if t._array.dtype.kind == "b":
        raise TypeError(
            f"backward: {_describe(t)} is a mask (booleans), which has no gradient; "
            "it cannot require grad"
        )
    array = g._array if type(g) is Tensor else np.asarray(g)
    if (
        (id(array) in given or array.base is not None or not array.flags.writeable)
        and not (type(g) is Tensor and g.requires_grad)
        and _mode.tracer is None
    ):
        array = array.copy()
    if type(g) is not Tensor or g._array is not array:
        g = Tensor._wrap(array)
    given.add(id(array))
    if wanted is None:
        with _adding:  # several threads may back-propagate into one shared leaf
            held = grad_of(t, "backward")
            if held is not None and held.shape != g.shape:
                raise ShapeError(
                    f"backward: {_describe(t)} already holds a gradient of shape "
                    f"{held.shape}, which a new one of shape {g.shape} cannot add to "
                    "(was its data replaced?); set its .grad to None first"
                )
            if held is not None and held.dtype != g.dtype:
                raise TypeError(
                    f"backward: {_describe(t)} already holds a gradient of dtype {held.dtype}, "
                    f"which a new one of dtype {g.dtype} cannot add to; set its .grad to None first"
                )
            t.grad = g if held is None else _plus(held, g)
    elif t in wanted:
        previous = wanted[t]
        wanted[t] = g if previous is None else _plus(previous, g)


def grad_of(t: Tensor, caller: str) -> Tensor | None:
    """`t.grad`, refusing what is not a Tensor (an array set by hand), which PyTorch refuses at
    the assignment already."""
    held = t.grad
    if held is not None and type(held) is not Tensor:
        raise TypeError(
            f"{caller}: .grad of {_describe(t)} is a {type(held).__name__}, not a Tensor; set it "
            "to a Tensor of its shape and dtype, or to None"
        )
    return held


def _plus(held: Tensor, g: Tensor) -> Tensor:
    """held + g, as a Tensor: recorded when the walk records, else added on the arrays."""
    if _mode.arrays:
        return Tensor._wrap(np.asarray(held._array + g._array))
    return held + g


def grad(
    output: Tensor,
    inputs: Tensor | Iterable[Tensor],
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """d(output)/d(input) for each input, returned rather than accumulated into `.grad`.

    As `torch.autograd.grad`: `inputs` is one tensor or several (any iterable), and the result
    is always a list; with `create_graph=True` the results can be differentiated again, which
    is how a Hessian-vector product is computed. An input that `output` does not depend on gets
    a gradient of zeros. No leaf's `.grad` changes; an intermediate on the way that called
    `retain_grad()` gets its gradient in `.grad`, as in PyTorch.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not inputs:
        raise ValueError("grad: no inputs; name the tensors to differentiate with respect to")
    if not output.requires_grad:
        raise RuntimeError(f"grad: {_describe(output)} does not require grad")
    for t in inputs:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs must be Tensors, got {type(t).__name__}")
        if t._array.dtype.kind == "b":
            raise TypeError(f"grad: {_describe(t)} is a mask (booleans), which has no gradient")
    wanted: dict[Tensor, Tensor | None] = {t: None for t in inputs}
    if retain_graph is None:
        retain_graph = create_graph
    _backprop(
        output, _seed(output, gradient, "grad", create_graph), retain_graph, create_graph, wanted
    )
    return [
        Tensor._wrap(np.zeros(t.shape, t.dtype)) if wanted[t] is None else wanted[t] for t in inputs
    ]


# ----- helpers for the operators


def _value(x: Any) -> Any:
    return x._array if isinstance(x, Tensor) else x


def as_array(x: Any) -> np.ndarray:
    """The values of a Tensor, taken out on purpose (without its history), or of anything NumPy
    reads as an array; for code that works on arrays beside the engine (saving, comparing)."""
    return np.asarray(_value(x))


def _operand(x: Any, like: Tensor, op: str) -> Tensor:
    """`x` as a Tensor beside `like`: numbers and arrays take `like`'s dtype (beside a mask,
    float64 unless they are booleans too)."""
    if isinstance(x, Tensor):
        a, b = x._array.dtype, like._array.dtype
        if a is not b and a != b and a.kind != "b" and b.kind != "b":
            raise TypeError(f"{op}: dtypes {b} and {a} differ; convert one with .astype()")
        return x
    given = np.asarray(x)
    if given.dtype.kind not in "biuf":
        raise TypeError(
            f"{op}: cannot combine {_describe(like)} with {type(x).__name__} "
            f"(NumPy reads it as {given.dtype})"
        )
    dtype = like._array.dtype
    if dtype.kind == "b" and given.dtype.kind != "b":
        _not_wide(given, op)  # beside a mask the default dtype is no choice of the user's
        dtype = np.dtype(np.float64)
    t = Tensor._wrap(given.astype(dtype, copy=False))
    if _mode.tracer is not None and isinstance(x, np.ndarray):
        _mode.tracer.made(t, x)  # `compile` reads an array argument afresh at every call
    return t


def _mask(t: Tensor, op: str, given: str = "") -> Tensor:
    """`t`, if it is a mask; the logic of `~ & | ^` has no meaning for numbers. `given` names
    what the user wrote, when `t` was made from it."""
    if t._array.dtype.kind != "b":
        raise TypeError(
            f"{op}: works on masks (the booleans a comparison gives), not on "
            f"{given or f'{_describe(t)} of {t.dtype}'}; compare first (x > 0)"
        )
    return t


def _masks(t: Tensor, other: Any, op: str) -> tuple[Tensor, Tensor]:
    """The two operands of a logical operator, both masks (the order does not matter)."""
    given = ""
    if not isinstance(other, Tensor):
        shape, kind = np.shape(other), type(other).__name__
        given = f"{kind} of shape {shape}" if shape else f"{other!r} ({kind})"
    return _mask(t, op), _mask(_operand(other, t, op), op, given)


def _numbers_beside(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """A mask beside a float tensor as 0.0 and 1.0 in that tensor's dtype (a recorded cast), for
    the operations whose rules compute with an operand's values (pow, maximum, minimum): on the
    mask itself they would compute in booleans, integers or float64, not in the float's dtype."""
    if a._array.dtype.kind == "b" and b._array.dtype.kind == "f":
        return Cast(b._array.dtype)(a), b
    if b._array.dtype.kind == "b" and a._array.dtype.kind == "f":
        return a, Cast(a._array.dtype)(b)
    return a, b


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
    a_shape, b_shape = a._array.shape, b._array.shape
    if not a_shape or not b_shape:
        raise ShapeError(
            f"matmul: needs operands of at least one dimension, got {_describe(a)} and "
            f"{_describe(b)}; use * to scale"
        )
    inner_a, inner_b = a_shape[-1], b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if inner_a != inner_b:
        raise ShapeError(
            f"matmul: cannot multiply {_describe(a)} by {_describe(b)}: inner dimensions "
            f"{inner_a} and {inner_b} differ"
        )
    if len(a_shape) >= 2 and len(b_shape) >= 2:
        return MatMul()(a, b)
    out = MatMul()(a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b)
    rows = out.shape[-2:-1] if a.ndim > 1 else ()
    columns = out.shape[-1:] if b.ndim > 1 else ()
    return out.reshape(out.shape[:-2] + rows + columns)


# ----- helpers for the operations a learner reaches for next


# ----- functions: the rules are written with these (and operators), which take Tensors or, in a
# backward walk on plain arrays, NumPy arrays


def exp(x: Tensor) -> Tensor:
    return Exp()(x)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b; on two plain matrices it is `np.dot`, as `MatMul.forward` computes it (faster than
    the `@` of NumPy arrays on small matrices and outer products)."""
    if _mode.arrays:
        return MatMul()(a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        _expect_tensor(a, "matmul")
    return a @ b


def _expect_tensor(x: Any, op: str) -> None:
    """A clear error for a function of the engine given something other than a Tensor (outside
    the walk on arrays, where arrays are what it gets)."""
    if not _mode.arrays and not isinstance(x, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {type(x).__name__}")


def log(x: Tensor) -> Tensor:
    return Log()(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(x)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1, with gradient 0."""
    return Sign()(x)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return BroadcastTo(_ints(shape, "broadcast_to"))(x)


def flip(x: Tensor, axis: int) -> Tensor:
    """The elements along `axis` in reverse order."""
    _expect_tensor(x, "flip")
    (a,) = _axes(axis, x.ndim, "flip")
    return x[(slice(None),) * a + (slice(None, None, -1),)]


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """x where `condition` holds, y elsewhere, broadcasting as `np.where`; the condition (a
    boolean tensor or array, or anything nonzero-is-true) gets no gradient."""
    if _mode.arrays:
        return Where()(condition, x, y)
    like = next((t for t in (x, y) if isinstance(t, Tensor)), None)
    if like is None:  # the default dtype, as `Tensor(x)`
        for v in (x, y):
            _not_wide(np.asarray(v), "where")
        like = Tensor._wrap(np.zeros((), np.float64))
    if isinstance(condition, Tensor):
        c = condition if condition.dtype == np.bool_ else condition != 0
    else:
        c = Tensor._wrap(np.asarray(condition).astype(bool, copy=False))
    return Where()(c, _operand(x, like, "where"), _operand(y, like, "where"))


def logsumexp(x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
    """log(Σ exp(x)), computed stably by shifting by the maximum (a constant: it cancels)."""
    return _logsumexp(x, axis, keepdims, "logsumexp")


def _logsumexp(x: Tensor, axis: Any, keepdims: bool, op: str) -> Tensor:
    """`logsumexp`; `op` is the function called, which a mistake names."""
    _expect_tensor(x, op)
    if _scalar_axis(x, axis):
        return _logsumexp(x.reshape(1), 0, keepdims, op).reshape(())
    axes = _axes(axis, x.ndim, op)
    shift = _shift(x, axes)
    total = log(exp(x - shift).sum(axes, keepdims=True)) + shift
    if keepdims:
        return total
    return total.reshape([n for i, n in enumerate(total.shape) if not (axes is None or i in axes)])


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along `axis`, shifted by the maximum (a constant: it cancels)."""
    _expect_tensor(x, "softmax")
    if _scalar_axis(x, axis):
        return softmax(x.reshape(1), 0).reshape(())
    axes = _axes(axis, x.ndim, "softmax")
    e = exp(x - _shift(x, axes))
    return e / e.sum(axes, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x − logsumexp(x) along `axis`: the log-probabilities, without overflow."""
    return x - _logsumexp(x, axis, True, "log_softmax")


def _scalar_axis(x: Tensor, axis: Any) -> bool:
    """Whether `axis` is the one axis PyTorch lets a 0-d tensor have in softmax and logsumexp (0
    or -1, alone or as a one-element list): the scalar is then a single class."""
    if isinstance(axis, (tuple, list)) and len(axis) == 1:
        axis = axis[0]
    return (
        x.ndim == 0
        and isinstance(axis, (int, np.integer))
        and not isinstance(axis, bool)
        and axis in (0, -1)
    )


def _shift(x: Tensor, axes: tuple[int, ...] | None) -> Tensor:
    """The maximum over `axes` (kept), as a constant; 0 where it is infinite, or where there is
    nothing to take the maximum of."""
    if x.size == 0:
        kept = [1 if axes is None or i in axes else n for i, n in enumerate(x.shape)]
        return Tensor._wrap(np.zeros(kept, x.dtype))
    with no_grad():
        shift = Max(axes, True)(Detach()(x))
    return where(shift == -np.inf, 0.0, where(shift == np.inf, 0.0, shift))


def concatenate(tensors: Sequence[Any], axis: int | None = 0) -> Tensor:
    """The tensors joined along an existing axis, as `np.concatenate` (axis None: flattened)."""
    parts = _joined(tensors, "concatenate")
    if axis is None:
        parts = [t.ravel() for t in parts]
        axis = 0
    if any(t.ndim == 0 for t in parts):
        raise ShapeError("concatenate: 0-d tensors cannot be joined along an axis; use stack")
    (a,) = _axes(axis, parts[0].ndim, "concatenate")
    return Concatenate(a)(*parts)


cat = concatenate


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """The tensors (all of one shape) joined along a new axis, as `np.stack`."""
    parts = _joined(tensors, "stack")
    shapes = {t.shape for t in parts}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors must have one shape, got {sorted(shapes)}")
    return concatenate([t.expand_dims(axis) for t in parts], axis)


def _joined(tensors: Sequence[Any], op: str) -> list[Tensor]:
    if isinstance(tensors, (Tensor, np.ndarray)) or not len(tensors):
        raise TypeError(f"{op}: expects a non-empty sequence of tensors")
    given = [t for t in tensors if isinstance(t, Tensor)]
    # the first float tensor sets the dtype (beside a mask, any float would pass the check)
    like = next((t for t in given if t._array.dtype.kind == "f"), given[0] if given else None)
    if like is None:  # the default dtype, as `Tensor(x)`
        for t in tensors:
            _not_wide(np.asarray(t), op)
        like = Tensor._wrap(np.asarray(tensors[0], dtype=np.float64))
    return [_operand(t, like, op) for t in tensors]


def _index(index: Any) -> tuple:
    """A NumPy index as a tuple, with tensors and lists made arrays. Integer arrays are checked
    here; boolean tensors (such as `x > 0`) are masks."""
    items = index if isinstance(index, tuple) else (index,)
    key = []
    for item in items:
        if isinstance(item, Tensor):
            if item.requires_grad:
                raise TypeError(f"getitem: an index cannot require grad ({_describe(item)})")
            item._no_trace("indexing with a tensor")  # its values become part of the operation
            item = item._array
        elif isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray):
            item = item.copy()  # the operation keeps it: a later edit must not move the gradient
            if item.dtype.kind not in "biu":
                raise IndexError(
                    f"getitem: index arrays must be integers or booleans, not {item.dtype}"
                )
        elif not (
            item is None
            or item is Ellipsis
            or isinstance(item, slice)
            or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))
        ):
            raise IndexError(
                f"getitem: {item!r} ({type(item).__name__}) is not an index; use integers, "
                "slices, None, ..., or integer or boolean arrays"
            )
        key.append(item)
    if any(isinstance(i, np.ndarray) and i.dtype.kind != "b" for i in key):
        # With integer arrays the gradient is accumulated by np.add.at, which needs masks as
        # the integer positions they stand for.
        expanded: list[Any] = []
        for i in key:
            expanded.extend(
                np.nonzero(i) if isinstance(i, np.ndarray) and i.dtype.kind == "b" else [i]
            )
        key = expanded
    return tuple(key)


def _diagonal(shape: tuple[int, ...], offset: int) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, columns) positions of diagonal `offset` of a matrix of `shape`."""
    rows, columns = shape
    start_row, start_column = max(-offset, 0), max(offset, 0)
    n = max(0, min(rows - start_row, columns - start_column))
    return np.arange(start_row, start_row + n), np.arange(start_column, start_column + n)


def _number(value: Any, op: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: expects a number, got {value!r} ({type(value).__name__})")
    return float(value)


def _is_zero(value: Any) -> bool:
    """The number 0 (a Python or NumPy number, or a 0-d array), as in `np.maximum(0, Z)`."""
    if isinstance(value, Tensor) or isinstance(value, bool):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf" and value == 0
    return isinstance(value, numbers.Real) and value == 0


# The derivative rules refer back to Tensor, so they are imported last.
from tinygrad_fnn import numpy_dispatch  # noqa: E402  (it builds on everything above)
from tinygrad_fnn.ops import (  # noqa: E402
    Abs,
    Add,
    BroadcastTo,
    Cast,
    Clip,
    Concatenate,
    Cumsum,
    Detach,
    Div,
    Equal,
    Erf,
    Exp,
    Getitem,
    Greater,
    GreaterEqual,
    Hardswish,
    Less,
    LessEqual,
    Log,
    LogicalAnd,
    LogicalNot,
    LogicalOr,
    LogicalXor,
    MatMul,
    Max,
    Maximum,
    Min,
    Minimum,
    Mul,
    Neg,
    NotEqual,
    Pad,
    Pow,
    PowConst,
    Prod,
    ReLU,
    ReLU6,
    Reshape,
    ScatterAdd,
    Sigmoid,
    Sign,
    Softplus,
    Sqrt,
    Sub,
    Sum,
    Tanh,
    Transpose,
    Where,
)
