"""Every operation at the inputs where conventions decide the answer, against PyTorch and by hand.

Kinks and ties, zeros, infinities and nan, negative zero, subnormals, float32 overflow, 0-d and
empty tensors. For each case the engine's value, its gradient from `.backward()` of the sum, and
the second derivative (the gradient of the sum of those gradients, through
`backward(create_graph=True)`) are compared with PyTorch 2.13's: nan where it has nan, the same
infinities, the same finite numbers to 1e-12 (float64) or 1e-5 (float32). Most cases also carry
the values worked out by hand, which are checked with or without PyTorch.

Where the engine deliberately differs from PyTorch the case names the part (`differs`) and why;
the engine is then held to the hand value and PyTorch's is checked to differ still, so that a
change on either side is noticed.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from torch_oracle import needs_torch, torch

from tinygrad_fnn import Tensor, binary_cross_entropy, binary_cross_entropy_with_logits, grad
from tinygrad_fnn.engine import ShapeError, concatenate, where
from tinygrad_fnn.losses import cross_entropy, softmax_cross_entropy_with_logits

F = torch.nn.functional
inf, nan = math.inf, math.nan
TINY = 5e-324  # the smallest subnormal float64
PARTS = ("value", "grads", "second")
SIGMOID_20 = 1 / (1 + math.exp(-20))


@dataclass
class Case:
    """One operation at special inputs; `value`, `grads` (one per input) and `second` (one per
    input) are the hand values, None where none is given."""

    id: str
    ours: Callable[..., Tensor]
    theirs: Callable[..., Any]
    inputs: Sequence[Any]
    value: Any = None
    grads: Sequence[Any] | None = None
    second: Sequence[Any] | None = None
    differs: dict[str, str] = field(default_factory=dict)  # part -> why we keep ours
    dtype: Any = np.float64


def ours_results(case: Case) -> dict[str, Any]:
    """The engine's value, gradients of the sum and second derivatives, as arrays."""
    xs = [
        Tensor(np.array(a, dtype=case.dtype), requires_grad=True, dtype=case.dtype)
        for a in case.inputs
    ]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = case.ours(*xs)
        out.sum().backward(create_graph=True)
        grads = [x.grad for x in xs]
        total = functools.reduce(lambda s, t: s + t, (g.sum() for g in grads))
        if total.requires_grad:
            second = [h.data for h in grad(total, xs)]
        else:  # the gradients are constants: nothing to differentiate
            second = [np.zeros(x.shape, case.dtype) for x in xs]
    return {"value": out.data, "grads": [g.data for g in grads], "second": second}


def torch_results(case: Case) -> dict[str, Any]:
    """PyTorch's value, gradients of the sum (by `.backward()`) and second derivatives."""
    xs = [torch.tensor(np.array(a, dtype=case.dtype), requires_grad=True) for a in case.inputs]
    out = case.theirs(*xs)
    out.sum().backward(create_graph=True)
    grads = [torch.zeros_like(x) if x.grad is None else x.grad for x in xs]
    total = sum(g.sum() for g in grads)
    if total.requires_grad:
        found = torch.autograd.grad(total, xs, allow_unused=True)
        second = [
            np.zeros(x.shape) if h is None else h.numpy(force=True) for h, x in zip(found, xs)
        ]
    else:
        second = [np.zeros(x.shape) for x in xs]
    return {
        "value": out.numpy(force=True),
        "grads": [g.numpy(force=True) for g in grads],
        "second": second,
    }


def same(ours: Any, theirs: Any, dtype: Any) -> bool:
    """Equal shapes, nan at the same places, the same infinities, finite values within 1e-12
    (float64) or 1e-5 (float32) of the larger magnitude; the sign of a zero is not compared."""
    if isinstance(ours, list):
        return len(ours) == len(theirs) and all(same(o, t, dtype) for o, t in zip(ours, theirs))
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    if ours.shape != theirs.shape:
        return False
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    atol = 1e-320 if dtype == np.float64 else 1e-44  # subnormals differ in their last bits
    return bool(np.allclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True))


def elementwise(
    name: str,
    ours: Callable,
    theirs: Callable,
    xs: list[float],
    value: Any,
    grads: Any = None,
    second: Any = None,
    **kw: Any,
) -> Case:
    """A one-input case over a vector of special points."""
    return Case(
        name,
        ours,
        theirs,
        [np.array(xs)],
        value,
        None if grads is None else [grads],
        None if second is None else [second],
        **kw,
    )


def lse_t(a):
    return a.logsumexp(0)


# the fused loss keeps the textbook form (two NumPy calls fewer than PyTorch's
# (1 − y)·a + softplus(−a) in the compiled step); at a logit of +inf it is nan, PyTorch inf
BCE_AT_INF = "max(a, 0) − a·y + log1p(exp(−|a|)): inf − inf·y is nan (PyTorch: inf)"

