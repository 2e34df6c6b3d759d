"""The tutorial's network, written only as a forward pass, and its deeper and multi-class kin.

There is no backward code here: `cost.backward()` derives every gradient from the recorded
operations. Compare with `manual.py`, where the same networks' gradients are derived by hand.

    Z1 = W1·X + b1      A1 = relu(Z1)      Z2 = W2·A1 + b2      A2 = sigmoid(Z2)

In general, for layer sizes [n_x, h1, …, n_y] (L weight matrices) and a hidden activation g:

    Z[l] = W[l]·A[l−1] + b[l]      A[l] = g(Z[l])      (l < L, A[0] = X)
    A[L] = sigmoid(Z[L]) for n_y = 1 (binary cross-entropy), softmax(Z[L]) for n_y > 1
    (multi-class cross-entropy with one-hot Y, classes along axis 0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from tinygrad_fnn import datasets, manual
from tinygrad_fnn.compile import Compiled, compile
from tinygrad_fnn.engine import Tensor, as_array, grad_of, no_grad
from tinygrad_fnn.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    softmax_cross_entropy_with_logits,
)

LOSSES = ("composed", "fused")
ACTIVATIONS = manual.ACTIVATIONS


def _named(t: Tensor, name: str) -> Tensor:
    t.name = name
    return t


def as_tensor(X: Any, dtype: Any = None, name: str = "X") -> Tensor:
    """Wrap data (features or labels) as a constant Tensor; a Tensor is returned as it is.
    Without a dtype, as `Tensor(X)`: float64, and data wider than that is refused."""
    return X if isinstance(X, Tensor) else Tensor(X, dtype=dtype, name=name)


def layer_sizes(
    input_size: int | Sequence[int],
    hidden_size: int | Sequence[int] | None = None,
    output_size: int | None = None,
) -> list[int]:
    """[n_x, h1, …, n_y] from the tutorial's (n_x, h, n_y), from (n_x, [h1, h2, …], n_y), or
    from a whole list of sizes given as the first argument."""
    if isinstance(input_size, (int, np.integer)):
        if hidden_size is None:
            raise TypeError("initialize_parameters: give the hidden size(s) or a list of sizes")
        hidden = [hidden_size] if np.ndim(hidden_size) == 0 else list(hidden_size)
        sizes = [input_size, *hidden, 1 if output_size is None else output_size]
    else:
        if hidden_size is not None or output_size is not None:
            raise TypeError(
                "initialize_parameters: with a list of layer sizes [n_x, h1, …, n_y], "
                "give no hidden_size or output_size"
            )
        sizes = list(input_size)
    for n in sizes:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"layer sizes must be positive whole numbers, got {sizes}")
    if len(sizes) < 2:
        raise ValueError(f"a network needs at least an input and an output size, got {sizes}")
    return [int(n) for n in sizes]


def initialize_parameters(
    input_size: int | Sequence[int],
    hidden_size: int | Sequence[int] | None = None,
    output_size: int | None = None,
    seed: int | None = None,
    dtype: Any = np.float64,
    activation: str = "relu",
    scale: float | None = None,
) -> dict[str, Tensor]:
    """W1, b1, …, WL, bL as Tensors that require grad: weights standard normal × a scale, zero
    biases.

    `initialize_parameters(n_x, h)` is the tutorial's network (scale 0.01, output size 1);
    `initialize_parameters(n_x, [h1, h2], n_y)` or `initialize_parameters([n_x, h1, h2, n_y])`
    a deeper one, whose weights are scaled for `activation` (see `manual.initial_scales`).
    The numbers are those of `manual.initialize_deep_parameters` with the same arguments, and for
    one hidden layer those of the tutorial's `manual.initialize_parameters`.
    """
    sizes = layer_sizes(input_size, hidden_size, output_size)
    arrays = manual.initialize_deep_parameters(sizes, seed, dtype, activation, scale)
    return {k: Tensor(v, requires_grad=True, dtype=dtype, name=k) for k, v in arrays.items()}


def activate(Z: Tensor, activation: str) -> Tensor:
    """A hidden layer's activation g(Z)."""
    return _activation(activation)(Z)


def _activation(activation: str) -> Callable[[Tensor], Tensor]:
    g = _ACTIVATIONS.get(activation)
    if g is None:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return g


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": Tensor.relu,
    "tanh": Tensor.tanh,
    "sigmoid": Tensor.sigmoid,
    "leaky_relu": lambda Z: Z.leaky_relu(manual.LEAKY_SLOPE),
}


@functools.lru_cache(maxsize=64)
def _layers(names: tuple[str, ...]) -> int:
    """`manual.number_of_layers` of parameters with these names, checked once per set of names
    (a training loop asks at every step)."""
    return manual.number_of_layers(dict.fromkeys(names))


