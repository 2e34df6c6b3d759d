"""Pictures of computation graphs: the forward pass the engine recorded, and the backward pass it
derives from it, as `Graph` objects (DOT source) that render to SVG and PNG anywhere.

Drawing lives here; the tutorial's names for gradients in `names.py`; running a program that
renders DOT in `render.py`. Both pictures walk the graph with the engine's own traversal.
"""

from __future__ import annotations

import functools
from typing import Any

import graphviz
import numpy as np

from tinygrad_fnn import names
from tinygrad_fnn.engine import Function, Tensor, _topological_order, as_array
from tinygrad_fnn.render import Graph

# The one palette: the DOT styles below and the step-through page's CSS both come from it.
PALETTE = {
    "parameter": "#cfe3ff",
    "constant": "#f0f0f0",
    "op": "#fff2b3",
    "gradient": "#ffe0d6",
    "rule": "#e4f5e1",
    "current": "#ffb347",
    "done": "#d9d9d9",
    "produced": "#ff8a65",
    "pending": "#ffffff",
}
INFIX = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "matmul": "@"}
STYLE = {
    "parameter": {"shape": "box", "style": "filled,bold", "fillcolor": PALETTE["parameter"]},
    "intermediate": {"shape": "box", "style": "rounded"},
    "constant": {"shape": "box", "style": "dashed,filled", "fillcolor": PALETTE["constant"]},
    "op": {"shape": "ellipse", "style": "filled", "fillcolor": PALETTE["op"]},
    "gradient": {"shape": "box", "style": "filled", "fillcolor": PALETTE["gradient"]},
    "rule": {"shape": "ellipse", "style": "filled", "fillcolor": PALETTE["rule"]},
}
RANKDIRS = ("LR", "TB")
_TIMES = {1: "", 2: " (twice)"}  # an input an operation uses more than once


# Characters no picture can hold as themselves: control characters (XML forbids them, and DOT
# ends a string at NUL) are drawn as their Unicode "control pictures" (ESC as ␛), and what UTF-8
# or XML cannot hold at all (lone surrogates, U+FFFE, U+FFFF) as the replacement character.
_SHOWN = {c: 0x2400 + c for c in range(0x20) if chr(c) not in "\t\n"} | {0x7F: 0x2421}
_SHOWN |= {c: 0xFFFD for c in (*range(0xD800, 0xE000), 0xFFFE, 0xFFFF)}


def text_lines(lines: list[str]) -> list[str]:
    """The lines a label draws for `lines`: a newline in a name starts a new line, and an empty
    line is a space (renderers draw no text for an empty one, and the step-through page counts
    the texts drawn)."""
    parts = [part for line in lines for part in str(line).split("\n")]
    return [part.translate(_SHOWN) or " " for part in parts]


def label(lines: list[str]) -> str:
    """DOT label text showing `lines` literally: backslashes doubled and `&` written `&amp;` (so
    `a\\G`, `\\n` or `&lt;` in a name are text, not escapes or entities), one line each (as
    `text_lines`), and never read as an HTML-like label."""
    escaped = (part.replace("\\", "\\\\").replace("&", "&amp;") for part in text_lines(lines))
    return graphviz.nohtml("\\n".join(escaped))


# ----- walking the graph (the engine's traversal)


def _outputs(root: Tensor) -> tuple[list[Function], dict[Function, Tensor]]:
    """The recorded operations behind `root`, each after those that feed it, and the tensor
    each one produced."""
    if root.grad_fn is None:
        return [], {}
    order = _topological_order(root.grad_fn)
    output = {root.grad_fn: root}
    for fn in order:
        for p in fn.parents:
            if p.grad_fn is not None:
                output[p.grad_fn] = p
    return order, output


def _check_tensor(root: object) -> None:
    if not isinstance(root, Tensor):
        raise TypeError(f"the pictures draw a Tensor's graph, not a {type(root).__name__}")


def collect(root: Tensor) -> list[Tensor]:
    """Every tensor that led to `root`, each after the tensors it was computed from."""
    _check_tensor(root)
    return _tensors(root, *_outputs(root))


def _tensors(root: Tensor, order: list[Function], output: dict[Function, Tensor]) -> list[Tensor]:
    if not order:
        return [root]
    tensors: list[Tensor] = []
    seen: set[int] = set()
    for fn in order:
        for t in (*fn.parents, output[fn]):
            if id(t) not in seen:  # a recorded parent is already in, as an earlier output
                seen.add(id(t))
                tensors.append(t)
    return tensors


