"""The engine's gradients held against the tutorial's hand-derived formulas, number by number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_fnn import fnn, manual
from tinygrad_fnn.engine import Tensor

PARAMETER_GRADIENTS = ("dW1", "db1", "dW2", "db2")
EXAMPLE_GRADIENTS = ("dZ1", "dZ2", "dA1")
GRADIENTS = (*PARAMETER_GRADIENTS, *EXAMPLE_GRADIENTS)

# The bounds the README states, derived there from where each side rounds, and held by
# tests/test_exactness.py for labels 0 or 1, a finite cost, and values in the normal range.
# Per-example gradients: at most this many ULPs apart.
ULP_BOUNDS = {
    "fused": {"dZ2": 2, "dA1": 4, "dZ1": 4},
    "composed": {"dZ2": 7, "dA1": 9, "dZ1": 9},
}
# Parameter gradients (sums over the m examples): |engine − manual| ≤ (m + SUM_BOUND_EXTRA)·eps·Ĝ,
# element by element, where Ĝ is the gradient's formula evaluated on absolute values (a proven
# worst case while m·(m + 1)·eps/2 is below about 1: m ≤ 4000 in float32).
SUM_BOUND_EXTRA = 6


@dataclass(frozen=True)
class Difference:
    """How far the engine's array is from the hand-derived one."""

    max_abs: float  # largest |engine − manual|
    relative: float  # ‖engine − manual‖ / ‖manual‖ (Frobenius norms; 0 when both are zero)
    max_ulp: int  # largest distance in units in the last place between matching elements
    identical: bool  # the same bits, element for element (np.array_equal)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many representable floats lie between matching elements of `a` and `b`."""
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"ulp_distance needs two float32 or two float64 arrays, got {a.dtype}")
    uint = np.uint64 if a.dtype == np.float64 else np.uint32
    bits = a.dtype.itemsize * 8

    def ordered(x: np.ndarray) -> np.ndarray:
        # Map the bit patterns to integers that increase with the float value (+0 and -0 meet).
        u = np.ascontiguousarray(x).view(uint).astype(np.uint64)
        magnitude = (u & np.uint64((1 << (bits - 1)) - 1)).astype(np.int64)
        return np.where(u >> np.uint64(bits - 1), -magnitude, magnitude)

    return np.abs(ordered(a) - ordered(b))


def difference(engine: np.ndarray, reference: np.ndarray) -> Difference:
    """The four measures of `Difference` for two arrays of the same shape and dtype."""
    if engine.shape != reference.shape:
        raise ValueError(f"shapes differ: engine {engine.shape}, reference {reference.shape}")
    delta = engine.astype(np.float64) - reference.astype(np.float64)
    norm = float(np.linalg.norm(reference.astype(np.float64)))
    gap = float(np.linalg.norm(delta))
    return Difference(
        max_abs=float(np.max(np.abs(delta), initial=0.0)),
        relative=gap / norm if norm else gap,
        max_ulp=int(np.max(ulp_distance(engine, reference), initial=0)),
        identical=bool(np.array_equal(engine, reference)),
    )


@dataclass
class Comparison:
    """The result of `compare_gradients`: one `Difference` per gradient, and both sets."""

    loss: str
    m: int
    dtype: np.dtype
    differences: dict[str, Difference]
    engine: dict[str, np.ndarray]
    manual: dict[str, np.ndarray]
    magnitude: dict[str, np.ndarray]  # Ĝ of each gradient (see `magnitudes`)

    def __getitem__(self, name: str) -> Difference:
        return self.differences[name]

    def rounding_ratio(self, name: str) -> float:
        """max |engine − manual| / (eps·Ĝ) over the elements: the difference in units of what
        rounding the gradient's own sum can produce (inf if they differ where Ĝ is 0)."""
        delta = np.abs(self.engine[name].astype(np.float64) - self.manual[name].astype(np.float64))
        scale = np.finfo(self.dtype).eps * self.magnitude[name]
        if np.any(delta[scale == 0]):
            return float("inf")
        return float(np.max(delta[scale > 0] / scale[scale > 0], initial=0.0))

    def in_normal_range(self) -> bool:
        """Whether every nonzero ∂cost/∂Z2 and ∂cost/∂A1 is at least the dtype's smallest normal
        number. Below it the engine's (A2 − Y)/m is rounded to a fixed grid (gradual underflow),
        and the bounds, which count rounding relative to each value, no longer apply."""
        tiny = np.finfo(self.dtype).tiny
        for name in ("dZ2", "dA1"):
            per_example = np.abs(self.manual[name].astype(np.float64)) / self.m
            if np.any((per_example > 0) & (per_example < tiny)):
                return False
        return True

    def table(self) -> str:
        """A Markdown table, one row per gradient."""
        lines = [
            f"loss={self.loss}, m={self.m}, dtype={self.dtype}",
            "",
            "| gradient | max abs diff | relative diff | max ULPs | bit-identical |",
            "|---|--:|--:|--:|:-:|",
        ]
        for name, d in self.differences.items():
            label = name if name in PARAMETER_GRADIENTS else f"m·∂cost/∂{name[1:]} vs {name}"
            lines.append(
                f"| {label} | {d.max_abs:.3g} | {d.relative:.3g} | {d.max_ulp} | "
                f"{'yes' if d.identical else 'no'} |"
            )
        return "\n".join(lines)


