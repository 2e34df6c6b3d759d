"""Multi-class output: softmax and its cross-entropy, classes along axis 0, examples along axis 1.

Softmax is computed one canonical way, here and in `manual.py`, so that the engine's gradient
and the hand-derived `dZ[L] = A[L] − Y` can be the same bits:

    e = exp(Z − max(Z, axis=0))      A = e / Σ e (axis 0)

The fused cost, `−(1/m)·Σ Y·log_softmax(Z)`, is one operation whose gradient is
`(softmax(Z)·Σₖ Y − Y)·g / m`; for one-hot `Y` the column sums are exactly 1.0, so this is
`(A − Y)·g / m`, the tutorial's simplification. Its backward is written in Tensor operations,
so second derivatives work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_fnn.engine import Function, ShapeError, Tensor


def _as_operand(x: Any, like: Tensor, what: str) -> Tensor:
    """`x` as a Tensor of `like`'s dtype (a Tensor of another dtype is an error)."""
    if isinstance(x, Tensor):
        if x.dtype != like.dtype:
            raise TypeError(f"{what}: dtypes {like.dtype} and {x.dtype} differ; use .astype()")
        return x
    return Tensor(np.asarray(x), dtype=like.dtype)


def softmax(logits: Tensor) -> Tensor:
    """Softmax over axis 0 (the classes), in Tensor operations.

    The column maximum is subtracted for stability and treated as a constant: softmax does not
    change when a constant is subtracted from a column, so its gradient is the same.
    """
    shifted = logits - logits.max(axis=0, keepdims=True).detach()
    e = shifted.exp()
    return e / e.sum(axis=0, keepdims=True)


def log_softmax(logits: Tensor) -> Tensor:
    """log(softmax(Z)) over axis 0, as (Z − max) − log Σ exp(Z − max), in Tensor operations."""
    shifted = logits - logits.max(axis=0, keepdims=True).detach()
    return shifted - shifted.exp().sum(axis=0, keepdims=True).log()


def _log_softmax_array(z: np.ndarray) -> np.ndarray:
    shifted = z - np.max(z, axis=0, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True))


class SoftmaxCrossEntropy(Function):
    """−(1/m)·Σ Y·log_softmax(Z), with Z and Y of shape (classes, m)."""

    __slots__ = ()
    op = "softmax_cross_entropy_with_logits"
    rule = "dz = (softmax(z)·Σₖy − y)·g / m, dy = −log_softmax(z)·g / m"

    def forward(self, z, y):
        m = z.shape[1]
        total = np.add.reduce(y * _log_softmax_array(z), axis=None)
        return np.asarray(-total / m, dtype=z.dtype)

    def backward(self, g):
        z, y = self.parents
        dz, dy = self.needs_grad
        m = z.shape[1]
        grad_z = grad_y = None
        if dz:
            grad_z = (softmax(z) * y.sum(axis=0, keepdims=True) - y) / m * g
        if dy:
            grad_y = -log_softmax(z) / m * g
        return grad_z, grad_y


def _check(logits: Tensor, targets: Tensor, what: str) -> None:
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise ShapeError(f"{what}: expects (classes, m) with m ≥ 1, got shape {logits.shape}")
    if targets.shape != logits.shape:
        raise ShapeError(
            f"{what}: logits {logits.shape} and targets {targets.shape} differ in shape "
            "(targets are one-hot columns, one per example)"
        )


def softmax_cross_entropy_with_logits(logits: Tensor, targets: Any) -> Tensor:
    """Softmax and multi-class cross-entropy fused into one stable operation.

    `logits` and `targets` are (classes, m); the cost is the mean over the m examples. Its
    gradient with respect to the logits is `(A − Y) / m` for one-hot targets.
    """
    y = _as_operand(targets, logits, "softmax_cross_entropy_with_logits")
    _check(logits, y, "softmax_cross_entropy_with_logits")
    return SoftmaxCrossEntropy()(logits, y)


def cross_entropy(probs: Tensor, targets: Any) -> Tensor:
    """The textbook multi-class cost from probabilities, −(1/m)·Σ Y·log(A), composed of Tensor
    operations (so its gradient is what the `log`, `*` and `sum` rules give; a probability of
    exactly 0 where Y is 0 makes it nan, as `0·log(0)` is)."""
    y = _as_operand(targets, probs, "cross_entropy")
    _check(probs, y, "cross_entropy")
    return -(y * probs.log()).sum() / probs.shape[1]
