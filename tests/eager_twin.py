"""A compiled step held against the eager step on a twin parameter, bit for bit at every step.

Shared by the tests that compile a cost with masks in it (`test_masks.py`,
`test_edges_review.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygrad_fnn import Tensor, compile, no_grad


def assert_compiled_is_eager(cost: Callable[[Tensor], Tensor], w: Tensor, lr: float) -> None:
    """`compile(lambda: cost(w), lr=lr)` over 20 steps against `cost(twin).backward()` and the
    update `twin -= lr * twin.grad` (as `fnn.SGD`): the same cost, gradient and parameter."""
    twin = Tensor(w.data.copy(), dtype=w.dtype, requires_grad=True)
    step = compile(lambda: cost(w), lr=lr)
    for i in range(20):
        w.grad = twin.grad = None
        got = step()
        want = cost(twin)
        want.backward()
        assert got.dtype == want.dtype == w.dtype, i
        assert np.array_equal(got.data, want.data), i
        assert np.array_equal(w.grad.data, twin.grad.data), i
        with no_grad():
            twin -= lr * twin.grad
        assert np.array_equal(w.data, twin.data), i