def _last_layer(cache: dict[str, Tensor]) -> int:
    L = 1
    while f"Z{L + 1}" in cache:
        L += 1
    return L


def forward_logits(
    X: Any, parameters: dict[str, Tensor], activation: str = "relu"
) -> dict[str, Tensor]:
    """Z1, A1, …, and the logits ZL: the forward pass up to, not including, the output's
    sigmoid or softmax."""
    _activation(activation)  # a name not known is an error even without a hidden layer
    L = _layers(tuple(parameters))
    A = as_tensor(X, parameters["W1"].dtype)
    cache = {}
    for k in range(1, L + 1):
        Z = cache[f"Z{k}"] = _named(parameters[f"W{k}"] @ A + parameters[f"b{k}"], f"Z{k}")
        if k < L:
            A = cache[f"A{k}"] = _named(activate(Z, activation), f"A{k}")
    return cache


def forward_propagation(
    X: Any, parameters: dict[str, Tensor], activation: str = "relu"
) -> tuple[Tensor, dict[str, Tensor]]:
    """AL, the network's output probabilities, and the cache of named intermediates."""
    cache = forward_logits(X, parameters, activation)
    L = _last_layer(cache)
    ZL = cache[f"Z{L}"]
    AL = cache[f"A{L}"] = _named(ZL.sigmoid() if ZL.shape[0] == 1 else ZL.softmax(axis=0), f"A{L}")
    return AL, cache


def compute_cost(AL: Tensor, Y: Any) -> Tensor:
    """The tutorial's cross-entropy from the probabilities, in Tensor ops: binary,
    -(1/m)·Σ[Y·log(AL) + (1 − Y)·log(1 − AL)], for one output; -(1/m)·Σ Y·log(AL) for more."""
    Y = as_tensor(Y, AL.dtype, "Y")
    cost = binary_cross_entropy(AL, Y) if AL.shape[0] == 1 else cross_entropy(AL, Y)
    return _named(cost, "cost")


def compute_cost_with_logits(ZL: Tensor, Y: Any) -> Tensor:
    """The same cost from the logits ZL, as one fused, numerically stable operation."""
    Y = as_tensor(Y, ZL.dtype, "Y")
    if ZL.shape[0] == 1:
        return _named(binary_cross_entropy_with_logits(ZL, Y), "cost")
    return _named(softmax_cross_entropy_with_logits(ZL, Y), "cost")


def cost_of(cache: dict[str, Tensor], Y: Any, loss: str = "composed") -> Tensor:
    """The cost of a forward pass: `composed` from AL, or `fused` from the logits ZL."""
    L = _last_layer(cache)
    if loss == "composed":
        return compute_cost(cache[f"A{L}"], Y)
    if loss == "fused":
        return compute_cost_with_logits(cache[f"Z{L}"], Y)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


class NonFiniteCostError(FloatingPointError):
    """Training stopped because the cost became nan or infinite; the parameters were not updated
    with the gradients of that cost."""


def _check_cost(cost: Tensor, loss: str, parameters: Iterable[Tensor]) -> None:
    value = float(cost)
    if math.isfinite(value):
        return
    if loss == "composed" and not _overflowing(parameters):
        hint = (
            "a prediction rounded to exactly 0 or 1 and the composed loss took log(0); "
            "use the fused loss (loss='fused', or --loss fused)"
        )
    else:
        hint = "the parameters overflowed; try a smaller learning rate"
    raise NonFiniteCostError(f"the cost became {value}: {hint}")


def _overflowing(parameters: Iterable[Tensor]) -> bool:
    """Whether some parameter is not finite or beyond √max of its dtype, where the products of
    the forward pass overflow: the learning rate, not the loss, is then what to change."""
    for p in parameters:
        a = np.abs(p.data)
        if a.size and not a.max() < np.sqrt(np.finfo(a.dtype).max):
            return True
    return False


class SGD:
    """Plain gradient descent: p ← p − lr·∂cost/∂p."""

    def __init__(self, parameters: dict[str, Tensor] | Iterable[Tensor], lr: float) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        self.parameters = list(values)
        self.lr = lr

    def step(self) -> None:
        for p in self.parameters:
            g = grad_of(p, "sgd")
            if g is not None:
                data = p.data
                data -= self.lr * g.data

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None


def step_cost(
    X: Tensor, Y: Tensor, parameters: dict[str, Tensor], loss: str, activation: str = "relu"
) -> Tensor:
    """The forward pass and the cost of one step; the fused loss stops the forward pass at the
    logits, before the sigmoid or softmax."""
    if loss == "fused":
        return cost_of(forward_logits(X, parameters, activation), Y, loss)
    return cost_of(forward_propagation(X, parameters, activation)[1], Y, loss)