def magnitudes(
    X: np.ndarray, A1: np.ndarray, manual_grads: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Ĝ: each gradient's formula evaluated on the absolute values of its operands, in float64.

    Rounding a sum of m products can move it by about m·eps times the sum of the products'
    magnitudes, not times the sum itself, which cancellation can make arbitrarily small; Ĝ is
    that scale. For the per-example gradients (dZ2, dA1, dZ1) it is just their magnitude.
    """
    m = X.shape[1]
    a = {k: np.abs(v.astype(np.float64)) for k, v in manual_grads.items()}
    A1, X = np.abs(A1.astype(np.float64)), np.abs(X.astype(np.float64))
    return {
        "dW1": a["dZ1"] @ X.T / m,
        "db1": a["dZ1"].sum(axis=1, keepdims=True) / m,
        "dW2": a["dZ2"] @ A1.T / m,
        "db2": a["dZ2"].sum(axis=1, keepdims=True) / m,
        **{k: a[k] for k in EXAMPLE_GRADIENTS},
    }


def engine_gradients(
    X: np.ndarray, Y: np.ndarray, parameters: dict[str, np.ndarray], loss: str = "composed"
) -> dict[str, np.ndarray]:
    """The engine's gradients of the cost, with dZ1, dZ2 and dA1 scaled by m as in the tutorial."""
    dtype = parameters["W1"].dtype
    tensors = {k: fnn.as_tensor(v, dtype, k) for k, v in parameters.items()}
    for t in tensors.values():
        t.requires_grad = True
    _, cache = fnn.forward_propagation(fnn.as_tensor(X, dtype), tensors)
    intermediates = ("Z1", "Z2", "A1")
    for name in intermediates:
        cache[name].retain_grad()
    fnn.cost_of(cache, fnn.as_tensor(Y, dtype, "Y"), loss).backward()
    m = X.shape[1]
    grads = {"d" + k: t.grad.data for k, t in tensors.items()}
    # The tutorial's dZ is m times ∂cost/∂Z because its cost is a mean over m examples.
    grads.update({"d" + k: m * cache[k].grad.data for k in intermediates})
    return grads


def compare_gradients(
    X: Any, Y: Any, parameters: dict[str, Any], loss: str = "composed"
) -> Comparison:
    """Run the engine and the hand-derived backpropagation on the same inputs and compare.

    `parameters` holds W1, b1, W2, b2 as arrays or Tensors; their dtype sets the dtype of both
    computations. With `loss="fused"` the engine's cost is `binary_cross_entropy_with_logits`;
    with `"composed"` it is the tutorial's sigmoid-then-log formula.
    """
    arrays = {k: np.array(_array(parameters[k])) for k in ("W1", "b1", "W2", "b2")}
    dtype = arrays["W1"].dtype
    X = np.asarray(_array(X), dtype=dtype)
    Y = np.asarray(_array(Y), dtype=dtype)
    _, cache = manual.forward_propagation(X, arrays)
    reference = manual.backpropagation(X, Y, arrays, cache)
    return comparison(loss, X, cache, engine_gradients(X, Y, arrays, loss), reference)


def comparison(
    loss: str,
    X: np.ndarray,
    cache: dict[str, np.ndarray],
    ours: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
) -> Comparison:
    """Hold the engine's gradients `ours` against the hand-derived `reference`, computed from
    the tutorial's forward pass `cache` on `X`."""
    return Comparison(
        loss=loss,
        m=X.shape[1],
        dtype=reference["dW1"].dtype,
        differences={k: difference(ours[k], reference[k]) for k in GRADIENTS},
        engine={k: ours[k] for k in GRADIENTS},
        manual={k: reference[k] for k in GRADIENTS},
        magnitude=magnitudes(X, cache["A1"], reference),
    )


def _array(x: Any) -> Any:
    # A Tensor's values, taken explicitly: NumPy may not convert a Tensor that requires grad.
    return x.data if isinstance(x, Tensor) else x
