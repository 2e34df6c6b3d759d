"""Costs: the textbook cross-entropies composed of engine operations, and their fused, stable
twins, for two classes (sigmoid) and for many (softmax, classes along axis 0, examples along 1).

Softmax (`Tensor.softmax`) is computed one canonical way, in the engine and in `manual.py`, so
that the engine's gradient and the hand-derived `dZ[L] = A[L] − Y` can be the same bits:

    e = exp(Z − max(Z, axis=0))      A = e / Σ e (axis 0)

The fused multi-class cost, `−(1/m)·Σ Y·log_softmax(Z)`, has the gradient
`(softmax(Z)·Σₖ Y − Y)·g / m`; for one-hot `Y` the column sums are exactly 1.0, so this is
`(A − Y)·g / m`, the tutorial's simplification.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_fnn.engine import (
    Function,
    ShapeError,
    Tensor,
    _describe,
    _operand,
    log_softmax,
    sigmoid,
    softmax,
)

# ----- two classes


def binary_cross_entropy(probs: Tensor, targets: Any) -> Tensor:
    """The textbook cost, mean over all elements: -mean(y·log(p) + (1 − y)·log(1 − p)).

    Composed of `log`, `*`, `-` and `mean`, so its gradient is whatever those rules give; a
    probability of exactly 0 or 1 makes it inf or nan (see `detect_anomaly`).
    """
    y = _targets(probs, targets, "binary_cross_entropy")
    return -(y * probs.log() + (1.0 - y) * (1.0 - probs).log()).mean()


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any) -> Tensor:
    """Sigmoid and cross-entropy fused into one stable operation, mean over all elements.

    Its gradient is `(sigmoid(logits) − targets) / N`: the tutorial's `dZ2 = A2 − Y`.
    """
    return BCEWithLogits()(logits, _targets(logits, targets, "binary_cross_entropy_with_logits"))


class BCEWithLogits(Function):
    """mean(max(a, 0) − a·y + log(1 + exp(−|a|))): the cross-entropy of sigmoid(a) against y,
    without ever forming log(0)."""

    op = "binary_cross_entropy_with_logits"

    def forward(self, a, y):
        loss = np.maximum(a, 0) - a * y + np.log1p(np.exp(-np.abs(a)))
        return np.asarray(np.add.reduce(loss, axis=None) / loss.size, dtype=a.dtype)

    def da(self, g, z, a, y):
        return (sigmoid(a) - y) / a.size * g

    def dy(self, g, z, a, y):
        return -a / a.size * g


# ----- many classes


def softmax_cross_entropy_with_logits(logits: Tensor, targets: Any) -> Tensor:
    """Softmax and multi-class cross-entropy fused into one stable operation.

    `logits` and `targets` are (classes, m); the cost is the mean over the m examples. Its
    gradient with respect to the logits is `(A − Y) / m` for one-hot targets.
    """
    y = _targets(logits, targets, "softmax_cross_entropy_with_logits", columns=True)
    return SoftmaxCrossEntropy()(logits, y)


def cross_entropy(probs: Tensor, targets: Any) -> Tensor:
    """The textbook multi-class cost from probabilities, −(1/m)·Σ Y·log(A), composed of Tensor
    operations (so its gradient is what the `log`, `*` and `sum` rules give; a probability of
    exactly 0 where Y is 0 makes it nan, as `0·log(0)` is)."""
    y = _targets(probs, targets, "cross_entropy", columns=True)
    return -(y * probs.log()).sum() / probs.shape[1]


class SoftmaxCrossEntropy(Function):
    """−(1/m)·Σ Y·log_softmax(a), with a and Y of shape (classes, m)."""

    op = "softmax_cross_entropy_with_logits"

    def forward(self, a, y):
        shifted = a - np.max(a, axis=0, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=0, keepdims=True))
        return np.asarray(-np.add.reduce(y * log_probs, axis=None) / a.shape[1], dtype=a.dtype)

    def da(self, g, z, a, y):
        return (softmax(a, axis=0) * y.sum(axis=0, keepdims=True) - y) / a.shape[1] * g

    def dy(self, g, z, a, y):
        return -log_softmax(a, axis=0) / a.shape[1] * g


def _targets(predictions: Tensor, targets: Any, op: str, columns: bool = False) -> Tensor:
    """The targets as a Tensor of the predictions' dtype and shape ((classes, m) for `columns`)."""
    y = _operand(targets, predictions, op)
    if columns and (predictions.ndim != 2 or predictions.size == 0):
        raise ShapeError(
            f"{op}: expects (classes, m) with m ≥ 1, got {_describe(predictions)} "
            "(targets are one-hot columns, one per example)"
        )
    if y.shape != predictions.shape:
        raise ShapeError(
            f"{op}: predictions {_describe(predictions)} and targets {_describe(y)} differ in shape"
        )
    return y
