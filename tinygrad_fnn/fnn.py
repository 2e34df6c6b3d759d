"""The tutorial's one-hidden-layer network, written only as a forward pass.

There is no backward code here: `cost.backward()` derives every gradient from the recorded
operations. Compare with `manual.py`, where the same network's gradients are derived by hand.

    Z1 = W1·X + b1      A1 = relu(Z1)      Z2 = W2·A1 + b2      A2 = sigmoid(Z2)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinygrad_fnn import manual
from tinygrad_fnn.compile import Compiled, compile
from tinygrad_fnn.engine import Tensor, no_grad
from tinygrad_fnn.losses import binary_cross_entropy, binary_cross_entropy_with_logits

LOSSES = ("composed", "fused")


def _named(t: Tensor, name: str) -> Tensor:
    t.name = name
    return t


def as_tensor(X: Any, dtype: Any = np.float64, name: str = "X") -> Tensor:
    """Wrap data (features or labels) as a constant Tensor; a Tensor is returned as it is."""
    return X if isinstance(X, Tensor) else Tensor(X, dtype=dtype, name=name)


def initialize_parameters(
    input_size: int,
    hidden_size: int,
    output_size: int = 1,
    seed: int | None = None,
    dtype: Any = np.float64,
) -> dict[str, Tensor]:
    """W1 (h, n_x) and W2 (1, h) standard normal × 0.01, b1 and b2 zero, all requiring grad.

    The numbers are those of `manual.initialize_parameters` with the same seed.
    """
    arrays = manual.initialize_parameters(input_size, hidden_size, output_size, seed, dtype)
    return {k: Tensor(v, requires_grad=True, dtype=dtype, name=k) for k, v in arrays.items()}


def forward_logits(X: Any, parameters: dict[str, Tensor]) -> dict[str, Tensor]:
    """Z1, A1 and the logits Z2: the forward pass up to, not including, the sigmoid."""
    W1, b1, W2, b2 = parameters["W1"], parameters["b1"], parameters["W2"], parameters["b2"]
    X = as_tensor(X, W1.dtype)
    Z1 = _named(W1 @ X + b1, "Z1")
    A1 = _named(Z1.relu(), "A1")
    Z2 = _named(W2 @ A1 + b2, "Z2")
    return {"Z1": Z1, "A1": A1, "Z2": Z2}


def forward_propagation(X: Any, parameters: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """A2, the network's output probabilities, and the cache of named intermediates."""
    cache = forward_logits(X, parameters)
    A2 = cache["A2"] = _named(cache["Z2"].sigmoid(), "A2")
    return A2, cache


def compute_cost(A2: Tensor, Y: Any) -> Tensor:
    """The tutorial's cross-entropy, -(1/m)·Σ[Y·log(A2) + (1 − Y)·log(1 − A2)], in Tensor ops."""
    return _named(binary_cross_entropy(A2, as_tensor(Y, A2.dtype, "Y")), "cost")


def compute_cost_with_logits(Z2: Tensor, Y: Any) -> Tensor:
    """The same cost from the logits Z2, as one fused, numerically stable operation."""
    return _named(binary_cross_entropy_with_logits(Z2, as_tensor(Y, Z2.dtype, "Y")), "cost")


def cost_of(cache: dict[str, Tensor], Y: Any, loss: str = "composed") -> Tensor:
    """The cost of a forward pass: `composed` from A2, or `fused` from the logits Z2."""
    if loss == "composed":
        return compute_cost(cache["A2"], Y)
    if loss == "fused":
        return compute_cost_with_logits(cache["Z2"], Y)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


class NonFiniteCostError(FloatingPointError):
    """Training stopped because the cost became nan or infinite; the parameters were not updated
    with the gradients of that cost."""


def _check_cost(cost: Tensor, loss: str) -> None:
    value = float(cost.data)
    if np.isfinite(value):
        return
    if loss == "composed":
        hint = (
            "a prediction rounded to exactly 0 or 1 and the composed loss took log(0); "
            "use the fused loss (loss='fused', or --loss fused)"
        )
    else:
        hint = "the parameters overflowed; try a smaller learning rate"
    raise NonFiniteCostError(f"the cost became {value}: {hint}")


class SGD:
    """Plain gradient descent: p ← p − lr·∂cost/∂p."""

    def __init__(self, parameters: dict[str, Tensor] | Iterable[Tensor], lr: float) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        self.parameters = list(values)
        self.lr = lr

    def step(self) -> None:
        for p in self.parameters:
            if p.grad is not None:
                p.data -= self.lr * p.grad.data

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None


def train_step(X: Tensor, Y: Tensor, parameters: dict[str, Tensor], optimizer: SGD, loss: str):
    """Forward, cost, backward, update; returns the cost Tensor.

    The fused loss starts from the logits, so its forward pass stops before the sigmoid. A cost
    that is not finite raises `NonFiniteCostError` before the parameters are touched."""
    cache = (
        forward_logits(X, parameters) if loss == "fused" else forward_propagation(X, parameters)[1]
    )
    cost = cost_of(cache, Y, loss)
    _check_cost(cost, loss)
    optimizer.zero_grad()
    cost.backward()
    optimizer.step()
    return cost


def compiled_step(X: Tensor, Y: Tensor, parameters: dict[str, Tensor], loss: str) -> Compiled:
    """`train_step`'s forward pass and cost, compiled (see `compile`): each call runs forward,
    cost and backward as generated NumPy code, bit-identical to the eager engine."""

    def cost() -> Tensor:
        if loss == "fused":
            return cost_of(forward_logits(X, parameters), Y, loss)
        return cost_of(forward_propagation(X, parameters)[1], Y, loss)

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
    _check_cost(cost, loss)
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
    compiled: bool = True,
) -> list[float]:
    """Full-batch gradient descent, printing the cost every `print_every` epochs as the tutorial
    does (never when it is 0 or None); returns the cost before each epoch's update.
    `callback(epoch, cost)` runs each epoch. A cost that turns nan or infinite stops training at
    once with `NonFiniteCostError`, naming the epoch, before that epoch's update. The step is
    compiled (`compile`) unless `compiled=False`; the costs and parameters are the same bits."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    dtype = parameters["W1"].dtype
    X, Y = as_tensor(X, dtype, "X"), as_tensor(Y, dtype, "Y")
    optimizer = SGD(parameters, learning_rate)
    step = compiled_step(X, Y, parameters, loss) if compiled else None
    costs = []
    for epoch in range(epochs):
        try:
            if step is None:
                cost = train_step(X, Y, parameters, optimizer, loss).item()
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
def predict_proba(X: Any, parameters: dict[str, Tensor]) -> np.ndarray:
    """A2 for each example, computed without recording anything."""
    A2, _ = forward_propagation(X, parameters)
    return A2.data


def predict(X: Any, parameters: dict[str, Tensor]) -> np.ndarray:
    """Class 1 where A2 > 0.5."""
    return (predict_proba(X, parameters) > 0.5).astype(np.int64)


def accuracy(X: Any, Y: Any, parameters: dict[str, Tensor]) -> float:
    """The fraction of examples classified correctly."""
    return float(np.mean(predict(X, parameters) == np.asarray(Y)))
