"""Pictures of computation graphs: the forward pass the engine recorded, and the backward pass it
derives from it, as `graphviz.Digraph` objects (DOT source) that render to SVG and PNG.

Rendering uses a `dot` program: Graphviz's own when it is on PATH, otherwise the self-contained
`graphviz-pure` that is installed with this package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinygrad_fnn.engine import Function, Tensor, _topological_order

INFIX = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "matmul": "@"}
STYLE = {
    "parameter": {"shape": "box", "style": "filled,bold", "fillcolor": "#cfe3ff"},
    "intermediate": {"shape": "box", "style": "rounded"},
    "constant": {"shape": "box", "style": "dashed,filled", "fillcolor": "#f0f0f0"},
    "op": {"shape": "ellipse", "style": "filled", "fillcolor": "#fff2b3"},
    "gradient": {"shape": "box", "style": "filled", "fillcolor": "#ffe0d6"},
    "rule": {"shape": "ellipse", "style": "filled", "fillcolor": "#e4f5e1"},
}
# The engine's ∂cost/∂Z is the tutorial's dZ divided by m, because the cost is a mean.
PER_EXAMPLE = ("dZ1", "dZ2", "dA1")


class RenderError(RuntimeError):
    """No program to render DOT source could run; the message says how to get one."""


class Graph(graphviz.Digraph):
    """A `graphviz.Digraph` that renders through `render()`, so it shows inline in Jupyter even
    where no Graphviz is installed."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict:
        return {"image/svg+xml": to_svg(self)}


# ----- the forward graph


def collect(root: Tensor) -> list[Tensor]:
    """Every tensor that led to `root`, each after the tensors it was computed from."""
    order: list[Tensor] = []
    seen: set[Tensor] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if t in seen:
            continue
        seen.add(t)
        stack.append((t, True))
        if t._ctx is not None:
            stack.extend((p, False) for p in reversed(t._ctx.parents) if p not in seen)
    return order


def kind(t: Tensor) -> str:
    """parameter (a leaf that requires grad), intermediate (recorded), or constant/input."""
    if t._ctx is not None:
        return "intermediate"
    return "parameter" if t.requires_grad else "constant"


def expression(t: Tensor) -> str:
    """A short name: the tensor's own, a constant's value, or the operation that made it."""
    if t.name:
        return t.name
    if t._ctx is None:
        return _number(t.data) if t.size == 1 else f"constant {t.shape}"
    fn = t._ctx
    names = [
        p.name or (_number(p.data) if p.size == 1 and p._ctx is None else "…") for p in fn.parents
    ]
    if fn.op in INFIX and len(names) == 2:
        return f"{names[0]} {INFIX[fn.op]} {names[1]}"
    return f"{fn.op}({', '.join(names)})"


def _number(x: np.ndarray) -> str:
    return f"{float(np.asarray(x).reshape(-1)[0]):.4g}"


def _preview(x: np.ndarray, items: int = 4) -> str:
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    shown = ", ".join(f"{v:.3g}" for v in flat[:items])
    return f"[{shown}{', …' if flat.size > items else ''}]"


def _norm(grad: Tensor) -> str:
    return f"‖grad‖ = {float(np.linalg.norm(grad.data)):.4g}"


def _tensor_label(t: Tensor, show_values: bool, show_grad: bool) -> str:
    lines = [expression(t), f"{t.shape} {t.dtype}"]
    if show_values:
        lines.append(f"value {_preview(t.data)}")
    if show_grad and t.grad is not None:
        lines.append(f"grad {_preview(t.grad.data)}")
        lines.append(_norm(t.grad))
    return "\n".join(lines)


def draw_graph(
    root: Tensor,
    show_values: bool = False,
    show_grad: bool = True,
    rankdir: str = "LR",
    title: str | None = None,
) -> Graph:
    """The forward graph behind `root`: one node per tensor and per operation, data-flow edges.

    Parameters (leaves that require grad) are blue and bold, inputs and constants grey and
    dashed, intermediates white, operations yellow. `show_values` adds a preview of each
    tensor's values; `show_grad` adds its gradient and the gradient's norm where `.grad` is set
    (leaves after backward, and intermediates that called `retain_grad()`). `rankdir` is "LR"
    (left to right) or "TB" (top to bottom). Node ids follow the graph, not memory addresses,
    so the same graph always gives the same DOT source.
    """
    g = _new_graph("forward", rankdir, title)
    tensors = collect(root)
    ids = {t: f"t{i}" for i, t in enumerate(tensors)}
    for i, t in enumerate(tensors):
        style = dict(STYLE[kind(t)])
        if t is root:
            style["peripheries"] = "2"
        g.node(ids[t], _tensor_label(t, show_values, show_grad), id=ids[t], **style)
        if t._ctx is not None:
            op = f"f{i}"
            g.node(op, t._ctx.op, id=op, **STYLE["op"])
            for p in t._ctx.parents:
                g.edge(ids[p], op)
            g.edge(op, ids[t])
    return g


# ----- the backward graph


def backward_steps(root: Tensor) -> list[Function]:
    """The recorded operations in the order `backward()` runs their derivative rules."""
    if root._ctx is None:
        return []
    return list(reversed(_topological_order(root._ctx)))


