"""Training pictures (matplotlib): the cost curve and, for 2-D data, the decision boundary; for
several classes, the confusion matrix and some of the misclassified examples."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tinygrad_fnn.files import check_replaceable, write_whole


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
    _draw_cost(axes[0] if boundary else axes, costs, title)
    if boundary:
        _draw_boundary(axes[1], X, Y, predict_proba)
    fig.tight_layout()
    return _save(fig, path)


def _draw_cost(ax, costs: Sequence[float], title: str) -> None:
    ax.plot(np.arange(len(costs)), costs, color="#1f5fa8")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_yscale("log")
    ax.set_title(f"Cost {title}".strip())
    ax.grid(alpha=0.3)


def plot_classes(
    path: str | os.PathLike,
    costs: Sequence[float],
    true: np.ndarray,
    predicted: np.ndarray,
    X: np.ndarray,
    title: str = "",
    shown: int = 8,
) -> Path:
    """Write a PNG of the cost per epoch, the confusion matrix of `true` against `predicted`
    labels, and up to `shown` misclassified examples when they are 8×8 images (columns of X)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_fnn.fnn import confusion_matrix

    true, predicted = np.asarray(true), np.asarray(predicted)
    classes = int(max(true.max(initial=0), predicted.max(initial=0))) + 1
    counts = confusion_matrix(true, predicted, classes)
    wrong = np.flatnonzero(true != predicted)[:shown]
    images = X.shape[0] == 64 and wrong.size > 0

    fig = plt.figure(figsize=(15 if images else 11, 4.8))
    grid = fig.add_gridspec(2, 6 if images else 4)
    _draw_cost(fig.add_subplot(grid[:, :2]), costs, title)
    ax = fig.add_subplot(grid[:, 2:4])
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        if n:
            color = "white" if n > counts.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = float(np.mean(true == predicted)) if true.size else 0.0
    ax.set_title(f"Confusion matrix, test set ({accuracy:.1%} correct)")
    if images:
        inner = grid[:, 4:].subgridspec(2, (shown + 1) // 2)
        for n, k in enumerate(wrong):
            sub = fig.add_subplot(inner[n // ((shown + 1) // 2), n % ((shown + 1) // 2)])
            sub.imshow(X[:, k].reshape(8, 8), cmap="gray_r")
            sub.set_title(f"{true[k]} → {predicted[k]}", fontsize=9, color="#b00000")
            sub.axis("off")
        fig.text(0.83, 0.95, "misclassified (true → predicted)", ha="center", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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


def _save(fig, path: str | os.PathLike) -> Path:
    """Write the figure whole or not at all (`files.write_whole`), in the format its name's
    suffix gives, and let it go."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix[1:].lower() or None
    try:
        check_replaceable(path)
        write_whole(path, lambda f: fig.savefig(f, format=fmt, dpi=110), check_replaceable)
    finally:
        plt.close(fig)
    return path
