"""PyTorch as the oracle: value, gradient and Hessian-vector product of one function, in both.

Shared by `test_ops_new.py`, `test_deep.py` and `test_fuzz.py`; only the tests marked
`needs_torch` skip when torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from tinygrad_fnn import Tensor, grad

try:
    import torch

    HAVE_TORCH = True
except ImportError:  # the oracle is optional: the tests that need it skip, the others run

    class _Missing:
        """Stands in for torch so that tables naming torch's functions still build."""

        def __getattr__(self, name: str) -> _Missing:
            return self

        def __call__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("PyTorch is not installed")

    torch = _Missing()
    HAVE_TORCH = False

needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="PyTorch is not installed: pip install torch"
)


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    """‖ours − theirs‖ / ‖theirs‖ (the plain distance when theirs is 0); inf on a shape clash
    or where only one side is not finite."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return np.inf
    if not np.array_equal(np.isfinite(ours), np.isfinite(theirs)):
        return np.inf
    finite = np.isfinite(theirs)
    if not np.array_equal(ours[~finite], theirs[~finite], equal_nan=True):
        return np.inf
    scale = np.linalg.norm(theirs[finite])
    distance = np.linalg.norm(ours[finite] - theirs[finite])
    return float(distance / scale) if scale > 0 else float(distance)


def errors_against_torch(
    ours_fn: Callable[..., Tensor],
    torch_fn: Callable[..., object],
    arrays: Sequence[np.ndarray],
    rng: np.random.Generator,
) -> dict[str, float]:
    """The relative errors of the engine against PyTorch for the value of `fn(*arrays)`, the
    gradient of `sum(fn · w)` for random weights w, and its Hessian-vector product with random
    vectors v (through `create_graph`)."""
    import torch

    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours), torch_fn(*theirs)
    errors = {"value": relative(out.data, ref.detach().numpy())}

    w = rng.standard_normal(out.shape)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    g_ours = grad((out * w).sum(), ours, create_graph=True)
    g_theirs = _torch_grad(torch, (ref * torch.tensor(w)).sum(), theirs, create_graph=True)
    errors["gradient"] = max(
        relative(g.data, r.detach().numpy(force=True)) for g, r in zip(g_ours, g_theirs)
    )

    q_ours = sum(((g * v).sum() for g, v in zip(g_ours, vs)), Tensor(0.0))
    h_ours = grad(q_ours, ours) if q_ours.requires_grad else [np.zeros(a.shape) for a in arrays]
    q_theirs = sum((r * torch.tensor(v)).sum() for r, v in zip(g_theirs, vs))
    h_theirs = _torch_grad(torch, q_theirs, theirs, create_graph=False)
    errors["hvp"] = max(
        relative(h.data if isinstance(h, Tensor) else h, r.detach().numpy(force=True))
        for h, r in zip(h_ours, h_theirs)
    )
    return errors


def _torch_grad(torch, output, inputs, create_graph):
    """torch.autograd.grad with zeros for inputs the output does not depend on."""
    if not output.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    found = torch.autograd.grad(output, inputs, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(found, inputs)]
