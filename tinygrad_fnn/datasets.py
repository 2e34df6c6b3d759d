"""Data sets in the tutorial's layout: `X` is (n_x, m), features by examples; `Y` is (1, m).

The breast-cancer data ships inside the package (see `data/README.md`); the others are
generated from a seed, so nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass
class Dataset:
    """A binary classification set split into standardised train and test parts."""

    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    mean: np.ndarray  # the training set's per-feature mean and standard deviation,
    std: np.ndarray  # so that new data can be standardised the same way

    @property
    def n_x(self) -> int:
        return self.X_train.shape[0]


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Wisconsin diagnostic data: X (30, 569), Y (1, 569) with 1 = malignant, feature names."""
    text = resources.files("tinygrad_fnn").joinpath("data/breast_cancer.csv").read_text()
    header, *rows = text.strip().splitlines()
    table = np.array([row.split(",") for row in rows], dtype=np.float64)
    return table[:, :-1].T.copy(), table[:, -1:].T.copy(), header.split(",")[:-1]


def make_xor(m: int = 400, noise: float = 0.15, seed: int | None = 0):
    """Points around the four corners of the unit square; the label is x1 XOR x2.

    With m=4 and noise=0 this is exactly the XOR truth table.
    """
    rng = np.random.default_rng(seed)
    corners = np.array([[0, 0, 1, 1], [0, 1, 0, 1]], dtype=np.float64)
    idx = np.arange(m) % 4
    X = corners[:, idx] + noise * rng.standard_normal((2, m))
    Y = (corners[0, idx] != corners[1, idx]).astype(np.float64)[None, :]
    return X, Y


def _two_classes(m: int, curve, noise: float, seed: int | None):
    """m points, half on `curve(0, n)` (class 0) and half on `curve(1, n)` (class 1), plus
    Gaussian noise; `curve(k, n)` gives the (2, n) points of class k."""
    sizes = (m // 2, m - m // 2)
    X = np.concatenate([curve(k, n) for k, n in enumerate(sizes)], axis=1)
    X = X + noise * np.random.default_rng(seed).standard_normal(X.shape)
    Y = np.concatenate([np.zeros(sizes[0]), np.ones(sizes[1])])[None, :]
    return X, Y


def make_moons(m: int = 400, noise: float = 0.1, seed: int | None = 0):
    """Two interleaving half circles."""

    def moon(k, n):
        t = np.linspace(0, np.pi, n)
        return (
            np.array([np.cos(t), np.sin(t)])
            if k == 0
            else np.array([1 - np.cos(t), 0.5 - np.sin(t)])
        )

    return _two_classes(m, moon, noise, seed)


def make_circles(m: int = 400, noise: float = 0.05, factor: float = 0.5, seed: int | None = 0):
    """A small circle inside a larger one; the inner circle is class 1."""

    def circle(k, n):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return (1.0 if k == 0 else factor) * np.array([np.cos(t), np.sin(t)])

    return _two_classes(m, circle, noise, seed)


def make_spirals(m: int = 400, turns: float = 1.5, noise: float = 0.05, seed: int | None = 0):
    """Two interleaved spirals, one per class."""

    def arm(k, n):
        r = np.linspace(0.1, 1.0, n)
        t = turns * 2 * np.pi * r + k * np.pi
        return np.array([r * np.cos(t), r * np.sin(t)])

    return _two_classes(m, arm, noise, seed)


GENERATED = {"xor": make_xor, "moons": make_moons, "circles": make_circles, "spirals": make_spirals}
NAMES = ("breast_cancer", *GENERATED)


def train_test_split(X: np.ndarray, Y: np.ndarray, test_fraction: float = 0.2, seed: int = 0):
    """Shuffle the examples (columns) with `seed` and hold out `test_fraction` of them."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    m = X.shape[1]
    order = np.random.default_rng(seed).permutation(m)
    n_test = int(round(m * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[:, train], Y[:, train], X[:, test], Y[:, test]


def standardize(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(X − mean) / std per feature; a constant feature is only centred."""
    return (X - mean) / np.where(std == 0, 1.0, std)


def load(
    name: str = "breast_cancer",
    m: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: type = np.float64,
) -> Dataset:
    """A named data set, split with `seed` and standardised with the training set's statistics.

    `m` is the number of examples to generate (ignored for breast_cancer).
    """
    if name == "breast_cancer":
        X, Y, _ = load_breast_cancer()
    elif name in GENERATED:
        X, Y = GENERATED[name](m=400 if m is None else m, seed=seed)
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(NAMES)}")
    X_train, Y_train, X_test, Y_test = train_test_split(X, Y, test_fraction, seed)
    mean = X_train.mean(axis=1, keepdims=True)
    std = X_train.std(axis=1, keepdims=True)
    return Dataset(
        name,
        standardize(X_train, mean, std).astype(dtype),
        Y_train.astype(dtype),
        standardize(X_test, mean, std).astype(dtype),
        Y_test.astype(dtype),
        mean,
        std,
    )
