"""Pictures of the forward and backward graphs: their DOT source, the tutorial's names, escaping,
rendering with and without a system Graphviz, and the pictures the commands write."""

import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import graphviz
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_fnn import Tensor, fnn, grad, names
from tinygrad_fnn.graph import PALETTE, backward_steps, collect, draw_backward, draw_graph
from tinygrad_fnn.losses import binary_cross_entropy_with_logits
from tinygrad_fnn.pictures import pictures, tutorial_graphs
from tinygrad_fnn.render import RenderError, find_dot, to_svg
from tinygrad_fnn.stepper import script_json

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"
BUNDLED = str(Path(sys.executable).with_name("graphviz-pure"))


def network(loss="fused", m=4):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, m)), (rng.uniform(size=(1, m)) > 0.5).astype(float)
    params = fnn.initialize_parameters(2, 3, seed=0)
    _, cache = fnn.forward_propagation(X, params)
    return fnn.cost_of(cache, Y, loss), params, cache


def three_layers(m=4, seed=0):
    """A 3-layer network built by hand, named as the L-layer networks name their tensors."""
    rng = np.random.default_rng(seed)
    X = Tensor(rng.standard_normal((3, m)), name="X")
    Y = Tensor((rng.uniform(size=(1, m)) > 0.5).astype(float), name="Y")
    sizes = [3, 5, 4, 1]
    params = {}
    A = X
    for layer in range(1, 4):
        W = Tensor(
            0.5 * rng.standard_normal((sizes[layer], sizes[layer - 1])), True, name=f"W{layer}"
        )
        b = Tensor(np.zeros((sizes[layer], 1)), True, name=f"b{layer}")
        params[f"W{layer}"], params[f"b{layer}"] = W, b
        Z = W @ A + b
        Z.name = f"Z{layer}"
        if layer < 3:
            A = Z.relu()
            A.name = f"A{layer}"
    cost = binary_cross_entropy_with_logits(Z, Y)
    cost.name = "cost"
    return cost, params


def dot_label(text):
    """The lines a DOT label shows (an independent reading of DOT's escapes)."""
    out, i = [""], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "n":
                out.append("")
            else:
                out[-1] += n  # \\ and \" are the character itself
            i += 2
        else:
            out[-1] += c
            i += 1
    return out


LABEL = re.compile(r'label=(?:"((?:[^"\\]|\\.)*)"|([^\s\]]+))')


def nodes_and_edges(graph):
    """{node id: [label lines]} and [(from, to)] read back from the DOT source."""
    nodes, edges = {}, []
    for line in graph.body:
        line = line.strip()
        if " -> " in line:
            a, b = line.split(" [")[0].split(" -> ")
            edges.append((a, b))
            continue
        match = re.match(r"(\w+) \[" + LABEL.pattern, line)
        if match:
            nodes[match[1]] = dot_label(match[2] if match[2] is not None else match[3])
    return nodes, edges


def svg_texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_forward_graph_of_the_tutorial_network():
    cost, _, _ = network("fused")
    nodes, edges = nodes_and_edges(draw_graph(cost))
    tensors = {k: v[0] for k, v in nodes.items() if k.startswith("t")}
    ops = sorted(v[0] for k, v in nodes.items() if k.startswith("f"))
    assert sorted(tensors.values()) == sorted(
        ["X", "W1", "W1 @ X", "b1", "Z1", "A1", "W2", "W2 @ A1", "b2", "Z2", "Y", "cost"]
    )
    assert ops == sorted(
        ["matmul", "add", "relu", "matmul", "add", "binary_cross_entropy_with_logits"]
    )
    assert len(edges) == 17  # every input into its op, every op into its output
    by_label = {label: node for node, label in tensors.items()}
    op_of = {b: a for a, b in edges if a.startswith("f")}  # output tensor -> its op
    for output, inputs in [
        ("Z1", ["W1 @ X", "b1"]),
        ("A1", ["Z1"]),
        ("Z2", ["W2 @ A1", "b2"]),
        ("cost", ["Z2", "Y"]),
        ("W1 @ X", ["W1", "X"]),
    ]:
        op = op_of[by_label[output]]
        assert sorted(tensors[a] for a, b in edges if b == op) == sorted(inputs)


