"""Training pictures: the cost curve and, for 2-D data, the decision boundary (matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def plot_training(
    path: str | os.PathLike,
    costs: Sequence[float],
    title: str = "",
    X: np.ndarray | None = None,
    Y: np.ndarray | None = None,
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """Write a PNG of the cost per epoch, beside the decision boundary when X is 2-D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boundary = X is not None and X.shape[0] == 2 and predict_proba is not None
    fig, axes = plt.subplots(1, 2 if boundary else 1, figsize=(11 if boundary else 6, 4.5))
    ax = axes[0] if boundary else axes
    ax.plot(np.arange(len(costs)), costs, color="#1f5fa8")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_yscale("log")
    ax.set_title(f"Cost {title}".strip())
    ax.grid(alpha=0.3)
    if boundary:
        _draw_boundary(axes[1], X, Y, predict_proba)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_boundary(ax, X, Y, predict_proba) -> None:
    pad = 0.5
    xs = np.linspace(X[0].min() - pad, X[0].max() + pad, 250)
    ys = np.linspace(X[1].min() - pad, X[1].max() + pad, 250)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()]).astype(X.dtype)
    probs = predict_proba(grid).reshape(gx.shape)
    ax.contourf(gx, gy, probs, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(gx, gy, probs, levels=[0.5], colors="k", linewidths=1.2)
    labels = np.asarray(Y).ravel()
    ax.scatter(X[0], X[1], c=labels, cmap="RdBu_r", edgecolors="k", s=14, linewidths=0.4)
    ax.set_title("Decision boundary (A2 = 0.5)")
    ax.set_aspect("equal", adjustable="box")
