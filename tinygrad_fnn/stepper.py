"""A page a learner can play: the backward pass one derivative rule at a time.

One self-contained HTML file (the picture is inline SVG, the controls a few lines of
JavaScript; no server, no network). The graph is shown at its natural size, so its text is as
large as in the SVG; the mouse wheel or the + and − buttons zoom, dragging pans, "fit" shows it
all, and each step brings the rule it runs into view. Previous/next buttons and the arrow keys
step; the gradients' values appear only once the pass has computed them.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from tinygrad_fnn.engine import Tensor
from tinygrad_fnn.graph import PALETTE, draw_backward
from tinygrad_fnn.render import Graph, save, to_svg

LEGEND = (
    ("current", "rule running now"),
    ("done", "rule done"),
    ("produced", "gradient just produced"),
    ("gradient", "gradient known"),
    ("pending", "not computed yet"),
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  html, body {{ height: 100%; margin: 0; }}
  body {{ font-family: Helvetica, Arial, sans-serif; color: #222; display: flex;
         flex-direction: column; }}
  header {{ padding: 0.6em 1.2em 0.3em; border-bottom: 1px solid #ddd; }}
  h1 {{ font-size: 1.3em; margin: 0 0 0.3em; }}
  #controls {{ display: flex; gap: 0.6em; align-items: center; flex-wrap: wrap; }}
  button {{ font-size: 1em; padding: 0.25em 0.8em; }}
  #counter, #zoom {{ font-variant-numeric: tabular-nums; min-width: 4.5em; text-align: center; }}
  #caption {{ min-height: 2.6em; margin: 0.4em 0 0; max-width: 75em; }}
  .legend {{ margin: 0 0 0.4em; font-size: 0.9em; }}
  .legend span {{ padding: 0 0.5em; margin-right: 0.4em; border: 1px solid #ccc; }}
{legend_css}
  #viewport {{ flex: 1; overflow: hidden; position: relative; cursor: grab; background: whitesmoke;
              touch-action: none; }}
  #viewport.dragging {{ cursor: grabbing; }}
  #picture {{ position: absolute; left: 0; top: 0; transform-origin: 0 0; }}
  .hidden {{ visibility: hidden; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="legend">{legend}</p>
<div id="controls">
  <button id="prev" type="button">&#9664; previous</button>
  <span id="counter"></span>
  <button id="next" type="button">next &#9654;</button>
  <span style="width:1.5em"></span>
  <button id="zoom-out" type="button" title="zoom out (or the mouse wheel)">&minus;</button>
  <span id="zoom"></span>
  <button id="zoom-in" type="button" title="zoom in (or the mouse wheel)">+</button>
  <button id="actual" type="button">100%</button>
  <button id="fit" type="button">fit</button>
  <span style="color:#666">drag to move</span>
</div>
<p id="caption"></p>
</header>
<div id="viewport">
<div id="picture">
{svg}
</div>
</div>
<script>
const data = {data};
const palette = data.palette, steps = data.steps;
const viewport = document.getElementById("viewport");
const picture = document.getElementById("picture");
let current = 0, scale = 1, x = 16, y = 16;

function place() {{
  picture.style.transform = "translate(" + x + "px, " + y + "px) scale(" + scale + ")";
  document.getElementById("zoom").textContent = Math.round(scale * 100) + "%";
}}

function zoomAt(factor, cx, cy) {{
  const next = Math.min(8, Math.max(0.05, scale * factor));
  x = cx - (cx - x) * next / scale;
  y = cy - (cy - y) * next / scale;
  scale = next;
  place();
}}

function zoomCentre(factor) {{
  const v = viewport.getBoundingClientRect();
  zoomAt(factor, v.width / 2, v.height / 2);
}}

function fit() {{
  const v = viewport.getBoundingClientRect(), svg = picture.querySelector("svg");
  const box = svg.getBoundingClientRect();
  const w = box.width / scale, h = box.height / scale;
  scale = Math.min(v.width / w, v.height / h) * 0.98;
  x = (v.width - w * scale) / 2;
  y = (v.height - h * scale) / 2;
  place();
}}

function bringIntoView(id) {{
  const node = document.getElementById(id);
  if (!node) return;
  const r = node.getBoundingClientRect(), v = viewport.getBoundingClientRect();
  const margin = 8;
  const inside = r.left >= v.left + margin && r.right <= v.right - margin &&
    r.top >= v.top + margin && r.bottom <= v.bottom - margin;
  if (inside) return;
  x += (v.left + v.width / 2) - (r.left + r.width / 2);
  y += (v.top + v.height / 2) - (r.top + r.height / 2);
  place();
}}

function paint(id, fill, width) {{
  const group = document.getElementById(id);
  if (!group) return;
  const shape = group.querySelector("polygon, ellipse, path");
  if (shape) {{
    shape.setAttribute("fill", fill);
    shape.setAttribute("stroke-width", width || 1);
  }}
}}

function reveal(id, known) {{
  const group = document.getElementById(id);
  if (!group) return;
  group.querySelectorAll("text").forEach((t, i) => {{
    t.classList.toggle("hidden", !known && i >= data.known_lines[id]);
  }});
}}

function show(k) {{
  current = Math.max(0, Math.min(steps.length, k));
  // a gradient several rules add to is known from the first part, its value once all are in
  const known = new Set([data.seed]), unfinished = new Set();
  steps.forEach((s, i) => {{
    s.produces.forEach(id => (i < current ? known : unfinished).add(id));
  }});
  Object.keys(data.known_lines).forEach(id => {{
    paint(id, known.has(id) ? palette.gradient : palette.pending);
    reveal(id, known.has(id) && !unfinished.has(id));
  }});
  steps.forEach((s, i) => {{
    const n = i + 1;
    const fill = n < current ? palette.done : n === current ? palette.current : palette.pending;
    paint(s.rule, fill, n === current ? 3 : 1);
    if (n === current) s.produces.forEach(id => paint(id, palette.produced, 3));
  }});
  document.getElementById("counter").textContent = current + " / " + steps.length;
  const caption = current === 0 ? data.first : steps[current - 1].caption;
  document.getElementById("caption").textContent = caption;
  document.getElementById("prev").disabled = current === 0;
  document.getElementById("next").disabled = current === steps.length;
  bringIntoView(current === 0 ? data.seed : steps[current - 1].rule);
}}

let drag = null;
viewport.addEventListener("pointerdown", e => {{
  drag = {{x: e.clientX - x, y: e.clientY - y}};
  viewport.classList.add("dragging");
  viewport.setPointerCapture(e.pointerId);
}});
viewport.addEventListener("pointermove", e => {{
  if (!drag) return;
  x = e.clientX - drag.x;
  y = e.clientY - drag.y;
  place();
}});
["pointerup", "pointercancel"].forEach(type => viewport.addEventListener(type, () => {{
  drag = null;
  viewport.classList.remove("dragging");
}}));
viewport.addEventListener("wheel", e => {{
  e.preventDefault();
  const v = viewport.getBoundingClientRect();
  zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - v.left, e.clientY - v.top);
}}, {{passive: false}});
document.getElementById("zoom-in").addEventListener("click", () => zoomCentre(1.25));
document.getElementById("zoom-out").addEventListener("click", () => zoomCentre(0.8));
document.getElementById("actual").addEventListener("click", () => {{
  scale = 1;
  place();
  show(current);
}});
document.getElementById("fit").addEventListener("click", fit);
document.getElementById("prev").addEventListener("click", () => show(current - 1));
document.getElementById("next").addEventListener("click", () => show(current + 1));
document.addEventListener("keydown", e => {{
  if (e.key === "ArrowLeft") show(current - 1);
  if (e.key === "ArrowRight") show(current + 1);
}});
place();
show(0);
</script>
</body>
</html>
"""


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no string in it can close the script or open
    a comment, because every <, > and & is written as a \\u escape (still the same JSON value)."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_stepper(
    root: Tensor | Graph,
    path: str | os.PathLike,
    comparison: object = None,
    title: str = "Backpropagation, one rule at a time",
    rankdir: str = "LR",
) -> Path:
    """Write the step-through page of `root.backward()` to `path` (whole or not at all) and
    return the path.

    `root` is the output tensor, or a graph `draw_backward` already drew (then `comparison` and
    `rankdir` are the ones it was drawn with).
    """
    page = stepper_page(root, comparison, title, rankdir)
    return save({Path(path): page.encode("utf-8")})[0]