CASES = [
    # ----- kinks and ties
    elementwise(
        "relu at ±0 and subnormals",
        lambda a: a.relu(),
        torch.relu,
        [0.0, -0.0, TINY, -TINY, -inf, inf],
        [0, 0, TINY, 0, 0, inf],
        [0, 0, 1, 0, 0, 1],
        [0] * 6,
    ),
    elementwise(
        "relu at nan",
        lambda a: a.relu(),
        torch.relu,
        [nan],
        [nan],
        [0.0],
        differs={"grads": "the tutorial's g·(A1 > 0): nan > 0 is False (PyTorch passes g)"},
    ),
    elementwise(
        "abs at ±0 and ±subnormal",
        abs,
        torch.abs,
        [0.0, -0.0, TINY, -TINY, -inf],
        [0, 0, TINY, TINY, inf],
        [0, 0, 1, -1, -1],
        [0] * 5,
    ),
    elementwise(
        "abs at nan",
        abs,
        torch.abs,
        [nan],
        [nan],
        [nan],
        differs={"grads": "g·sign(a), and NumPy's sign(nan) is nan (PyTorch's sgn: 0)"},
    ),
    elementwise(
        "sign",
        lambda a: a.sign(),
        torch.sign,
        [0.0, -0.0, 2.0, -inf, inf, TINY],
        [0, 0, 1, -1, 1, 1],
        [0] * 6,
        [0] * 6,
    ),
    elementwise(
        "sign at nan",
        lambda a: a.sign(),
        torch.sign,
        [nan],
        [nan],
        [0.0],
        differs={"value": "NumPy's sign(nan) is nan; PyTorch's is 0"},
    ),
    Case(
        "max: tied maxima share",
        lambda a: a.max(),
        lambda a: a.amax(),
        [[1.0, 3.0, 3.0, 3.0]],
        3.0,
        [[0, 1 / 3, 1 / 3, 1 / 3]],
        [[0] * 4],
    ),
    Case(
        "max: tied infinities",
        lambda a: a.max(),
        lambda a: a.amax(),
        [[inf, 1.0, inf]],
        inf,
        [[0.5, 0, 0.5]],
    ),
    Case(
        "max: -0 and 0 tie", lambda a: a.max(), lambda a: a.amax(), [[-0.0, 0.0]], 0.0, [[0.5, 0.5]]
    ),
    Case("max with nan", lambda a: a.max(), lambda a: a.amax(), [[1.0, nan, 2.0]], nan),
    Case(
        "max over an axis, ties",
        lambda a: a.max(0),
        lambda a: a.amax(0),
        [[[1.0, 2.0], [1.0, -inf]]],
        [1.0, 2.0],
        [[[0.5, 1.0], [0.5, 0.0]]],
    ),
    Case(
        "min: tied minima share",
        lambda a: a.min(),
        lambda a: a.amin(),
        [[1.0, 1.0, 3.0]],
        1.0,
        [[0.5, 0.5, 0]],
    ),
    Case(
        "min: tied -inf", lambda a: a.min(), lambda a: a.amin(), [[-inf, -inf]], -inf, [[0.5, 0.5]]
    ),
    Case(
        "maximum: ties split",
        lambda a, b: a.maximum(b),
        torch.maximum,
        [[1.0, 0.0, -0.0, inf, -inf], [1.0, -0.0, 0.0, inf, -inf]],
        [1, 0, 0, inf, -inf],
        [[0.5] * 5, [0.5] * 5],
        [[0] * 5, [0] * 5],
    ),
    Case(
        "maximum with nan",
        lambda a, b: a.maximum(b),
        torch.maximum,
        [[nan, 1.0], [1.0, nan]],
        [nan, nan],
        [[0, 0], [1, 1]],
        differs={
            "grads": "a's part is 1 where a > b (0.5 at a tie), b's the rest: with a nan on "
            "either side all goes to b (PyTorch gives g to both)"
        },
    ),
    Case(
        "minimum: ties split",
        lambda a, b: a.minimum(b),
        torch.minimum,
        [[2.0, inf, -0.0], [2.0, inf, 0.0]],
        [2, inf, 0],
        [[0.5] * 3, [0.5] * 3],
    ),
    Case(
        "minimum with nan",
        lambda a, b: a.minimum(b),
        torch.minimum,
        [[nan], [1.0]],
        [nan],
        [[0], [1]],
        differs={"grads": "as maximum: the nan side gets 0 (PyTorch gives g to both)"},
    ),
    elementwise(
        "clip at and beyond its bounds",
        lambda a: a.clip(-1.0, 3.0),
        lambda a: a.clamp(-1.0, 3.0),
        [-1.0, 3.0, -inf, inf, 0.0, nan],
        [-1, 3, -1, 3, 0, nan],
        [1, 1, 0, 0, 1, 0],
        [0] * 6,
    ),
    elementwise(
        "clip with lo = hi",
        lambda a: a.clip(1.0, 1.0),
        lambda a: a.clamp(1.0, 1.0),
        [1.0, 0.0, 2.0],
        [1, 1, 1],
        [1, 0, 0],
    ),
    elementwise(
        "clip below only",
        lambda a: a.clip(0.0),
        lambda a: a.clamp(min=0.0),
        [0.0, -0.0, -1.0, inf],
        [0, 0, 0, inf],
        [1, 1, 0, 1],
    ),
    elementwise(
        "clip above only",
        lambda a: a.clip(None, 1.0),
        lambda a: a.clamp(max=1.0),
        [1.0, 2.0, -inf],
        [1, 1, -inf],
        [1, 0, 1],
    ),
    elementwise(
        "relu6 at 0, 6 and ±inf",
        lambda a: a.relu6(),
        F.relu6,
        [0.0, 6.0, -inf, inf, 3.0, -0.0],
        [0, 6, 0, 6, 3, 0],
        [0, 0, 0, 0, 1, 0],
        [0] * 6,
    ),
    elementwise(
        "relu6 at nan",
        lambda a: a.relu6(),
        F.relu6,
        [nan],
        [nan],
        [0.0],
        differs={"grads": "clip's mask (0 < a < 6) is False at nan (PyTorch passes g)"},
    ),
    elementwise(
        "leaky_relu at ±0",
        lambda a: a.leaky_relu(0.2),
        lambda a: F.leaky_relu(a, 0.2),
        [0.0, -0.0, -1.0, 1.0, -inf],
        [0, 0, -0.2, 1, -inf],
        [0.2, 0.2, 0.2, 1, 0.2],
        [0] * 5,
    ),
    elementwise(
        "hardswish at its corners",
        lambda a: a.hardswish(),
        F.hardswish,
        [-3.0, 3.0, 0.0, inf, -inf],
        [0, 3, 0, inf, nan],
        [0, 1, 0.5, 1, 0],
    ),
    # ----- zeros, powers and division
    elementwise(
        "sqrt at ±0 and a subnormal",
        lambda a: a.sqrt(),
        torch.sqrt,
        [0.0, -0.0, 4.0, TINY, inf, -1.0],
        [0, 0, 2, math.sqrt(TINY), inf, nan],
        [inf, -inf, 0.25, 0.5 / math.sqrt(TINY), 0, nan],
    ),
    elementwise(
        "log at 0, inf, -1 and a subnormal",
        lambda a: a.log(),
        torch.log,
        [0.0, -0.0, 1.0, inf, -1.0, TINY],
        [-inf, -inf, 0, inf, nan, math.log(TINY)],
        [inf, -inf, 1, 0, -1, inf],
        [-inf, -inf, -1, 0, -1, -inf],
    ),
    elementwise(
        "exp at ±inf and overflow",
        lambda a: a.exp(),
        torch.exp,
        [inf, -inf, 710.0, -746.0, -0.0, TINY],
        [inf, 0, inf, 0, 1, 1],
        [inf, 0, inf, 0, 1, 1],
        [inf, 0, inf, 0, 1, 1],
    ),
    elementwise(
        "x**0 everywhere",
        lambda a: a**0,
        lambda a: a**0,
        [0.0, inf, -inf, nan, -2.0],
        [1] * 5,
        [0] * 5,
        [0] * 5,
    ),
    elementwise(
        "x**1",
        lambda a: a**1,
        lambda a: a**1,
        [0.0, -0.0, inf, -inf],
        [0, 0, inf, -inf],
        [1] * 4,
        [0] * 4,
    ),
    elementwise(
        "x**2 at 0 and overflow",
        lambda a: a**2,
        lambda a: a**2,
        [0.0, -0.0, 1e200, TINY],
        [0, 0, inf, 0],
        [0, 0, 2e200, 2 * TINY],
        [2] * 4,
    ),
    elementwise(
        "x**0.5 at 0",
        lambda a: a**0.5,
        lambda a: a**0.5,
        [0.0, 4.0, inf],
        [0, 2, inf],
        [inf, 0.25, 0],
    ),
    elementwise(
        "x**0.5 at -0",
        lambda a: a**0.5,
        lambda a: a**0.5,
        [-0.0],
        [0],
        [inf],
        differs={"grads": "0.5·(-0)**-0.5 is +inf in C's pow (PyTorch: -inf)"},
    ),
    elementwise(
        "x**0.5 at -inf",
        lambda a: a**0.5,
        lambda a: a**0.5,
        [-inf],
        [nan],
        [0.0],
        differs={"grads": "0.5·(-inf)**-0.5 is 0 in C's pow (PyTorch: nan)"},
    ),
    elementwise(
        "x**-1 at ±0 and ±inf",
        lambda a: a**-1,
        lambda a: a**-1,
        [0.0, -0.0, inf, -inf],
        [inf, -inf, 0, 0],
        [-inf, -inf, 0, 0],
    ),
    elementwise(
        "x**-0.5 at -0",
        lambda a: a**-0.5,
        lambda a: a**-0.5,
        [-0.0],
        [inf],
        differs={"value": "(-0)**-0.5 is +inf in C's pow (PyTorch: -inf)"},
    ),
    elementwise(
        "x**1.5 at 0", lambda a: a**1.5, lambda a: a**1.5, [0.0, 4.0], [0, 8], [0, 3], [inf, 0.375]
    ),
    Case(
        "a**b with base 0",
        lambda a, b: a**b,
        lambda a, b: a**b,
        [[0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 1.0, 0.0, -1.0, 2.0]],
        [0, 0, 1, inf, 0],
        [[inf, 1, 0, -inf, 0], [0, 0, 0, -inf, 0]],
    ),
    Case(
        "a**b with exponent 0",
        lambda a, b: a**b,
        lambda a, b: a**b,
        [[inf, -inf, -2.0, 3.0], [0.0, 0.0, 0.0, 0.0]],
        [1, 1, 1, 1],
        [[0, 0, 0, 0], [inf, nan, nan, math.log(3)]],
    ),
    Case(
        "a**b: 1**inf, 2**±inf, (-2)**b",
        lambda a, b: a**b,
        lambda a, b: a**b,
        [[1.0, 2.0, 2.0, -2.0, -2.0], [inf, inf, -inf, 2.0, 3.0]],
        [1, inf, 0, 4, -8],
        # b·a^(b − 1) at 2, -inf is -inf·0; log(-2) is nan
        [[inf, inf, nan, -4, 12], [0, inf, 0, nan, nan]],
    ),
    elementwise(
        "0**x",
        lambda a: 0.0**a,
        lambda a: 0.0**a,
        [0.5, 0.0, -1.0, 2.0],
        [0, 1, inf, 0],
        [0, 0, -inf, 0],
    ),
    elementwise(
        "2**x at ±inf",
        lambda a: 2.0**a,
        lambda a: 2.0**a,
        [inf, -inf, 1100.0],
        [inf, 0, inf],
        [inf, 0, inf],
    ),
    Case(
        "a / 0",
        lambda a, b: a / b,
        lambda a, b: a / b,
        [[1.0, -1.0, 0.0, 1.0], [0.0, 0.0, 0.0, -0.0]],
        [inf, -inf, nan, -inf],
        [[inf, inf, inf, -inf], [-inf, inf, nan, -inf]],
        # ∂/∂b of 1/b − a/b² is −1/b² + 2a/b³: -inf + inf at a = 1, 0/0 at a = 0
        [[-inf, -inf, -inf, -inf], [nan, -inf, nan, -inf]],
    ),
    Case(
        "a / b with b below 1e-154 (b·b underflows)",
        lambda a, b: a / b,
        lambda a, b: a / b,
        [[1e-200, 1e-200, 1.0], [3e-162, 1e-160, 1e-170]],
        [1e-200 / 3e-162, 1e-40, 1e170],
        [[1 / 3e-162, 1e160, 1e170], [-(1e-200 / 3e-162) / 3e-162, -1e120, -inf]],
    ),
    Case(
        "float32: a / b with b below 1e-19 (b·b is subnormal, 1e-42)",
        lambda a, b: a / b,
        lambda a, b: a / b,
        [[1e-30], [1e-21]],
        [1e-9],
        [[1e21], [-1e12]],
        dtype=np.float32,
    ),
    Case(
        "a / b at infinities",
        lambda a, b: a / b,
        lambda a, b: a / b,
        [[inf, 1.0, inf], [inf, inf, 2.0]],
        [nan, 0, inf],
        [[0, 0, 0.5], [nan, -0.0, -inf]],
        [[-0.0, -0.0, -0.25], [nan, 0, inf]],
    ),
    Case(
        "0·inf",
        lambda a, b: a * b,
        lambda a, b: a * b,
        [[0.0, -0.0], [inf, inf]],
        [nan, nan],
        [[inf, inf], [0, -0.0]],
        [[1, 1], [1, 1]],
    ),
    elementwise(
        "1 / x at ±0 and ±inf",
        lambda a: 1.0 / a,
        lambda a: 1.0 / a,
        [0.0, -0.0, inf, -inf, 1e-160],
        [inf, -inf, 0, -0.0, 1e160],
        [-inf, -inf, -0.0, -0.0, -inf],
        [inf, -inf, 0, 0, inf],
    ),
    Case(
        "var of constant data",
        lambda a: a.var(),
        lambda a: a.var(correction=0),
        [[2.0, 2.0, 2.0]],
        0.0,
        [[0, 0, 0]],
        [[0, 0, 0]],
    ),
    Case(
        "std of constant data",
        lambda a: a.std(),
        lambda a: a.std(correction=0),
        [[2.0, 2.0, 2.0]],
        0.0,
        [[0, 0, 0]],
    ),
    Case(
        "std of one element", lambda a: a.std(), lambda a: a.std(correction=0), [[5.0]], 0.0, [[0]]
    ),
    Case(
        "std, ddof 1, of constant data",
        lambda a: a.std(ddof=1),
        lambda a: a.std(),
        [[2.0, 2.0]],
        0.0,
        [[0, 0]],
    ),
    Case(
        "std of a 0-d tensor", lambda a: a.std(), lambda a: a.std(correction=0), [3.0], 0.0, [0.0]
    ),
    Case(
        "var whose squares overflow",
        lambda a: a.var(),
        lambda a: a.var(correction=0),
        [[1e200, -1e200]],
        inf,
        [[1e200, -1e200]],  # 2(x − mean)/n is finite
    ),
    Case(
        "sqrt(Σx²) at 0: 0·inf",
        lambda a: (a * a).sum().sqrt(),
        lambda a: (a * a).sum().sqrt(),
        [[0.0, 0.0]],
        0.0,
        [[nan, nan]],
    ),
    # ----- infinities and nan through the smooth functions
    elementwise(
        "sigmoid at ±inf and ±800",
        lambda a: a.sigmoid(),
        torch.sigmoid,
        [inf, -inf, 800.0, -800.0, nan, TINY],
        [1, 0, 1, 0, nan, 0.5],
        [0, 0, 0, 0, nan, 0.25],
        [0, 0, 0, 0, nan, 0],
    ),
    elementwise(
        "tanh at ±inf and ±20",
        lambda a: a.tanh(),
        torch.tanh,
        [inf, -inf, 20.0, -20.0, -0.0],
        [1, -1, 1, -1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ),
    elementwise(
        "erf at ±inf",
        lambda a: a.erf(),
        torch.erf,
        [inf, -inf, -0.0],
        [1, -1, 0],
        [0, 0, 2 / math.sqrt(math.pi)],
        [nan, nan, 0],  # exp(-a²)'s slope 0 times a = ±inf
    ),
    elementwise(
        "erf's second derivative at ±1e308",
        lambda a: a.erf(),
        torch.erf,
        [1e308, -1e308],
        [1, -1],
        [0, 0],
        [0, 0],
        differs={"second": "-2a·exp(-a²) → 0, the limit (PyTorch: inf·0 = nan)"},
    ),
    elementwise(
        "softplus at ±inf, ±1e308 and its threshold",
        lambda a: a.softplus(),
        F.softplus,
        [inf, -inf, 1e308, -1e308, 20.5, -800.0],
        [inf, 0, 1e308, 0, 20.5, 0],
        [1, 0, 1, 0, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ),
    elementwise(
        "softplus at 20: sigmoid's slope, as its first derivative",
        lambda a: a.softplus(),
        F.softplus,
        [20.0],
        [20 + math.exp(-20)],
        [1 / (1 + math.exp(-20))],
        [SIGMOID_20 * (1 - SIGMOID_20)],
        differs={
            "second": "PyTorch's double backward masks x ≥ 20 while its backward "
            "masks x > 20; ours is sigmoid'(20), consistently"
        },
    ),
    elementwise(
        "mish at ±inf",
        lambda a: a.mish(),
        F.mish,
        [inf, -inf, -800.0],
        [inf, nan, -0.0],
        [nan, nan, 0],  # tanh(softplus)' → 0 times x = ±inf
    ),
    elementwise(
        "mish's second derivative at 800",
        lambda a: a.mish(),
        F.mish,
        [800.0],
        [800],
        [1],
        [0],
        differs={"second": "0, the limit (PyTorch: nan)"},
    ),
    elementwise("gelu at ±inf", lambda a: a.gelu(), F.gelu, [inf, -inf], [inf, nan], [nan, nan]),
    elementwise(
        "gelu's second derivative at ±1e308",
        lambda a: a.gelu(),
        F.gelu,
        [1e308, -1e308],
        [1e308, -0.0],
        [1, 0],
        [0, 0],
        differs={"second": "0, the limit (PyTorch: inf·0 = nan)"},
    ),
    elementwise(
        "gelu (tanh) at ±inf",
        lambda a: a.gelu("tanh"),
        lambda a: F.gelu(a, approximate="tanh"),
        [inf, -inf],
        [inf, nan],
    ),
    # ----- logsumexp, softmax, log_softmax with infinite entries
    Case("logsumexp with -inf", lse_t, lse_t, [[-inf, 1.0]], 1.0, [[0, 1]], [[0, 0]]),
    Case("logsumexp of -infs", lse_t, lse_t, [[-inf, -inf]], -inf),
    Case("logsumexp with +inf", lse_t, lse_t, [[inf, 1.0]], inf),
    Case("logsumexp with ±inf", lse_t, lse_t, [[inf, -inf]], inf),
    Case(
        "logsumexp of huge ties",
        lse_t,
        lse_t,
        [[1e308, 1e308]],
        1e308,
        [[0.5, 0.5]],
        [[0, 0]],
        differs={
            "grads": "softmax, [0.5, 0.5]; PyTorch's exp(x − result) gives [1, 1]",
            "second": "softmax's slope times 0 (PyTorch: -1)",
        },
    ),
    Case(
        "logsumexp over an empty axis",
        lambda a: a.logsumexp(1),
        lambda a: a.logsumexp(1),
        [np.zeros((2, 0))],
        [-inf, -inf],
        [np.zeros((2, 0))],
    ),
    Case(
        "logsumexp of 0-d",
        lambda a: a.logsumexp(),
        lambda a: a.logsumexp(0),
        [2.0],
        2.0,
        [1.0],
        [0.0],
    ),
    Case(
        "softmax with -inf",
        lambda a: a.softmax(0),
        lambda a: a.softmax(0),
        [[-inf, 1.0]],
        [0, 1],
        [[0, 0]],
    ),
    Case(
        "softmax of huge values",
        lambda a: a.softmax(0),
        lambda a: a.softmax(0),
        [[1e308, -1e308]],
        [1, 0],
        [[0, 0]],
    ),
    Case(
        "softmax with +inf",
        lambda a: a.softmax(0),
        lambda a: a.softmax(0),
        [[inf, 1.0]],
        [nan, 0.0],
        differs={"value": "the finite entry gets its limit, 0 (PyTorch: nan)"},
    ),
    Case("softmax of 0-d", lambda a: a.softmax(0), lambda a: a.softmax(0), [3.0], 1.0, [0.0]),
    Case(
        "log_softmax of a 1000 gap",
        lambda a: a.log_softmax(0),
        lambda a: a.log_softmax(0),
        [[1000.0, 0.0]],
        [0, -1000],
        [[-1, 1]],
        [[0, 0]],
    ),
    Case(
        "log_softmax with -inf",
        lambda a: a.log_softmax(0),
        lambda a: a.log_softmax(0),
        [[-inf, 1.0]],
        [-inf, 0],
        [[1, -1]],  # 1 − 2·softmax
    ),
    Case(
        "log_softmax with +inf",
        lambda a: a.log_softmax(0),
        lambda a: a.log_softmax(0),
        [[inf, 1.0]],
        [nan, -inf],
        [[nan, 1]],
        differs={
            "value": "the finite entry gets its limit, -inf (PyTorch: nan)",
            "grads": "the finite entry gets 1 − 2·0 (PyTorch: nan)",
        },
    ),
    # ----- the fused losses at infinite logits and 0/1 targets
    Case(
        "bce_with_logits at ±800 and at +inf with label 0",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[800.0, -800.0, inf], [1.0, 0.0, 0.0]],
        nan,
        [[0, 0, 1 / 3], [-800 / 3, 800 / 3, -inf]],
        differs={"value": BCE_AT_INF},
    ),
    Case(
        "bce_with_logits at -inf with label 1 or 0: 0·(-inf), -inf + inf",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[-inf, -inf], [1.0, 0.0]],
        nan,
        [[-0.5, 0.0], [inf, inf]],
    ),
    Case(
        "bce_with_logits at +inf with label 0",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[inf], [0.0]],
        nan,
        [[1.0], [-inf]],
        differs={"value": BCE_AT_INF},
    ),
    Case(
        "bce_with_logits at -inf with label 1",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[-inf], [1.0]],
        inf,
        [[-1.0], [inf]],
        differs={"value": "max(a, 0) − a·y: 0 + inf is inf (PyTorch: -inf + inf, nan)"},
    ),
    Case(
        "bce_with_logits at +inf with label 0.5",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[inf], [0.5]],
        nan,
        [[0.5], [-inf]],
        differs={"value": BCE_AT_INF},
    ),
    Case(
        "bce_with_logits at +inf with label 1: inf·0",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[inf], [1.0]],
        nan,
        [[0.0], [-inf]],
    ),
    Case(
        "bce_with_logits at 0",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        [[0.0, -0.0], [1.0, 0.0]],
        math.log(2),
        [[-0.25, 0.25], [0, 0]],
    ),
    Case(
        "softmax cross-entropy, a 1000 gap",
        softmax_cross_entropy_with_logits,
        lambda a, y: F.cross_entropy(a.T, y.T),
        [[[1000.0], [0.0]], [[0.0], [1.0]]],
        1000.0,
        [[[1.0], [-1.0]], [[-0.0], [1000.0]]],
    ),
    Case(
        "softmax cross-entropy, -inf on a wrong class",
        softmax_cross_entropy_with_logits,
        lambda a, y: F.cross_entropy(a.T, y.T),
        [[[-inf], [0.0]], [[0.0], [1.0]]],
        nan,  # 0·log 0, in PyTorch too
        [[[0.0], [0.0]], [[inf], [-0.0]]],
    ),
    Case(
        "softmax cross-entropy, huge logits",
        softmax_cross_entropy_with_logits,
        lambda a, y: F.cross_entropy(a.T, y.T),
        [[[1e308], [-1e308]], [[1.0], [0.0]]],
        nan,  # 0·log 0, in PyTorch too
        [[[0.0], [0.0]], [[-0.0], [inf]]],
    ),
    Case(
        "softmax cross-entropy, +inf logit",
        softmax_cross_entropy_with_logits,
        lambda a, y: F.cross_entropy(a.T, y.T),
        [[[inf], [0.0]], [[1.0], [0.0]]],
        nan,
        [[[nan], [0.0]], [[nan], [inf]]],
        differs={"grads": "the finite logit gets its limit, 0 (PyTorch: nan)"},
    ),
    # ----- negative zero, subnormals
    elementwise("-(0)", lambda a: -a, lambda a: -a, [0.0, -0.0], [-0.0, 0.0], [-1, -1]),
    elementwise(
        "subnormals through the smooth functions",
        lambda a: a.exp() + a.sigmoid(),
        lambda a: a.exp() + a.sigmoid(),
        [TINY, -TINY],
        [1.5, 1.5],
        [1.25, 1.25],
    ),
    # ----- float32 overflow and underflow
    elementwise(
        "float32: exp and squares overflow",
        lambda a: a.exp() + a * a,
        lambda a: a.exp() + a * a,
        [89.0, 2e19, -104.0],
        [inf, inf, 104.0**2],
        [inf, inf, -208.0],
        dtype=np.float32,
    ),
    elementwise(
        "float32: sigmoid and tanh saturate",
        lambda a: a.sigmoid() + a.tanh(),
        lambda a: a.sigmoid() + a.tanh(),
        [100.0, -104.0, 20.0],
        [2, -1, 2],
        [0, 0, 0],
        dtype=np.float32,
    ),
    elementwise(
        "float64 → float32 overflow",
        lambda a: a.astype(np.float32).astype(np.float64),
        lambda a: a.float().double(),
        [1e308, -1e308, 1e-50],
        [inf, -inf, 0],
        [1, 1, 1],
    ),
    # ----- 0-d and empty tensors, reductions over empty axes
    Case(
        "0-d through exp, max, prod",
        lambda a: a.exp() + a.max() + a.prod(),
        lambda a: a.exp() + a.amax() + a.prod(),
        [0.0],
        1.0,
        [3.0],
        [1.0],
    ),
    Case(
        "0-d cumsum (flattened, as NumPy)",
        lambda a: a.cumsum(),
        lambda a: a.cumsum(0).reshape(1),
        [2.0],
        None,
        [1.0],
    ),
    Case("sum of nothing", lambda a: a.sum(), lambda a: a.sum(), [np.zeros(0)], 0.0, [np.zeros(0)]),
    Case(
        "mean of nothing", lambda a: a.mean(), lambda a: a.mean(), [np.zeros(0)], nan, [np.zeros(0)]
    ),
    Case(
        "prod of nothing", lambda a: a.prod(), lambda a: a.prod(), [np.zeros(0)], 1.0, [np.zeros(0)]
    ),
    Case(
        "cumsum of nothing",
        lambda a: a.cumsum(0),
        lambda a: a.cumsum(0),
        [np.zeros(0)],
        np.zeros(0),
        [np.zeros(0)],
    ),
    Case(
        "exp of nothing",
        lambda a: a.exp(),
        torch.exp,
        [np.zeros((0, 3))],
        np.zeros((0, 3)),
        [np.zeros((0, 3))],
    ),
    Case(
        "sum over an empty axis",
        lambda a: a.sum(1),
        lambda a: a.sum(1),
        [np.zeros((2, 0))],
        [0, 0],
        [np.zeros((2, 0))],
    ),
    Case(
        "mean over an empty axis",
        lambda a: a.mean(1),
        lambda a: a.mean(1),
        [np.zeros((2, 0))],
        [nan, nan],
        [np.zeros((2, 0))],
    ),
    Case(
        "prod over an empty axis",
        lambda a: a.prod(1),
        lambda a: a.prod(1),
        [np.zeros((2, 0))],
        [1, 1],
        [np.zeros((2, 0))],
    ),
    Case(
        "max along the non-empty axis of (2, 0)",
        lambda a: a.max(0),
        lambda a: a.amax(0),
        [np.zeros((2, 0))],
        np.zeros(0),
        [np.zeros((2, 0))],
    ),
    Case(
        "cumsum along an empty axis",
        lambda a: a.cumsum(1),
        lambda a: a.cumsum(1),
        [np.zeros((2, 0))],
        np.zeros((2, 0)),
        [np.zeros((2, 0))],
    ),
    Case(
        "softmax of nothing",
        lambda a: a.softmax(0),
        lambda a: a.softmax(0),
        [np.zeros(0)],
        np.zeros(0),
        [np.zeros(0)],
    ),
    Case(
        "matmul over an empty inner axis",
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [np.zeros((2, 0)), np.zeros((0, 3))],
        np.zeros((2, 3)),
        [np.zeros((2, 0)), np.zeros((0, 3))],
    ),
    Case(
        "matmul with inf·0",
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        [[[inf, 0.0]], [[0.0], [1.0]]],
        [[nan]],
        [[[0.0, 1.0]], [[inf], [0.0]]],
    ),
    Case(
        "cumsum through ±inf",
        lambda a: a.cumsum(0),
        lambda a: a.cumsum(0),
        [[inf, -inf, 1.0]],
        [inf, nan, nan],
        [[3, 2, 1]],
    ),
    Case("sum of ±inf", lambda a: a.sum(), lambda a: a.sum(), [[inf, -inf]], nan, [[1, 1]]),
    Case(
        "mean of two 1e308",
        lambda a: a.mean(),
        lambda a: a.mean(),
        [[1e308, 1e308]],
        inf,
        [[0.5, 0.5]],
    ),
    # ----- prod at zeros and extremes: each gradient is the product of the others
    Case(
        "prod with one zero",
        lambda a: a.prod(),
        lambda a: a.prod(),
        [[0.0, 2.0, 3.0]],
        0.0,
        [[6, 0, 0]],
        [[5, 3, 2]],
    ),
    Case(
        "prod with two zeros",
        lambda a: a.prod(),
        lambda a: a.prod(),
        [[0.0, 0.0, 3.0]],
        0.0,
        [[0, 0, 0]],
        [[3, 3, 0]],
    ),
    Case(
        "prod with nan elsewhere",
        lambda a: a.prod(),
        lambda a: a.prod(),
        [[nan, 2.0, 3.0]],
        nan,
        [[6, nan, nan]],
        [[5, nan, nan]],
        differs={
            "grads": "the product of the others, 6 (PyTorch: nan, through z / x)",
            "second": "the others' sums (PyTorch: nan)",
        },
    ),
    Case(
        "prod whose value underflows",
        lambda a: a.prod(),
        lambda a: a.prod(),
        [[1e-200, 1e-200, 1e200]],
        0.0,
        [[1.0, 1.0, 0.0]],
        [[1e200, 1e200, 2e-200]],
        differs={
            "grads": "the product of the others, 1 (PyTorch: 0 = z / x with z = 0)",
            "second": "the others' sums (PyTorch: 0)",
        },
    ),
    Case(
        "prod with inf and 0",
        lambda a: a.prod(),
        lambda a: a.prod(),
        [[inf, 0.0, 3.0]],
        nan,
        [[0, inf, nan]],
        [[3, inf, inf]],
        differs={"second": "∂/∂x₀ of the sum of gradients is x₁ + x₂ = 3 (PyTorch: nan)"},
    ),
    # ----- nan passes through the smooth functions and their slopes
    elementwise(
        "nan through exp, log, sqrt, tanh, erf, softplus, mish, gelu",
        lambda a: (
            a.exp() + a.log() + a.sqrt() + a.tanh() + a.erf() + a.softplus() + a.mish() + a.gelu()
        ),
        lambda a: (
            a.exp()
            + a.log()
            + a.sqrt()
            + a.tanh()
            + a.erf()
            + F.softplus(a)
            + F.mish(a)
            + F.gelu(a)
        ),
        [nan],
        [nan],
        [nan],
    ),
    elementwise(
        "leaky_relu and hardswish at nan: the slope of the branch the comparisons pick",
        lambda a: a.leaky_relu(0.2) + a.hardswish(),
        lambda a: F.leaky_relu(a, 0.2) + F.hardswish(a),
        [nan],
        [nan],
        [1.2],
    ),
    # ----- sums and differences of infinities, and the operations that only move values
    Case(
        "inf − inf and inf + -inf",
        lambda a, b: (a - b) + (a + -b),
        lambda a, b: (a - b) + (a + -b),
        [[inf, -inf], [inf, -inf]],
        [nan, nan],
        [[2, 2], [-2, -2]],
        [[0, 0], [0, 0]],
    ),
    Case(
        "moving ±inf and nan: transpose, reshape, broadcast, index, pad, join",
        lambda a: concatenate(
            [a.T.reshape(4), a[[0, 0], 1], a.broadcast_to((2, 2, 2)).sum(0).ravel(), a.pad(1)[0]]
        ),
        lambda a: torch.cat(
            [
                a.T.reshape(4),
                a[[0, 0], 1],
                a.expand(2, 2, 2).sum(0).ravel(),
                F.pad(a, (1, 1, 1, 1))[0],
            ]
        ),
        [[[inf, nan], [-inf, -0.0]]],
        [inf, -inf, nan, 0, nan, nan, inf, nan, -inf, 0, 0, 0, 0, 0],
        [[[3, 5], [3, 3]]],
        [[[0, 0], [0, 0]]],
    ),
    Case(
        "moving nothing: empty transpose, slice, pad, join",
        lambda a: concatenate([a.T.ravel(), a[1:1].ravel(), a.pad(1).ravel()]),
        lambda a: torch.cat([a.T.ravel(), a[1:1].ravel(), F.pad(a, (1, 1, 1, 1)).ravel()]),
        [np.zeros((0, 3))],
        np.zeros(10),
        [np.zeros((0, 3))],
    ),
    Case(
        "detach: its inf is a constant",
        lambda a: a.detach() * a,
        lambda a: a.detach() * a,
        [[inf, 0.0]],
        [inf, 0],
        [[inf, 0]],
        [[0, 0]],
    ),
    # ----- the composed textbook costs at probabilities of exactly 0 and 1
    Case(
        "binary_cross_entropy at p = 0 and 1, right labels: 0·log 0",
        binary_cross_entropy,
        F.binary_cross_entropy,
        [[0.0, 1.0], [0.0, 1.0]],
        nan,
        [[nan, nan], [inf, -inf]],
        [[nan, nan], [-inf, -inf]],
        differs={
            "value": "the textbook formula composed: 0·log 0 = nan, and log(0) = -inf; PyTorch "
            "clamps log at -100 (0 here, 100 for wrong labels)",
            "grads": "PyTorch clamps p·(1 − p) at 1e-12 (0 here)",
            "second": "(PyTorch: the clamps' -5e11)",
        },
    ),
    Case(
        "binary_cross_entropy at p = 0 and 1, wrong labels",
        binary_cross_entropy,
        F.binary_cross_entropy,
        [[0.0, 1.0], [1.0, 0.0]],
        inf,
        [[-inf, inf], [inf, -inf]],
        [[nan, nan], [-inf, -inf]],
        differs={
            "value": "log(0) = -inf: the cost is inf (PyTorch: 100, log clamped at -100)",
            "grads": "(PyTorch: ±5e11 from the clamp at 1e-12)",
            "second": "(PyTorch: the clamps' -5e11)",
        },
    ),
    Case(
        "cross_entropy at a probability of 0",
        cross_entropy,
        lambda p, y: -(y * p.log()).sum() / p.shape[1],
        [[[0.0], [1.0]], [[0.0], [1.0]]],
        nan,
        [[[nan], [-1.0]], [[inf], [-0.0]]],
    ),
    # ----- where: the branch not taken still gets a gradient of 0, and 0 / 0 is nan
    elementwise(
        "where over log at 0",
        lambda a: where(a > 0, a.log(), a),
        lambda a: torch.where(a > 0, a.log(), a),
        [0.0, -1.0, 2.0],
        [0, -1, math.log(2)],
        [nan, 1, 0.5],
    ),
]
IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_by_hand(case: Case) -> None:
    """The engine's value, gradients and second derivatives equal the hand values given."""
    ours = ours_results(case)
    for part, hand in zip(PARTS, (case.value, case.grads, case.second)):
        if hand is None:
            continue
        expected = (
            [np.asarray(h, np.float64) for h in hand] if part != "value" else np.asarray(hand)
        )
        if part != "value":
            expected = [
                np.broadcast_to(e, o.shape) if e.ndim == 0 else e
                for e, o in zip(expected, ours[part])
            ]
        assert same(ours[part], expected, case.dtype), (part, ours[part], hand)


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_torch(case: Case) -> None:
    """The engine's results equal PyTorch's, except in the parts a case names as differing, where
    PyTorch still differs (a fix on its side would be noticed here)."""
    ours = ours_results(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = torch_results(case)
    for part in PARTS:
        agree = same(ours[part], theirs[part], case.dtype)
        if part in case.differs:
            assert not agree, f"{part}: PyTorch now agrees ({theirs[part]}): {case.differs[part]}"
        else:
            assert agree, (part, ours[part], theirs[part])
    assert set(case.differs) <= set(PARTS)


def test_every_difference_is_pinned_by_a_hand_value() -> None:
    """A part where the engine keeps its own answer has the hand value it keeps."""
    for case in CASES:
        for part in case.differs:
            assert (case.value, case.grads, case.second)[PARTS.index(part)] is not None, case.id


@pytest.mark.parametrize(
    "fn", [lambda a: a.max(), lambda a: a.min(), lambda a: a.max(1), lambda a: a.min(1)]
)
def test_max_and_min_over_nothing_are_an_error(fn: Callable[[Tensor], Tensor]) -> None:
    """No maximum of nothing (PyTorch refuses too): a ShapeError, not a made-up number."""
    with pytest.raises(ShapeError, match="zero-size"):
        fn(Tensor(np.zeros((2, 0)), requires_grad=True))


@needs_torch
def test_torch_refuses_max_over_nothing_too() -> None:
    with pytest.raises((RuntimeError, IndexError)):
        torch.zeros((2, 0)).amax(1)


def test_negative_zero_keeps_its_sign() -> None:
    """-x of 0 is -0, and sqrt(-0) = -0 whose slope is -inf (as PyTorch's, checked above)."""
    x = Tensor([0.0, -0.0], requires_grad=True)
    y = x.sqrt()
    with np.errstate(divide="ignore"):
        y.sum().backward()
    assert np.array_equal(np.signbit((-x).data), [True, False])
    assert np.array_equal(np.signbit(y.data), [False, True])
    assert np.array_equal(x.grad.data, [inf, -inf])