def gradient_name(t: Tensor, root: Tensor) -> str:
    """The tutorial's name for the gradient of `t` ("dZ2"), or a description of it."""
    if t.name:
        return f"d{t.name}"
    return f"∂{root.name or 'out'}/∂({expression(t)})"


def draw_backward(
    root: Tensor,
    comparison: Any = None,
    rankdir: str = "LR",
    highlight: int | None = None,
    title: str | None = None,
) -> Graph:
    """The gradient computation `root.backward()` performs, as a graph.

    Each green node is one derivative rule, numbered in the order the engine runs it and showing
    its formula; each red node is a gradient, named as in the tutorial (`dZ2`, `dW2`, …) where the
    tensor has a name. Edges run from the gradient a rule consumes to the gradients it produces;
    a gradient with several incoming edges is their sum. With `comparison` (the result of
    `compare_gradients`), each gradient the tutorial derives by hand also shows how far the
    engine's value is from the formula's. `highlight` marks step k (1-based) as the current one.
    """
    g = _new_graph("backward", rankdir, title)
    steps = backward_steps(root)
    gid: dict[Tensor, str] = {}
    differences = getattr(comparison, "differences", {}) or {}

    def gradient_node(t: Tensor) -> str:
        if t not in gid:
            gid[t] = f"g{len(gid)}"
            name = gradient_name(t, root)
            lines = [name, f"{t.shape}"]
            if t is root and t.size == 1:
                lines[0] = f"{name} = 1"
            if name in PER_EXAMPLE:
                lines.append(f"= ∂{root.name or 'out'}/∂{name[1:]} = {name}/m")
            if t.grad is not None:
                lines.append(_norm(t.grad))
            if name in differences:
                d = differences[name]
                verdict = (
                    "bit-identical" if d.identical else f"{d.max_ulp} ULP, rel {d.relative:.2g}"
                )
                lines.append(f"vs formula: {verdict}")
            g.node(gid[t], "\n".join(lines), id=gid[t], **STYLE["gradient"])
        return gid[t]

    g.steps = []  # what each step consumes and produces, for the step-through page
    if not steps:
        gradient_node(root)
        return g
    for k, fn in enumerate(steps, start=1):
        rule = f"r{k}"
        style = dict(STYLE["rule"])
        if highlight is not None and k == highlight:
            style.update(fillcolor="#ffb347", penwidth="2")
        elif highlight is not None and k < highlight:
            style.update(fillcolor="#d9d9d9")
        g.node(rule, f"{k}. {fn.op}\n{fn.rule}", id=rule, **style)
        source = gradient_node(fn.out())
        g.edge(source, rule, id=f"e{rule}_in")
        produced = []
        for p, needed in zip(fn.parents, fn.needs_grad):
            if needed:
                target = gradient_node(p)
                g.edge(rule, target, id=f"e{rule}_{target}")
                produced.append((target, gradient_name(p, root)))
        g.steps.append(
            {
                "rule": rule,
                "consumes": source,
                "produces": [node for node, _ in produced],
                "caption": f"Step {k} of {len(steps)}: the rule of {fn.op} ({fn.rule}) turns "
                f"{gradient_name(fn.out(), root)} into {', '.join(n for _, n in produced)}.",
            }
        )
    return g


def _new_graph(name: str, rankdir: str, title: str | None) -> Graph:
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', got {rankdir!r}")
    g = Graph(name=name)
    g.attr(rankdir=rankdir, fontname="Helvetica", fontsize="11")
    g.attr("node", fontname="Helvetica", fontsize="10")
    g.attr("edge", arrowsize="0.7")
    if title:
        g.attr(label=title, labelloc="t", fontsize="13")
    return g


# ----- rendering


def find_dot() -> str | None:
    """The program that renders DOT: $TINYGRAD_FNN_DOT, Graphviz's `dot`, or `graphviz-pure`."""
    chosen = os.environ.get("TINYGRAD_FNN_DOT")
    if chosen:
        return shutil.which(chosen)
    for program in ("dot", "graphviz-pure"):
        found = shutil.which(program)
        if found:
            return found
    beside = Path(sys.executable).with_name("graphviz-pure")  # a venv run without activation
    return str(beside) if beside.exists() else None


def to_bytes(graph: graphviz.Digraph | str, fmt: str = "svg") -> bytes:
    """Render DOT source (or a Digraph) to `fmt` ("svg" or "png") and return the bytes."""
    program = find_dot()
    if program is None:
        raise RenderError(
            "no program to render graphs: `pip install graphviz-pure` (self-contained) or "
            "install Graphviz (`apt-get install graphviz`, `brew install graphviz`)"
        )
    source = graph if isinstance(graph, str) else graph.source
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=120
        )
    except OSError as e:
        raise RenderError(f"could not run {program}: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"{program} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def to_svg(graph: graphviz.Digraph | str) -> str:
    return to_bytes(graph, "svg").decode()


def render(graph: graphviz.Digraph, path: str | os.PathLike, formats: Iterable[str] = ("svg",)):
    """Write `path` + ".dot" and one file per format ("svg", "png"); returns the paths written."""
    base = Path(path)
    written = [base.with_suffix(".dot")]
    written[0].write_text(graph.source)
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        target.write_bytes(to_bytes(graph, fmt))
        written.append(target)
    return written