def test_node_kinds_are_drawn_differently():
    cost, _, _ = network()
    graph = draw_graph(cost)
    nodes, _ = nodes_and_edges(graph)
    line = {nodes[s.split()[0]][0]: s for s in graph.body if "[label=" in s}
    assert PALETTE["parameter"] in line["W1"] and "bold" in line["W1"]  # a parameter
    assert "dashed" in line["X"]  # an input
    assert "rounded" in line["Z1"]  # an intermediate
    assert "peripheries=2" in line["cost"]  # the output


def test_composed_cost_shows_the_tutorial_formula():
    cost, _, _ = network("composed")
    nodes, _ = nodes_and_edges(draw_graph(cost))
    ops = [v[0] for k, v in nodes.items() if k.startswith("f")]
    assert ops.count("log") == 2 and "sigmoid" in ops and "sum" in ops
    labels = [v[0] for v in nodes.values()]
    assert "A2" in labels and "1 − A2" in labels and "log(A2)" in labels
    assert "constant (1, 4)" in labels  # 1 − Y needs no gradient, so it is not recorded


def test_values_and_gradients_are_shown_when_asked():
    cost, params, cache = network()
    cache["Z1"].retain_grad()
    cost.backward()
    source = draw_graph(cost, show_values=True, show_grad=True).source
    norm = float(np.linalg.norm(params["W1"].grad.data))
    assert f"‖grad‖ = {norm:.4g}" in source
    assert "value [" in source and "grad [" in source
    assert "grad [" not in draw_graph(cost, show_grad=False).source
    assert "rankdir=TB" in draw_graph(cost, rankdir="TB").source
    with pytest.raises(ValueError):
        draw_graph(cost, rankdir="diagonal")


def test_dot_source_is_deterministic():
    first = draw_graph(network()[0]).source
    second = draw_graph(network()[0]).source
    assert first == second
    assert "0x" not in first  # no memory addresses


def test_the_graph_is_walked_with_the_engines_traversal(monkeypatch):
    from tinygrad_fnn import graph as graph_module

    calls = []
    real = graph_module._topological_order
    monkeypatch.setattr(graph_module, "_topological_order", lambda fn: calls.append(fn) or real(fn))
    cost, _, _ = network()
    draw_graph(cost)
    draw_backward(cost)
    assert calls == [cost.grad_fn, cost.grad_fn]


OPS = (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a.tanh(), lambda a, b: a - 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20), st.integers(0, 20)), min_size=1))
def test_collect_puts_every_tensor_after_its_inputs(program):
    """Random expression graphs (reused values, constants, unary and binary ops)."""
    values = [Tensor([0.5, -1.0], requires_grad=True), Tensor([2.0, 3.0])]
    for op, i, j in program:
        a, b = values[i % len(values)], values[j % len(values)]
        values.append(OPS[op](a, b))
    root = values[-1]
    order = collect(root)
    position = {id(t): k for k, t in enumerate(order)}
    assert len(position) == len(order) and order[-1] is root
    for t in order:
        if t.grad_fn is not None:
            assert all(position[id(p)] < position[id(t)] for p in t.grad_fn.parents)
    # exactly the tensors reachable from the root
    reachable, stack = set(), [root]
    while stack:
        t = stack.pop()
        if id(t) not in reachable:
            reachable.add(id(t))
            stack.extend(t.grad_fn.parents if t.grad_fn is not None else ())
    assert set(position) == reachable


# ----- the tutorial's names


def test_names_come_from_layer_indexed_tensor_names():
    assert names.layer_name("Z3") == ("Z", 3) and names.layer_name("A[12]") == ("A", 12)
    for plain in ("X", "Y", "cost", "Zed", "W", "b1x", "", None):
        assert names.layer_name(plain) is None and names.tutorial_gradient(plain) is None
    assert names.tutorial_gradient("W3") == "dW3" and names.tutorial_gradient("b10") == "db10"
    assert names.tutorial_gradient("Z3") == "dZ3 / m" and names.tutorial_gradient("A1") == "dA1 / m"
    assert names.engine_gradient("cost", "Z2") == "∂cost/∂Z2"
    assert names.engine_gradient("cost", "W1 @ X") == "∂cost/∂(W1 @ X)"


