"""NumPy, differentiated: `np.exp(t)`, `np.dot(W, X)`, `np.sum(t)` on Tensors run the engine's
operations and are recorded, so code written for NumPy arrays (the tutorial's own
`forward_propagation` and `compute_cost`) can be handed Tensors and differentiated unchanged.

NumPy asks the arguments' types what to do through two protocols: `__array_ufunc__` for
elementwise functions (ufuncs: `np.exp`, `np.add`, `np.maximum`, …) and `__array_function__`
for the rest (`np.dot`, `np.sum`, `np.concatenate`, …). `Tensor` implements both by looking the
function up in the tables below.

- A function in a table returns a Tensor, recorded like the operator or method it maps to.
  Arrays and numbers beside Tensors become constants of the Tensor's dtype, so `X @ W` with X an
  array works from either side.
- A function not in a table, or an argument a table does not support (`out=`, `dtype=`,
  `np.add.reduce` and other ufunc methods), is refused with a `TypeError` naming it when any
  Tensor in the call requires grad: its result would silently leave the graph. When none does,
  there is no gradient to lose, and NumPy computes it on the arrays as before (`np.allclose(
  x.grad, expected)` keeps working).

`np.maximum(0, Z)` (or `np.maximum(Z, 0)`) with the number 0 is `relu`: its derivative at exactly
0 is 0, as the tutorial's `(A1 > 0)` and `torch.relu` have it. Any other `np.maximum` splits the
gradient of a tie half and half, as `torch.maximum` does.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinygrad_fnn import engine
from tinygrad_fnn.engine import Tensor, _describe, _operand

# ----- ufuncs (elementwise): each takes Tensors, or numbers where an operator accepts them

UFUNCS: dict[np.ufunc, Callable[..., Any]] = {
    np.add: lambda a, b: a + b,
    np.subtract: lambda a, b: a - b,
    np.multiply: lambda a, b: a * b,
    np.true_divide: lambda a, b: a / b,
    np.power: lambda a, b: a**b,
    np.negative: lambda a: -a,
    np.positive: lambda a: a,
    np.square: lambda a: a * a,
    np.reciprocal: lambda a: 1 / a,
    np.exp: lambda a: a.exp(),
    np.log: lambda a: a.log(),
    np.sqrt: lambda a: a.sqrt(),
    np.absolute: lambda a: a.abs(),
    np.sign: lambda a: a.sign(),
    np.tanh: lambda a: a.tanh(),
    np.maximum: lambda a, b: (
        _first(b, a).maximum(a) if engine._is_zero(a) else _first(a, b).maximum(b)
    ),
    np.minimum: lambda a, b: _first(a, b).minimum(b),
    np.matmul: lambda a, b: a @ b,
    np.greater: lambda a, b: a > b,
    np.greater_equal: lambda a, b: a >= b,
    np.less: lambda a, b: a < b,
    np.less_equal: lambda a, b: a <= b,
    np.equal: lambda a, b: a == b,
    np.not_equal: lambda a, b: a != b,
    np.logical_not: lambda a: ~a,  # (the logical functions are given truths: see _truth)
    np.logical_and: lambda a, b: _first(a, b, "np.logical_and") & b,
    np.logical_or: lambda a, b: _first(a, b, "np.logical_or") | b,
    np.logical_xor: lambda a, b: _first(a, b, "np.logical_xor") ^ b,
    np.invert: lambda a: ~a,
    np.bitwise_and: lambda a, b: _first(a, b, "np.bitwise_and") & b,
    np.bitwise_or: lambda a, b: _first(a, b, "np.bitwise_or") | b,
    np.bitwise_xor: lambda a, b: _first(a, b, "np.bitwise_xor") ^ b,
}


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict[str, Any]) -> Any:
    """`Tensor.__array_ufunc__`: the engine's operation for `ufunc`, or a clear refusal."""
    name = f"np.{ufunc.__name__}"
    rule = UFUNCS.get(ufunc)
    problem = None
    if method != "__call__":
        problem = f"{name}.{method} is not supported on Tensors (only {name}(…) is)"
        if method == "reduce":
            problem += "; use np.sum, np.prod, np.max or the Tensor's methods"
    elif "out" in kwargs:
        problem = (
            f"{name}(…, out=…) would write into an array behind the graph's back; "
            f"write y = {name}(…)"
        )
    elif kwargs:
        problem = f"{name}: the arguments {sorted(kwargs)} are not supported on Tensors"
    elif rule is None:
        problem = f"{name} is not one of the NumPy functions the engine differentiates"
    if problem is None:
        if ufunc in _LOGICAL:
            inputs = tuple(_truth(x) for x in inputs)
        like = _first_tensor(inputs)
        return rule(*[_convert(x, like, name) for x in inputs])
    return _refuse_or_compute(
        problem, lambda *a, **k: getattr(ufunc, method)(*a, **k), inputs, kwargs
    )


