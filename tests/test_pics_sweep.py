"""A hostile sweep of the pictures: what they say must be what the engine does, whatever the
names hold, and saving them must never leave a half-written or misdirected file."""

import os
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_graph import BUNDLED, SVG, nodes_and_edges, svg_texts
from test_page import Page, chrome  # noqa: F401 (a fixture)

from tinygrad_fnn import Tensor, render
from tinygrad_fnn.cli import main
from tinygrad_fnn.graph import PALETTE, collect, draw_backward, draw_graph
from tinygrad_fnn.pictures import pictures, tutorial_graphs
from tinygrad_fnn.render import to_svg
from tinygrad_fnn.stepper import write_stepper


@pytest.fixture(autouse=True)
def bundled_renderer(monkeypatch):
    monkeypatch.setenv("TINYGRAD_FNN_DOT", BUNDLED)


def node_texts(svg: str) -> dict[str, list[str]]:
    """{node id: the text lines the renderer drew in it}, read from the SVG."""
    return {
        g.get("id"): [t.text or "" for t in g.iter(f"{SVG}text")]
        for g in ET.fromstring(svg).iter(f"{SVG}g")
        if g.get("class") == "node"
    }


def named_sum(name: str) -> Tensor:
    x = Tensor([1.0, 2.0], requires_grad=True, name=name)
    y = (x * 2.0).sum()
    y.name = "y"
    return y


# ----- names are text, whatever they hold


@pytest.mark.parametrize("name", ["a&amp;b", "&#60;x&#62;", "&lt;b&gt;", "&", "a&b;", "&#x26;"])
def test_a_name_that_looks_like_an_entity_is_shown_as_written(name):
    y = named_sum(name)
    for picture in (draw_graph(y, title=name), draw_backward(y, title=name)):
        texts = svg_texts(to_svg(picture))
        assert name in texts  # the title
        wanted = name if picture.name == "forward" else f"∂y/∂({name})"
        assert wanted in texts, texts


CONTROLS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\r", "\x7f"]
UNSHOWABLE = ["\ud800", "\udfff", "\ufffe", "\uffff"]  # no SVG or UTF-8 text holds them


def test_control_characters_in_names_give_well_formed_pictures_that_keep_names_apart():
    shown = {}
    for c in CONTROLS + UNSHOWABLE:
        y = named_sum(f"a{c}b")
        for picture in (draw_graph(y, title=f"t{c}"), draw_backward(y)):
            texts = svg_texts(to_svg(picture))  # it renders, and the SVG parses
            if picture.name == "forward":
                drawn = [t for t in texts if len(t) == 3 and t[0] == "a" and t[2] == "b"]
                assert len(drawn) == 1, (repr(c), texts)
                assert drawn[0][1] != c and drawn[0][1].isprintable()
                shown[c] = drawn[0][1]
                assert any(t[0] == "t" and len(t) == 2 and t[1].isprintable() for t in texts)
    assert len({shown[c] for c in CONTROLS}) == len(CONTROLS)  # different names stay different
    assert {shown[c] for c in UNSHOWABLE} == {"\ufffd"}  # the replacement character


@pytest.mark.parametrize("name", ["x\ny", "x\n\ny", "\nx", "x\n", "x\n\n\n"])
def test_the_page_hides_exactly_the_lines_not_yet_computed(name, tmp_path):
    """known_lines counts the lines the renderer draws, so a blank or extra line in a name
    neither hides a gradient's shape nor shows its value before the pass computes it."""
    x = Tensor([1.0, -2.0], requires_grad=True, name=name)
    out = (x * x).sum()
    for t in collect(out):
        t.retain_grad()
    out.backward(retain_graph=True)
    graph = draw_backward(out)
    drawn = node_texts(to_svg(graph))
    for node, known in graph.known_lines.items():
        before, after = drawn[node][:known], drawn[node][known:]
        assert "(2,)" in before or "()" in before, (node, drawn[node])
        assert not any(t.startswith("‖grad‖") for t in before), (node, drawn[node])
        assert len(after) == 1 and after[0].startswith("‖grad‖"), (node, drawn[node])