def kind(t: Tensor, learned: set[int] | None = None) -> str:
    """parameter (a leaf that requires grad), intermediate (recorded), or constant/input.
    `learned`, the ids of the leaves the recorded graph gives a gradient (`_learned`), decides
    for a leaf in a graph: what was recorded, whatever `requires_grad` says now."""
    if t.grad_fn is not None:
        return "intermediate"
    needs = t.requires_grad if learned is None else id(t) in learned
    return "parameter" if needs else "constant"


def _learned(order: list[Function]) -> set[int]:
    """The ids of the leaves that `order`'s operations recorded as needing a gradient."""
    return {
        id(p)
        for fn in order
        for p, needed in zip(fn.parents, fn.needs_grad)
        if needed and p.grad_fn is None
    }


def name_of(t: Tensor) -> str:
    """The tensor's name as text, "" for none (the engine takes any object as a name: 5 is "5")."""
    return "" if t.name is None else str(t.name)


def expression(t: Tensor) -> str:
    """A short name: the tensor's own, a constant's value, or the operation that made it."""
    if name_of(t):
        return name_of(t)
    fn = t.grad_fn
    if fn is None:
        return _number(t.data) if t.size == 1 else f"constant {t.shape}"
    parts = [
        name_of(p) or (_number(p.data) if p.size == 1 and p.grad_fn is None else "…")
        for p in fn.parents
    ]
    if fn.op in INFIX and len(parts) == 2:
        return f"{parts[0]} {INFIX[fn.op]} {parts[1]}"
    return f"{fn.op}({', '.join(parts)})"


def _number(x: np.ndarray) -> str:
    return f"{float(x.reshape(-1)[0]):.4g}"


def _preview(x: np.ndarray, items: int = 4) -> str:
    """The first few values; only those are read (the array may be a huge broadcast view)."""
    shown = ", ".join(f"{float(v):.3g}" for v in x.flat[:items])
    return f"[{shown}{', …' if x.size > items else ''}]"


def _norm(grad: Tensor | np.ndarray) -> str:
    return f"‖grad‖ = {float(np.linalg.norm(as_array(grad))):.4g}"


def _new_graph(name: str, rankdir: str, title: str | None) -> Graph:
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be 'LR' or 'TB', got {rankdir!r}")
    g = Graph(name=name)
    g.attr(rankdir=rankdir, fontname="Helvetica", fontsize="11")
    g.attr("node", fontname="Helvetica", fontsize="10")
    g.attr("edge", arrowsize="0.7")
    if title:
        g.attr(label=label([title]), labelloc="t", fontsize="13")
    return g


# ----- the forward graph


def _tensor_label(t: Tensor, show_values: bool, show_grad: bool) -> str:
    lines = [expression(t), f"{t.shape} {t.dtype}"]
    if show_values:
        lines.append(f"value {_preview(t.data)}")
    if show_grad and t.grad is not None:
        lines.append(f"grad {_preview(as_array(t.grad))}")
        lines.append(_norm(t.grad))
    return label(lines)


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
    (left to right) or "TB" (top to bottom); `title` is plain text. Node ids follow the graph,
    not memory addresses, so the same graph always gives the same DOT source.
    """
    _check_tensor(root)
    g = _new_graph("forward", rankdir, title)
    order, output = _outputs(root)
    tensors = _tensors(root, order, output)
    learned = _learned(order) if order else None
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    for i, t in enumerate(tensors):
        style = dict(STYLE[kind(t, learned)])
        if t is root:
            style["peripheries"] = "2"
        g.node(ids[id(t)], _tensor_label(t, show_values, show_grad), id=ids[id(t)], **style)
        if t.grad_fn is not None:
            op = f"f{i}"
            g.node(op, label([t.grad_fn.op]), id=op, **STYLE["op"])
            for p in t.grad_fn.parents:
                g.edge(ids[id(p)], op)
            g.edge(op, ids[id(t)])
    return g


# ----- the backward graph


def backward_steps(root: Tensor) -> list[Function]:
    """The recorded operations in the order `backward()` runs their derivative rules."""
    return list(reversed(_outputs(root)[0]))


def gradient_name(t: Tensor, root: Tensor) -> str:
    """The engine's gradient of `root` with respect to `t`, in symbols: "∂cost/∂Z2"."""
    output = name_of(root) or "out"
    return names.engine_gradient(output, output if t is root else expression(t))


def _caption_name(t: Tensor, root: Tensor) -> str:
    output = name_of(root) or "out"
    return names.in_words(output, name_of(t), output if t is root else expression(t))


@functools.cache
def _rules(cls: type[Function]) -> tuple[str, ...]:
    return tuple(cls.rules())  # read from the source: once for each class