def train_step(
    X: Tensor,
    Y: Tensor,
    parameters: dict[str, Tensor],
    optimizer: SGD,
    loss: str,
    activation: str = "relu",
) -> Tensor:
    """Forward, cost, backward, update; returns the cost Tensor. A cost that is not finite
    raises `NonFiniteCostError` before the parameters are touched."""
    cost = step_cost(X, Y, parameters, loss, activation)
    _check_cost(cost, loss, parameters.values())
    optimizer.zero_grad()
    cost.backward()
    optimizer.step()
    return cost


def compiled_step(
    X: Tensor, Y: Tensor, parameters: dict[str, Tensor], loss: str, activation: str = "relu"
) -> Compiled:
    """`train_step`'s forward pass and cost, compiled (see `compile`): each call runs forward,
    cost and backward as generated NumPy code, bit-identical to the eager engine."""

    def cost() -> Tensor:
        return step_cost(X, Y, parameters, loss, activation)

    return compile(cost)


def derive(loss: str = "fused", m: int = 4, dtype: Any = np.float64) -> str:
    """The backpropagation code the engine derives for the tutorial network: the source that
    `compile` generates for one training step (2 features, 4 hidden units, m examples)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    rng = np.random.default_rng(0)
    X = as_tensor(rng.standard_normal((2, m)), dtype, "X")
    Y = as_tensor((rng.uniform(size=(1, m)) > 0.5).astype(np.float64), dtype, "Y")
    step = compiled_step(X, Y, initialize_parameters(2, 4, seed=0, dtype=dtype), loss)
    step()
    return step.source


def _compiled_train_step(step: Compiled, optimizer: SGD, loss: str) -> Tensor:
    """One epoch through the compiled step: the update comes after the cost is checked."""
    optimizer.zero_grad()
    cost = step()
    _check_cost(cost, loss, optimizer.parameters)
    step.sgd(optimizer.lr)
    return cost


def train(
    X: Any,
    Y: Any,
    parameters: dict[str, Tensor],
    epochs: int = 2000,
    learning_rate: float = 0.5,
    loss: str = "fused",
    print_every: int | None = 100,
    log: Callable[[str], None] = print,
    callback: Callable[[int, float], None] | None = None,
    activation: str = "relu",
    compiled: bool = True,
) -> list[float]:
    """Full-batch gradient descent, printing the cost every `print_every` epochs as the tutorial
    does (never when it is 0 or None); returns the cost before each epoch's update.
    `callback(epoch, cost)` runs each epoch. A cost that turns nan or infinite stops training at
    once with `NonFiniteCostError`, naming the epoch, before that epoch's update. The step is
    compiled (`compile`) unless `compiled=False`; the costs and parameters are the same bits."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"epochs must be 0 or a positive whole number, got {epochs!r}")
    dtype = parameters["W1"].dtype
    X, Y = as_tensor(X, dtype, "X"), as_tensor(Y, dtype, "Y")
    optimizer = SGD(parameters, learning_rate)
    step = compiled_step(X, Y, parameters, loss, activation) if compiled else None
    costs = []
    for epoch in range(epochs):
        try:
            if step is None:
                cost = train_step(X, Y, parameters, optimizer, loss, activation).item()
            else:
                cost = _compiled_train_step(step, optimizer, loss).item()
        except NonFiniteCostError as e:
            raise NonFiniteCostError(f"epoch {epoch}: {e}") from None
        costs.append(cost)
        if print_every and epoch % print_every == 0:
            log(f"Epoch {epoch}, Cost: {cost:.6f}")
        if callback is not None:
            callback(epoch, cost)
    return costs


@no_grad()
def predict_proba(X: Any, parameters: dict[str, Tensor], activation: str = "relu") -> np.ndarray:
    """AL for each example (one row per output unit), computed without recording anything."""
    AL, _ = forward_propagation(X, parameters, activation)
    return AL.data


def predict(X: Any, parameters: dict[str, Tensor], activation: str = "relu") -> np.ndarray:
    """Class 1 where AL > 0.5 for one output; otherwise the most probable class. Shape (1, m)."""
    probs = predict_proba(X, parameters, activation)
    if probs.shape[0] == 1:
        return (probs > 0.5).astype(np.int64)
    return np.argmax(probs, axis=0)[None, :]


def accuracy(X: Any, Y: Any, parameters: dict[str, Tensor], activation: str = "relu") -> float:
    """The fraction of examples classified correctly (Y: a row of 0/1 or one-hot columns)."""
    Y = as_array(Y)
    return float(np.mean(predict(X, parameters, activation)[0] == datasets.labels_of(Y)))


def confusion_matrix(true: Any, predicted: Any, classes: int) -> np.ndarray:
    """counts[i, j]: how many examples of class i were predicted as class j."""
    true, predicted = np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if true.shape != predicted.shape:
        raise ValueError(f"{true.shape[0]} true labels but {predicted.shape[0]} predictions")
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    return counts