def test_backward_graph_says_engine_and_tutorial_names_on_separate_lines():
    cost, params, _ = network()
    graph = draw_backward(cost)
    nodes, edges = nodes_and_edges(graph)
    gradients = {v[0]: v for k, v in nodes.items() if k.startswith("g")}
    assert "∂cost/∂cost = 1" in gradients
    for name, tutorial in [
        ("Z2", "dZ2 / m"),
        ("A1", "dA1 / m"),
        ("Z1", "dZ1 / m"),
        ("W2", "dW2"),
        ("b2", "db2"),
        ("W1", "dW1"),
        ("b1", "db1"),
    ]:
        assert gradients[f"∂cost/∂{name} (engine)"][1] == f"= {tutorial} (tutorial)"
    assert "dZ2 = dZ2" not in graph.source
    rules = [nodes[f"r{k}"][0] for k in range(1, 7)]
    assert rules == [
        "1. binary_cross_entropy_with_logits",
        "2. add",
        "3. matmul",
        "4. relu",
        "5. add",
        "6. matmul",
    ]
    assert [s["rule"] for s in graph.steps] == [f"r{k}" for k in range(1, 7)]
    assert "∂cost/∂W1 (= dW1 in the tutorial)" in graph.steps[-1]["caption"]
    assert "turns ∂cost/∂Z2 (= dZ2 / m in the tutorial) into" in graph.steps[1]["caption"]
    frame = draw_backward(cost, highlight=3).source  # a still of step 3
    assert frame.count(PALETTE["current"]) == 1 and frame.count(PALETTE["done"]) == 2
    with pytest.raises(ValueError):
        draw_backward(cost, rankdir="RL")
    assert backward_steps(cost)[0] is cost.grad_fn
    # each rule consumes one gradient and produces one per input that needs one
    assert sum(1 for a, b in edges if b == "r3") == 1 and sum(1 for a, b in edges if a == "r3") == 2


def test_gradient_values_are_drawn_only_once_computed():
    cost, _, _ = network()
    before = draw_backward(cost)
    assert "‖grad‖" not in before.source
    for t in collect(cost):
        t.retain_grad()
    cost.backward()
    after = draw_backward(cost)
    nodes, _ = nodes_and_edges(after)
    for node, known in after.known_lines.items():
        assert nodes[node][known].startswith("‖grad‖")  # the first line the page hides
        assert not any(line.startswith("‖grad‖") for line in nodes[node][:known])


def test_backward_graph_shows_the_difference_from_the_formula():
    from tinygrad_fnn import compare_gradients

    cost, params, _ = network(m=4)
    start = {k: p.data.copy() for k, p in params.items()}
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 4)), (rng.uniform(size=(1, 4)) > 0.5).astype(float)
    comparison = compare_gradients(X, Y, start, "fused")
    source = draw_backward(cost, comparison=comparison).source
    assert source.count("vs formula: bit-identical") == 7


def test_the_recorded_backward_graph_is_itself_drawable():
    x = Tensor([0.5, -1.0], requires_grad=True, name="x")
    (gx,) = grad((x * x).tanh().sum(), [x], create_graph=True)
    nodes, _ = nodes_and_edges(draw_graph(gx))
    ops = [v[0] for k, v in nodes.items() if k.startswith("f")]
    assert "mul" in ops and "sub" in ops  # the tanh rule g·(1 − z²), recorded
    W = Tensor(np.ones((2, 3)), requires_grad=True, name="W")
    (gW,) = grad((W @ Tensor(np.ones((3, 1)), name="v")).tanh().sum(), [W], create_graph=True)
    labels = [v[0] for v in nodes_and_edges(draw_graph(gW))[0].values()]
    assert "… @ …" in labels and "constant (1, 3)" in labels  # dW = g @ vᵀ, vᵀ a constant


