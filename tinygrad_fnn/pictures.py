"""Pictures of a network's pass: forward graph, forward graph with values and gradients,
backward graph (beside the hand-derived formulas, for the tutorial's network) and the
step-through page, all from one forward and one backward pass."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from tinygrad_fnn import datasets, fnn, manual
from tinygrad_fnn.compare import Comparison, comparison, hand_derived, is_tutorial
from tinygrad_fnn.engine import Tensor
from tinygrad_fnn.graph import collect, draw_backward, draw_graph, expression
from tinygrad_fnn.render import rendered, save
from tinygrad_fnn.stepper import stepper_page


def pictures(
    cost: Tensor,
    out_dir: str | os.PathLike,
    formats: Iterable[str] = ("svg", "png"),
    rankdir: str = "LR",
    describe: str = "",
    compare: Callable[[], Comparison] | None = None,
) -> list[Path]:
    """Back-propagate `cost` once and write the pictures of that pass; returns the files written.

    Works for any scalar expression that has not been back-propagated yet, and whose tensors
    hold no gradient yet (this pass would add to it, and the pictures would show the sum).
    `describe` goes into the titles; `compare`, called after the backward pass, returns the
    comparison with the hand-derived formulas that the backward graph shows beside each
    gradient. Every file is rendered before any is written, and each is written whole."""
    tensors = collect(cost)
    held = next((t for t in tensors if t.grad is not None), None)
    if held is not None:
        raise ValueError(
            f"pictures: {expression(held)} already holds a gradient, which this backward pass "
            "would add to; set its .grad to None first"
        )
    for t in tensors:
        t.retain_grad()
    cost.backward()
    comparison = compare() if compare is not None else None
    shape = f" ({describe})" if describe else ""
    forward = draw_graph(cost, show_grad=False, rankdir=rankdir, title=f"Forward pass{shape}")
    with_grads = draw_graph(
        cost,
        show_values=True,
        rankdir=rankdir,
        title=f"Forward pass with values and gradients{shape}",
    )
    backward = draw_backward(
        cost,
        comparison=comparison,
        rankdir=rankdir,
        title=f"Backward pass: the rules the engine runs, in order{shape}",
    )
    formats = tuple(formats)
    out = Path(out_dir)
    files: dict[Path, bytes] = {}
    for name, graph in (("forward", forward), ("forward_grad", with_grads), ("backward", backward)):
        files |= rendered(graph, out / name, formats)
    files[out / "backprop.html"] = stepper_page(backward).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    return save(files)


def pass_comparison(
    X: np.ndarray,
    Y: np.ndarray,
    parameters: dict[str, Tensor],
    cache: dict[str, Tensor],
    loss: str,
    activation: str = "relu",
) -> Comparison:
    """The gradients a backward pass left on the network's tensors, held against the
    hand-derived formulas (the tutorial's dZ and dA are m times the engine's ∂cost/∂Z, ∂cost/∂A):
    the tutorial's own for its network, `manual.deep_backpropagation` for any other.
    """
    arrays = {k: t.data for k, t in parameters.items()}
    L = manual.number_of_layers(arrays)
    layers = (X.shape[0], *(arrays[f"W{k}"].shape[0] for k in range(1, L + 1)))
    m = X.shape[1]
    ours = {f"d{k}": t.grad.data for k, t in parameters.items()}
    intermediates = [f"Z{k}" for k in range(1, L + 1)] + [f"A{k}" for k in range(1, L)]
    ours.update({f"d{k}": m * cache[k].grad.data for k in intermediates})
    reference_cache, reference = hand_derived(X, Y, arrays, layers, activation)
    return comparison(loss, X, reference_cache, ours, reference, layers, activation)


def network_pictures(
    out_dir: str | os.PathLike,
    X: np.ndarray,
    Y: np.ndarray,
    parameters: dict[str, Tensor],
    loss: str = "fused",
    formats: Iterable[str] = ("svg", "png"),
    rankdir: str = "LR",
    activation: str = "relu",
) -> list[Path]:
    """The pictures of the network with these `parameters` (W1, b1, …, WL, bL) and hidden
    `activation` on the batch `X`, `Y`.

    The parameters' numbers are drawn, not the tensors themselves: the pass runs on fresh leaves
    over the same arrays, so the caller's `.grad` stay as they are.
    """
    params = {k: Tensor(p.data, True, dtype=p.dtype, name=k) for k, p in parameters.items()}
    X, Y = np.asarray(X, dtype=params["W1"].dtype), np.asarray(Y, dtype=params["W1"].dtype)
    _, cache = fnn.forward_propagation(X, params, activation)
    cost = fnn.cost_of(cache, Y, loss)
    L = manual.number_of_layers(params)
    sizes = (X.shape[0], *(params[f"W{k}"].shape[0] for k in range(1, L + 1)))
    if is_tutorial(sizes, activation):
        network = f"n_x={sizes[0]}, hidden={sizes[1]}"
    else:
        network = f"layers={','.join(map(str, sizes))}, activation={activation}"
    return pictures(
        cost,
        out_dir,
        formats,
        rankdir,
        describe=f"{network}, m={X.shape[1]}, loss={loss}",
        compare=lambda: pass_comparison(X, Y, params, cache, loss, activation),
    )


def tutorial_graphs(
    out_dir: str | os.PathLike,
    data: str = "xor",
    hidden: int | Sequence[int] = 3,
    m: int = 4,
    loss: str = "fused",
    seed: int = 0,
    formats: Iterable[str] = ("svg", "png"),
    rankdir: str = "LR",
    activation: str = "relu",
) -> list[Path]:
    """The pictures of the tutorial network (or, with a list of `hidden` sizes and an
    `activation`, a deeper one), freshly initialised from `seed`, on the first `m` examples of
    `data`; the output has one unit for two classes, one per class for more.

    Small sizes keep the pictures readable; the shapes in them are the tutorial's
    (X is (n_x, m), W1 is (hidden, n_x), ...).
    """
    ds = datasets.load(data, m=m, test_fraction=0.0, seed=seed)
    parameters = fnn.initialize_parameters(ds.n_x, hidden, ds.n_y, seed=seed, activation=activation)
    X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
    return network_pictures(out_dir, X, Y, parameters, loss, formats, rankdir, activation)