# ----- the backward picture is what backward does


def _flipped_after_recording(seed: int) -> tuple[list[Tensor], Tensor]:
    """Five named leaves, some requiring grad, in a random product and sum; then about half of
    them have requires_grad flipped, after the forward pass was recorded."""
    rng = np.random.default_rng(seed)
    leaves = [
        Tensor(rng.uniform(0.5, 1.5, (2, 3)), requires_grad=bool(rng.integers(2)), name=f"p{i}")
        for i in range(5)
    ]
    leaves[0].requires_grad = True  # something to differentiate
    out = leaves[0]
    for leaf in leaves[1:]:
        out = out * leaf if rng.integers(2) else out + leaf.exp()
    out = out.sum()
    for leaf in leaves:
        if rng.uniform() < 0.5:
            leaf.requires_grad = not leaf.requires_grad
    return leaves, out


@pytest.mark.parametrize("seed", range(20))
def test_the_backward_picture_draws_exactly_the_gradients_backward_computes(seed):
    """Flipping requires_grad after the forward pass changes nothing backward does (it follows
    what was recorded): the picture follows the recording too, never the flag as it is now."""
    leaves, out = _flipped_after_recording(seed)
    nodes, _ = nodes_and_edges(draw_backward(out))
    drawn = {line[0].split("/∂")[1].split(" ")[0] for line in nodes.values() if "/∂p" in line[0]}
    out.backward()
    computed = {leaf.name for leaf in leaves if leaf.grad is not None}
    assert drawn == computed


@pytest.mark.parametrize("seed", range(12))
def test_the_forward_picture_colours_the_leaves_backward_gives_a_gradient(seed):
    """The forward picture, like the backward one, draws a leaf as a parameter when the recorded
    graph gives it a gradient, whatever requires_grad says after the forward pass."""
    leaves, out = _flipped_after_recording(seed)
    source = draw_graph(out).source
    parameter = PALETTE["parameter"]
    drawn = {
        leaf.name
        for leaf in leaves
        if any(f'"{leaf.name}' in line and parameter in line for line in source.splitlines())
    }
    out.backward()
    assert drawn == {leaf.name for leaf in leaves if leaf.grad is not None}


def test_the_backward_picture_of_a_constant_is_an_error():
    c = Tensor([1.0, 2.0], name="c").sum()
    with pytest.raises(ValueError, match="does not require grad"):
        draw_backward(c)
    with pytest.raises(ValueError, match="does not require grad"):
        draw_backward(Tensor([1.0]) > 0)


def test_an_input_used_twice_by_one_operation_gives_two_edges_with_their_own_ids():
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    out = (x * x).sum()
    graph = draw_backward(out)
    root = ET.fromstring(to_svg(graph))
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    _, edges = nodes_and_edges(graph)
    assert Counter(edges)[("r2", "g2")] == 2  # two uses, two contributions to one sum
    assert graph.steps[1]["caption"].endswith("into ∂out/∂x (twice).")


# ----- saving never half-writes, never writes through a link


def test_pictures_never_write_through_a_symbolic_link(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "forward.svg").symlink_to(precious)
    code = main(["graph", "--out", str(out), "--formats", "svg"])
    assert code == 2
    assert precious.read_text() == "keep me"
    assert (out / "forward.svg").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["forward.svg"]  # nothing else written


def test_a_failure_part_way_leaves_the_old_pictures_whole(tmp_path, monkeypatch):
    out = tmp_path / "out"
    tutorial_graphs(out, formats=("svg",))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = {"n": 0}
    real = render.to_bytes

    def failing(graph, fmt="svg"):
        calls["n"] += 1
        if calls["n"] == 3:
            raise render.RenderError("the renderer failed")
        return real(graph, fmt)

    monkeypatch.setattr(render, "to_bytes", failing)
    with pytest.raises(render.RenderError):
        tutorial_graphs(out, hidden=2, formats=("svg",))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_interrupted_save_leaves_every_file_old_or_new_and_no_temporary_file(
    tmp_path, monkeypatch
):
    out = tmp_path / "out"
    tutorial_graphs(out, formats=("svg",))
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    new_dir = tmp_path / "new"
    tutorial_graphs(new_dir, hidden=2, formats=("svg",))
    new = {p.name: p.read_bytes() for p in new_dir.iterdir()}
    calls = {"n": 0}
    real = os.replace

    def interrupted(a, b):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tutorial_graphs(out, hidden=2, formats=("svg",))
    assert sorted(p.name for p in out.iterdir()) == sorted(old)  # no temporary file is left
    for name, data in old.items():
        assert (out / name).read_bytes() in (data, new[name]), name
    assert calls["n"] == 4 and any((out / n).read_bytes() == new[n] for n in new)


