"""tinygrad-fnn: a small reverse-mode autodiff engine over NumPy, and the one-hidden-layer
network that it exists to explain."""

from tinygrad_fnn.compare import compare_gradients
from tinygrad_fnn.compile import TraceError, compile
from tinygrad_fnn.engine import (
    AnomalyError,
    Function,
    ShapeError,
    Tensor,
    broadcast_to,
    cat,
    concatenate,
    detect_anomaly,
    enable_grad,
    exp,
    flip,
    grad,
    is_grad_enabled,
    log,
    log_softmax,
    logsumexp,
    matmul,
    no_grad,
    sigmoid,
    sign,
    softmax,
    stack,
    where,
)
from tinygrad_fnn.gradcheck import GradcheckError, gradcheck
from tinygrad_fnn.graph import draw_backward, draw_graph
from tinygrad_fnn.losses import binary_cross_entropy, binary_cross_entropy_with_logits

__version__ = "0.1.0"

__all__ = [
    "AnomalyError",
    "Function",
    "GradcheckError",
    "ShapeError",
    "Tensor",
    "TraceError",
    "binary_cross_entropy",
    "compare_gradients",
    "compile",
    "binary_cross_entropy_with_logits",
    "broadcast_to",
    "cat",
    "concatenate",
    "detect_anomaly",
    "draw_backward",
    "draw_graph",
    "enable_grad",
    "exp",
    "flip",
    "grad",
    "gradcheck",
    "is_grad_enabled",
    "log",
    "log_softmax",
    "logsumexp",
    "matmul",
    "no_grad",
    "sigmoid",
    "sign",
    "softmax",
    "stack",
    "where",
]
