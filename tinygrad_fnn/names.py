"""The tutorial's names for gradients, derived from the names of the tensors.

The networks name their tensors by layer: parameters `W1, b1, …, WL, bL`, intermediates
`Z1, A1, …, ZL, AL` (the tutorial's network is L = 2; `Z[1]` is read as `Z1`). The tutorial
calls the gradients `dW3`, `dZ3`, … but its cost is a mean over the m examples and its `dZ`
and `dA` are per example, so they are m times what the engine computes:

    ∂cost/∂W3 (engine) = dW3 (tutorial)        ∂cost/∂Z3 (engine) = dZ3 / m (tutorial)

Every label and caption says both, on separate lines or in so many words, never "dZ2 = dZ2/m".
"""

from __future__ import annotations

import re

_LAYER = re.compile(r"([ZAWb])\[?([0-9]+)\]?")
PER_EXAMPLE = frozenset("ZA")  # the tutorial's dZ and dA are not divided by m


def layer_name(name: str | None) -> tuple[str, int] | None:
    """("Z", 3) for "Z3" or "Z[3]"; None for a name that is not a layer's tensor."""
    match = _LAYER.fullmatch(name or "")
    return (match[1], int(match[2])) if match else None


def tutorial_gradient(name: str | None) -> str | None:
    """The tutorial's name for the engine's ∂cost/∂`name`: "dW3", "dZ3 / m"; None if it has none."""
    layer = layer_name(name)
    if layer is None:
        return None
    letter, index = layer
    return f"d{letter}{index}" + (" / m" if letter in PER_EXAMPLE else "")


def tutorial_symbol(name: str | None) -> str | None:
    """The tutorial's symbol alone, "dZ3" (what `compare_gradients` keys its results by)."""
    layer = layer_name(name)
    return f"d{layer[0]}{layer[1]}" if layer else None


def engine_gradient(output: str, wrt: str) -> str:
    """The engine's gradient in symbols: ∂cost/∂Z2, or ∂cost/∂(W1 @ X) for an unnamed tensor."""
    if not re.fullmatch(r"[\w\[\]]+", wrt):
        wrt = f"({wrt})"
    return f"∂{output}/∂{wrt}"


def in_words(output: str, wrt_name: str | None, wrt: str) -> str:
    """One line for captions: "∂cost/∂Z2 (= dZ2 / m in the tutorial)"."""
    symbol = engine_gradient(output, wrt)
    tutorial = tutorial_gradient(wrt_name)
    return f"{symbol} (= {tutorial} in the tutorial)" if tutorial else symbol
