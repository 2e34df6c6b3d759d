"""A page a learner can play: the backward pass one derivative rule at a time.

One self-contained HTML file (the picture is inline SVG, the controls a few lines of
JavaScript; no server, no network) with previous/next buttons and the arrow keys.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from tinygrad_fnn.engine import Tensor
from tinygrad_fnn.graph import draw_backward, to_svg

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
  #controls {{ display: flex; gap: 1em; align-items: center; margin: 0.5em 0; }}
  button {{ font-size: 1em; padding: 0.3em 0.9em; }}
  #counter {{ font-variant-numeric: tabular-nums; min-width: 5em; text-align: center; }}
  #caption {{ min-height: 2.6em; max-width: 60em; }}
  #picture svg {{ max-width: 100%; height: auto; }}
  .legend span {{ padding: 0 0.5em; margin-right: 0.5em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="legend">
  <span style="background:#ffb347">rule running now</span>
  <span style="background:#d9d9d9">rule done</span>
  <span style="background:#ff8a65">gradient just produced</span>
  <span style="background:#ffe0d6">gradient known</span>
  <span style="background:#ffffff;border:1px solid #ccc">not computed yet</span>
</p>
<div id="controls">
  <button id="prev" type="button">&#9664; previous</button>
  <span id="counter"></span>
  <button id="next" type="button">next &#9654;</button>
</div>
<p id="caption"></p>
<div id="picture">
{svg}
</div>
<script>
const steps = {steps};
const seed = {seed};
const first = {first_caption};
let current = 0;

function paint(id, fill, width) {{
  const group = document.getElementById(id);
  if (!group) return;
  const shape = group.querySelector("polygon, ellipse, path");
  if (shape) {{
    shape.setAttribute("fill", fill);
    shape.setAttribute("stroke-width", width || 1);
  }}
}}

function show(k) {{
  current = Math.max(0, Math.min(steps.length, k));
  const known = new Set([seed]);
  steps.forEach((s, i) => {{
    if (i < current) s.produces.forEach(id => known.add(id));
  }});
  document.querySelectorAll("#picture g.node").forEach(g => {{
    const id = g.id;
    if (id.startsWith("g")) paint(id, known.has(id) ? "#ffe0d6" : "#ffffff");
  }});
  steps.forEach((s, i) => {{
    const n = i + 1;
    const fill = n < current ? "#d9d9d9" : n === current ? "#ffb347" : "#ffffff";
    paint(s.rule, fill, n === current ? 3 : 1);
    if (n === current) s.produces.forEach(id => paint(id, "#ff8a65", 3));
  }});
  document.getElementById("counter").textContent = current + " / " + steps.length;
  const caption = current === 0 ? first : steps[current - 1].caption;
  document.getElementById("caption").textContent = caption;
  document.getElementById("prev").disabled = current === 0;
  document.getElementById("next").disabled = current === steps.length;
}}

document.getElementById("prev").addEventListener("click", () => show(current - 1));
document.getElementById("next").addEventListener("click", () => show(current + 1));
document.addEventListener("keydown", e => {{
  if (e.key === "ArrowLeft") show(current - 1);
  if (e.key === "ArrowRight") show(current + 1);
}});
show(0);
</script>
</body>
</html>
"""


def write_stepper(
    root: Tensor,
    path: str | os.PathLike,
    comparison: object = None,
    title: str = "Backpropagation, one rule at a time",
) -> Path:
    """Write the step-through page of `root.backward()` to `path` and return the path."""
    graph = draw_backward(root, comparison=comparison, rankdir="LR")
    svg = to_svg(graph)
    svg = svg[svg.index("<svg") :]  # drop the XML prologue: the SVG is inline
    seed = graph.steps[0]["consumes"] if graph.steps else "g0"
    name = f"d{root.name}" if root.name else "the output's gradient"
    first = (
        f"The forward pass is recorded. Backward starts from {name} = 1 and runs "
        f"{len(graph.steps)} derivative rules, last operation first. Press next (or →)."
    )
    page = PAGE.format(
        title=html.escape(title),
        svg=svg,
        steps=json.dumps(graph.steps),
        seed=json.dumps(seed),
        first_caption=json.dumps(first),
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
