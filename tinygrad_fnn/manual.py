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


# ---------------------------------------------------------------------------------------------
# The general L-layer network, derived by hand the same way.
#
#   A[0] = X
#   Z[l] = W[l]·A[l−1] + b[l]          A[l] = g(Z[l])        for l = 1 … L−1 (hidden layers)
#   Z[L] = W[L]·A[L−1] + b[L]          A[L] = sigmoid(Z[L]) if n_y = 1, else softmax(Z[L])
#
#   cost = −(1/m) Σ [Y·log(A[L]) + (1 − Y)·log(1 − A[L])]     (n_y = 1)
#   cost = −(1/m) Σ Y·log(A[L])                                 (n_y > 1, one-hot Y)
#
#   dZ[L] = A[L] − Y                                 (both outputs: the same simplification)
#   dW[l] = (1/m) dZ[l]·A[l−1]ᵀ                      db[l] = (1/m) Σ dZ[l]
#   dA[l] = W[l+1]ᵀ·dZ[l+1]                          dZ[l] = dA[l] ∗ g′(Z[l])
#
# with g′ written as each activation's textbook derivative (see `activation_backward`).
# As in the tutorial, dZ and dA are m times ∂cost/∂Z and ∂cost/∂A.
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = ("relu", "tanh", "sigmoid", "leaky_relu")
LEAKY_SLOPE = 0.01  # leaky_relu(z) = z for z > 0, LEAKY_SLOPE·z otherwise


def initial_scales(layer_sizes: list[int], activation: str = "relu") -> list[float]:
    """The standard deviation of each weight matrix at initialisation.

    One hidden layer: the tutorial's 0.01 for every layer, whatever the activation. Deeper:
    0.01 would shrink the signal about a hundredfold at each layer, so layer l is drawn with
    gain/√n[l−1] (Glorot's scale for tanh and sigmoid, gain 1; He's for the ReLUs, gain √2).
    """
    _check_activation(activation)
    if len(layer_sizes) <= 3:
        return [0.01] * (len(layer_sizes) - 1)
    gain = np.sqrt(2.0) if activation in ("relu", "leaky_relu") else 1.0
    return [float(gain / np.sqrt(n_in)) for n_in in layer_sizes[:-1]]


def initialize_deep_parameters(
    layer_sizes: list[int],
    seed: int | None = None,
    dtype: type = np.float64,
    activation: str = "relu",
    scale: float | None = None,
) -> dict[str, np.ndarray]:
    """W1 … WL drawn in that order from one generator (standard normal × the scale), zero biases.

    `layer_sizes` is [n_x, h1, …, n_y]. With one hidden layer these are exactly the numbers of
    `initialize_parameters`. `scale` overrides `initial_scales` for every layer.
    """
    sizes = [int(n) for n in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer sizes must be at least two positive numbers, got {layer_sizes}")
    scales = initial_scales(sizes, activation) if scale is None else [scale] * (len(sizes) - 1)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((n, n_in)) * s for n_in, n, s in zip(sizes, sizes[1:], scales)]
    parameters = {}
    for k, W in enumerate(weights, start=1):
        parameters[f"W{k}"] = W.astype(dtype)
        parameters[f"b{k}"] = np.zeros((W.shape[0], 1), dtype=dtype)
    return parameters


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def number_of_layers(parameters: dict[str, np.ndarray]) -> int:
    """L, the number of weight matrices W1 … WL (each with its bias)."""
    L = 0
    while f"W{L + 1}" in parameters:
        L += 1
    if L == 0 or any(f"b{k}" not in parameters for k in range(1, L + 1)):
        raise KeyError(f"parameters must hold W1, b1, …, WL, bL; got {sorted(parameters)}")
    return L


def activation_forward(Z: np.ndarray, activation: str) -> np.ndarray:
    """g(Z) for a hidden layer."""
    if activation == "relu":
        return relu(Z)
    if activation == "tanh":
        return np.tanh(Z)
    if activation == "sigmoid":
        return sigmoid(Z)
    if activation == "leaky_relu":
        return np.where(Z > 0, Z, LEAKY_SLOPE * Z)
    _check_activation(activation)
    raise AssertionError  # unreachable


def activation_backward(
    dA: np.ndarray, Z: np.ndarray, A: np.ndarray, activation: str
) -> np.ndarray:
    """dZ = dA ∗ g′(Z), each in its textbook form (g′ at exactly 0: 0 for relu, the slope for
    leaky_relu)."""
    if activation == "relu":
        return dA * (A > 0)
    if activation == "tanh":
        return dA * (1 - A**2)
    if activation == "sigmoid":
        return dA * A * (1 - A)
    if activation == "leaky_relu":
        return dA * np.where(Z > 0, 1.0, LEAKY_SLOPE).astype(Z.dtype)
    _check_activation(activation)
    raise AssertionError  # unreachable


def softmax(Z: np.ndarray) -> np.ndarray:
    """Softmax over the classes (axis 0), shifted by each column's maximum for stability."""
    e = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def deep_forward_propagation(
    X: np.ndarray, parameters: dict[str, np.ndarray], activation: str = "relu"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns A[L] and the cache Z1, A1, …, ZL, AL."""
    _check_activation(activation)
    L = number_of_layers(parameters)
    cache = {}
    A = X
    for k in range(1, L + 1):
        Z = np.dot(parameters[f"W{k}"], A) + parameters[f"b{k}"]
        if k < L:
            A = activation_forward(Z, activation)
        else:
            A = sigmoid(Z) if Z.shape[0] == 1 else softmax(Z)
        cache[f"Z{k}"], cache[f"A{k}"] = Z, A
    return A, cache


def deep_compute_cost(AL: np.ndarray, Y: np.ndarray) -> float:
    """Binary cross-entropy for one output unit; the multi-class cross-entropy otherwise."""
    if AL.shape[0] == 1:
        return compute_cost(AL, Y)
    m = Y.shape[1]
    return float(-np.sum(Y * np.log(AL)) / m)


def deep_backpropagation(
    X: np.ndarray,
    Y: np.ndarray,
    parameters: dict[str, np.ndarray],
    cache: dict[str, np.ndarray],
    activation: str = "relu",
) -> dict[str, np.ndarray]:
    """dW1, db1, …, dWL, dbL, with every dZ[l] and the hidden layers' dA[l] (formulas above)."""
    m = X.shape[1]
    L = number_of_layers(parameters)
    grads = {}
    dZ = cache[f"A{L}"] - Y
    for k in range(L, 0, -1):
        A_prev = X if k == 1 else cache[f"A{k - 1}"]
        grads[f"dZ{k}"] = dZ
        grads[f"dW{k}"] = (1 / m) * np.dot(dZ, A_prev.T)
        grads[f"db{k}"] = (1 / m) * np.sum(dZ, axis=1, keepdims=True)
        if k > 1:
            dA = np.dot(parameters[f"W{k}"].T, dZ)
            grads[f"dA{k - 1}"] = dA
            dZ = activation_backward(dA, cache[f"Z{k - 1}"], A_prev, activation)
    return grads


def deep_gradient_descent(
    parameters: dict[str, np.ndarray], grads: dict[str, np.ndarray], learning_rate: float
) -> dict[str, np.ndarray]:
    """One step on every W[l] and b[l]."""
    return {k: v - learning_rate * grads["d" + k] for k, v in parameters.items()}
