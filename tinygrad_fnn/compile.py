"""`compile`: trace one training step, then replay it as generated straight-line NumPy code.

`step = compile(fn)` makes `step(*args)` behave as `cost = fn(*args); cost.backward()`: it
returns the cost and leaves the same gradients in `.grad`, bit for bit. The first call with a
new signature runs `fn` and `backward` eagerly (that call IS the eager result) while a tracer
records every operation, forward and backward; the record is then lowered, one line per
operation, to a Python function over NumPy (`step.source`): outputs go into buffers allocated
once (`out=`), a buffer is reused once its value is dead, views are built once, constants are
folded, and each operation performs the NumPy calls its own `forward` makes (or calls that give
the same bits for every value: a one-element operand as a 0-d view, -|x| as one `copysign`, a
0-d result as the NumPy scalar its call returns), so the results are the eager engine's to the
last bit. Later calls with the same signature run that function: no Tensors, no graph, no
backward walk.

The signature (a new one traces again, as `jax.jit` does): the shapes, dtypes and strides of the
Tensor and array arguments (dicts, lists and tuples of them are walked), the values of the other
arguments and the keys of those dicts, each with its type (0, 0.0 and False are equal keys, yet
`isinstance(k, bool)` tells them apart) and the sign of a zero (1 / -0.0 is -inf), the identity
of every Tensor the function captures (see below), the shape, dtype and strides of its data
(`.data = ...` may replace it, or `.data.shape = ...` change it in place) and whether it
requires grad, the shape and dtype of the `.grad` a parameter has already (backward accumulates
into it; one that cannot take the sum is eager's error; a `.grad` that is not a Tensor is
refused, as PyTorch does), and the grad mode. Under `detect_anomaly()` the step runs eagerly, so
that an anomaly names its operation. A call like the last one does not build the key: one
generated function (`_FastPath`) holds a guard that reads the same things and compares each with
what it was (under a microsecond), the program's lines, the handing over of the gradients and,
with `compile(fn, lr=...)`, the update; anything else takes the general path. A program's
first replay is held to the plain function run once more (`Compiled._again`): a function that
reads what no key can see (random draws, the clock) gives another cost there, and is refused.

What the program reads each call, and what it freezes:
- Tensors passed as arguments, or captured through the names the function uses (its closure
  cells, its default arguments if it has some, and the globals it names, and one level into a
  dict, list, tuple
  or object found there), are read afresh each call; replacing one with another Tensor traces
  again. Other values captured so are part of the signature: numbers and strings by value,
  anything else (an array, say) by identity, held so that its id is not reused; an array changed
  in place is a constant, as in `jax.jit`. The arguments a `functools.partial` binds are
  captured values too. A Tensor deeper than one level is not looked at: using one is an error
  while tracing (`TraceError`), since its replacement could not be noticed. Tensors that require
  grad are the parameters: each one must be reachable this way (else tracing stops with an
  error), since a parameter reached otherwise could be replaced without `compile` noticing.
- Everything else the function makes (numbers, `Tensor(np.ones(...))`, random draws) is a
  constant of the program, as in `jax.jit`; and its Python side effects (appending to a list,
  keeping an intermediate Tensor, printing) happen when it traces, not at the calls after.
- Anything that would freeze a value computed from traced data into the program is an error
  while tracing (`TraceError`): `.item()`, `float()`, `bool()`, `.numpy()`, `np.asarray()` of a
  traced tensor, NumPy calls on `.data` of traced tensors outside a recorded operation
  (including inside a derivative rule: every array operation there must be an operation), and
  an array a rule wraps as a Tensor itself (say, a mask its forward kept).

Storage. Compiling rebinds each parameter's `.data` to a view into one flat array per dtype
(values copied once; rebinding `.data` later is noticed and copied in), so that `step.sgd(lr)`
updates every parameter in two NumPy calls. An array that something else sees (a caller keeps
it, or it is a view of another array) stays the parameter's `.data`, as in eager: its values are
copied into the flat array at each call and the update copied back. Gradients left in `.grad`
are read-only views into a flat gradient array that the next call reuses, unless something still
holds a previous gradient Tensor, its array (`p.grad.data`) or a view of that: then the next
call writes into fresh storage, so no gradient a caller kept is ever overwritten. The cost
returned is a new array at each call. A compiled function is not re-entrant; calls from several
threads are serialised by a lock.
"""

from __future__ import annotations

import builtins
import dis
import functools
import inspect
import itertools
import keyword
import linecache
import math
import re
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_fnn import engine, losses, ops
from tinygrad_fnn.engine import Function, Tensor, _describe, _mode

__all__ = ["Compiled", "TraceError", "compile"]


class TraceError(RuntimeError):
    """Tracing met something that would freeze a data-dependent value into the program."""


# ----- traced arrays: NumPy on them outside a recorded operation is an error