# ----- other functions: each is called with NumPy's own argument names


def _dot(a, b):
    a, b = _pair(a, b, "np.dot")
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim > 2 or b.ndim > 2:
        raise TypeError("np.dot of operands with more than two dimensions: use np.matmul (or @)")
    return a @ b


def _outer(a, b):
    a, b = _pair(a, b, "np.outer")
    return a.ravel().reshape(-1, 1) * b.ravel().reshape(1, -1)


def _clip(a, a_min=None, a_max=None, min=None, max=None):  # noqa: A002 (NumPy's names)
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    a = _tensor(a, "np.clip")
    if all(v is None or isinstance(v, numbers.Real) for v in (lo, hi)):
        return a.clip(lo, hi)
    # Bounds that are arrays or tensors: the gradient goes to a inside [lo, hi] (bounds
    # included, as torch.clamp) and to the bound that was applied outside it.
    if lo is not None:
        lo = _operand(lo, a, "np.clip")
        a = engine.where(a < lo, lo, a)
    if hi is not None:
        hi = _operand(hi, a, "np.clip")
        a = engine.where(a > hi, hi, a)
    return a


def _where(condition, x=None, y=None):
    if x is None and y is None:
        return np.nonzero(_plain(condition))  # positions, not values: nothing to differentiate
    return engine.where(_plain(condition), x, y)


def _reshape(a, shape=None, order="C", newshape=None):
    _order(order, "np.reshape")
    return _tensor(a, "np.reshape").reshape(shape if shape is not None else newshape)


def _ravel(a, order="C"):
    _order(order, "np.ravel")
    return _tensor(a, "np.ravel").ravel()


def _matrix(a, axis1, axis2, name):
    a = _tensor(a, name)
    if (axis1, axis2) != (0, 1) or a.ndim != 2:
        raise TypeError(f"{name}: only the main axes of a matrix are supported")
    return a


def _pad(array, pad_width, mode="constant", constant_values=0):
    if mode != "constant":
        raise TypeError(f"np.pad: mode {mode!r} is not supported on Tensors, only 'constant'")
    return _tensor(array, "np.pad").pad(pad_width, constant_values)