def test_a_graph_of_10000_nodes_converts_without_recursion():
    x = Tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(5000):
        y = y * 1.0  # one op node and one tensor node each
    graph = draw_graph(y)
    assert len(collect(y)) == 10001
    assert graph.source.count("->") == 15000  # x·1.0: the tensor and the constant into each op
    assert len(draw_backward(y).steps) == 5000


# ----- deeper networks


@pytest.mark.parametrize("picture", ["forward", "backward"])
def test_three_layer_network_matches_its_golden_dot_source(picture):
    """Regenerate with TINYGRAD_FNN_WRITE_GOLDEN=1 after an intended change, and read the diff."""
    cost, _ = three_layers()
    draw = draw_graph if picture == "forward" else draw_backward
    source = draw(cost, title="Three layers").source
    path = GOLDEN / f"three_layers_{picture}.dot"
    if os.environ.get("TINYGRAD_FNN_WRITE_GOLDEN"):
        path.write_text(source, encoding="utf-8")
    assert source == path.read_text(encoding="utf-8")


def test_three_layer_network_names_every_layers_gradient():
    cost, params = three_layers()
    graph = draw_backward(cost)
    nodes, _ = nodes_and_edges(graph)
    lines = {v[0]: v[1] for k, v in nodes.items() if k.startswith("g") and len(v) > 2}
    for layer in (1, 2, 3):
        assert lines[f"∂cost/∂W{layer} (engine)"] == f"= dW{layer} (tutorial)"
        assert lines[f"∂cost/∂b{layer} (engine)"] == f"= db{layer} (tutorial)"
        assert lines[f"∂cost/∂Z{layer} (engine)"] == f"= dZ{layer} / m (tutorial)"
    for layer in (1, 2):
        assert lines[f"∂cost/∂A{layer} (engine)"] == f"= dA{layer} / m (tutorial)"
    assert len(graph.steps) == 3 * 3 - 1 + 1  # matmul, add per layer; two relus; the loss
    svg = svg_texts(to_svg(graph))
    assert "= dW3 (tutorial)" in svg and "∂cost/∂Z3 (engine)" in svg


def test_pictures_of_any_expression(tmp_path):
    a = Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    b = Tensor(np.arange(3.0), requires_grad=True, name="b")
    out = ((a * b).tanh() - a.exp() / 2.0).max(axis=1).sum()
    written = pictures(out, tmp_path, formats=("svg",))
    assert sorted(p.name for p in written) == sorted(
        [f"{n}.{e}" for n in ("forward", "forward_grad", "backward") for e in ("dot", "svg")]
        + ["backprop.html"]
    )
    assert b.grad is not None and a.grad.shape == (2, 3)
    texts = svg_texts((tmp_path / "backward.svg").read_text())
    assert "∂out/∂out = 1" in texts and "∂out/∂b" in texts
    assert "Step 1 of" in (tmp_path / "backprop.html").read_text()


