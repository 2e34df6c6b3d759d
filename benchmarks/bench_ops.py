"""Per-operation overhead: record one operation on tiny (4×4) inputs and back-propagate through it.

At this size the arithmetic is negligible, so the time is the engine's bookkeeping. Peers
(PyTorch eager, HIPS autograd) are measured the same way when importable.
Run: python benchmarks/bench_ops.py
"""

from __future__ import annotations

import argparse
import statistics
import timeit

import numpy as np

from tinygrad_fnn import Tensor, binary_cross_entropy_with_logits

rng = np.random.default_rng(0)
A = rng.uniform(0.5, 2.0, (4, 4))
B = rng.uniform(0.5, 2.0, (4, 4))
B_COL = rng.uniform(0.5, 2.0, (4, 1))
Y = (rng.uniform(size=(4, 4)) > 0.5).astype(float)

# name: (function of two operands, shape of the second operand)
OPS = {
    "a + b": (lambda a, b: a + b, (4, 4)),
    "a + b (broadcast)": (lambda a, b: a + b, (4, 1)),
    "a * b": (lambda a, b: a * b, (4, 4)),
    "a / b": (lambda a, b: a / b, (4, 4)),
    "a @ b": (lambda a, b: a @ b, (4, 4)),
    "exp(a)": (lambda a, b: a.exp(), (4, 4)),
    "log(a)": (lambda a, b: a.log(), (4, 4)),
    "relu(a)": (lambda a, b: a.relu(), (4, 4)),
    "sigmoid(a)": (lambda a, b: a.sigmoid(), (4, 4)),
    "tanh(a)": (lambda a, b: a.tanh(), (4, 4)),
    "a ** 2": (lambda a, b: a**2, (4, 4)),
    "sum(a, axis=1)": (lambda a, b: a.sum(axis=1), (4, 4)),
    "max(a, axis=1)": (lambda a, b: a.max(axis=1), (4, 4)),
    "bce_with_logits(a, y)": (lambda a, b: binary_cross_entropy_with_logits(a, Y), (4, 4)),
}


def engine_case(fn, b_shape):
    a = Tensor(A, requires_grad=True)
    b = Tensor(B if b_shape == (4, 4) else B_COL, requires_grad=True)

    def run():
        out = fn(a, b)
        out.backward(np.ones(out.shape))
        a.grad = b.grad = None

    return run


def torch_case(fn, b_shape):
    import torch

    a = torch.tensor(A, requires_grad=True)
    b = torch.tensor(B if b_shape == (4, 4) else B_COL, requires_grad=True)
    y = torch.tensor(Y)
    torch_fn = {
        "exp": torch.exp,
        "log": torch.log,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }

    def translate(name):
        if name.startswith("sum"):
            return lambda a, b: a.sum(dim=1)
        if name.startswith("max"):
            return lambda a, b: a.amax(dim=1)
        if name.startswith("bce"):
            return lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(a, y)
        for key, f in torch_fn.items():
            if name.startswith(key):
                return lambda a, b, f=f: f(a)
        return fn  # the operators read the same

    return a, b, translate


def measure(run, number=2000, repeat=15) -> float:
    run()
    return statistics.median(timeit.repeat(run, number=number, repeat=repeat)) / number


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help, and no stray arguments
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    base = measure(lambda: A + B)
    print(f"bare NumPy a + b on 4×4: {base * 1e6:.2f} µs\n")
    print("| operation | engine: record + backward |" + (" torch |" if have_torch else ""))
    print("|---|--:|" + ("--:|" if have_torch else ""))
    for name, (fn, b_shape) in OPS.items():
        ours = measure(engine_case(fn, b_shape))
        cells = [name, f"{ours * 1e6:.1f} µs"]
        if have_torch:
            a, b, translate = torch_case(fn, b_shape)
            tfn = translate(name)

            def run(a=a, b=b, tfn=tfn):
                out = tfn(a, b)
                out.backward(torch.ones_like(out))
                a.grad = b.grad = None

            cells.append(f"{measure(run) * 1e6:.1f} µs")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
