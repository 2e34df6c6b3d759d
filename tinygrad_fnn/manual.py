"""The tutorial's network with backpropagation derived by hand, on plain NumPy arrays.

This is the reference the engine is held against, so it imports nothing from the engine.
Shapes: X (n_x, m), Y (1, m), W1 (h, n_x), b1 (h, 1), W2 (1, h), b2 (1, 1).

    Z1 = W1·X + b1      A1 = relu(Z1)      Z2 = W2·A1 + b2      A2 = sigmoid(Z2)
    cost = -(1/m) Σ [Y·log(A2) + (1 − Y)·log(1 − A2)]

    dZ2 = A2 − Y
    dW2 = (1/m) dZ2·A1ᵀ          db2 = (1/m) Σ dZ2
    dA1 = W2ᵀ·dZ2                dZ1 = dA1 ∗ (A1 > 0)
    dW1 = (1/m) dZ1·Xᵀ           db1 = (1/m) Σ dZ1

`dZ2` and `dZ1` here are m times ∂cost/∂Z, since the cost is a mean over the m examples.
"""

from __future__ import annotations

import numpy as np


def initialize_parameters(
    input_size: int,
    hidden_size: int,
    output_size: int = 1,
    seed: int | None = None,
    dtype: type = np.float64,
) -> dict[str, np.ndarray]:
    """Small random weights (standard normal × 0.01) and zero biases."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((hidden_size, input_size)) * 0.01
    W2 = rng.standard_normal((output_size, hidden_size)) * 0.01
    return {
        "W1": W1.astype(dtype),
        "b1": np.zeros((hidden_size, 1), dtype=dtype),
        "W2": W2.astype(dtype),
        "b2": np.zeros((output_size, 1), dtype=dtype),
    }


def relu(Z: np.ndarray) -> np.ndarray:
    return np.maximum(0, Z)


def sigmoid(Z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-Z))


def forward_propagation(X: np.ndarray, parameters: dict[str, np.ndarray]):
    """Returns A2 and the cache of every intermediate that backpropagation needs."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    Z1 = np.dot(W1, X) + b1
    A1 = relu(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2 = sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def compute_cost(A2: np.ndarray, Y: np.ndarray) -> float:
    """Binary cross-entropy, averaged over the m examples."""
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / m)


def backpropagation(
    X: np.ndarray, Y: np.ndarray, parameters: dict[str, np.ndarray], cache: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The gradients of the cost, derived by hand (see the module docstring)."""
    m = X.shape[1]
    W2 = parameters["W2"]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = (1 / m) * np.dot(dZ2, A1.T)
    db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
    dA1 = np.dot(W2.T, dZ2)
    dZ1 = dA1 * (A1 > 0)
    dW1 = (1 / m) * np.dot(dZ1, X.T)
    db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2, "dZ1": dZ1, "dZ2": dZ2, "dA1": dA1}


def gradient_descent(
    parameters: dict[str, np.ndarray], grads: dict[str, np.ndarray], learning_rate: float
) -> dict[str, np.ndarray]:
    """One step: each parameter moves against its gradient."""
    return {k: parameters[k] - learning_rate * grads["d" + k] for k in ("W1", "b1", "W2", "b2")}


def train_step(X, Y, parameters, learning_rate):
    """Forward, cost, backward and update; returns the new parameters and the cost."""
    A2, cache = forward_propagation(X, parameters)
    cost = compute_cost(A2, Y)
    grads = backpropagation(X, Y, parameters, cache)
    return gradient_descent(parameters, grads, learning_rate), cost


def train(
    X: np.ndarray,
    Y: np.ndarray,
    parameters: dict[str, np.ndarray],
    epochs: int,
    learning_rate: float,
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Plain gradient descent on the whole batch; returns the parameters and the cost per epoch."""
    costs = []
    for _ in range(epochs):
        parameters, cost = train_step(X, Y, parameters, learning_rate)
        costs.append(cost)
    return parameters, costs
