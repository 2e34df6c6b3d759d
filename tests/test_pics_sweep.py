"""A hostile sweep of the pictures: what they say must be what the engine does, whatever the
names hold, and saving them must never leave a half-written or misdirected file."""

import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest
from test_graph import BUNDLED, SVG, nodes_and_edges, svg_texts

from tinygrad_fnn import Tensor
from tinygrad_fnn.graph import collect, draw_backward, draw_graph
from tinygrad_fnn.render import to_svg


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


@pytest.mark.parametrize("seed", range(20))
def test_the_backward_picture_draws_exactly_the_gradients_backward_computes(seed):
    """Flipping requires_grad after the forward pass changes nothing backward does (it follows
    what was recorded): the picture follows the recording too, never the flag as it is now."""
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
    nodes, _ = nodes_and_edges(draw_backward(out))
    drawn = {line[0].split("/∂")[1].split(" ")[0] for line in nodes.values() if "/∂p" in line[0]}
    out.backward()
    computed = {leaf.name for leaf in leaves if leaf.grad is not None}
    assert drawn == computed


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
