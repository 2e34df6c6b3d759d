"""Pictures of the forward and backward graphs, their DOT source, rendering and the step-through."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import Tensor, fnn, grad
from tinygrad_fnn.graph import (
    RenderError,
    backward_steps,
    collect,
    draw_backward,
    draw_graph,
    find_dot,
    to_svg,
)
from tinygrad_fnn.pictures import tutorial_graphs

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"


def network(loss="fused", m=4):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, m)), (rng.uniform(size=(1, m)) > 0.5).astype(float)
    params = fnn.initialize_parameters(2, 3, seed=0)
    _, cache = fnn.forward_propagation(X, params)
    return fnn.cost_of(cache, Y, loss), params, cache


def nodes_and_edges(graph):
    nodes, edges = {}, []
    for line in graph.body:
        line = line.strip()
        if "->" in line:
            a, b = line.split(" [")[0].split(" -> ")
            edges.append((a, b))
        elif line and line[0] in "tfgr" and "[label=" in line:
            name, rest = line.split(" [label=", 1)
            nodes[name] = rest.split('"')[1] if rest.startswith('"') else rest.split(" ")[0]
    return nodes, edges


def test_forward_graph_of_the_tutorial_network():
    cost, _, _ = network("fused")
    nodes, edges = nodes_and_edges(draw_graph(cost))
    tensors = {k: v.split("\n")[0] for k, v in nodes.items() if k.startswith("t")}
    ops = sorted(v for k, v in nodes.items() if k.startswith("f"))
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
    source = graph.source
    line = {label: s for s in graph.body for label in ("W1", "X", "Z1") if f'label="{label}\n' in s}
    assert "#cfe3ff" in line["W1"] and "bold" in line["W1"]  # a parameter
    assert "dashed" in line["X"]  # an input
    assert "rounded" in line["Z1"]  # an intermediate
    assert "peripheries=2" in source  # the output


def test_composed_cost_shows_the_tutorial_formula():
    cost, _, _ = network("composed")
    nodes, _ = nodes_and_edges(draw_graph(cost))
    ops = [v for k, v in nodes.items() if k.startswith("f")]
    assert ops.count("log") == 2 and "sigmoid" in ops and "sum" in ops
    labels = [v.split("\n")[0] for v in nodes.values()]
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


def test_backward_graph_names_the_tutorial_gradients_in_order():
    cost, params, _ = network()
    graph = draw_backward(cost)
    nodes, edges = nodes_and_edges(graph)
    gradients = {v.split("\n")[0] for k, v in nodes.items() if k.startswith("g")}
    assert {"dcost = 1", "dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1"} <= gradients
    rules = [nodes[f"r{k}"].split("\n")[0] for k in range(1, 7)]
    assert rules == [
        "1. binary_cross_entropy_with_logits",
        "2. add",
        "3. matmul",
        "4. relu",
        "5. add",
        "6. matmul",
    ]
    assert [s["rule"] for s in graph.steps] == [f"r{k}" for k in range(1, 7)]
    assert "dW1" in graph.steps[-1]["caption"]
    frame = draw_backward(cost, highlight=3).source  # a still of step 3
    assert frame.count("#ffb347") == 1 and frame.count("#d9d9d9") == 2
    with pytest.raises(ValueError):
        draw_backward(cost, rankdir="RL")
    assert backward_steps(cost)[0] is cost.grad_fn
    # each rule consumes one gradient and produces one per input that needs one
    assert sum(1 for a, b in edges if b == "r3") == 1 and sum(1 for a, b in edges if a == "r3") == 2


def test_backward_graph_shows_the_difference_from_the_formula():
    from tinygrad_fnn import compare_gradients

    cost, params, _ = network(m=4)
    start = {k: p.data.copy() for k, p in params.items()}
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 4)), (rng.uniform(size=(1, 4)) > 0.5).astype(float)
    comparison = compare_gradients(X, Y, start, "fused")
    source = draw_backward(cost, comparison=comparison).source
    assert source.count("vs formula: bit-identical") == 7
    assert "= ∂cost/∂Z2 = dZ2/m" in source


def test_the_recorded_backward_graph_is_itself_drawable():
    x = Tensor([0.5, -1.0], requires_grad=True, name="x")
    (gx,) = grad((x * x).tanh().sum(), [x], create_graph=True)
    nodes, _ = nodes_and_edges(draw_graph(gx))
    ops = [v for k, v in nodes.items() if k.startswith("f")]
    assert "mul" in ops and "sub" in ops  # the tanh rule g·(1 − z²), recorded
    W = Tensor(np.ones((2, 3)), requires_grad=True, name="W")
    (gW,) = grad((W @ Tensor(np.ones((3, 1)), name="v")).tanh().sum(), [W], create_graph=True)
    labels = [v.split("\n")[0] for v in nodes_and_edges(draw_graph(gW))[0].values()]
    assert "… @ …" in labels and "constant (1, 3)" in labels  # dW = g @ vᵀ, vᵀ a constant


def test_a_graph_of_10000_nodes_converts_without_recursion():
    x = Tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(5000):
        y = y * 1.0  # one op node and one tensor node each
    graph = draw_graph(y)
    assert len(collect(y)) == 10001
    assert graph.source.count("->") == 15000  # x·1.0: the tensor and the constant into each op


# ----- rendering


def test_svg_parses_and_contains_the_tutorial_names():
    cost, _, _ = network()
    cost.backward()
    for picture in (draw_graph(cost), draw_backward(cost)):
        svg = ET.fromstring(to_svg(picture))
        assert svg.tag == f"{SVG}svg"
        texts = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
        for name in ("W1", "b1", "W2", "b2"):
            assert name in texts
    assert "dZ2" in texts and "dW1" in texts


def test_rendering_works_with_no_system_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH at all
    monkeypatch.delenv("TINYGRAD_FNN_DOT", raising=False)
    program = find_dot()
    assert program is not None and Path(program).name == "graphviz-pure"
    png = tutorial_graphs(tmp_path / "out", formats=("png",))
    assert (tmp_path / "out" / "forward.png").read_bytes()[:4] == b"\x89PNG"
    assert len(png) == 3 * 2 + 1


def test_no_renderer_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("tinygrad_fnn.graph.find_dot", lambda: None)
    with pytest.raises(RenderError, match="pip install graphviz-pure"):
        to_svg("digraph { a -> b }")


def test_a_digraph_displays_inline_in_jupyter():
    bundle = draw_graph(network()[0])._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml")


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


def test_graph_command_writes_svg_and_png(tmp_path, capsys):
    from tinygrad_fnn.cli import main

    assert main(["graph", "--out", str(tmp_path), "--data", "breast_cancer", "--hidden", "2"]) == 0
    for name in ("forward", "forward_grad", "backward"):
        assert (tmp_path / f"{name}.svg").stat().st_size > 1000
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "(30, 4) float64" in (tmp_path / "forward.dot").read_text()  # X for breast cancer
    assert main(["graph", "--out", str(tmp_path), "--formats", "pdf"]) == 2


# ----- the step-through page, in a real browser


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip(
            "no chromium and chromedriver on PATH (apt-get install chromium chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1600,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(driver))


def test_step_through_page_advances_and_renders_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tutorial_graphs(tmp_path, formats=())
    page = tmp_path / "backprop.html"
    assert "http" not in page.read_text().replace("http://www.w3.org", "")  # nothing fetched
    driver = browser()
    try:
        driver.get(page.as_uri())
        counter = driver.find_element(By.ID, "counter")
        assert counter.text == "0 / 6"
        assert driver.find_element(By.ID, "prev").get_attribute("disabled")

        def fill(node_id):
            return driver.execute_script(
                "return document.getElementById(arguments[0])"
                ".querySelector('polygon, ellipse, path').getAttribute('fill')",
                node_id,
            )

        assert fill("r1") == "#ffffff"
        driver.find_element(By.ID, "next").click()
        assert counter.text == "1 / 6" and fill("r1") == "#ffb347"
        assert "Step 1 of 6" in driver.find_element(By.ID, "caption").text
        driver.find_element(By.ID, "next").click()
        assert counter.text == "2 / 6" and fill("r1") == "#d9d9d9" and fill("r2") == "#ffb347"
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
        assert counter.text == "1 / 6"
        for _ in range(10):
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
        assert counter.text == "6 / 6" and "dW1" in driver.find_element(By.ID, "caption").text
        assert driver.find_element(By.ID, "next").get_attribute("disabled")
        width, height = driver.execute_script(
            "const b = document.querySelector('#picture svg').getBBox(); return [b.width, b.height]"
        )
        assert width > 500 and height > 50  # the picture was laid out, not only present
        texts = driver.execute_script(
            "return Array.from(document.querySelectorAll('#picture text')).map(t => t.textContent)"
        )
        assert "dZ2" in texts and "dW1" in texts
    finally:
        driver.quit()
