"""Finite-difference checking of the engine's gradients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygrad_fnn.engine import Tensor, grad


class GradcheckError(AssertionError):
    """The engine's gradient and the finite-difference estimate disagree; the message says where."""


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare the gradients of `fn` at `inputs` with central finite differences.

    A non-scalar output is reduced to the scalar `sum(out * w)` with fixed random weights `w`,
    which checks the whole vector-Jacobian product. Each element of each input that requires
    grad is perturbed by ±`eps`; it passes when |engine − numeric| <= atol + rtol·|numeric|.
    Returns True, or raises `GradcheckError` naming the input, the worst element, both values and
    their difference. Use float64 inputs: float32 cannot resolve a step of 1e-6.
    """
    # Fresh leaves with the same values: perturbing them in place cannot touch the caller's data.
    inputs = tuple(
        Tensor(t.data, requires_grad=t.requires_grad, dtype=t.dtype, name=t.name) for t in inputs
    )
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    out = fn(*inputs)
    weights = np.random.default_rng(seed).standard_normal(out.shape)

    def scalar(o: Tensor) -> Tensor:
        return o if o.size == 1 else (o * weights).sum()

    analytic = grad(scalar(out), checked)
    for position, (t, g) in enumerate(zip(checked, analytic)):
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: writing to it perturbs the input in place
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            up = scalar(fn(*inputs)).item()
            flat[i] = original - eps
            down = scalar(fn(*inputs)).item()
            flat[i] = original
            numeric.reshape(-1)[i] = (up - down) / (2 * eps)
        error = np.abs(g.data - numeric)
        excess = error - (atol + rtol * np.abs(numeric))
        worst = np.unravel_index(int(np.argmax(excess)), t.shape) if t.ndim else ()
        if not np.isfinite(numeric).all():
            label = t.name or f"input {position}"
            raise GradcheckError(
                f"gradcheck: {label} {t.shape}: finite differences are not finite there (the "
                "function is nan or infinite near this point); choose another point or eps"
            )
        if excess[worst] > 0 or not np.isfinite(g.data).all():
            label = t.name or f"input {position}"
            raise GradcheckError(
                f"gradcheck: {label} {t.shape}, element {tuple(int(i) for i in worst)}: "
                f"engine {float(g.data[worst])!r}, finite differences {float(numeric[worst])!r}, "
                f"difference {float(error[worst])!r} (allowed {atol} + {rtol}·|numeric|)"
            )
    return True
