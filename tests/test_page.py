"""The step-through page in a real browser (headless Chromium at 1400×1000): it steps, it is
readable at its default zoom, it pans and zooms, it follows the current rule, it respects the
layout direction, it shows nothing before it is computed, and no tensor name can run a script."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_graph import three_layers

from tinygrad_fnn import Tensor
from tinygrad_fnn.graph import PALETTE
from tinygrad_fnn.pictures import pictures, tutorial_graphs
from tinygrad_fnn.stepper import write_stepper

ROOT = Path(__file__).resolve().parents[1]
MIN_TEXT_PX = 11


def _screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "viz" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chrome():
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    try:
        driver = _screenshot_module().browser(1400, 1000)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [1400, 1000]
    yield driver
    driver.quit()


class Page:
    """The page as the tests see it: clicks, and the geometry the browser laid out."""

    def __init__(self, driver, path):
        self.d = driver
        driver.get(Path(path).as_uri())

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def click(self, button, times=1):
        for _ in range(times):
            self.d.find_element("id", button).click()

    def text(self, element_id):
        return self.d.find_element("id", element_id).text

    def rect(self, selector):
        return self.js(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
            "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
            " x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2, height: r.height};",
            selector,
        )

    def node(self, node_id):
        return self.rect(f"#{node_id}")

    def inside_view(self, node_id):
        r, v = self.node(node_id), self.rect("#viewport")
        return (
            r["left"] >= v["left"]
            and r["right"] <= v["right"]
            and r["top"] >= v["top"]
            and r["bottom"] <= v["bottom"]
        )

    def text_heights(self):
        return self.js(
            "return Array.from(document.querySelectorAll('#picture g.node text'))"
            ".map(t => t.getBoundingClientRect().height)"
        )

    def fill(self, node_id):
        return self.js(
            "return document.getElementById(arguments[0])"
            ".querySelector('polygon, ellipse, path').getAttribute('fill')",
            node_id,
        )

    def visible_lines(self, node_id):
        return self.js(
            "return Array.from(document.getElementById(arguments[0]).querySelectorAll('text'))"
            ".filter(t => getComputedStyle(t).visibility === 'visible').map(t => t.textContent)",
            node_id,
        )

    def steps(self):
        return int(self.text("counter").split(" / ")[1])


def test_step_through_page_advances_and_renders(chrome, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tutorial_graphs(tmp_path, formats=())
    path = tmp_path / "backprop.html"
    assert "http" not in path.read_text().replace("http://www.w3.org", "")  # nothing fetched
    page = Page(chrome, path)
    assert page.text("counter") == "0 / 6"
    assert "Backward starts from ∂cost/∂cost = 1 and runs 6 derivative rules" in page.text(
        "caption"
    )
    assert chrome.find_element(By.ID, "prev").get_attribute("disabled")
    assert page.fill("r1") == PALETTE["pending"]
    page.click("next")
    assert page.text("counter") == "1 / 6" and page.fill("r1") == PALETTE["current"]
    assert page.text("caption").startswith("Step 1 of 6")
    page.click("next")
    assert page.fill("r1") == PALETTE["done"] and page.fill("r2") == PALETTE["current"]
    assert "turns ∂cost/∂Z2 (= dZ2 / m in the tutorial) into" in page.text("caption")
    chrome.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    assert page.text("counter") == "1 / 6"
    for _ in range(10):
        chrome.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert page.text("counter") == "6 / 6"
    assert "∂cost/∂W1 (= dW1 in the tutorial)" in page.text("caption")
    assert chrome.find_element(By.ID, "next").get_attribute("disabled")
    texts = page.js(
        "return Array.from(document.querySelectorAll('#picture text')).map(t => t.textContent)"
    )
    assert "= dZ2 / m (tutorial)" in texts and "∂cost/∂W1 (engine)" in texts


def test_breast_cancer_graph_is_readable_and_the_view_follows_each_rule(chrome, tmp_path):
    tutorial_graphs(tmp_path, "breast_cancer", 16, 4, "composed", formats=())
    page = Page(chrome, tmp_path / "backprop.html")
    heights = page.text_heights()
    assert len(heights) > 50 and min(heights) >= MIN_TEXT_PX
    assert page.text("zoom") == "100%"
    steps = page.steps()
    assert steps == 15
    svg, view = page.rect("#picture svg"), page.rect("#viewport")
    assert svg["right"] - svg["left"] > view["right"] - view["left"]  # too wide to fit at 100%
    moved = 0
    for k in range(1, steps + 1):
        before = page.node("g0")
        page.click("next")
        assert page.inside_view(f"r{k}"), f"rule {k} is out of view"
        moved += page.node("g0") != before
    assert moved >= 1  # the view moved to reach later rules
    assert min(page.text_heights()) >= MIN_TEXT_PX  # following did not zoom out


def test_gradients_show_no_value_before_they_are_computed(chrome, tmp_path):
    tutorial_graphs(tmp_path, formats=())
    page = Page(chrome, tmp_path / "backprop.html")
    nodes = page.js("return Object.keys(data.known_lines)")
    assert page.visible_lines("g0")[-1].startswith("‖grad‖")  # the seed is known from the start
    for node in nodes[1:]:
        visible = page.visible_lines(node)
        assert not any("‖grad‖" in line or "vs formula" in line for line in visible), node
        assert visible and visible[0].startswith("∂cost/∂")
    page.click("next")  # step 1 computes ∂cost/∂Z2
    produced = page.js("return data.steps[0].produces")
    assert any(line.startswith("‖grad‖") for line in page.visible_lines(produced[0]))
    assert page.fill(produced[0]) == PALETTE["produced"]
    page.click("next", page.steps())
    for node in nodes:
        assert any(line.startswith("‖grad‖") for line in page.visible_lines(node))


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
def test_the_layout_direction_is_respected(chrome, tmp_path, rankdir):
    tutorial_graphs(tmp_path, formats=(), rankdir=rankdir)
    page = Page(chrome, tmp_path / "backprop.html")
    seed, rule = page.node("g0"), page.node("r1")
    dx, dy = rule["x"] - seed["x"], rule["y"] - seed["y"]
    assert (dx > 50 and abs(dy) < 5) if rankdir == "LR" else (dy > 20 and abs(dx) < 5)


def test_wheel_buttons_drag_and_fit(chrome, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    tutorial_graphs(tmp_path, "breast_cancer", 16, 4, "composed", formats=())
    page = Page(chrome, tmp_path / "backprop.html")
    base = page.node("g0")["height"]
    page.js(
        "const v = document.getElementById('viewport').getBoundingClientRect();"
        "document.getElementById('viewport').dispatchEvent(new WheelEvent('wheel',"
        " {deltaY: -200, clientX: v.left + 100, clientY: v.top + 100, bubbles: true,"
        " cancelable: true}));"
    )
    assert page.node("g0")["height"] == pytest.approx(base * np.exp(0.3), rel=1e-3)
    page.click("actual")
    assert page.node("g0")["height"] == pytest.approx(base, rel=1e-6)
    page.click("zoom-out")
    assert page.node("g0")["height"] == pytest.approx(0.8 * base, rel=1e-3)
    page.click("zoom-in")
    assert page.node("g0")["height"] == pytest.approx(base, rel=1e-3)
    start = page.node("g0")
    viewport = chrome.find_element("id", "viewport")
    ActionChains(chrome).move_to_element(viewport).click_and_hold().move_by_offset(
        -120, 40
    ).release().perform()
    moved = page.node("g0")
    assert moved["x"] - start["x"] == pytest.approx(-120, abs=2)
    assert moved["y"] - start["y"] == pytest.approx(40, abs=2)
    page.click("fit")
    svg, view = page.rect("#picture svg"), page.rect("#viewport")
    assert svg["left"] >= view["left"] and svg["right"] <= view["right"] + 0.5
    assert svg["top"] >= view["top"] - 0.5 and svg["bottom"] <= view["bottom"] + 0.5
    assert page.text("zoom") != "100%"


def test_a_large_network_stays_legible(chrome, tmp_path):
    cost, _ = three_layers(m=64)
    pictures(cost, tmp_path, formats=())
    page = Page(chrome, tmp_path / "backprop.html")
    assert min(page.text_heights()) >= MIN_TEXT_PX
    for k in range(1, page.steps() + 1):
        page.click("next")
        assert page.inside_view(f"r{k}")
    texts = page.js(
        "return Array.from(document.querySelectorAll('#picture text')).map(t => t.textContent)"
    )
    assert "= dW3 (tutorial)" in texts and "(5, 64)" in texts  # ∂cost/∂Z1, one column an example


def test_a_hostile_tensor_name_is_text_not_script(chrome, tmp_path):
    hostile = "</script><script>window.__pwned=1</script>"
    x = Tensor([1.0, -2.0], requires_grad=True, name=hostile)
    out = (x * x).sum()
    out.name = "<!--"
    path = write_stepper(out, tmp_path / "page.html", title=hostile)
    source = path.read_text()
    script = source.split("<script>", 1)[1]
    assert "</script>" not in script.split("</script>\n</body>")[0]  # only the real end tag
    page = Page(chrome, path)
    assert page.js("return window.__pwned") is None
    assert page.js("return document.title") == hostile
    page.click("next", 2)
    assert page.js("return window.__pwned") is None
    assert page.text("caption").endswith(f"into ∂<!--/∂({hostile}) (twice).")
    texts = page.js(
        "return Array.from(document.querySelectorAll('#picture text')).map(t => t.textContent)"
    )
    assert f"∂<!--/∂({hostile})" in texts and "∂<!--/∂(<!--) = 1" in texts
    assert len(chrome.find_elements("tag name", "script")) == 1
