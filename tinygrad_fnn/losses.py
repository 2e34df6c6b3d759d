"""Costs: the textbook cross-entropy composed of engine operations, and its fused, stable twin."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_fnn.engine import Function, ShapeError, Tensor, _describe, _operand


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
        return (a.sigmoid() - y) / a.size * g

    def dy(self, g, z, a, y):
        return -a / a.size * g


def _targets(predictions: Tensor, targets: Any, op: str) -> Tensor:
    y = _operand(targets, predictions, op)
    if y.shape != predictions.shape:
        raise ShapeError(
            f"{op}: predictions {_describe(predictions)} and targets {_describe(y)} differ in shape"
        )
    return y