def stepper_page(
    root: Tensor | Graph,
    comparison: object = None,
    title: str = "Backpropagation, one rule at a time",
    rankdir: str = "LR",
) -> str:
    """The HTML of the step-through page, as `write_stepper` writes it."""
    graph = root if isinstance(root, Graph) else draw_backward(root, comparison, rankdir=rankdir)
    if not hasattr(graph, "steps"):
        raise TypeError("write_stepper needs a tensor or a graph drawn by draw_backward")
    svg = to_svg(graph)
    svg = svg[svg.index("<svg") :]  # drop the XML prologue: the SVG is inline
    first = (
        f"The forward pass is recorded. Backward starts from {graph.seed_name} and runs "
        f"{len(graph.steps)} derivative rules, last operation first. Press next (or →)."
    )
    legend_css = "\n".join(
        f"  .legend .{key} {{ background: {PALETTE[key]}; }}" for key, _ in LEGEND
    )
    legend = "\n".join(f'<span class="{key}">{text}</span>' for key, text in LEGEND)
    data = {
        "steps": graph.steps,
        "seed": graph.seed,
        "first": first,
        "known_lines": graph.known_lines,
        "palette": PALETTE,
    }
    return PAGE.format(
        title=html.escape(title),
        legend_css=legend_css,
        legend=legend,
        svg=svg,
        data=script_json(data),
    )