def _inside_operation() -> bool:
    """True when the caller runs under `Function.__call__` (an operation's `forward`)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in _ALLOWED_CODES:
            return True
        frame = frame.f_back
    return False


_ALLOWED_CODES = {Function.__call__.__code__, engine._check_finite.__code__}


def _plain(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, _Traced) else x


def _escape(what: str) -> TraceError:
    return TraceError(
        f"compile: {what} on a traced array (an array the function is given, or a traced "
        "tensor's data), outside a recorded operation: the result would be frozen into the "
        "compiled program. Do that work before the call, or on Tensors (`Tensor(X)` for an "
        "array argument; inside a derivative rule too, every array operation must be an "
        "operation), or take values out after the compiled call"
    )


class _Traced(np.ndarray):
    """The array of a traced tensor while `compile` traces: NumPy calls on it are allowed only
    inside an operation's `forward`, in the thread that traces (`_mode` is per thread: another
    thread that meets the array, its parameters being shared, uses it as a plain array)."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if any(isinstance(x, Tensor) for x in inputs):
            return NotImplemented  # `array * tensor`: the Tensor's dispatch records it
        if _mode.tracer is not None and not _inside_operation():
            raise _escape(f"np.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        return getattr(ufunc, method)(*[_plain(x) for x in inputs], **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if _mode.tracer is not None and not _inside_operation():
            raise _escape(f"np.{func.__name__}")
        return super().__array_function__(func, types, args, kwargs)

    def __getitem__(self, index: Any) -> Any:
        if _mode.tracer is not None and not _inside_operation():
            raise _escape("indexing")
        return super().__getitem__(index)

    def _refuse(self, what: str) -> np.ndarray:
        """The plain array, outside the thread that traces; there, an error."""
        if _mode.tracer is None:
            return self.view(np.ndarray)
        raise _escape(what)

    def __float__(self) -> float:
        return float(self._refuse("float()"))

    def __int__(self) -> int:
        return int(self._refuse("int()"))

    def __bool__(self) -> bool:
        return bool(self._refuse("bool()"))

    def __index__(self) -> int:
        return self._refuse("an index").__index__()

    def item(self, *args: Any) -> Any:
        return self._refuse(".item()").item(*args)

    def tolist(self) -> Any:
        return self._refuse(".tolist()").tolist()


# ----- the tracer: the hooks the engine calls while `_mode.tracer` is set


class _Tracer:
    def __init__(self, name: str, arg_arrays: dict[int, int]) -> None:
        self.name = name
        self.nodes: list[tuple[Function, tuple[Tensor, ...], Tensor]] = []
        self.poisoned: list[tuple[Tensor, np.ndarray]] = []
        self.arg_arrays = arg_arrays  # id(traced view of an array argument) -> its index
        self.made_from: dict[int, int] = {}  # id(Tensor made from an array argument) -> index
        self.keep: list[Tensor] = []  # keeps ids stable while tracing
        self.gradient_of: dict[int, Tensor] = {}  # id(gradient Tensor) -> the tensor it is of
        self.outputs: set[int] = set()  # ids of the recorded operations' results
        self.seen: set[int] = set()  # ids of the leaves operations have read so far
        self.deep: set[int] = set()  # ids of Tensors (and arrays) too deep to key (`_deep_tensors`)

    def poison(self, t: Tensor) -> None:
        data = t._array
        if not isinstance(data, _Traced):
            self.poisoned.append((t, data))
            t._array = data.view(_Traced)

    def record(self, fn: Function, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        rule = _mode.rule
        for t in inputs:
            if t._ctx is not None or id(t) in self.outputs or id(t) in self.seen:
                continue
            if rule is not None and t._array.ndim > 0:
                # made inside a derivative rule from plain NumPy (say, a mask kept by forward)
                raise TraceError(
                    f"compile: the rule of {rule} used an array of shape {t.shape} that no "
                    f"recorded operation computed, while tracing {self.name}; it would be frozen "
                    "into the program. Compute it in the rule with Tensor operations"
                )
            self.seen.add(id(t))
            self.keep.append(t)
        self.nodes.append((fn, inputs, out))
        self.outputs.add(id(out))
        self.poison(out)

    def refuse(self, tensor: Tensor, what: str) -> None:
        raise TraceError(
            f"compile: {what} on {_describe(tensor)} while tracing {self.name}: its value would "
            "be frozen into the compiled program. Keep the computation in Tensor operations, "
            "and read values from what the compiled call returns"
        )

    def too_deep(self, t: Tensor) -> TraceError:
        return TraceError(
            f"compile: {_describe(t)} is reached by {self.name} two or more dict, list, tuple "
            "or object levels deep in what it captures, where its signature does not look: its "
            "data (or its replacement) would be frozen into the program. Keep it at most one "
            "level deep (say, in a dict the function names), or pass it as an argument"
        )

    def made(self, tensor: Tensor, source: Any) -> None:
        if id(source) in self.deep:
            raise self.too_deep(tensor)
        index = self.arg_arrays.get(id(source))
        if index is not None:
            self.made_from[id(tensor)] = index
            self.keep.append(tensor)
            self.poison(tensor)
        elif isinstance(source, _Traced):
            raise TraceError(
                f"compile: Tensor(...) made from the data of a traced tensor, or from NumPy "
                f"work on an array {self.name} is given, while tracing: its values would be "
                "frozen into the program; use the tensor itself (or .detach()), and for an array "
                "argument make it a Tensor first (`Tensor(X).T`, not `X.T`)"
            )

    def gradient(self, of: Tensor, g: Tensor) -> None:
        self.keep.append(g)
        self.gradient_of.setdefault(id(g), of)

    def restore(self) -> None:
        for t, data in reversed(self.poisoned):
            t._array = data
        self.poisoned.clear()


# ----- finding the Tensors a function reads: arguments, closure, globals

_SKIP = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, types.MethodType)


_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"}


def _global_names(code: types.CodeType) -> list[str]:
    """The global names `code` (and the functions it defines) reads or writes; not the names of
    attributes, which share `co_names` with them."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return list(dict.fromkeys(names))


def _walk_argument(x: Any, found: list, parts: list, depth: int = 0) -> None:
    """Append the key of argument `x` to `parts` and its Tensors and arrays to `found`."""
    kind = type(x)
    if kind is Tensor:
        found.append(x)
        data = x._array
        rg = x.requires_grad
        grad = _grad_key(x) if rg else x.grad is None
        parts.append((id(x) if rg else None, data.shape, data.dtype, data.strides, grad))
    elif kind is np.ndarray:
        found.append(x)
        parts.append(("array", x.shape, x.dtype, x.strides))
    elif kind in (dict, list, tuple) and depth < 4:
        items = x.items() if kind is dict else enumerate(x)
        parts.append((kind, len(x)))
        for k, v in items:
            if kind is dict:
                parts.append(_typed(k))
            _walk_argument(v, found, parts, depth + 1)
    else:
        try:
            hash(x)
        except TypeError:
            raise TypeError(
                f"compile: an argument of type {kind.__name__} is neither a Tensor, an array, a "
                "dict, list or tuple of them, nor a hashable value that could key the program"
            ) from None
        parts.append(_typed(x))


def _typed(x: Any) -> tuple:
    """A hashable value as a part of the key: with its type and a zero's sign, and so for the
    items of a tuple or frozenset. Python finds 0, 0.0, False and -0.0 equal (one dict slot),
    yet the function may tell them apart (`isinstance(k, bool)`, 1 / k)."""
    kind = type(x)
    if kind is tuple:
        return (kind, tuple(map(_typed, x)))
    if kind is frozenset:
        return (kind, frozenset(map(_typed, x)))
    return (kind, x, _zero_sign(x))


def _zero_sign(x: Any) -> str | None:
    """For a zero float, its repr: -0.0 == 0.0 and they hash alike, yet 1 / x tells them apart
    (as a nan's repr tells nothing: nan != nan keys a new program unless it is one object)."""
    if isinstance(x, (float, complex, np.inexact)) and x == 0:
        return repr(x)
    return None


_BUILTINS = set(dir(builtins))


def _grad_key(p: Tensor) -> tuple | None:
    """A parameter's `.grad` in the key: None, or what decides whether backward can add to it
    (set by hand, it may have another shape or dtype: eager then raises)."""
    g = p.grad
    if g is None:
        return None
    return (type(g), getattr(g, "shape", None), getattr(g, "dtype", None))


def _captured_key(x: Tensor) -> tuple:
    """A captured Tensor's part of the key: its identity, the layout of its data (which
    `.data = ...` may replace by an array of another shape or dtype), whether it requires grad
    and, for a parameter, its `.grad`."""
    a = x._array
    rg = x.requires_grad
    return (id(x), a.shape, a.dtype, a.strides, rg, _grad_key(x) if rg else None)


_SCALARS = (int, float, complex, bool, str, bytes, type(None))


def _items(x: Any) -> Any:
    """What the signature walks inside a captured value: a container's items, an object's
    attributes."""
    kind = type(x)
    if kind is dict:
        return x.values()
    if kind is list or kind is tuple:
        return x
    if isinstance(x, _SKIP) or kind is Tensor or not hasattr(x, "__dict__"):
        return ()
    return vars(x).values()


def _deep_tensors(roots: list, found: list, depth: int = 4, budget: int = 10_000) -> set[int]:
    """Ids of the Tensors (and of their arrays) two or more levels inside captured values,
    where the signature does not look, up to `depth` levels and `budget` values: tracing
    refuses to freeze one into the program as a constant."""
    known = {id(t) for t in found}
    deep: set[int] = set()
    seen: set[int] = set()
    stack = [(v, 1) for root in roots for v in _items(root)]
    while stack and budget > 0:
        x, level = stack.pop()
        budget -= 1
        if id(x) in seen:
            continue
        seen.add(id(x))
        if type(x) is Tensor:
            if level > 1 and id(x) not in known:
                deep.update((id(x), id(x._array)))
        elif level < depth:
            stack.extend((v, level + 1) for v in _items(x))
    return deep


def _is_scalar(x: Any) -> bool:
    return type(x) in _SCALARS or isinstance(x, np.generic)


class _Held:
    """A key part that compares by identity and holds its object, so that the id cannot be
    reused by another object while the key lives (an id alone was: a global rebound to a new
    float could get the address of one a program was traced with, and replay that program)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return type(other) is _Held and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _value_key(x: Any) -> Any:
    """A captured value that is neither a Tensor nor walked: a number or string by value (with
    a zero's sign), anything else by identity."""
    if _is_scalar(x):
        return _typed(x)
    return _Held(x)


def _walk_captured(x: Any, found: list, parts: list) -> None:
    """Key a captured value: a Tensor by `_captured_key`; a dict, list, tuple or plain object by
    what is one level inside (Tensors, numbers and strings by value, anything else by
    identity), and a dict's keys or an object's attribute names (the function may read them);
    anything else by `_value_key`."""
    kind = type(x)
    if kind is Tensor:
        found.append(x)
        parts.append(_captured_key(x))
        return
    if kind is dict:
        values: Any = x.values()
        parts.append(tuple(map(_typed, x)))
    elif kind is list or kind is tuple:
        values = x
    elif isinstance(x, _SKIP) or not hasattr(x, "__dict__"):
        parts.append(_value_key(x))
        return
    else:
        values = vars(x).values()
        parts.append(tuple(map(_typed, vars(x))))
    parts.append(len(values))
    for v in values:
        if type(v) is Tensor:
            found.append(v)
            parts.append(_captured_key(v))
        else:
            parts.append(_value_key(v))


# ----- lowering: one line of NumPy per operation


def _forward_body(cls: type) -> str:
    source = inspect.getsource(cls.__dict__["forward"])
    return " ".join(line.strip() for line in source.splitlines()[1:] if line.strip())


# An emitter writes the lines of one operation: `emit(fn, operands, out, h)`, where `h.tmp()`
# names a scratch buffer of the first operand's shape and `h.k(number)` names a 0-d constant of
# the operands' dtype (NumPy reads a Python number into that dtype, and a 0-d array is faster).


def _unary(ufunc: str) -> Callable[..., list[str]]:
    return lambda fn, a, o, h: h.result(o, f"{ufunc}({a[0]})")


def _binary(ufunc: str) -> Callable[..., list[str]]:
    return lambda fn, a, o, h: h.result(o, f"{ufunc}({a[0]}, {a[1]})")


def _reduce(ufunc: str) -> Callable[..., list[str]]:
    return lambda fn, a, o, h: h.result(
        o, f"{ufunc}.reduce({a[0]}, axis={fn.axes!r}, keepdims={fn.keepdims!r})"
    )


def _relu(fn: Function, a: list[str], o: str, h: Any) -> list[str]:
    return [f"maximum({a[0]}, {h.k(0)}, out={o})"]


def _matmul(fn: Function, a: list[str], o: str, h: Any) -> list[str]:
    # np.dot writes into `out` only when it is C-contiguous of the result's dtype; the buffers
    # are allocated in the order of the traced result, which np.dot makes C-contiguous
    x, y = h.operands
    call = "dot" if len(x.shape) == 2 and len(y.shape) == 2 else "matmul"
    return [f"{call}({a[0]}, {a[1]}, out={o})"]


def _sigmoid(fn: Function, a: list[str], o: str, h: Any) -> list[str]:
    # np.errstate(over="ignore") as the forward's, written out: a `with` costs 0.5 µs more
    return [
        "overflow = ignore_overflow()",
        "try:",
        f"    negative({a[0]}, out={o})",
        f"    exp({o}, out={o})",
        f"    add({h.k(1)}, {o}, out={o})",
        f"    divide({h.k(1)}, {o}, out={o})",
        "finally:",
        "    restore_errstate(overflow)",
    ]


def _bce(fn: Function, a: list[str], o: str, h: Any) -> list[str]:
    x, y = a
    t1, t2 = h.tmp(), h.tmp()
    return [
        f"maximum({x}, {h.k(0)}, out={t1})",
        f"multiply({x}, {y}, out={t2})",
        f"subtract({t1}, {t2}, out={t1})",
        # -|x| in one call: copysign sets the sign bit as negative(absolute(x)) does, for every
        # value (±0, ±inf and nan included)
        f"copysign({x}, {h.k(-1)}, out={t2})",
        f"exp({t2}, out={t2})",
        f"log1p({t2}, out={t2})",
        f"add({t1}, {t2}, out={t1})",
    ] + (
        # as the forward: a NumPy scalar divided by the int, made a 0-d array; a 0-d `out=` costs
        # more than the scalar arithmetic, and the result is a new array each call
        [f"{o} = asarray(add.reduce({t1}, axis=None) / {h.size})"]
        if h.assign()
        else [f"add.reduce({t1}, axis=None, out={o})", f"divide({o}, {h.k(h.size)}, out={o})"]
    )


# op class -> (the body of its `forward` this lowering copies, emitter, may write over an input,
# temporaries of the first input's shape). An op whose `forward` reads differently (it was
# edited) falls back to calling that `forward`, so the table can never drift from the engine.
_TABLE: dict[type, tuple[str, Callable[..., list[str]], bool, int]] = {
    ops.Add: ("return a + b", _binary("add"), True, 0),
    ops.Sub: ("return a - b", _binary("subtract"), True, 0),
    ops.Mul: ("return a * b", _binary("multiply"), True, 0),
    ops.Div: ("return a / b", _binary("divide"), True, 0),
    ops.Neg: ("return -a", _unary("negative"), True, 0),
    ops.Exp: ("return np.exp(a)", _unary("exp"), True, 0),
    ops.Log: ("return np.log(a)", _unary("log"), True, 0),
    ops.Tanh: ("return np.tanh(a)", _unary("tanh"), True, 0),
    ops.ReLU: ("return np.maximum(a, 0)", _relu, True, 0),
    ops.Sigmoid: (
        'with np.errstate(over="ignore"): return 1 / (1 + np.exp(-a))',
        _sigmoid,
        False,
        0,
    ),
    ops.MatMul: (
        "if a.ndim == 2 and b.ndim == 2: return np.dot(a, b) return np.matmul(a, b)",
        _matmul,
        False,
        0,
    ),
    ops.Sum: (
        "return np.add.reduce(a, axis=self.axes, keepdims=self.keepdims)",
        _reduce("add"),
        False,
        0,
    ),
    ops.Max: (
        "return np.max(a, axis=self.axes, keepdims=self.keepdims)",
        _reduce("maximum"),
        False,
        0,
    ),
    ops.Cast: (
        "return a.astype(self.dtype)",
        lambda fn, a, o, h: [f'copyto({o}, {a[0]}, casting="unsafe")'],
        False,
        0,
    ),
    ops.Less: ("return a < b", _binary("less"), True, 0),
    ops.LessEqual: ("return a <= b", _binary("less_equal"), True, 0),
    ops.Greater: ("return a > b", _binary("greater"), True, 0),
    ops.GreaterEqual: ("return a >= b", _binary("greater_equal"), True, 0),
    ops.Equal: ("return a == b", _binary("equal"), True, 0),
    ops.NotEqual: ("return a != b", _binary("not_equal"), True, 0),
    losses.BCEWithLogits: (
        "loss = np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a))) "
        "return np.asarray(np.add.reduce(loss, axis=None) / loss.size, dtype=a.dtype)",
        _bce,
        False,
        2,
    ),
}
_ELEMENTWISE = {  # the binary operations above that work element by element
    ops.Add,
    ops.Sub,
    ops.Mul,
    ops.Div,
    ops.Less,
    ops.LessEqual,
    ops.Greater,
    ops.GreaterEqual,
    ops.Equal,
    ops.NotEqual,
}
_VIEWS = {
    ops.Reshape: ("return a.reshape(self.shape)", lambda fn, a: f"{a}.reshape({fn.shape!r})"),
    ops.Transpose: ("return a.transpose(self.axes)", lambda fn, a: f"{a}.transpose({fn.axes!r})"),
    ops.BroadcastTo: (
        "return np.broadcast_to(a, self.shape)",
        lambda fn, a: f"broadcast_to({a}, {fn.shape!r})",
    ),
}


# These forwards combine arrays with Python numbers; the lowering passes 0-d arrays of the
# operand's dtype instead, which gives the same result type only under NEP 50 (NumPy 2).
_PYTHON_NUMBERS = {ops.ReLU, ops.Sigmoid, losses.BCEWithLogits}
_NEP50 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


@functools.cache
def _lowering(cls: type) -> tuple[str, Any] | None:
    """('op', entry) or ('view', entry) when `cls`'s forward is the one the table copies."""
    if cls in _PYTHON_NUMBERS and not _NEP50:
        return None
    for kind, table in (("op", _TABLE), ("view", _VIEWS)):
        entry = table.get(cls)
        if entry is not None:
            try:
                same = "forward" in cls.__dict__ and _forward_body(cls) == entry[0]
            except (OSError, TypeError):
                same = False
            return (kind, entry) if same else None
    return None


def _ignore_overflow() -> Any:
    """Enter `np.errstate(over="ignore")` at a third of its cost (the error state is made once
    per surrounding state and set through NumPy's context variable); returns what
    `_restore_errstate` takes to leave it."""
    if _EXTOBJ is None:  # pragma: no cover - NumPy 1.x: the public, slower way
        state = np.errstate(over="ignore")
        state.__enter__()
        return state
    return _EXTOBJ.set(_overflow_ignoring())


def _overflow_ignoring() -> Any:
    """NumPy's current error state with overflow ignored, made once per state."""
    current = _EXTOBJ.get()
    extobj = _OVERFLOW_IGNORED.get(current)
    if extobj is None:
        if len(_OVERFLOW_IGNORED) > 8:  # error states come and go (an errstate block each call)
            _OVERFLOW_IGNORED.clear()
        extobj = _OVERFLOW_IGNORED[current] = _make_extobj(over="ignore")
    return extobj


def _restore_errstate(token: Any) -> None:
    if _EXTOBJ is None:  # pragma: no cover
        token.__exit__(None, None, None)
    else:
        _EXTOBJ.reset(token)


_OVERFLOW_IGNORED: dict[Any, Any] = {}  # NumPy's error state -> the same, ignoring overflow

# The two lines `_sigmoid` writes, as the fast path runs them: the same context variable set and
# reset, with no Python frame in between when the state was seen before.
_ERRSTATE_CALLS = {
    "overflow = ignore_overflow()": (
        "overflow = __errstate_set(__overflow_ignored.get(__errstate_get()) "
        "or __overflow_ignoring())"
    ),
    "restore_errstate(overflow)": "__errstate_reset(overflow)",
}


try:  # NumPy 2: the error state lives in a context variable
    from numpy._core._ufunc_config import _extobj_contextvar as _EXTOBJ
    from numpy._core._ufunc_config import _make_extobj
except ImportError:  # pragma: no cover
    _EXTOBJ = None


_NUMPY_NAMES = {
    name: getattr(np, name)
    for name in (
        "add subtract multiply divide negative exp log tanh maximum matmul dot copyto copysign "
        "log1p less less_equal greater greater_equal equal not_equal broadcast_to asarray"
    ).split()
}


class _Value:
    """One array of the program: where it comes from and the name it has in the source."""

    __slots__ = ("name", "kind", "shape", "dtype", "order", "literal", "array", "base", "last")

    def __init__(self, kind: str, data: np.ndarray) -> None:
        self.kind = kind  # input, param, const, buf, view, fresh, alias
        self.shape = data.shape
        self.dtype = data.dtype
        self.order = "C" if data.flags.c_contiguous else "F" if data.flags.f_contiguous else None
        self.name = ""
        self.literal: str | None = None  # for an input: the expression that reads it
        self.array: np.ndarray | None = None  # a constant or a buffer
        self.base: list[_Value] = []  # values this one shares memory with
        self.last = -1

    @property
    def stable(self) -> bool:
        """Whether the array is the same object at every call (so views of it can be built once)."""
        if self.kind in ("view", "alias"):
            return all(b.stable for b in self.base)
        return self.kind in ("param", "const", "buf")


class _Line:
    """One traced operation and what it becomes in the program."""

    __slots__ = ("kind", "fn", "ins", "v", "entry", "out")

    def __init__(self, kind: str, fn: Function, ins: list, v: _Value, entry: Any, out: Tensor):
        self.kind = kind  # const, alias, view, fresh (its own forward) or buf (a table lowering)
        self.fn, self.ins, self.v, self.entry, self.out = fn, ins, v, entry, out


class _FlatStore:
    """Parameters of one dtype as views into one flat array, and their gradients likewise. The
    program reads its own views (`views`); each parameter's `.data` is another view of the same
    memory (`handed`), so that what a caller does to that array object in place (`.shape = `)
    cannot reach the program's."""

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        dtype = params[0].dtype
        sizes = [p.size for p in params]
        self.flat = np.empty(sum(sizes), dtype)
        _FLATS[id(self.flat)] = self.flat
        self.offsets = np.cumsum([0, *sizes]).tolist()
        self.views = [self._view(self.flat, i) for i in range(len(params))]
        self.handed = list(self.views)  # replaced by `adopt`
        self.tmp = np.empty_like(self.flat)
        for i in range(len(params)):
            self.adopt(i)  # (one kept elsewhere is found by `_Program.check_storage`)
        self.new_gradients()

    def _view(self, flat: np.ndarray, i: int) -> np.ndarray:
        return flat[self.offsets[i] : self.offsets[i + 1]].reshape(self.params[i].shape)

    def adopt(self, i: int) -> bool:
        """Copy parameter i's current values into the flat array and make its data a new view
        of it; unless something else sees its array (a caller keeps it, or it is a view of
        another array): the parameter then keeps that array, and True says that the update
        must be copied back into it (`_Program.sync_back`), as eager updates it in place."""
        p, view = self.params[i], self.views[i]
        if p._array.shape != view.shape or p._array.dtype != view.dtype:  # (the key tells them)
            raise RuntimeError(
                f"compile: {_describe(p)} no longer fits the program traced for it "
                f"({view.shape} {view.dtype}); this is a bug of `compile`"
            )
        np.copyto(view, p._array)
        base = p._array.base
        if base is None and _array_references(p) > _ALONE:
            return True
        if base is not None and _FLATS.get(id(base)) is not base:  # (not another program's)
            return True
        p._array = self.handed[i] = view.view()
        return False

    def fits(self, i: int) -> bool:
        """Whether parameter i's data, replaced or reshaped in place, has its view's layout."""
        data, view = self.params[i]._array, self.views[i]
        return data.shape == view.shape and data.dtype == view.dtype

    def new_gradients(self) -> None:
        """Fresh gradient storage (zeros: a parameter no gradient reaches does not move)."""
        self.gflat = np.zeros_like(self.flat)
        self.gviews = [self._view(self.gflat, i) for i in range(len(self.params))]
        readonly = [v.view() for v in self.gviews]
        for v in readonly:
            v.setflags(False)
        self.grads = [Tensor._wrap(v) for v in readonly]
        # the references to the storage when no caller holds a view of it (as `_held` counts)
        self.unheld = sys.getrefcount(self.gflat)


class _Program:
    """The generated function for one signature, its buffers and the parameters it updates."""

    def __init__(self) -> None:
        self.source = ""
        self.run: Callable[..., np.ndarray] = lambda *a: np.empty(())
        self.stores: list[_FlatStore] = []
        self.namespace: dict[str, Any] = {}
        self.pinned: list[tuple[str, int, int]] = []  # (name, store, index) of gradient views
        self.delivered: list[tuple[int, int]] = []  # (store, index) of params given a gradient
        self.param_lists: list[list[Tensor]] = []
        self.cost_name: str | None = None
        self.body: list[str] = []  # the lines of `step` before its `return cost_var`
        self.cost_var = ""
        self.cost_is_new = False  # the cost is a new array each call: returned without a copy
        # the fast path (`_fast_path`): a call and an update that return None / False when
        # they cannot take it
        self.fast_source = ""
        self.fast_built = False
        self.fast_call: Callable[[tuple, dict], Tensor | None] | None = None
        self.fast_sgd: Callable[[float], bool] | None = None
        self.lr_fits: dict[type, bool] = {}  # type(lr) -> `update_fits`
        self.kept: list[tuple[_FlatStore, int]] = []  # parameters that keep their own array

    def check_storage(self) -> bool:
        """Copy the data of parameters whose `.data` was replaced into the flat storage; False,
        copying nothing, if new data has another shape or dtype, or the array handed out was
        reshaped in place (the program is not theirs)."""
        changed = [
            (s, store, i)
            for s, store in enumerate(self.stores)
            for i, (p, handed) in enumerate(zip(store.params, store.handed))
            if p._array is not handed or handed.shape != store.views[i].shape
        ]
        if not all(store.fits(i) for _, store, i in changed):
            return False
        kept = []
        for s, store, i in changed:
            if store.adopt(i):
                kept.append((store, i))
            elif f"__H{s}_{i}" in self.namespace:  # the fast path's name of it
                self.namespace[f"__H{s}_{i}"] = store.handed[i]
        self.kept[:] = kept  # (the same list: the fast path reads it)
        return True

    def sync_back(self) -> None:
        """Copy the updated values into the arrays parameters kept (`_FlatStore.adopt`)."""
        for store, i in self.kept:
            p = store.params[i]
            if p._array is not store.handed[i]:
                np.copyto(p._array, store.views[i])

    def check_gradients(self) -> None:
        """Write into fresh gradient storage if a caller still holds the previous gradients."""
        for s, store in enumerate(self.stores):
            if _held(store):
                store.new_gradients()
                for name, ps, i in self.pinned:
                    if ps == s:
                        self.namespace[name] = store.gviews[i]
                        if _OUT + name in self.namespace:  # the fast path's `out` tuple
                            self.namespace[_OUT + name] = (store.gviews[i],)

    def deliver(self) -> None:
        stores = self.stores
        for s, i in self.delivered:
            store = stores[s]
            store.params[i].grad = store.grads[i]

    def update_fits(self, lr: Any) -> bool:
        """Whether `lr * grad` keeps each store's dtype, as the update over the flat storage
        computes it (else the caller updates as `fnn.SGD` does: in the wider type, then cast)."""
        fits = self.lr_fits.get(type(lr))
        if fits is None:
            fits = self.lr_fits[type(lr)] = all(
                np.result_type(lr, st.flat.dtype) == st.flat.dtype for st in self.stores
            )
        return fits

    def sgd(self, lr: float) -> bool:
        """The update over the flat storage; False (nothing done) if some `.grad` is no longer
        the one this program delivered, so that the caller updates from `.grad` itself."""
        stores = self.stores
        for s, i in self.delivered:
            store = stores[s]
            if store.params[i].grad is not store.grads[i]:
                return False
        if engine._locks:  # arrays a live recorded graph needs (usually none)
            self.refuse_locked()
        for store in stores:
            np.multiply(store.gflat, lr, out=store.tmp)
            np.subtract(store.flat, store.tmp, out=store.flat)
        if self.kept:
            self.sync_back()
        return True

    def refuse_locked(self) -> None:
        """Raise if a live recorded graph needs the data of a parameter (the update would write
        over it)."""
        locks = engine._locks
        for store in self.stores:
            for p in store.params:
                if id(p._array) in locks:
                    raise RuntimeError(
                        f"sgd: the data of {_describe(p)} is read-only: a recorded graph still "
                        "needs it; call backward() on that graph first"
                    )


# ----- the fast path: a call with the last call's signature, checked without building its key


class _FastPath:
    """Writes, for one program, the Python of a call that skips building the signature's key:
    a guard that reads the same things the key reads (`_signature`) and compares each with its
    value when the program was traced, then the call itself (`__call`: the program's own lines,
    inlined, not a call of `step`) and the update (`__sgd`). Its names begin with `__`, which no
    name of the program does (`_identifier`), since both share the program's namespace.

    The guard is at least as strict as the key: whatever it compares by identity it holds, so no
    id can be reused; anything it does not handle (empty closure cells, one object in two places,
    large containers) leaves the program without a fast path, and a call the guard refuses takes
    the general path, which looks the key up. Either way no call replays a wrong program."""

    MAX_ITEMS = 64  # more items in one container than this: no fast path

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.found: list[str] = []  # the expressions of `_signature`'s `found`, in its order
        self.by_identity: list[int] = []  # ids of the objects the guard compares by identity
        self.count = 0
        self.ok = True

    def const(self, value: Any) -> str:
        self.count += 1
        name = f"__K{self.count}"
        self.ns[name] = value
        return name

    def local(self) -> str:
        self.count += 1
        return f"__x{self.count}"

    def refuse(self, condition: str) -> None:
        self.lines.append(f"if {condition}: return None")

    def same_object(self, expr: str, x: Any) -> None:
        self.refuse(f"{expr} is not {self.const(x)}")
        self.by_identity.append(id(x))

    def argument(self, expr: str, x: Any, depth: int = 0) -> None:
        """Mirror of `_walk_argument` for the value `x` had when traced."""
        kind = type(x)
        if kind is Tensor:
            self.found.append(expr)
            self.refuse(f"type({expr}) is not __Tensor")
            if x.requires_grad:
                self.same_object(expr, x)
                self.refuse(f"not {expr}.requires_grad")
            else:
                self.refuse(f"{expr}.requires_grad")
            self.layout(f"{expr}._array", x._array)
            self.refuse(f"{expr}.grad {'is None' if x.grad is not None else 'is not None'}")
        elif kind is np.ndarray:
            self.found.append(expr)
            self.refuse(f"type({expr}) is not __ndarray")
            self.layout(expr, x)
        elif kind in (dict, list, tuple) and depth < 4:
            if len(x) > self.MAX_ITEMS:
                self.ok = False
                return
            self.refuse(f"type({expr}) is not {kind.__name__} or len({expr}) != {len(x)}")
            if kind is dict:
                self.keys(expr, x)
            for k, v in x.items() if kind is dict else enumerate(x):
                item = self.local()
                self.lines.append(f"{item} = {expr}[{self.const(k) if kind is dict else k}]")
                self.argument(item, v, depth + 1)
        elif kind is tuple or kind is frozenset:  # deeper than the key walks: as `_typed`
            self.refuse(f"{self.const(_typed)}({expr}) != {self.const(_typed(x))}")
        else:
            self.value(expr, x)

    def keys(self, expr: str, d: dict) -> None:
        """The same keys as `d`, in order, each of its type (as `_typed` in the key). Strings (a
        parameter dict's, an object's attribute names) are held to the very objects: cheaper,
        and stricter (an equal string that is another object takes the general path)."""
        if d and all(type(k) is str for k in d):
            names = [self.local() for _ in d]
            self.lines.append(f"{', '.join(names)}, = {expr}")
            self.refuse(" or ".join(f"{n} is not {self.const(k)}" for n, k in zip(names, d)))
        else:
            keys = self.const(tuple(map(_typed, d)))
            self.refuse(f"tuple(map({self.const(_typed)}, {expr})) != {keys}")

    def value(self, expr: str, x: Any) -> None:
        """The same value as `x` (of its type, a zero of its sign), as the key's `==`."""
        value = self.const(x)
        self.refuse(f"type({expr}) is not {self.const(type(x))}")
        sign = _zero_sign(x)
        same = f"{expr} == {value}" + (
            f" and repr({expr}) == {self.const(sign)}" if sign is not None else ""
        )
        self.refuse(f"{expr} is not {value} and not ({same})")

    def layout(self, expr: str, array: np.ndarray) -> None:
        a = self.local()
        self.lines.append(f"{a} = {expr}")
        shape, dtype, strides = (self.const(v) for v in (array.shape, array.dtype, array.strides))
        self.refuse(f"{a}.shape != {shape} or {a}.dtype != {dtype} or {a}.strides != {strides}")

    def captured(self, expr: str, x: Any) -> None:
        """Mirror of `_walk_captured` for the value `x` had when traced."""
        kind = type(x)
        if kind is Tensor:
            self.found.append(expr)
            self.same_object(expr, x)
            self.tensor_flags(expr, x)
            return
        if kind is dict:
            values, items = f"{expr}.values()", list(x.values())
        elif kind is list or kind is tuple:
            values, items = expr, list(x)
        elif isinstance(x, _SKIP) or not hasattr(x, "__dict__"):
            if _is_scalar(x):
                self.value(expr, x)
            else:
                self.same_object(expr, x)
            return
        else:
            values, items = f"vars({expr}).values()", list(vars(x).values())
        if len(items) > self.MAX_ITEMS:
            self.ok = False
            return
        self.refuse(f"type({expr}) is not {self.const(kind)}")
        if kind is dict:
            self.keys(expr, x)
        elif kind is not list and kind is not tuple:
            self.keys(f"vars({expr})", vars(x))
        if not items:
            self.refuse(f"len({values}) != 0")
            return
        # (the unpacking below checks the length: a ValueError, and the general path runs)
        names = [self.local() for _ in items]
        self.lines.append(f"{', '.join(names)}, = {values}")
        for name, v in zip(names, items):
            if type(v) is Tensor:
                self.found.append(name)
                self.same_object(name, v)
                self.tensor_flags(name, v)
            elif _is_scalar(v):
                self.value(name, v)
            else:
                self.same_object(name, v)

    def tensor_flags(self, expr: str, t: Tensor) -> None:
        """What the key reads of a captured Tensor besides its identity. A parameter's layout is
        checked where its data is found replaced (`_Program.check_storage`): until then its
        array is its view into the flat storage."""
        if t.requires_grad:
            has = "is None" if t.grad is not None else "is not None"
            self.refuse(f"not {expr}.requires_grad or {expr}.grad {has}")
        else:
            a = self.local()
            shape, strides, dtype = (self.const(v) for v in (t.shape, t._array.strides, t.dtype))
            self.lines.append(f"{a} = {expr}._array")
            self.refuse(f"{expr}.requires_grad or {a}.shape != {shape} or {a}.strides != {strides}")
            self.refuse(f"{a}.dtype is not {dtype}")  # (equal but another object: general path)


_WATCHED = isinstance(getattr(type(_mode), "watched", None), bool)


def _fast_path(
    compiled: Compiled, program: _Program, args: tuple, kwargs: dict, found: list
) -> None:
    """Give `program` its fast `call` and `sgd` (see `_FastPath`) for calls like this one, whose
    key is `program`'s; `found` is what `_signature` found for it. The call is one function: the
    guard, the program's lines (`step`'s body, reading the guard's names for its inputs), the
    gradients handed over and, with `compile(lr=...)`, the update."""
    program.fast_built = True
    if compiled.lr is not None and not program.update_fits(compiled.lr):
        return  # (a NumPy scalar lr that widens the update: `sgd` updates as fnn.SGD does)
    w = _FastPath()
    # `watched`: anomaly mode or a tracer, in one read, where the engine keeps it
    w.refuse("__mode.watched" if _WATCHED else "__mode.tracer is not None or __mode.anomaly")
    w.refuse(f"__mode.grad_enabled != {w.const(_mode.grad_enabled)}")
    w.refuse(f"len(args) != {len(args)}")
    if kwargs:
        w.refuse(f"sorted(kwargs) != {w.const(sorted(kwargs))}")
    else:
        w.refuse("kwargs")
    for i, a in enumerate(args):
        name = w.local()
        w.lines.append(f"{name} = args[{i}]")
        w.argument(name, a)
    for k in sorted(kwargs):
        name = w.local()
        w.lines.append(f"{name} = kwargs[{k!r}]")
        w.argument(name, kwargs[k])
    for cell in compiled._cells:
        try:
            x = cell.cell_contents
        except ValueError:  # an empty cell: left to the general path
            return
        name = w.local()
        w.lines.append(f"{name} = {w.const(cell)}.cell_contents")
        w.captured(name, x)
    func = compiled._func
    if func is not None:
        for attribute in ("__defaults__", "__kwdefaults__"):
            name = w.local()
            w.lines.append(f"{name} = {w.const(func)}.{attribute}")
            w.captured(name, getattr(func, attribute))
    g = compiled._globals
    for global_name in compiled._global_names:
        x = g.get(global_name)
        name = w.local()
        w.lines.append(f"{name} = __G.get({global_name!r})")
        if x is None:
            w.refuse(f"{name} is not None")
        else:
            w.captured(name, x)
    if compiled._bound is not None:
        w.captured(w.const(compiled._bound), compiled._bound)
    if compiled._partial is not None:
        partial = w.const(compiled._partial)
        for attribute in ("args", "keywords"):
            name = w.local()
            w.lines.append(f"{name} = {partial}.{attribute}")
            w.captured(name, getattr(compiled._partial, attribute))
    if not w.ok or len(found) != len(w.found):
        return
    ids = [id(x) for x in found]
    everything = f"({', '.join(w.found)},)"
    if len(set(ids)) < len(ids):  # one object in two places: the key has where, so must this
        pattern = w.const(tuple(ids.index(i) for i in ids))
        w.lines.append(f"__ids = [id(x) for x in {everything}]")
        w.refuse(f"tuple(__ids.index(i) for i in __ids) != {pattern}")
    elif len(w.by_identity) < len(found) and len(found) > 1:  # two arguments may now be one
        w.refuse(f"len({{id(x) for x in {everything}}}) != {len(found)}")

    stores = program.stores
    ns = program.namespace  # the program's buffers, constants and views, by the names it uses
    ns.update(w.ns)
    ns.update(__mode=_mode, __G=g, __Tensor=Tensor, __ndarray=np.ndarray, __lock=compiled._lock)
    ns.update(__acquire=compiled._lock.acquire, __release=compiled._lock.release)
    ns.update(__getrefcount=sys.getrefcount, __check_storage=program.check_storage)
    ns.update(__kept=program.kept, __sync_back=program.sync_back)
    ns.update(__check_gradients=program.check_gradients, __wrap=Tensor._wrap, __grad_key=_grad_key)
    ns.update(
        __NAME=program.cost_name,
        __UNHELD=_UNHELD_FAST,
        __UNHELD_ARRAY=_UNHELD_FAST_ARRAY,
        __locks=engine._locks,
    )
    ns.update(__multiply=np.multiply, __subtract=np.subtract, __locked=program.refuse_locked)
    if _EXTOBJ is not None:
        ns.update(__errstate_set=_EXTOBJ.set, __errstate_get=_EXTOBJ.get)
        ns.update(__errstate_reset=_EXTOBJ.reset, __overflow_ignored=_OVERFLOW_IGNORED)
        ns.update(__overflow_ignoring=_overflow_ignoring)
    moved = []
    for s, store in enumerate(stores):
        ns[f"__S{s}"] = store
        # the flat parameter array and its scratch are never replaced (the gradients' array is,
        # when a caller keeps the gradients: it is read through the store)
        ns[f"__flat{s}"], ns[f"__tmp{s}"] = store.flat, store.tmp
        ns[f"__flat{s}_out"], ns[f"__tmp{s}_out"] = (store.flat,), (store.tmp,)
        if compiled.lr is not None:  # the number NumPy makes of the Python float (NEP 50), once
            ns[f"__LR{s}"] = np.asarray(compiled.lr, store.flat.dtype)
        for i, p in enumerate(store.params):
            # the array handed out as `.data`: replaced (`.data = ...`) or reshaped in place (a
            # float dtype set in place changes the shape too)
            ns[f"__P{s}_{i}"], ns[f"__H{s}_{i}"] = p, store.handed[i]
            ns[f"__shape{s}_{i}"] = store.views[i].shape
            moved.append(
                f"__P{s}_{i}._array is not __H{s}_{i} or __H{s}_{i}.shape != __shape{s}_{i}"
            )

    def storage(bail: str) -> list[str]:  # a replaced parameter of another layout: bail out
        return [f"if ({' or '.join(moved)}) and not __check_storage():", f"    return {bail}"]

    grads = [f"__g{s} = __S{s}.grads" for s in range(len(stores))]
    replaced = []  # a `.grad` set by hand where the program adds to one must fit (identity first)
    for s, st in enumerate(stores):
        for i, p in enumerate(st.params):
            if p.grad is not None:
                ns[f"__GK{s}_{i}"] = _grad_key(p)
                replaced += [
                    f"if __P{s}_{i}.grad is not __g{s}[{i}] and "
                    f"__grad_key(__P{s}_{i}) != __GK{s}_{i}:",
                    "    return None",
                ]
    held = [  # as `_held`, one line per gradient; a `.grad` the guard found None is not it
        f"__getrefcount(__g{s}[{i}]) > __UNHELD"
        if p.grad is None
        else f"__getrefcount(__g{s}[{i}]) - (__P{s}_{i}.grad is __g{s}[{i}]) > __UNHELD"
        for s, st in enumerate(stores)
        for i, p in enumerate(st.params)
    ]
    held += [  # `p.grad.data` kept alone, or a view of it
        f"__getrefcount(__g{s}[{i}]._array) > __UNHELD_ARRAY"
        for s, st in enumerate(stores)
        for i in range(len(st.params))
    ]
    held += [f"__getrefcount(__S{s}.gflat) > __S{s}.unheld" for s in range(len(stores))]
    delivered = [f"__P{s}_{i}" for s, i in program.delivered]
    gradients = [f"__g{s}[{i}]" for s, i in program.delivered]

    def out_tuple(m: re.Match) -> str:
        name = m[3]
        if m[2] in ("dot", "matmul") or not isinstance(ns.get(name), np.ndarray):
            return m[0]
        ns[_OUT + name] = (ns[name],)
        return f"{m[1]}, out={_OUT + name})"

    def reads(line: str) -> str:
        """A line of `step(inputs, params)` as the call runs it: its reads of inputs and earlier
        gradients through the guard's names, and `out=` as the one-element tuple NumPy turns it
        into (made once: 20 ns less a call)."""
        line = re.sub(r"\binputs\[(\d+)\]", lambda m: w.found[int(m[1])], line)
        line = re.sub(r"\bparams\[(\d+)\]\[(\d+)\]", r"__P\1_\2", line)
        stripped = line.lstrip()
        if stripped in _ERRSTATE_CALLS and _EXTOBJ is not None:
            line = line[: len(line) - len(stripped)] + _ERRSTATE_CALLS[stripped]
        return re.sub(r"^(\s*([\w.]+)\(.*), out=(\w+)\)$", out_tuple, line)

    update = ["if __locks:", "    __locked()"]
    for s in range(len(stores)):
        update += [
            f"__multiply(__S{s}.gflat, __LR{s}, out=__tmp{s}_out)",
            f"__subtract(__flat{s}, __tmp{s}, out=__flat{s}_out)",
        ]
    update += ["if __kept:", "    __sync_back()"]
    call = [
        "def __call(args, kwargs):",
        "    __acquire()  # (a `with` block costs 80 ns more a call)",
        "    try:",
        "        try:",
        *("            " + line for line in w.lines),
        "        except Exception:  # an emptied closure cell, an == that raises: the general path",
        "            return None",
        *("        " + line for line in storage("None")),
        *("        " + line for line in grads),
        *("        " + line for line in replaced),
        f"        if {' or '.join(held)}:",
        "            __check_gradients()",
        *("            " + line for line in grads),
        *("        " + reads(line) for line in program.body),
        *(f"        {p}.grad = {gr}" for p, gr in zip(delivered, gradients)),
        *(("        " + line for line in update) if compiled.lr is not None else ()),
        f"        __cost = __wrap({program.cost_var}{'' if program.cost_is_new else '.copy()'})",
        "    finally:",
        "        __release()",
        "    __cost._array.setflags(False)",
        "    __cost.name = __NAME",
        "    return __cost",
    ]
    same = [f"{p}.grad is not {gr}" for p, gr in zip(delivered, gradients)]
    sgd = [
        "def __sgd(lr):",
        "    with __lock:",
        *("        " + line for line in storage("False")),
        *("        " + line for line in grads),
        *([f"        if {' or '.join(same)}:", "            return False"] if same else []),
        "        if __locks:",
        "            __locked()",
    ]
    for s in range(len(stores)):
        sgd += [
            f"        __multiply(__S{s}.gflat, lr, out=__S{s}.tmp)",
            f"        __subtract(__S{s}.flat, __S{s}.tmp, out=__S{s}.flat)",
        ]
    sgd += ["        if __kept:", "            __sync_back()", "    return True"]
    source = "\n".join(call + ["", ""] + sgd) + "\n"
    filename = f"<compiled fast path of {compiled._name} #{next(_PROGRAM_NUMBERS)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(builtins.compile(source, filename, "exec"), ns)  # noqa: S102
    program.fast_source = source
    program.fast_call, program.fast_sgd = ns["__call"], ns["__sgd"]


def _references(params: list[Tensor], grads: list[Tensor]) -> tuple[int, int]:
    """The most references any of `grads` has, not counting `p.grad`, and any of their arrays
    (a caller may keep `p.grad.data` alone)."""
    most = most_array = 0
    for p, g in zip(params, grads):
        n = sys.getrefcount(g) - (p.grad is g)
        if n > most:
            most = n
        n = sys.getrefcount(g._array)
        if n > most_array:
            most_array = n
    return most, most_array


def _array_references(p: Tensor) -> int:
    return sys.getrefcount(p._array)


# The flat parameter arrays of every program: a parameter's data viewing one is compile's own.
_FLATS: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()

# What `_array_references` counts for an array only its Tensor holds.
_ALONE = _array_references(Tensor._wrap(np.zeros(1)))


class _Slot:
    __slots__ = ("grad",)

    def __init__(self) -> None:
        self.grad = None


# What `_references` counts for a gradient only its list holds (the loop's own references).
_UNHELD = _references([_Slot()], [Tensor._wrap(np.zeros(1))])


def _count_first(g0: list[Tensor]) -> tuple[int, int]:
    return sys.getrefcount(g0[0]), sys.getrefcount(g0[0]._array)


# The same, as the fast path's `getrefcount(g0[0])` and `getrefcount(g0[0]._array)` count them.
_UNHELD_FAST, _UNHELD_FAST_ARRAY = _count_first([Tensor._wrap(np.zeros(1))])


def _held(store: _FlatStore) -> bool:
    """Whether anything beyond `p.grad` still refers to one of the gradient Tensors, to one of
    their arrays, or to the gradient storage through a view a caller made of one."""
    tensors, arrays = _references(store.params, store.grads)
    unheld_tensors, unheld_arrays = _UNHELD
    return (
        tensors > unheld_tensors
        or arrays > unheld_arrays
        or sys.getrefcount(store.gflat) > store.unheld
    )


def _identifier(name: str | None, taken: set[str], fallback: str) -> str:
    base = name if name and name.isidentifier() and not keyword.iskeyword(name) else fallback
    if base.startswith("__"):  # names of the fast path (`_fast_path`), in the same namespace
        base = "t" + base
    if base in _NUMPY_NAMES or base in _RESERVED:
        base += "_"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


_OUT = "__out_"  # the fast path's name of a buffer's `out` tuple: `__out_Z1 = (Z1,)`
_RESERVED = {
    "inputs",
    "params",
    "ignore_overflow",
    "restore_errstate",
    "overflow",
    "step",
    "np",
}
_PROGRAM_NUMBERS = itertools.count(1)


def _constant(data: np.ndarray) -> _Value:
    v = _Value("const", data)
    v.array = np.array(data, copy=True, order="K")
    v.array.setflags(False)
    return v


_NUMBER_NAMES = {0.0: "zero", 1.0: "one", -1.0: "minus_one", 2.0: "two", 0.5: "half"}


def _constant_name(v: _Value) -> str | None:
    if v.array is not None and v.array.ndim == 0 and v.dtype.kind == "f":
        return _NUMBER_NAMES.get(float(v.array))
    return None


def _expr(v: _Value) -> str:
    return v.literal if v.literal is not None else v.name


def _all_ones(v: _Value) -> bool:
    return v.kind == "const" and v.array is not None and bool(np.all(v.array == 1))


class _Lowering:
    """The traced operations of one call, turned into the source of a `_Program`."""

    def __init__(self, tracer: _Tracer, found: list, stores: list[_FlatStore], fn_name: str):
        self.tracer = tracer
        self.found = found
        self.stores = stores
        self.fn_name = fn_name
        self.found_index: dict[int, int] = {}
        for k, t in enumerate(found):
            self.found_index.setdefault(id(t), k)
        self.param_slot = {
            id(p): (s, i) for s, st in enumerate(stores) for i, p in enumerate(st.params)
        }
        self.plain = {id(t): data for t, data in tracer.poisoned}
        self.values: dict[int, _Value] = {}
        self.namespace: dict[str, Any] = dict(_NUMPY_NAMES)
        self.namespace["ignore_overflow"] = _ignore_overflow
        self.namespace["restore_errstate"] = _restore_errstate
        self.old_grads: dict[int, tuple[int, int]] = {}
        self.scalars: dict[tuple, _Value] = {}
        self.constant_names: list[str] = []
        # set while lowering: names in use, and what the emitters' `h.tmp()` draws from
        self.taken: set[str] = set()
        self.fallback: Callable[[str], str] = str
        self.scratch: list[np.ndarray] = []
        self.operand: _Value | None = None
        self.operands: list[_Value] = []
        self.output: _Value | None = None
        self.assignable = self.assigned = False
        self.assigned_values: set[int] = set()
        self.scalar_ok: set[int] = set()  # values only table operations read
        self.cost_value: _Value | None = None
        self.take: Callable[..., np.ndarray] = np.empty

    def data_of(self, t: Tensor) -> np.ndarray:
        return self.plain.get(id(t), t._array)

    def leaf(self, t: Tensor) -> _Value:
        """The value of a tensor no traced operation produced."""
        v = self.values.get(id(t))
        if v is not None:
            return v
        data = self.data_of(t)
        k = self.found_index.get(id(t))
        if id(t) in self.param_slot:
            s, i = self.param_slot[id(t)]
            v = _Value("param", data)
            v.array = self.stores[s].views[i]
            v.name = t.name or ""
        elif t.requires_grad and t._ctx is None:
            raise TraceError(
                f"compile: {_describe(t)} requires grad but is reached neither through the "
                f"arguments of {self.fn_name} nor through the names it uses (closure cells, "
                "globals, one container or object deep), so replacing it could not be noticed; "
                "pass it as an argument or keep it in a dict the function reads"
            )
        elif k is not None:
            v = _Value("input", data)
            v.name = t.name or ""
            get = "._array" if type(self.found[k]) is Tensor else ""
            v.literal = f"inputs[{k}]{get}"  # replaced by its name once names are given
        elif id(t) in self.tracer.made_from:
            k = self.tracer.made_from[id(t)]
            v = _Value("input", data)
            v.name = t.name or ""
            source = self.found[k]
            get = "._array" if type(source) is Tensor else ""
            array = source._array if type(source) is Tensor else source
            v.literal = f"inputs[{k}]{get}"
            if array.dtype != data.dtype or array.strides != data.strides:
                v.kind = "convert"  # Tensor(x, dtype=...) converts, into a buffer made once
                v.array = np.empty_like(data)
        elif id(t) in self.tracer.deep:
            raise self.tracer.too_deep(t)
        elif id(t) in self.old_grads:
            s, i = self.old_grads[id(t)]
            v = _Value("input", data)
            v.name = f"d{self.stores[s].params[i].name or 'param'}_before"
            v.literal = f"params[{s}][{i}].grad._array"
        else:
            v = _constant(data)
        self.values[id(t)] = v
        return v

    def lower(self, cost: Tensor, finals: list[tuple[Tensor, tuple[int, int]]]) -> _Program:
        tracer = self.tracer
        produced = {id(out) for _, _, out in tracer.nodes}
        needed = {id(cost)} | {id(g) for g, _ in finals}
        nodes = []
        for fn, inputs, out in reversed(tracer.nodes):
            if id(out) in needed:
                nodes.append((fn, inputs, out))
                needed.update(id(t) for t in inputs)
        nodes.reverse()
        final_of = {}
        for g, (s, i) in finals:
            final_of.setdefault(id(g), (s, i))

        # 1. what each operation becomes
        plan: list[_Line] = []
        computed: dict[tuple, _Value] = {}
        for fn, inputs, out in nodes:
            ins = [self.values[id(t)] if id(t) in produced else self.leaf(t) for t in inputs]
            data = self.data_of(out)
            lowering = _lowering(type(fn))
            kind, entry = "fresh", None
            if all(v.kind == "const" for v in ins):
                v = _constant(data)
                kind = "const"
            else:
                v = _Value("buf", data)
                other = self._folded(fn, ins, v)
                if other is not None:
                    kind, v.kind, v.base = "alias", "alias", [other]
                elif lowering is not None and lowering[0] == "view":
                    if np.shares_memory(data, self.data_of(inputs[0])):
                        kind, entry = "view", lowering[1]
                        v.kind, v.base = "view", [ins[0]]
                elif lowering is not None and v.order is not None:
                    entry = lowering[1]
                    if entry[3] == 0 or all(x.order == "C" for x in ins):
                        kind = "buf"
                        same = computed.setdefault(self._computation(fn, ins, v), v)
                        if same is not v:  # computed before from the same operands: same bits
                            kind, v.kind, v.base = "alias", "alias", [same]
                if kind == "fresh":
                    v.kind, v.base = "fresh", [x for x in ins if x.kind != "const"]
            self.values[id(out)] = v
            plan.append(_Line(kind, fn, ins, v, entry, out))

        # 2. names: the tensors' own, the gradient's of a named tensor, else the operation's
        taken: set[str] = set()
        counters: dict[str, int] = {}
        preferred: dict[int, str] = {}
        for line in plan:
            out, v = line.out, line.v
            name = out.name
            if name is None and id(out) in final_of:
                s, i = final_of[id(out)]
                name = "d" + (self.stores[s].params[i].name or f"param{i}")
            if name is None and id(out) in tracer.gradient_of:
                of = tracer.gradient_of[id(out)]
                name = "d" + of.name if of.name else None
            first = line.ins[0] if line.ins else None
            source_name = first and (preferred.get(id(first)) or first.name)
            if name is None and line.kind == "view" and source_name and line.fn.op == "transpose":
                name = source_name + "T"
            if name is not None:
                preferred[id(v)] = name
        for line in reversed(plan):  # an alias lends its name to the value it stands for
            v = line.v
            if line.kind == "alias" and id(v) in preferred and id(v.base[0]) not in preferred:
                preferred[id(v.base[0])] = preferred[id(v)]
        outputs = {id(line.v) for line in plan}
        leaves = [v for v in self.values.values() if id(v) not in outputs]

        def fallback(stem: str) -> str:
            counters[stem] = counters.get(stem, 0) + 1
            return f"{stem}{counters[stem]}"

        self.taken, self.fallback = taken, fallback
        for v in leaves:
            if v.kind == "const":
                self.name_constant(v)
            else:
                v.name = _identifier(v.name or None, taken, fallback("input"))
        for line in plan:
            if line.kind == "const":
                self.name_constant(line.v)
            elif line.kind != "alias":
                line.v.name = _identifier(preferred.get(id(line.v)), taken, fallback(line.fn.op))
        for line in plan:
            if line.kind == "alias":
                line.v.name = line.v.base[0].name

        # 3. liveness: the last line that reads each value (views keep their base alive)
        INF = len(plan) + 1
        cost_v = self.values[id(cost)] if id(cost) in self.values else self.leaf(cost)
        cost_v.last = INF
        for g, _ in finals:
            self._value(g).last = INF
        for n, line in enumerate(plan):
            for x in line.ins:
                x.last = max(x.last, n)
        for line in reversed(plan):
            for b in line.v.base:
                b.last = max(b.last, line.v.last)

        # which values only table operations (NumPy calls) read, through aliases too
        table_read: dict[int, bool] = {}
        for line in plan:
            for x in line.ins:
                while x.kind == "alias":
                    x = x.base[0]
                table_read[id(x)] = table_read.get(id(x), True) and line.kind == "buf"
        root = cost_v
        while root.kind == "alias":
            root = root.base[0]
        self.scalar_ok = {k for k, only in table_read.items() if only and k != id(root)}
        self.cost_value = root

        # 4. buffers: the final gradients are written straight into the gradient storage
        program = _Program()
        program.stores = self.stores
        pinned: dict[int, tuple[int, int]] = {}
        for g, (s, i) in finals:
            gv = self._value(g)
            if gv.kind == "buf" and id(gv) not in pinned and gv is not cost_v:
                pinned[id(gv)] = (s, i)
                gv.kind = "pinned"  # its storage is swapped when a caller keeps a gradient
        pool: dict[tuple, list[np.ndarray]] = {}
        dies: dict[int, list[_Value]] = {}
        for line in plan:
            if line.kind == "buf" and line.v.last < INF:
                dies.setdefault(line.v.last, []).append(line.v)

        def take(shape: tuple, dtype: np.dtype, order: str) -> np.ndarray:
            free = pool.get((shape, dtype, order))
            return free.pop() if free else np.empty(shape, dtype, order=order)

        def give(v: _Value) -> None:
            pool.setdefault((v.shape, v.dtype, v.order), []).append(v.array)

        body: list[str] = []
        setup: list[str] = []
        ns = self.namespace
        for v in leaves:
            if v.kind == "input":
                body.append(f"{v.name} = {v.literal}")
                v.literal = None
            elif v.kind == "convert":
                ns[v.name] = v.array
                body.append(f'copyto({v.name}, {v.literal}, casting="unsafe")')
                v.literal, v.kind = None, "buf"
            elif v.kind in ("param", "const"):
                ns[v.name] = v.array
        given: set[int] = set()
        helper = self
        scalars: dict[int, str] = {}
        for n, line in enumerate(plan):
            kind, fn, ins, v, entry = line.kind, line.fn, line.ins, line.v, line.entry
            args = [_expr(x) for x in ins]
            if kind == "buf" and type(fn) in _ELEMENTWISE and len(ins) == 2:
                for j, x in enumerate(ins):
                    # a one-element operand as a 0-d view: the same numbers added, multiplied,
                    # compared, without NumPy's broadcasting machinery (half the time)
                    broadcast = x.shape and math.prod(x.shape) == 1 and ins[1 - j].shape == v.shape
                    if broadcast and x.stable and x.literal is None:
                        if id(x) not in scalars:
                            scalars[id(x)] = _identifier(f"{x.name}_0d", taken, "scalar")
                            setup.append(f"{scalars[id(x)]} = {x.name}.reshape(())")
                        args[j] = scalars[id(x)]
            if kind == "const":
                ns[v.name] = v.array
            elif kind == "alias":
                pass
            elif kind == "view":
                text = f"{v.name} = {self._view_source(fn, entry, args[0])}"
                (setup if ins[0].stable else body).append(text)
            elif kind == "fresh":
                op_name = _identifier(f"{fn.op}_op", taken, "op")
                ns[op_name] = fn
                call = f"{op_name}.forward({', '.join(args)})"
                body.append(f"{v.name} = {'asarray(' + call + ')' if not v.shape else call}")
            else:
                emit, aliasable = entry[1], entry[2]
                if aliasable:
                    for x in dies.get(n, []):
                        if any(x is y for y in ins):
                            give(x)
                            given.add(id(x))
                if id(v) in pinned:
                    s, i = pinned[id(v)]
                    v.array = self.stores[s].gviews[i]
                    program.pinned.append((v.name, s, i))
                else:
                    v.array = take(v.shape, v.dtype, v.order)
                ns[v.name] = v.array
                helper.scratch, helper.operand, helper.operands = [], ins[0], ins
                helper.take, helper.output, helper.assigned = take, v, False
                helper.assignable = id(v) not in pinned and not v.shape
                body.extend(emit(fn, args, v.name, helper))
                if helper.assigned:  # a new array each call: the buffer is not used
                    del ns[v.name]
                    v.kind = "fresh"
                    give(v)
                    given.add(id(v))
                for array in helper.scratch:
                    pool.setdefault((array.shape, array.dtype, "C"), []).append(array)
            for x in dies.get(n, []):
                if id(x) not in given:
                    give(x)
                    given.add(id(x))

        # 5. the gradients not written in place, and the cost
        for g, (s, i) in finals:
            gv = self._value(g)
            if pinned.get(id(gv)) != (s, i):
                name = _identifier(f"d{self.stores[s].params[i].name or 'param'}", taken, "grad")
                ns[name] = self.stores[s].gviews[i]
                program.pinned.append((name, s, i))
                body.append(f"copyto({name}, {_expr(gv)})")
        program.body, program.cost_var = list(body), cost_v.name  # the fast path inlines them
        body.append(f"return {cost_v.name}")

        lines = [f"# generated by tinygrad_fnn.compile from {self.fn_name}"]
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join(body + setup)))
        notes = [self.describe_constant(n) for n in self.constant_names if n in used]
        if notes:
            lines += ["# constants: " + "; ".join(notes)]
        if setup:
            lines += ["# views made once, over buffers allocated once:", *setup, "", ""]
        lines += ["def step(inputs, params):", *("    " + line for line in body)]
        program.source = "\n".join(lines) + "\n"
        filename = f"<compiled {self.fn_name} #{next(_PROGRAM_NUMBERS)}>"
        lines = program.source.splitlines(keepends=True)
        linecache.cache[filename] = (len(program.source), None, lines, filename)  # tracebacks
        exec(builtins.compile(program.source, filename, "exec"), ns)  # noqa: S102
        program.run = ns["step"]
        program.namespace = ns
        program.delivered = [slot for _, slot in finals]
        program.cost_name = cost.name
        program.cost_is_new = cost_v.kind == "fresh" and id(cost_v) in self.assigned_values
        return program

    # ----- what the emitters ask for
    def result(self, o: str, call: str) -> list[str]:
        """The line of `call` (a NumPy call without `out`) writing the result `o`: into its
        buffer (`out=`), or, for a 0-d result, assigned anew each call where a 0-d `out=`
        costs more: as the NumPy scalar the call returns when only NumPy calls of the program
        read it (the same number: NumPy 2 types a scalar as a 0-d array of its dtype), or as a
        new 0-d array when it is the cost."""
        if self.assignable and id(self.output) in self.scalar_ok:
            self.assign()
            return [f"{o} = {call}"]
        if self.assignable and self.output is self.cost_value:
            self.assign()
            return [f"{o} = asarray({call})"]
        return [f"{call[:-1]}, out={o})"]

    def assign(self) -> bool:
        """Whether the emitter may assign the 0-d result as a new array each call (`name = …`)
        instead of writing it into a buffer; True commits it to doing so."""
        if self.assignable:
            self.assigned = True
            self.assigned_values.add(id(self.output))
        return self.assignable

    def tmp(self) -> str:
        """A scratch buffer of the first operand's shape and dtype, free again after the op."""
        x = self.operand
        array = self.take(x.shape, x.dtype, "C")
        self.scratch.append(array)
        name = _identifier("tmp", self.taken, "tmp")
        self.namespace[name] = array
        return name

    @property
    def size(self) -> int:
        return int(np.prod(self.operand.shape))

    def k(self, number: float) -> str:
        """The name of a 0-d constant `number` of the first operand's dtype."""
        v = _constant(np.asarray(number, dtype=self.operand.dtype))
        self.name_constant(v)
        return v.name

    def name_constant(self, v: _Value) -> None:
        """Name a constant; equal 0-d constants of one dtype share one name."""
        key = None
        if v.array is not None and v.array.ndim == 0:
            key = (v.array.tobytes(), v.dtype)
            known = self.scalars.get(key)
            if known is not None:
                v.name, v.array = known.name, known.array
                return
        v.name = _identifier(_constant_name(v), self.taken, self.fallback("c"))
        self.namespace[v.name] = v.array
        if key is not None:
            self.scalars[key] = v
        self.constant_names.append(v.name)

    def describe_constant(self, name: str) -> str:
        array = self.namespace[name]
        if array.ndim == 0:
            return f"{name} = {array.item()!r}"
        first = array.flat[0]
        if np.all(array == first):
            return f"{name} = {first.item()!r} in each element of a {array.shape} array"
        return f"{name} = a {array.shape} array"

    def _value(self, t: Tensor) -> _Value:
        v = self.values.get(id(t))
        return v if v is not None else self.leaf(t)

    @staticmethod
    def _computation(fn: Function, ins: list[_Value], v: _Value) -> tuple:
        """What identifies a table operation's result: the operation, its parameters and its
        operands (small constants by value, since each use of a number makes its own)."""
        operands = tuple(
            (x.dtype.str, x.shape, x.array.tobytes())
            if x.kind == "const" and x.array is not None and x.array.size <= 16
            else id(x)
            for x in ins
        )
        settings = tuple(sorted((k, repr(a)) for k, a in vars(fn).items()))
        return (type(fn), settings, operands, v.shape, v.dtype.str, v.order)

    @staticmethod
    def _folded(fn: Function, ins: list[_Value], v: _Value) -> _Value | None:
        """The operand a multiplication or division by exactly 1.0 returns unchanged."""
        kind = type(fn)
        if kind is ops.Mul and _lowering(kind) is not None:
            candidates = [(ins[0], ins[1]), (ins[1], ins[0])]
        elif kind is ops.Div and _lowering(kind) is not None:
            candidates = [(ins[0], ins[1])]
        else:
            return None
        for keep, one in candidates:
            same = keep.shape == v.shape and keep.dtype == v.dtype and keep.order is not None
            if same and _all_ones(one):
                return keep
        return None

    @staticmethod
    def _view_source(fn: Function, entry: Any, a: str) -> str:
        if type(fn) is ops.Transpose and fn.axes is None:
            return f"{a}.T"
        return entry[1](fn, a)


# ----- the compiled function


def _substitute(x: Any, arrays: list[np.ndarray], views: dict[int, int], counter: list[int]) -> Any:
    """`x` with each array argument replaced by a traced view of it (same walk as the key)."""
    kind = type(x)
    if kind is Tensor:
        counter[0] += 1
        return x
    if kind is np.ndarray:
        view = x.view(_Traced)
        views[id(view)] = counter[0]
        arrays.append(view)
        counter[0] += 1
        return view
    if kind in (dict, list, tuple):
        items = [
            (k, _substitute(v, arrays, views, counter))
            for k, v in (x.items() if kind is dict else enumerate(x))
        ]
        if all(new is (x[k]) for k, new in items):
            return x
        return dict(items) if kind is dict else kind(new for _, new in items)
    return x


class Compiled:
    """A function compiled by `compile`: call it as the function; `.source` is the program."""

    def __init__(self, fn: Callable[..., Tensor], lr: float | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"compile: expects a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.lr = _check_lr(lr) if lr is not None else None
        self.traces = 0  # how many times a call traced (a new signature)
        self._programs: dict[tuple, _Program] = {}
        self._last: _Program | None = None
        self._eager_params: list[Tensor] | None = None
        self._checked_lr: Any = None  # the last lr checked (by identity)
        self._weak_lr = False  # whether it is a Python number
        self._fast: Callable[[tuple, dict], Tensor | None] | None = None
        self._fast_sgd: Callable[[float], bool] | None = None
        self._lock = threading.RLock()
        # functools.partial: its arguments are captured values, its function is what is read
        self._partial = fn if type(fn) is functools.partial else None
        target = fn.func if self._partial is not None else fn
        func = getattr(target, "__func__", target)
        code = getattr(func, "__code__", None)
        self._cells = [c for c in (getattr(func, "__closure__", None) or ())]
        # default arguments are captured values too (a default Tensor is read at every call),
        # if the function has some (defaults set on it later are not looked at)
        plain = isinstance(func, types.FunctionType)
        self._func = func if plain and (func.__defaults__ or func.__kwdefaults__) else None
        self._globals = getattr(func, "__globals__", {})
        names = _global_names(code) if code is not None else []
        # Modules the code names are taken as they are now, as in jax.jit: rebinding one, or a
        # name inside one, is not noticed. Every other name is looked at on each call (a
        # function or class by identity: a notebook cell that redefines a helper traces again).
        self._global_names = [
            n
            for n in names
            if not isinstance(self._globals.get(n), types.ModuleType)
            and n in self._globals
            or n not in self._globals
            and n not in _BUILTINS
        ]
        self._bound = getattr(target, "__self__", None)
        self._name = getattr(fn, "__qualname__", repr(fn))

    MAX_PROGRAMS = 16

    @property
    def nbytes(self) -> int:
        """Bytes the last program holds between calls: its buffers, constants and gradient
        storage (the parameters' own storage not counted: the eager engine holds that too)."""
        if self._last is None:
            return 0
        owners: dict[int, np.ndarray] = {}
        arrays = [v for v in self._last.namespace.values() if isinstance(v, np.ndarray)]
        for store in self._last.stores:
            arrays += [store.gflat, store.tmp]
        params = {id(store.flat) for store in self._last.stores}
        for a in arrays:
            owner = a if a.base is None else a.base
            if id(owner) not in params:
                owners[id(owner)] = owner
        return sum(a.nbytes for a in owners.values())

    @property
    def source(self) -> str:
        """The generated program of the last call (Python over NumPy, one line per operation)."""
        if self._last is None:
            raise RuntimeError("compile: nothing is compiled before the first call")
        return self._last.source

    def _roots(self) -> list:
        """The values the function captures (what `_signature` walks one level into)."""
        roots = []
        for cell in self._cells:
            try:
                roots.append(cell.cell_contents)
            except ValueError:
                pass
        if self._func is not None:
            roots += [self._func.__defaults__, self._func.__kwdefaults__]
        roots += [self._globals.get(name) for name in self._global_names]
        roots.append(self._bound)
        if self._partial is not None:
            roots += [self._partial.args, self._partial.keywords]
        return roots

    def _signature(self, args: tuple, kwargs: dict) -> tuple[tuple, list]:
        found: list = []
        parts: list = [_mode.grad_enabled]
        for a in args:
            _walk_argument(a, found, parts)
        for k in sorted(kwargs):
            parts.append(k)
            _walk_argument(kwargs[k], found, parts)
        parts.append(len(found))
        for cell in self._cells:
            try:
                x = cell.cell_contents
            except ValueError:  # a free variable not assigned yet
                continue
            _walk_captured(x, found, parts)
        func = self._func
        if func is not None:
            _walk_captured(func.__defaults__, found, parts)
            _walk_captured(func.__kwdefaults__, found, parts)
        g = self._globals
        for name in self._global_names:
            x = g.get(name)
            if x is not None:
                _walk_captured(x, found, parts)
        if self._bound is not None:
            _walk_captured(self._bound, found, parts)
        if self._partial is not None:
            _walk_captured(self._partial.args, found, parts)
            _walk_captured(self._partial.keywords, found, parts)
        if len({id(x) for x in found}) < len(found):  # one object in two places: read once
            ids = [id(x) for x in found]
            parts.append(tuple(ids.index(i) for i in ids))
        return tuple(parts), found

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        fast = self._fast
        if fast is not None:  # the last call's program, if the guard finds the same signature
            cost = fast(args, kwargs)
            if cost is not None:
                return cost
        mode = _mode
        if mode.tracer is not None:
            raise TraceError(
                f"compile: {self._name} was called while another compiled function traces; "
                "compiled functions do not nest (call the plain function inside)"
            )
        with self._lock:
            if mode.anomaly:
                return self._eager(args, kwargs)
            key, found = self._signature(args, kwargs)
            program = self._programs.get(key)
            if program is None:
                return self._trace(key, found, args, kwargs)
            again = None
            if not program.fast_built:  # the program's first replay: see `_again`
                again = self._again(args, kwargs)
                _fast_path(self, program, args, kwargs, found)
            self._last, self._fast, self._fast_sgd = program, program.fast_call, program.fast_sgd
            self._eager_params = None
            program.check_storage()
            program.check_gradients()
            cost = program.run(found, program.param_lists)
            if again is not None and not _same_bits(cost, again):
                self._forget(key)
                raise TraceError(
                    f"compile: {self._name} gave the cost {again} when run again, where its "
                    f"program, traced from the same signature, gives {np.asarray(cost)}: it reads "
                    "something compile cannot see, such as random numbers, the clock, or an "
                    "array computed outside Tensor operations (from a parameter's .data, say), "
                    "which the program froze. Pass such values in as Tensor arguments, which "
                    "are read afresh at every call"
                )
            program.deliver()
            if self.lr is not None:
                self.sgd(self.lr)  # the gradients are the ones just delivered
        return _result(cost, program.cost_name)

    def _again(self, args: tuple, kwargs: dict) -> np.ndarray:
        """The cost of the plain function, run once more without recording, for the first replay
        of a program to be held to: a function that is not a function of what the signature
        sees (it draws random numbers, say) gives another cost, where the program would replay
        the values it froze while tracing."""
        with engine.no_grad(), np.errstate(all="ignore"):  # the program's run warns, from its line
            cost = self.fn(*args, **kwargs)
        return cost._array if isinstance(cost, Tensor) else np.asarray(cost)

    def _forget(self, key: tuple) -> None:
        """Drop the program of `key`, so that no later call replays it."""
        self._programs.pop(key, None)
        self._last = None
        self._fast = self._fast_sgd = None

    def sgd(self, lr: float) -> None:
        """p ← p − lr·p.grad for every parameter the last call gave a gradient, as `fnn.SGD`
        does, in two NumPy calls per dtype over the flat storage."""
        if lr is not self._checked_lr:
            _check_lr(lr)
            self._checked_lr = lr
            self._weak_lr = type(lr) is float or type(lr) is int  # takes the gradients' dtype
        fast = self._fast_sgd
        if fast is not None and self._weak_lr and fast(lr):
            return
        with self._lock:
            program = self._last
            if self._eager_params is None and program is None:
                raise RuntimeError("sgd: call the compiled function first")
            if self._eager_params is None and program.update_fits(lr):
                if program.fast_sgd is not None and program.fast_sgd(lr):
                    return
                if program.check_storage() and program.sgd(lr):
                    return
            params = self._eager_params or [p for st in program.stores for p in st.params]
            with engine.no_grad():  # as fnn.SGD: from whatever `.grad` holds now
                for p in params:
                    g = engine.grad_of(p, "sgd")
                    if g is not None:
                        p.data -= lr * g.data

    def _eager(self, args: tuple, kwargs: dict) -> Tensor:
        """Under detect_anomaly: the plain function and backward, so an anomaly is named."""
        _, found = self._signature(args, kwargs)
        cost = self.fn(*args, **kwargs)
        cost.backward()
        params = [t for t in found if type(t) is Tensor and t.requires_grad]
        self._eager_params = list({id(p): p for p in params}.values())
        self._fast = self._fast_sgd = None
        if self.lr is not None:
            self.sgd(self.lr)
        return cost

    def _trace(self, key: tuple, found: list, args: tuple, kwargs: dict) -> Tensor:
        self.traces += 1
        params: dict[int, Tensor] = {}
        for t in found:
            if type(t) is Tensor and t.requires_grad:
                if t._ctx is not None:
                    raise TraceError(
                        f"compile: {_describe(t)} reached by {self._name} is the result of a "
                        "recorded operation, not a leaf; pass .detach() of it, or a parameter"
                    )
                engine.grad_of(t, "compile")
                params.setdefault(id(t), t)
        groups: dict[np.dtype, list[Tensor]] = {}
        for p in params.values():
            groups.setdefault(p.dtype, []).append(p)
        stores = [_FlatStore(group) for group in groups.values()]
        before = {id(p): p.grad for p in params.values()}
        traced_arrays: list[np.ndarray] = []
        arg_views: dict[int, int] = {}
        counter = [0]
        targs = tuple(_substitute(a, traced_arrays, arg_views, counter) for a in args)
        tkwargs = {
            k: _substitute(kwargs[k], traced_arrays, arg_views, counter) for k in sorted(kwargs)
        }
        tracer = _Tracer(self._name, arg_views)
        tracer.deep = _deep_tensors(self._roots(), found)
        for k, t in enumerate(found):
            if type(t) is Tensor and not isinstance(t._array, _Traced):
                tracer.poison(t)
                arg_views.setdefault(id(t._array), k)  # Tensor(t) reads t's data each call
        _mode.tracer = tracer
        try:
            cost = self.fn(*targs, **tkwargs)
            if not isinstance(cost, Tensor):
                raise TypeError(
                    f"compile: {self._name} must return the cost as a Tensor, "
                    f"got {type(cost).__name__}"
                )
            cost.backward()
        finally:
            _mode.tracer = None
            tracer.restore()
        lowering = _Lowering(tracer, found, stores, self._name)
        for s, store in enumerate(stores):
            for i, p in enumerate(store.params):
                if before[id(p)] is not None:
                    lowering.old_grads[id(before[id(p)])] = (s, i)
        finals = []
        for s, store in enumerate(stores):
            for i, p in enumerate(store.params):
                if p.grad is not before[id(p)]:
                    finals.append((p.grad, (s, i)))
        program = lowering.lower(cost, finals)
        program.param_lists = [store.params for store in stores]
        for g, (s, i) in finals:
            np.copyto(stores[s].gviews[i], g._array)
        program.deliver()
        if len(self._programs) >= self.MAX_PROGRAMS:
            del self._programs[next(iter(self._programs))]
        self._programs[key] = program
        self._last, self._eager_params = program, None
        self._fast = self._fast_sgd = None
        # the record holds every result the trace made: one that backward did not reach (x + w,
        # only compared) locks its parameter's data until it is dropped, as in eager
        del tracer, lowering
        if self.lr is not None:
            self.sgd(self.lr)
        return _result(cost._array, cost.name)


def _same_bits(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _result(cost: np.ndarray, name: str | None) -> Tensor:
    out = Tensor._wrap(cost.copy())
    out._array.setflags(False)
    out.name = name
    return out


def _check_lr(lr: Any) -> Any:
    """`lr` itself, if it is a finite number; its type is kept, since the update computes in
    the type NumPy makes of `lr * grad` (a NumPy float64 scalar makes float32 gradients float64)."""
    number = isinstance(lr, (int, float, np.floating, np.integer)) and not isinstance(lr, bool)
    if not number or not math.isfinite(lr):
        raise ValueError(f"compile: lr must be a finite number, got {lr!r}")
    return lr


def compile(fn: Callable[..., Tensor] | None = None, *, lr: float | None = None) -> Any:
    """Compile `fn` (a function returning a scalar cost Tensor); usable as `@compile` too.

    `compile(fn)(*args)` has the effect of `cost = fn(*args); cost.backward()` and returns the
    cost; with `lr`, it then updates every parameter: `p ← p − lr·p.grad` (as `fnn.SGD`).
    `fn` must be a function of its arguments and what it captures: at a program's first replay
    it runs once more, and a cost that differs from the program's is a `TraceError`.
    """
    if fn is None:
        return lambda f: Compiled(f, lr=lr)
    return Compiled(fn, lr=lr)