def test_one_forward_and_one_backward_per_set_of_pictures(monkeypatch, tmp_path):
    from tinygrad_fnn import graph as graph_module
    from tinygrad_fnn import pictures as pictures_module

    counts = {"forward": 0, "backward": 0, "draw_backward": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(fnn, "forward_propagation", counting("forward", fnn.forward_propagation))
    monkeypatch.setattr(Tensor, "backward", counting("backward", Tensor.backward))
    monkeypatch.setattr(
        pictures_module, "draw_backward", counting("draw_backward", graph_module.draw_backward)
    )
    tutorial_graphs(tmp_path, formats=())
    assert counts == {"forward": 1, "backward": 1, "draw_backward": 1}


def test_the_palette_is_written_once():
    stepper_source = (ROOT / "tinygrad_fnn" / "stepper.py").read_text()
    assert not re.search(r"#[0-9a-fA-F]{6}\b", stepper_source)  # its colours come from PALETTE
    graph_source = (ROOT / "tinygrad_fnn" / "graph.py").read_text()
    assert len(re.findall(r"#[0-9a-fA-F]{6}\b", graph_source)) == len(PALETTE)


# ----- escaping: names and titles are text, whatever they hold


HOSTILE = ["a\\G", "x\\ny", "p\\l", 'say "hi"', "<b>bold</b>", "end\\", "\\N\\E\\T\\H"]


def test_labels_show_names_and_titles_literally_through_the_bundled_renderer(monkeypatch):
    monkeypatch.setenv("TINYGRAD_FNN_DOT", BUNDLED)
    tensors = [Tensor([1.0, 2.0], requires_grad=True, name=n) for n in HOSTILE]
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    root = total.sum()
    root.name = "<i>root</i>"
    for title in ("title ends in a backslash \\", "<b>not html</b>"):
        for picture in (draw_graph(root, title=title), draw_backward(root, title=title)):
            assert "label=<" not in picture.source  # never an HTML-like label
            texts = svg_texts(to_svg(picture))  # it parses, so the DOT was well formed
            assert title in texts
            for n in HOSTILE:
                wanted = n if picture.name == "forward" else f"∂<i>root</i>/∂({n})"
                assert wanted in texts, (n, texts)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_script_json_cannot_close_a_script_and_keeps_the_value(value):
    import json

    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


# ----- rendering, with and without a system Graphviz


def test_svg_parses_and_contains_the_tutorial_names():
    cost, _, _ = network()
    cost.backward()
    for picture in (draw_graph(cost), draw_backward(cost)):
        texts = " ".join(svg_texts(to_svg(picture)))
        for name in ("W1", "b1", "W2", "b2"):
            assert name in texts
    assert "= dZ2 / m (tutorial)" in texts and "∂cost/∂W1 (engine)" in texts


@pytest.fixture
def no_system_dot(monkeypatch, tmp_path):
    """A PATH with nothing on it: no Graphviz, and not even the venv's scripts."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("TINYGRAD_FNN_DOT", raising=False)
    return empty


def test_what_draw_graph_returns_renders_everywhere_without_graphviz(no_system_dot, tmp_path):
    cost, _, _ = network()
    picture = draw_graph(cost)
    with pytest.raises(graphviz.ExecutableNotFound):  # plain graphviz needs the missing `dot`
        graphviz.Digraph.pipe(picture, format="svg")
    assert Path(find_dot()).name == "graphviz-pure"
    out = picture.render(tmp_path / "fwd", format="png")
    assert out == str(tmp_path / "fwd.png")
    assert Path(out).read_bytes()[:4] == b"\x89PNG" and (tmp_path / "fwd").read_text() == (
        picture.source
    )
    svg_file = draw_backward(cost).render(outfile=tmp_path / "bwd.svg")
    assert ET.parse(svg_file).getroot().tag == f"{SVG}svg" and (tmp_path / "bwd.gv").exists()
    assert Path(picture.render(tmp_path / "clean", format="svg", cleanup=True)).exists()
    assert not (tmp_path / "clean").exists()
    assert ET.fromstring(picture.pipe()).tag == f"{SVG}svg"  # the default format is SVG
    assert picture.pipe(format="png")[:4] == b"\x89PNG"
    assert picture.pipe(encoding="utf-8").lstrip().startswith("<?xml")
    bundle = picture._repr_mimebundle_()
    assert "W1" in svg_texts(bundle["image/svg+xml"])
    assert svg_texts(picture._repr_image_svg_xml()) == svg_texts(bundle["image/svg+xml"])
    assert picture._repr_image_png()[:4] == b"\x89PNG"


def test_a_system_dot_on_path_is_the_one_used(no_system_dot, tmp_path):
    log = tmp_path / "dot-was-run"
    fake = no_system_dot / "dot"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{BUNDLED}" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    picture = draw_graph(network()[0])
    assert picture.pipe(format="png")[:4] == b"\x89PNG"
    assert log.read_text().split() == ["-Tpng"]


def test_no_renderer_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("tinygrad_fnn.render.find_dot", lambda: None)
    with pytest.raises(RenderError, match="pip install graphviz-pure"):
        to_svg("digraph { a -> b }")
    with pytest.raises(RenderError, match="pip install graphviz-pure"):
        draw_graph(network()[0]).pipe()


def test_tutorial_pictures_render_with_no_system_dot(no_system_dot, tmp_path):
    written = tutorial_graphs(tmp_path / "out", formats=("png",))
    assert (tmp_path / "out" / "forward.png").read_bytes()[:4] == b"\x89PNG"
    assert len(written) == 3 * 2 + 1


# ----- what the commands write


def test_committed_pictures_are_what_the_code_draws_now(tmp_path):
    tutorial_graphs(tmp_path, formats=())
    for name in ("forward", "forward_grad", "backward"):
        committed = (ROOT / "viz" / f"{name}.dot").read_text()
        assert committed == (tmp_path / f"{name}.dot").read_text(), f"viz/{name}.dot is stale"
        ET.parse(ROOT / "viz" / f"{name}.svg")

    def without_svg(page: str) -> str:  # the SVG is graphviz's output, which its version may vary
        head, rest = page.split('<div id="picture">')
        return head + rest.split("</svg>", 1)[1]

    committed = without_svg((ROOT / "viz" / "backprop.html").read_text())
    assert committed == without_svg((tmp_path / "backprop.html").read_text())
    shot = (ROOT / "viz" / "backprop.png").read_bytes()
    assert shot[:4] == b"\x89PNG" and int.from_bytes(shot[16:20], "big") == 1400  # its width


def test_graph_command_writes_svg_and_png(tmp_path, capsys):
    from tinygrad_fnn.cli import main

    assert main(["graph", "--out", str(tmp_path), "--data", "breast_cancer", "--hidden", "2"]) == 0
    for name in ("forward", "forward_grad", "backward"):
        assert (tmp_path / f"{name}.svg").stat().st_size > 1000
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "(30, 4) float64" in (tmp_path / "forward.dot").read_text()  # X for breast cancer
    assert main(["graph", "--out", str(tmp_path), "--formats", "pdf"]) == 2


def test_demo_draws_the_network_it_trained(tmp_path, capsys):
    from tinygrad_fnn import datasets
    from tinygrad_fnn.cli import DEFAULTS, main

    assert main(["demo", "--out", str(tmp_path), "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    hidden, _, lr = DEFAULTS["breast_cancer"]
    trained = re.search(r"n_x=(\d+), hidden=(\d+), m=\d+, lr=", out)
    assert trained and int(trained[2]) == hidden
    said = f"the network just trained (breast cancer, n_x={trained[1]}, hidden={hidden}"
    assert said in out and "batch of its first 4 training examples" in out
    forward = (tmp_path / "forward_grad.dot").read_text()
    assert f"n_x={trained[1]}, hidden={hidden}, m=4" in forward
    labels = {label[0]: label for m, _ in LABEL.findall(forward) if m for label in [dot_label(m)]}
    assert labels["W1"][1] == f"({hidden}, {trained[1]}) float64"
    assert labels["X"][1] == f"({trained[1]}, 4) float64"
    # the numbers drawn are the trained network's, on the training set's first examples
    ds = datasets.load("breast_cancer")
    params = fnn.initialize_parameters(ds.n_x, hidden, seed=0)
    fnn.train(ds.X_train, ds.Y_train, params, 3, lr, "fused", print_every=None)

    def preview(x):
        return "value [" + ", ".join(f"{v:.3g}" for v in x.reshape(-1)[:4]) + ", …]"

    assert labels["X"][2] == preview(ds.X_train[:, :4])
    assert labels["W1"][2] == preview(params["W1"].data)
    untrained = fnn.initialize_parameters(ds.n_x, hidden, seed=0)["W1"].data
    assert preview(untrained) != preview(params["W1"].data)


def test_the_readme_shows_the_labels_the_code_draws():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pictures of the graph")[1].split("\n## ")[0]
    block = section.split("```text\n")[1].split("```")[0].splitlines()
    shown = [[part for part in line.split("  ") if part.strip()] for line in block]
    nodes, _ = nodes_and_edges(draw_backward(network()[0]))
    drawn = {v[0]: v[1] for v in nodes.values() if len(v) > 2}
    for column in range(2):
        engine, tutorial = shown[0][column].strip(), shown[1][column].strip()
        assert drawn[engine] == tutorial
    assert "(viz/backprop.png)" in section and (ROOT / "viz" / "backprop.png").exists()