def test_with_no_renderer_the_command_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(render, "find_dot", lambda: None)
    out = tmp_path / "out"
    assert main(["graph", "--out", str(out)]) == 2
    assert "pip install graphviz-pure" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_the_step_through_page_is_written_whole(tmp_path, monkeypatch):
    target = tmp_path / "page.html"
    target.write_text("old page")
    real = Path.write_text

    def torn(self, data, *args, **kwargs):  # a crash after half of the page
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    def interrupted(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", torn)
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_stepper(named_sum("x"), target)
    monkeypatch.undo()
    assert target.read_text() == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


# ----- pictures() draws the pass it runs


def test_pictures_refuse_a_graph_whose_leaves_already_hold_a_gradient(tmp_path):
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    out = (x * x).sum()
    out.backward(retain_graph=True)
    with pytest.raises(ValueError, match="already holds a gradient"):
        pictures(out, tmp_path / "p", formats=())
    assert not (tmp_path / "p").exists()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])  # untouched
    x.grad = None
    pictures(out, tmp_path / "p", formats=())
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])
    assert "grad [2, 4]" in (tmp_path / "p" / "forward_grad.dot").read_text()
    assert all(t.grad is not None for t in collect(out) if t.requires_grad)


@pytest.mark.parametrize("name", [5, 0, 1.5, b"x", ("a", 1)])
def test_a_name_that_is_not_a_string_is_drawn_as_its_text(name):
    y = named_sum(name)
    for picture in (draw_graph(y), draw_backward(y)):
        texts = svg_texts(to_svg(picture))
        wanted = str(name) if picture.name == "forward" else f"∂y/∂{name}"
        assert wanted in texts or f"∂y/∂({name})" in texts, texts


def test_a_sum_of_gradients_shows_its_value_only_once_every_part_has_arrived(
    chrome,  # noqa: F811 (the fixture)
    tmp_path,
):
    """h feeds two operations: backward adds two parts into ∂y/∂h, and the page must not show
    the finished sum after the first part."""
    x = Tensor([0.5, -1.0], requires_grad=True, name="x")
    h = x * 2.0
    h.name = "h"
    y = (h.exp() + h.tanh()).sum()
    pictures(y, tmp_path, formats=())
    page = Page(chrome, tmp_path / "backprop.html")
    steps = page.js("return data.steps")
    node = next(
        n
        for n in page.js("return Object.keys(data.known_lines)")
        if page.visible_lines(n)[0] == "∂out/∂h"
    )
    producers = [k for k, s in enumerate(steps, start=1) if node in s["produces"]]
    assert len(producers) == 2
    for k in range(len(steps) + 1):
        page.js("show(arguments[0])", k)
        shown = any(line.startswith("‖grad‖") for line in page.visible_lines(node))
        assert shown == (k >= producers[-1]), (k, producers)


