"""The tutorial network's pictures: forward graph, forward graph with values and gradients,
backward graph beside the hand-derived formulas, and the step-through page."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tinygrad_fnn import datasets, fnn
from tinygrad_fnn.compare import compare_gradients
from tinygrad_fnn.graph import collect, draw_backward, draw_graph, render
from tinygrad_fnn.stepper import write_stepper


def tutorial_graphs(
    out_dir: str | os.PathLike,
    data: str = "xor",
    hidden: int = 3,
    m: int = 4,
    loss: str = "fused",
    seed: int = 0,
    formats: Iterable[str] = ("svg", "png"),
    rankdir: str = "LR",
) -> list[Path]:
    """Build the network on `m` examples of `data`, run backward once and write the pictures.

    Small sizes keep the pictures readable; the shapes in them are the tutorial's
    (X is (n_x, m), W1 is (hidden, n_x), ...). Returns the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = datasets.load(data, m=m, test_fraction=0.0, seed=seed)
    X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
    params = fnn.initialize_parameters(ds.n_x, hidden, seed=seed)
    _, cache = fnn.forward_propagation(X, params)
    cost = fnn.cost_of(cache, Y, loss)
    for t in collect(cost):
        t.retain_grad()
    shape = f"n_x={ds.n_x}, hidden={hidden}, m={X.shape[1]}, loss={loss}"
    forward = draw_graph(cost, show_grad=False, rankdir=rankdir, title=f"Forward pass ({shape})")
    cost.backward()
    comparison = compare_gradients(X, Y, params, loss)
    with_grads = draw_graph(
        cost,
        show_values=True,
        show_grad=True,
        rankdir=rankdir,
        title=f"Forward pass with values and gradients ({shape})",
    )
    backward = draw_backward(
        cost,
        comparison=comparison,
        rankdir=rankdir,
        title=f"Backward pass: the rules the engine runs, in order ({shape})",
    )
    formats = tuple(formats)
    written = []
    for name, graph in (("forward", forward), ("forward_grad", with_grads), ("backward", backward)):
        written += render(graph, out / name, formats)
    written.append(write_stepper(cost, out / "backprop.html", comparison))
    return written
