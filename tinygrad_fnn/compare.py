"""The engine's gradients held against the tutorial's hand-derived formulas, number by number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_fnn import fnn, manual
from tinygrad_fnn.engine import as_array

PARAMETER_GRADIENTS = ("dW1", "db1", "dW2", "db2")
EXAMPLE_GRADIENTS = ("dZ1", "dZ2", "dA1")
GRADIENTS = (*PARAMETER_GRADIENTS, *EXAMPLE_GRADIENTS)  # the tutorial network's, L = 2

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


def gradient_names(L: int) -> tuple[str, ...]:
    """dW1, db1, …, dWL, dbL, then dZ1 … dZL and dA1 … dA[L−1]: what is compared for L layers."""
    weights = tuple(f"d{p}{k}" for k in range(1, L + 1) for p in "Wb")
    return (
        *weights,
        *(f"dZ{k}" for k in range(1, L + 1)),
        *(f"dA{k}" for k in range(1, L)),
    )


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
    magnitude: dict[str, np.ndarray] = field(default_factory=dict)  # Ĝ (the tutorial's net)
    layers: tuple[int, ...] = ()  # [n_x, h1, …, n_y]
    activation: str = "relu"

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
        network = ""
        if not is_tutorial(self.layers, self.activation):
            sizes = ",".join(str(n) for n in self.layers)
            network = f", layers={sizes}, activation={self.activation}"
        lines = [
            f"loss={self.loss}, m={self.m}, dtype={self.dtype}{network}",
            "",
            "| gradient | max abs diff | relative diff | max ULPs | bit-identical |",
            "|---|--:|--:|--:|:-:|",
        ]
        for name, d in self.differences.items():
            label = name if name[1] in "Wb" else f"m·∂cost/∂{name[1:]} vs {name}"
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


def is_tutorial(layers: Sequence[int], activation: str) -> bool:
    """Whether the layer sizes and activation are the tutorial's network (one hidden ReLU layer,
    one sigmoid output unit), which is compared with the tutorial's own hand-written code and
    described by its sizes alone; any other network goes through `manual`'s general one."""
    return len(layers) == 3 and layers[-1] == 1 and activation == "relu"


def engine_gradients(
    X: np.ndarray,
    Y: np.ndarray,
    parameters: dict[str, np.ndarray],
    loss: str = "composed",
    activation: str = "relu",
) -> dict[str, np.ndarray]:
    """The engine's gradients of the cost, with every dZ and dA scaled by m as in the tutorial."""
    dtype = parameters["W1"].dtype
    tensors = {k: fnn.as_tensor(v, dtype, k) for k, v in parameters.items()}
    for t in tensors.values():
        t.requires_grad = True
    L = manual.number_of_layers(parameters)
    _, cache = fnn.forward_propagation(fnn.as_tensor(X, dtype), tensors, activation)
    intermediates = [f"Z{k}" for k in range(1, L + 1)] + [f"A{k}" for k in range(1, L)]
    for name in intermediates:
        cache[name].retain_grad()
    fnn.cost_of(cache, fnn.as_tensor(Y, dtype, "Y"), loss).backward()
    m = X.shape[1]
    grads = {"d" + k: t.grad.data for k, t in tensors.items()}
    # The tutorial's dZ is m times ∂cost/∂Z because its cost is a mean over m examples.
    grads.update({"d" + k: m * cache[k].grad.data for k in intermediates})
    return grads


def compare_gradients(
    X: Any,
    Y: Any,
    parameters: dict[str, Any],
    loss: str = "composed",
    activation: str = "relu",
) -> Comparison:
    """Run the engine and the hand-derived backpropagation on the same inputs and compare.

    `parameters` holds W1, b1, …, WL, bL as arrays or Tensors; their dtype sets the dtype of
    both computations. With one output unit the cost is binary cross-entropy, with more the
    multi-class one (Y one-hot, one column per example). With `loss="fused"` the engine's cost
    is the fused loss from the logits; with `"composed"` it is the tutorial's formula from the
    probabilities. The tutorial's network (one hidden relu layer, one output) is held against
    the tutorial's own `manual.backpropagation`; any other against `manual.deep_backpropagation`.
    """
    if loss not in fnn.LOSSES:
        raise ValueError(f"loss must be one of {fnn.LOSSES}, got {loss!r}")
    L = manual.number_of_layers(parameters)
    names = [f"{p}{k}" for k in range(1, L + 1) for p in "Wb"]
    arrays = {k: np.array(as_array(parameters[k])) for k in names}  # private copies
    dtype = arrays["W1"].dtype
    X = np.asarray(as_array(X), dtype=dtype)
    Y = np.asarray(as_array(Y), dtype=dtype)
    layers = (arrays["W1"].shape[1], *(arrays[f"W{k}"].shape[0] for k in range(1, L + 1)))
    if X.ndim != 2 or X.shape[0] != layers[0]:
        raise ValueError(f"X must be ({layers[0]}, m) for these parameters, got {X.shape}")
    if Y.shape != (layers[-1], X.shape[1]):
        raise ValueError(
            f"Y must be ({layers[-1]}, {X.shape[1]}) for these parameters "
            f"(one-hot columns when there are several outputs), got {Y.shape}"
        )
    cache, reference = hand_derived(X, Y, arrays, layers, activation)
    ours = engine_gradients(X, Y, arrays, loss, activation)
    return comparison(loss, X, cache, ours, reference, layers, activation)


def hand_derived(
    X: np.ndarray,
    Y: np.ndarray,
    arrays: dict[str, np.ndarray],
    layers: Sequence[int],
    activation: str,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The forward cache and the gradients by hand: the tutorial's own code for its network,
    `manual.deep_backpropagation` for any other."""
    if is_tutorial(layers, activation):
        _, cache = manual.forward_propagation(X, arrays)
        return cache, manual.backpropagation(X, Y, arrays, cache)
    _, cache = manual.deep_forward_propagation(X, arrays, activation)
    return cache, manual.deep_backpropagation(X, Y, arrays, cache, activation)


def comparison(
    loss: str,
    X: np.ndarray,
    cache: dict[str, np.ndarray],
    ours: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    layers: tuple[int, ...] | None = None,
    activation: str = "relu",
) -> Comparison:
    """Hold the engine's gradients `ours` against the hand-derived `reference`, computed from
    the hand-written forward pass `cache` on `X` (the tutorial's network unless `layers` says
    otherwise)."""
    if layers is None:
        layers = (X.shape[0], reference["dW1"].shape[0], reference["dW2"].shape[0])
    compared = gradient_names(len(layers) - 1)
    tutorial = is_tutorial(layers, activation)
    return Comparison(
        loss=loss,
        m=X.shape[1],
        dtype=reference["dW1"].dtype,
        differences={k: difference(ours[k], reference[k]) for k in compared},
        engine={k: ours[k] for k in compared},
        manual={k: reference[k] for k in compared},
        magnitude=magnitudes(X, cache["A1"], reference) if tutorial else {},
        layers=tuple(layers),
        activation=activation,
    )