def _flip(m, axis=None):
    m = _tensor(m, "np.flip")
    axes = range(m.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
    for a in axes:
        m = m.flip(a)
    return m


def _like(fill):
    def make(a, dtype=None, shape=None):
        if dtype is not None or shape is not None:
            raise TypeError("dtype= and shape= are not supported on Tensors")
        return Tensor._wrap(np.full(a.shape, fill, a.dtype))  # depends on the shape only

    return make


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.dot: _dot,
    np.outer: _outer,
    np.sum: lambda a, axis=None, keepdims=False: _tensor(a, "np.sum").sum(axis, keepdims),
    np.mean: lambda a, axis=None, keepdims=False: _tensor(a, "np.mean").mean(axis, keepdims),
    np.max: lambda a, axis=None, keepdims=False: _tensor(a, "np.max").max(axis, keepdims),
    np.amax: lambda a, axis=None, keepdims=False: _tensor(a, "np.amax").max(axis, keepdims),
    np.min: lambda a, axis=None, keepdims=False: _tensor(a, "np.min").min(axis, keepdims),
    np.amin: lambda a, axis=None, keepdims=False: _tensor(a, "np.amin").min(axis, keepdims),
    np.prod: lambda a, axis=None, keepdims=False: _tensor(a, "np.prod").prod(axis, keepdims),
    np.var: lambda a, axis=None, ddof=0, keepdims=False: _tensor(a, "np.var").var(
        axis, ddof, keepdims
    ),
    np.std: lambda a, axis=None, ddof=0, keepdims=False: _tensor(a, "np.std").std(
        axis, ddof, keepdims
    ),
    np.cumsum: lambda a, axis=None: _tensor(a, "np.cumsum").cumsum(axis),
    np.concatenate: lambda arrays, axis=0: engine.concatenate(arrays, axis),
    np.stack: lambda arrays, axis=0: engine.stack(arrays, axis),
    np.split: lambda ary, indices_or_sections, axis=0: _tensor(ary, "np.split").split(
        indices_or_sections, axis
    ),
    np.where: _where,
    np.clip: _clip,
    np.reshape: _reshape,
    np.ravel: _ravel,
    np.transpose: lambda a, axes=None: _tensor(a, "np.transpose").transpose(axes),
    np.squeeze: lambda a, axis=None: _tensor(a, "np.squeeze").squeeze(axis),
    np.expand_dims: lambda a, axis: _tensor(a, "np.expand_dims").expand_dims(axis),
    np.repeat: lambda a, repeats, axis=None: _tensor(a, "np.repeat").repeat(repeats, axis),
    np.pad: _pad,
    np.flip: _flip,
    np.trace: lambda a, offset=0, axis1=0, axis2=1: _matrix(a, axis1, axis2, "np.trace").trace(
        offset
    ),
    np.diagonal: lambda a, offset=0, axis1=0, axis2=1: _matrix(
        a, axis1, axis2, "np.diagonal"
    ).diagonal(offset),
    np.diag: lambda v, k=0: _tensor(v, "np.diag").diag(k),
    np.tril: lambda m, k=0: _tensor(m, "np.tril").tril(k),
    np.triu: lambda m, k=0: _tensor(m, "np.triu").triu(k),
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.size: lambda a, axis=None: a.size if axis is None else a.shape[axis],
    np.zeros_like: _like(0.0),
    np.ones_like: _like(1.0),
}
_SIGNATURES = {f: inspect.signature(impl) for f, impl in FUNCTIONS.items()}