@pytest.mark.parametrize("seed", range(12))
def test_each_rule_node_shows_the_rules_backward_runs_and_only_those(seed, monkeypatch):
    """W1 @ X with X data runs da alone: the picture must not show db, the rule for X."""
    from tinygrad_fnn.graph import backward_steps

    rng = np.random.default_rng(seed)
    a, b, c = (
        Tensor(rng.uniform(0.5, 1.5, (3, 3)), requires_grad=bool(rng.integers(2)), name=n)
        for n in "abc"
    )
    a.requires_grad = True
    binary = [lambda p, q: p @ q, lambda p, q: p * q, lambda p, q: p - q, lambda p, q: p / q]
    out = a
    for other in (b, c, b, c):
        f = binary[rng.integers(len(binary))]
        out = f(out, other) if rng.integers(2) else f(other, out)
    out = out.sum()
    nodes, _ = nodes_and_edges(draw_backward(out))
    steps = backward_steps(out)
    ran = {id(fn): [] for fn in steps}

    def tracked(rule, text):
        return lambda op, *args: ran[id(op)].append(text) or rule(op, *args)

    for cls in {type(fn) for fn in steps}:
        monkeypatch.setattr(cls, "vjps", tuple(map(tracked, cls.vjps, cls.rules())))
    out.backward()
    for k, fn in enumerate(steps, start=1):
        assert nodes[f"r{k}"][1:] == [", ".join(ran[id(fn)])], (k, fn.op)


def test_the_tutorial_product_w_x_shows_the_rule_for_w_alone():
    W = Tensor(np.ones((2, 3)), requires_grad=True, name="W1")
    X = Tensor(np.ones((3, 4)), name="X")
    nodes, _ = nodes_and_edges(draw_backward((W @ X).sum()))
    assert nodes["r2"] == ["2. matmul", "da = matmul(g, b.mT)"]


def test_a_preview_reads_only_the_values_it_shows():
    """A broadcast view of 10¹² values is a few bytes; its preview must not copy it all."""
    x = Tensor(0.25, requires_grad=True, name="x")
    y = x.broadcast_to((10**6, 10**6))
    nodes, _ = nodes_and_edges(draw_graph(y, show_values=True))
    assert "value [0.25, 0.25, 0.25, 0.25, …]" in nodes["t1"]
    assert "value [0.25]" in nodes["t0"]
    z = Tensor(np.arange(3.0, dtype=np.float32), requires_grad=True, name="z")[::-1]
    assert "value [2, 1, 0]" in nodes_and_edges(draw_graph(z, show_values=True))[0]["t1"]


def test_graph_render_writes_nothing_when_rendering_fails_and_never_through_a_link(tmp_path):
    picture = draw_graph(named_sum("x"))
    with pytest.raises(render.RenderError):
        picture.render(tmp_path / "fwd", format="no-such-format")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "elsewhere").write_text("keep me")
    (tmp_path / "fwd.svg").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError, match="symbolic link"):
        picture.render(tmp_path / "fwd", format="svg")
    assert (tmp_path / "elsewhere").read_text() == "keep me"
    assert picture.render(tmp_path / "ok", format="svg") == str(tmp_path / "ok.svg")
    assert (tmp_path / "ok").read_text() == picture.source


def test_a_gradient_set_by_hand_as_an_array_is_drawn():
    """The engine lets `.grad` be set to an array; the pictures read it as the engine would."""
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    y = (x * 2.0).sum()
    x.grad = np.array([3.0, 4.0])
    nodes, _ = nodes_and_edges(draw_graph(y))
    assert nodes["t0"][2:] == ["grad [3, 4]", "‖grad‖ = 5"]
    assert "‖grad‖ = 5" in nodes_and_edges(draw_backward(y))[0]["g2"]


OPERATIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: 1.0 - a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "neg": lambda a, b: -a,
    "pow": lambda a, b: a**2 + a**b + 2.0**a,
    "exp log": lambda a, b: a.exp().log(),
    "relu sigmoid tanh": lambda a, b: a.relu().sigmoid().tanh(),
    "matmul": lambda a, b: a @ b.T,
    "reductions": lambda a, b: a.sum(0) + a.mean(0) + a.max(0) + a.min(0) + a.prod(0),
    "shapes": lambda a, b: a.reshape(4, 3).T.flatten()[None].squeeze(0),
    "broadcast": lambda a, b: a[0].broadcast_to((5, 4)),
    "indexing": lambda a, b: a[1:, ::2].sum() + a[a > 1].sum() + a[[0, 0, 1]].sum(),
    "astype": lambda a, b: a.astype(np.float32).astype(np.float64),
    "elementwise": lambda a, b: a.sqrt() + abs(a) + a.sign() * b + a.erf() + a.softplus(),
    "activations": lambda a, b: a.hardswish() + a.relu6() + a.gelu() + a.mish() + a.leaky_relu(),
    "clip maximum minimum": lambda a, b: a.clip(0.8, 1.2) + a.maximum(b) + a.minimum(b),
    "where": lambda a, b: __import__("tinygrad_fnn").where(a > b, a, b),
    "cumsum pad": lambda a, b: a.cumsum(0).pad(((1, 1), (0, 2))),
    "join split": lambda a, b: __import__("tinygrad_fnn").cat([a, b, a], 0).split(3, 0)[1],
    "matrices": lambda a, b: a[0].diag().sum() + a.diagonal().sum() + a.trace() + a.tril().sum(),
    "repeat flip": lambda a, b: a.repeat(2, 0).flip(0),
    "softmax": lambda a, b: a.softmax(0) + a.log_softmax(0) + a.logsumexp(0),
    "statistics": lambda a, b: a.var() + a.std(0).sum(),
    "masks": lambda a, b: (a > 1) * a + ((a > 1) & (b < 1)) * b,
}


def recorded(root: Tensor) -> list:
    """The recorded operations behind `root`, found by a plain walk (not the engine's)."""
    seen, todo = {}, [root]
    while todo:
        t = todo.pop()
        if t.grad_fn is not None and id(t.grad_fn) not in seen:
            seen[id(t.grad_fn)] = t.grad_fn
            todo.extend(t.grad_fn.parents)
    return list(seen.values())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", OPERATIONS)
def test_every_operation_is_drawn_once_with_its_edges_and_renders(name, dtype):
    rng = np.random.default_rng(len(name))
    a, b = (Tensor(rng.uniform(0.5, 1.5, (3, 4)), True, dtype=dtype, name=n) for n in "ab")
    root = OPERATIONS[name](a, b).sum()
    root.name = "L"
    fns = recorded(root)
    forward = draw_graph(root, show_values=True)
    backward = draw_backward(root)
    fw_nodes, fw_edges = nodes_and_edges(forward)
    ops = [n for n in fw_nodes if n.startswith("f")]
    assert sorted(fw_nodes[n][0] for n in ops) == sorted(fn.op for fn in fns)
    assert len(fw_edges) == sum(len(fn.parents) + 1 for fn in fns)
    bw_nodes, bw_edges = nodes_and_edges(backward)
    assert len(backward.steps) == len(fns)
    assert len(bw_edges) == sum(sum(fn.needs_grad) + 1 for fn in fns)
    root.backward()
    for picture in (forward, backward, draw_graph(root, show_values=True)):
        ET.fromstring(to_svg(picture))
    assert a.grad is not None
    assert ["a", f"(3, 4) {np.dtype(dtype)}"] in [lines[:2] for lines in fw_nodes.values()]


def test_pictures_get_the_permissions_a_plain_open_gives(tmp_path):
    previous = os.umask(0o027)
    try:
        written = tutorial_graphs(tmp_path / "out", formats=("svg",))
    finally:
        os.umask(previous)
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o640)}


def test_highlighting_a_step_that_does_not_exist_is_an_error():
    y = named_sum("x")  # two steps: sum, then mul
    current = [line for line in draw_backward(y, highlight=2).body if "#ffb347" in line]
    assert len(current) == 1 and current[0].startswith("\tr2 ")
    for wrong in (0, 3, -1, 1.5, "1"):
        with pytest.raises(ValueError, match="a step from 1 to 2"):
            draw_backward(y, highlight=wrong)


@pytest.mark.parametrize("root", [np.ones(3), 1.5, None, [Tensor(1.0, requires_grad=True)]])
def test_drawing_something_not_a_tensor_is_a_clear_error(root, tmp_path):
    for draw in (draw_graph, draw_backward, lambda r: pictures(r, tmp_path)):
        with pytest.raises(TypeError, match="draw a Tensor's graph, not a"):
            draw(root)
    assert list(tmp_path.iterdir()) == []
