"""Data sets in the tutorial's layout: `X` is (n_x, m), features by examples; `Y` is (1, m), or
one-hot (classes, m) for the ten-class digits.

The breast-cancer and digits data ship inside the package (see `data/README.md`); the others
are generated from a seed, so nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass
class Dataset:
    """A classification set split into scaled train and test parts.

    `Y` is a (1, m) row of 0/1 for two classes and one-hot (classes, m) for more; the integer
    labels are `labels_train` and `labels_test` either way."""

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

    @property
    def n_y(self) -> int:
        """Output units: 1 for two classes (sigmoid), the number of classes otherwise (softmax)."""
        return self.Y_train.shape[0]

    @property
    def labels_train(self) -> np.ndarray:
        return labels_of(self.Y_train)

    @property
    def labels_test(self) -> np.ndarray:
        return labels_of(self.Y_test)


def labels_of(Y: np.ndarray) -> np.ndarray:
    """Integer class labels (m,) from a (1, m) row of 0/1 or from one-hot (classes, m) columns."""
    return (Y[0] if Y.shape[0] == 1 else np.argmax(Y, axis=0)).astype(np.int64)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """(classes, m) with a 1.0 in row labels[i] of column i."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and not 0 <= labels.min() <= labels.max() < classes:
        raise ValueError(f"labels must lie in 0 … {classes - 1}")
    Y = np.zeros((classes, labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Y


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Wisconsin diagnostic data: X (30, 569), Y (1, 569) with 1 = malignant, feature names."""
    text = resources.files("tinygrad_fnn").joinpath("data/breast_cancer.csv").read_text()
    header, *rows = text.strip().splitlines()
    table = np.array([row.split(",") for row in rows], dtype=np.float64)
    return table[:, :-1].T.copy(), table[:, -1:].T.copy(), header.split(",")[:-1]


DIGIT_PIXEL_MAX = 16.0  # each pixel counts the dark points in a 4×4 block: 0 … 16


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI handwritten digits, 8×8: X (64, 1797) of pixel counts 0 … 16, row by row, and
    the integer labels (1797,)."""
    raw = resources.files("tinygrad_fnn").joinpath("data/digits.csv.gz").read_bytes()
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",")
    return table[:, :-1].T.copy(), table[:, -1].astype(np.int64)


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
NAMES = ("breast_cancer", "digits", *GENERATED)


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

    The digits are scaled to 0 … 1 instead (pixel / 16, the same for every pixel: standardising
    would blow up the pixels that are almost always blank), with one-hot Y (10, m).
    `m` is the number of examples to generate (ignored for the shipped sets).
    """
    if name == "breast_cancer":
        X, Y, _ = load_breast_cancer()
    elif name == "digits":
        X, labels = load_digits()
        Y = one_hot(labels, 10)
    elif name in GENERATED:
        X, Y = GENERATED[name](m=400 if m is None else m, seed=seed)
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(NAMES)}")
    X_train, Y_train, X_test, Y_test = train_test_split(X, Y, test_fraction, seed)
    if name == "digits":
        mean = np.zeros((X.shape[0], 1))
        std = np.full((X.shape[0], 1), DIGIT_PIXEL_MAX)
    else:
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