def _rules_run(fn: Function) -> str:
    """The derivative rules backward runs for `fn`: one for each input that needs a gradient
    (as backward, which skips the others: `W1 @ X` runs `da` alone), or its one rule for all."""
    if not type(fn).vjps:
        return fn.rule
    return ", ".join(r for r, need in zip(_rules(type(fn)), fn.needs_grad) if need)


def draw_backward(
    root: Tensor,
    comparison: Any = None,
    rankdir: str = "LR",
    highlight: int | None = None,
    title: str | None = None,
) -> Graph:
    """The gradient computation `root.backward()` performs, as a graph.

    Each green node is one derivative rule, numbered in the order the engine runs it and showing
    its formula; each red node is a gradient: the engine's ∂cost/∂Z2 on one line and, where the
    tensor has a layer's name, the tutorial's name for it on the next (`= dZ2 / m (tutorial)`).
    Edges run from the gradient a rule consumes to the gradients it produces; a gradient with
    several incoming edges is their sum. With `comparison` (the result of `compare_gradients`),
    each gradient the tutorial derives by hand also shows how far the engine's value is from the
    formula's. `highlight` marks step k (1-based) as the current one.

    The returned graph also carries `steps` (what each rule consumes and produces, with a
    caption), `seed` (the node of the gradient backward starts from), `seed_name`, and
    `known_lines` (per gradient node, how many label lines hold before the gradient is
    computed), which the step-through page uses.
    """
    _check_tensor(root)
    if not root.requires_grad:
        raise ValueError(
            f"draw_backward: {expression(root)} does not require grad, so backward() has nothing "
            "to do on it"
        )
    g = _new_graph("backward", rankdir, title)
    order, output = _outputs(root)
    gid: dict[int, str] = {}
    differences = getattr(comparison, "differences", {}) or {}
    g.known_lines = {}

    def gradient_node(t: Tensor) -> str:
        if id(t) not in gid:
            node = gid[id(t)] = f"g{len(gid)}"
            symbol = gradient_name(t, root)
            tutorial = names.tutorial_gradient(name_of(t))
            if t is root:
                lines = [f"{symbol} = 1" if t.size == 1 else f"{symbol} (the seed)"]
            elif tutorial:
                lines = [f"{symbol} (engine)", f"= {tutorial} (tutorial)"]
            else:
                lines = [symbol]
            lines.append(f"{t.shape}")
            g.known_lines[node] = len(text_lines(lines))
            if t.grad is not None:
                lines.append(_norm(t.grad))
            d = differences.get(names.tutorial_symbol(name_of(t)))
            if d is not None:
                verdict = (
                    "bit-identical" if d.identical else f"{d.max_ulp} ULP, rel {d.relative:.2g}"
                )
                lines.append(f"vs formula: {verdict}")
            g.node(node, label(lines), id=node, **STYLE["gradient"])
        return gid[id(t)]

    g.steps = []
    g.seed = gradient_node(root)
    g.seed_name = gradient_name(root, root) + (" = 1" if root.size == 1 else "")
    steps = list(reversed(order))
    if highlight is not None and not (isinstance(highlight, int) and 1 <= highlight <= len(steps)):
        raise ValueError(f"highlight: a step from 1 to {len(steps)}, got {highlight!r}")
    for k, fn in enumerate(steps, start=1):
        rule = f"r{k}"
        style = dict(STYLE["rule"])
        if highlight is not None and k == highlight:
            style.update(fillcolor=PALETTE["current"], penwidth="2")
        elif highlight is not None and k < highlight:
            style.update(fillcolor=PALETTE["done"])
        formulas = _rules_run(fn)
        g.node(rule, label([f"{k}. {fn.op}", formulas]), id=rule, **style)
        out = output[fn]
        source = gradient_node(out)
        g.edge(source, rule, id=f"e{rule}_in")
        produced: dict[str, list] = {}  # gradient node: [its caption name, the inputs it is]
        for p, needed in zip(fn.parents, fn.needs_grad):
            if needed:  # as backward: what was recorded, whatever p.requires_grad says now
                target = gradient_node(p)
                uses = produced.setdefault(target, [_caption_name(p, root), 0])
                uses[1] += 1
                edge = f"e{rule}_{target}" + (f"_{uses[1]}" if uses[1] > 1 else "")
                g.edge(rule, target, id=edge)
        names_produced = [
            n + _TIMES.get(count, f" ({count} times)") for n, count in produced.values()
        ]
        g.steps.append(
            {
                "rule": rule,
                "consumes": source,
                "produces": list(produced),
                "caption": f"Step {k} of {len(steps)}: the rule of {fn.op} ({formulas}) turns "
                f"{_caption_name(out, root)} into {', '.join(names_produced)}.",
            }
        )
    return g