def array_function(func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """`Tensor.__array_function__`: the engine's version of `func`, or a clear refusal."""
    module = getattr(func, "__module__", None) or "numpy"  # np.linalg.norm, not np.norm
    where = "np" + module[len("numpy") :] if module.startswith("numpy") else module
    name = f"{where}.{func.__name__}"
    impl = FUNCTIONS.get(func)
    if impl is None:
        problem = f"{name} is not one of the NumPy functions the engine differentiates"
    else:
        known = _SIGNATURES[func].parameters
        # None means "not given" only for arguments the engine does not take (out=None, …).
        given = {
            k: v
            for k, v in kwargs.items()
            if v is not np._NoValue and (v is not None or k in known)
        }
        try:
            _SIGNATURES[func].bind(*args, **given)
        except TypeError as e:
            problem = f"{name}: {e} (on Tensors only some of NumPy's arguments are supported)"
        else:
            return impl(*args, **given)
    return _refuse_or_compute(problem, func, args, kwargs)


# ----- taking the tensor out of a converted number


class _Catcher:
    """A tracer for `engine._mode` that lets every operation run and notes every conversion."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.converted: list[Tensor] = []

    def record(self, fn: Any, inputs: Any, out: Tensor) -> None:
        if self.previous is not None:
            self.previous.record(fn, inputs, out)

    def refuse(self, tensor: Tensor, what: str) -> None:
        self.converted.append(tensor)
        if self.previous is not None:
            self.previous.refuse(tensor, what)

    def made(self, tensor: Tensor, source: Any) -> None:
        if self.previous is not None:
            self.previous.made(tensor, source)

    def gradient(self, of: Tensor, g: Tensor) -> None:
        if self.previous is not None:
            self.previous.gradient(of, g)


@contextlib.contextmanager
def catch_conversions() -> Iterator[list[Tensor]]:
    """Collect the tensors turned into Python numbers (`float(t)`, `t.item()`, …) in the block.

    The tutorial's `compute_cost` ends with `float(...)`, which NumPy code needs and which leaves
    the graph; this gives back the Tensor that was converted, so it can be differentiated:

        with catch_conversions() as converted:
            manual.compute_cost(A2, Y)
        cost = converted[-1]
    """
    mode = engine._mode
    catcher = _Catcher(mode.tracer)
    mode.tracer = catcher
    try:
        yield catcher.converted
    finally:
        mode.tracer = catcher.previous


# ----- helpers


def _first_tensor(values: Any) -> Tensor:
    for v in values:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, (list, tuple)):
            found = _first_tensor(v)
            if found is not None:
                return found
    return None  # type: ignore[return-value]


def _convert(x: Any, like: Tensor, name: str) -> Any:
    """Tensors and Python numbers as they are (operators take numbers, and `t ** 2` stays the
    power by a constant); NumPy scalars as Python numbers (their own operators would come back
    here); arrays as constant Tensors."""
    if isinstance(x, np.generic) and x.dtype.kind in "iuf":
        x = x.item()
    if isinstance(x, Tensor) or (isinstance(x, numbers.Real) and not isinstance(x, bool)):
        return x
    return _operand(x, like, name)


def _first(a: Any, b: Any, op: str = "np.maximum/np.minimum") -> Tensor:
    """`a` as a Tensor beside `b`, so that a method or an operator of Tensors applies."""
    return a if isinstance(a, Tensor) else _operand(a, b, op)


_LOGICAL = {np.logical_not, np.logical_and, np.logical_or, np.logical_xor}


def _truth(x: Any) -> Any:
    """What `np.logical_*` read in a value: a mask as it is, a number as "not zero" (nan is
    true), as NumPy and `torch.logical_*` do, each in its own dtype (an array's 1e-50 must not
    become float32's 0 beside a float32 Tensor). Anything else is left for the conversion to
    refuse. (`~ & | ^` and `np.invert`/`bitwise_*` refuse numbers, as both refuse floats.)"""
    if isinstance(x, Tensor):
        return x if x.dtype == np.bool_ else x != 0
    given = np.asarray(x)
    return given != 0 if given.dtype.kind in "iuf" else x


def _tensor(a: Any, name: str) -> Tensor:
    return a if isinstance(a, Tensor) else Tensor(a)


def _pair(a: Any, b: Any, name: str) -> tuple[Tensor, Tensor]:
    like = a if isinstance(a, Tensor) else b
    return _operand(a, like, name), _operand(b, like, name)


def _plain(condition: Any) -> Any:
    """A condition's values: a condition has no gradient, whatever computed it."""
    return condition.detach() if isinstance(condition, Tensor) else condition


def _order(order: str, name: str) -> None:
    if order != "C":
        raise TypeError(f"{name}: only order='C' is supported on Tensors")


def _needing_grad(values: Any) -> list[Tensor]:
    found = []
    for v in values:
        if isinstance(v, Tensor) and v.requires_grad:
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(_needing_grad(v))
    return found


def _arrays(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value._array
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays(v) for v in value)
    return value


def _refuse_or_compute(problem: str, func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """Refuse when a gradient would be lost; otherwise let NumPy compute on the plain arrays."""
    needing = _needing_grad(list(args) + list(kwargs.values()))
    if needing:
        names = ", ".join(_describe(t) for t in needing)
        raise TypeError(
            f"{problem}. Its result would silently drop {names} from the graph, which requires "
            "grad; use the Tensor's own operations, or .detach() to compute on the values"
        )
    return func(*_arrays(args), **{k: _arrays(v) for k, v in kwargs.items()})
