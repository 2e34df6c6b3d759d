"""One training step of the tutorial network: the engine against hand-written NumPy (and peers).

A step is forward, cost, gradients and the gradient-descent update. The hand-written step is
`manual.train_step`, the tutorial's own code; "engine" is the eager engine (`fnn.train_step`),
"compiled" the same step through `compile` (fused loss), "composed" through `compile` with the
tutorial's composed cost; both compiled steps make the update part of the compiled call
(`compile(cost, lr=...)`), as the hand step and jax.jit's step include theirs. All run
interleaved in one process, so that they see the same machine load; the table gives median
times, the median of each round's ratio to the hand step, the fraction of the matrix-multiply
bound each step reaches, and peak memory (tracemalloc) at each size; for the compiled step also
the buffers it holds between calls, allocated once.

Peers join the table when importable (none is a dependency): PyTorch eager, HIPS autograd,
jax.jit, and micrograd at the XOR size.
Run: python benchmarks/bench_step.py [--quick] [--sizes xor,moons] [--dtypes float64]
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from tinygrad_fnn import compile, fnn, manual

SIZES = {  # name: (n_x, h, m)
    "xor": (2, 4, 4),
    "moons": (2, 16, 256),
    "breast_cancer": (30, 64, 512),
    "medium": (784, 256, 1024),
    "large": (784, 1024, 4096),
}
LR = 0.01


def data(n_x: int, m: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_x, m)).astype(dtype)
    Y = (rng.uniform(size=(1, m)) > 0.5).astype(dtype)
    return X, Y


def hand_step(n_x, h, m, dtype) -> Callable[[], None]:
    X, Y = data(n_x, m, dtype)
    state = {"p": manual.initialize_parameters(n_x, h, seed=0, dtype=dtype)}

    def step() -> None:
        state["p"], _ = manual.train_step(X, Y, state["p"], LR)

    return step


def engine_step(n_x, h, m, dtype) -> Callable[[], None]:
    X, Y = data(n_x, m, dtype)
    X, Y = fnn.as_tensor(X, dtype, "X"), fnn.as_tensor(Y, dtype, "Y")
    params = fnn.initialize_parameters(n_x, h, seed=0, dtype=dtype)
    optimizer = fnn.SGD(params, LR)

    def step() -> None:
        fnn.train_step(X, Y, params, optimizer, "fused")

    return step


def compiled_step(n_x, h, m, dtype, loss: str = "fused") -> Callable[[], None]:
    """The engine's step through `compile`: generated NumPy code, the eager engine's bits. The
    update is part of the compiled program (`compile(..., lr=LR)`), as it is part of the hand
    step and of the jax.jit step; each call starts from `.grad` cleared, as `fnn.train` does."""
    X, Y = data(n_x, m, dtype)
    X, Y = fnn.as_tensor(X, dtype, "X"), fnn.as_tensor(Y, dtype, "Y")
    params = fnn.initialize_parameters(n_x, h, seed=0, dtype=dtype)

    def cost():
        return fnn.step_cost(X, Y, params, loss)

    step = compile(cost, lr=LR)
    grads = list(params.values())

    def run() -> None:
        for p in grads:
            p.grad = None
        step()

    return run


def composed_step(n_x, h, m, dtype) -> Callable[[], None]:
    """The compiled step with the tutorial's composed cost (sigmoid, then log)."""
    return compiled_step(n_x, h, m, dtype, "composed")


def torch_step(n_x, h, m, dtype):
    import torch

    torch.set_num_threads(2)
    X, Y = (torch.from_numpy(a) for a in data(n_x, m, dtype))
    p = manual.initialize_parameters(n_x, h, seed=0, dtype=dtype)
    W1, b1, W2, b2 = (torch.tensor(p[k], requires_grad=True) for k in ("W1", "b1", "W2", "b2"))
    params = [W1, b1, W2, b2]
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def step() -> None:
        Z2 = W2 @ torch.relu(W1 @ X + b1) + b2
        cost = bce(Z2, Y)
        for q in params:
            q.grad = None
        cost.backward()
        with torch.no_grad():
            for q in params:
                q -= LR * q.grad

    return step


def autograd_step(n_x, h, m, dtype):
    import autograd.numpy as anp
    from autograd import grad

    X, Y = data(n_x, m, dtype)
    p = manual.initialize_parameters(n_x, h, seed=0, dtype=dtype)
    state = {"p": [p[k] for k in ("W1", "b1", "W2", "b2")]}

    def cost(params):
        W1, b1, W2, b2 = params
        Z2 = anp.dot(W2, anp.maximum(0, anp.dot(W1, X) + b1)) + b2
        return anp.mean(anp.maximum(Z2, 0) - Z2 * Y + anp.log1p(anp.exp(-anp.abs(Z2))))

    gradient = grad(cost)

    def step() -> None:
        g = gradient(state["p"])
        state["p"] = [q - LR * d for q, d in zip(state["p"], g)]

    return step


def jax_step(n_x, h, m, dtype):
    import jax
    import jax.numpy as jnp

    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    X, Y = (jnp.asarray(a) for a in data(n_x, m, dtype))
    p = manual.initialize_parameters(n_x, h, seed=0, dtype=dtype)
    state = {"p": [jnp.asarray(p[k]) for k in ("W1", "b1", "W2", "b2")]}

    def cost(params):
        W1, b1, W2, b2 = params
        Z2 = W2 @ jnp.maximum(0, W1 @ X + b1) + b2
        return jnp.mean(jnp.maximum(Z2, 0) - Z2 * Y + jnp.log1p(jnp.exp(-jnp.abs(Z2))))

    @jax.jit
    def update(params):
        g = jax.grad(cost)(params)
        return [q - LR * d for q, d in zip(params, g)]

    def step() -> None:
        state["p"] = update(state["p"])
        state["p"][0].block_until_ready()

    return step


def micrograd_step(n_x, h, m, dtype):
    """micrograd works on Python scalars, so this is for the tiny sizes only. Its Value has no
    exp or log; the two are added here the way its own operations are written."""
    import math

    from micrograd.engine import Value

    if n_x * h * m > 1000:
        return None

    def exp(v):
        out = Value(math.exp(v.data), (v,), "exp")

        def _backward():
            v.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(v):
        out = Value(math.log(v.data), (v,), "log")

        def _backward():
            v.grad += out.grad / v.data

        out._backward = _backward
        return out

    X, Y = data(n_x, m, np.float64)
    p = manual.initialize_parameters(n_x, h, seed=0)
    W1 = [[Value(float(w)) for w in row] for row in p["W1"]]
    b1 = [Value(0.0) for _ in range(h)]
    W2 = [Value(float(w)) for w in p["W2"][0]]
    b2 = Value(0.0)
    params = [w for row in W1 for w in row] + b1 + W2 + [b2]

    def step() -> None:
        cost = Value(0.0)
        for j in range(m):
            A1 = [
                (sum((W1[i][k] * float(X[k, j]) for k in range(n_x)), b1[i])).relu()
                for i in range(h)
            ]
            z = sum((W2[i] * A1[i] for i in range(h)), b2)
            a = (1 + exp(-z)) ** -1
            y = float(Y[0, j])
            cost = cost - (y * log(a) + (1 - y) * log(1 - a))
        cost = cost * (1.0 / m)
        for q in params:
            q.grad = 0.0
        cost.backward()
        for q in params:
            q.data -= LR * q.grad

    return step


PEERS = {
    "torch": torch_step,
    "autograd": autograd_step,
    "jax": jax_step,
    "micrograd": micrograd_step,
}


def available_peers(wanted: list[str]) -> dict[str, Callable]:
    found = {}
    for name in wanted:
        try:
            __import__(name)
        except ImportError:
            continue
        found[name] = PEERS[name]
    return found


def time_once(step: Callable[[], None], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        step()
    return (time.perf_counter() - start) / inner


def peak_memory(make: Callable[..., Callable[[], None]], *shape) -> int:
    """Peak bytes allocated during one step in steady state, beyond what the set-up holds
    (tracemalloc): the compiled step traces at its first call and writes its guard at the
    second, once."""
    step = make(*shape)
    step()
    step()
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def held_memory(n_x: int, h: int, m: int, dtype) -> int:
    """Bytes the compiled step keeps between calls (its buffers, allocated once)."""
    X, Y = (fnn.as_tensor(a, dtype) for a in data(n_x, m, dtype))
    step = fnn.compiled_step(X, Y, fnn.initialize_parameters(n_x, h, seed=0, dtype=dtype), "fused")
    step()
    return step.nbytes


def gemm_rate(dtype) -> float:
    """FLOP/s of one large matrix product in this process: the ceiling for the big sizes."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(dtype)
    np.dot(a, a)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.dot(a, a)
        times.append(time.perf_counter() - start)
    return 2 * 1024**3 / min(times)


def step_flops(n_x: int, h: int, m: int) -> int:
    """Multiply-adds in the step's matrix products: W1·X, W2·A1, dW2, dA1, dW1."""
    return 2 * (h * n_x * m + h * m + h * m + h * m + h * n_x * m)


def budget(n_x: int, h: int, m: int, quick: bool) -> tuple[int, int]:
    """(repeats, steps per timing) so that each size takes a few seconds at most."""
    work = h * n_x * m
    if work > 1e8:
        return (3, 1) if quick else (9, 1)
    if work > 1e7:
        return (5, 3) if quick else (15, 5)
    return (7, 50) if quick else (61, 50)


def run(sizes: list[str], dtypes: list[str], peers: list[str], quick: bool) -> list[dict]:
    rows = []
    for dtype_name in dtypes:
        dtype = np.dtype(dtype_name).type
        rate = gemm_rate(dtype)
        for size in sizes:
            n_x, h, m = SIZES[size]
            repeats, inner = budget(n_x, h, m, quick)
            contenders = {
                "hand": hand_step,
                "engine": engine_step,
                "compiled": compiled_step,
                "composed": composed_step,
                **available_peers(peers),
            }
            steps = {}
            for name, make in contenders.items():
                step = make(n_x, h, m, dtype)
                if step is not None:  # a peer may sit out a size it cannot run
                    steps[name] = step
                    time_once(step, max(1, inner // 4))  # warm up (and compile, for jax)
            times = {name: [] for name in steps}
            for _ in range(repeats):  # interleaved: every contender once per round
                for name, step in steps.items():
                    times[name].append(time_once(step, inner))
            medians = {name: statistics.median(t) for name, t in times.items()}
            bound = step_flops(n_x, h, m) / rate
            row = {
                "peers": peers,
                "dtype": dtype_name,
                "size": size,
                "shape": (n_x, h, m),
                "median": medians,
                # each round's ratio to the hand step timed beside it, then the median: load
                # on the shared machine comes and goes, and hits both sides of one round alike
                "ratio": {
                    k: statistics.median(a / b for a, b in zip(t, times["hand"]))
                    for k, t in times.items()
                },
                "bound": {k: bound / v for k, v in medians.items()},
            }
            if size in ("large", "medium") or not quick:
                row["memory"] = {
                    "hand": peak_memory(hand_step, n_x, h, m, dtype),
                    "engine": peak_memory(engine_step, n_x, h, m, dtype),
                    "compiled": peak_memory(compiled_step, n_x, h, m, dtype),
                    "held": held_memory(n_x, h, m, dtype),
                }
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def _time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def header(peers: list[str]) -> str:
    cols = ["dtype", "size (n_x, h, m)", "hand NumPy", "engine", "engine ÷ hand"]
    cols += ["compiled", "compiled ÷ hand", "compiled, composed ÷ hand"]
    cols += [f"{p} ÷ hand" for p in peers]
    cols += ["bound: hand", "bound: compiled", "peak MiB hand / engine / compiled (+ held)"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * 2 + "--:|" * (len(cols) - 2)


def format_row(row: dict) -> str:
    med, ratio, bound = row["median"], row["ratio"], row["bound"]
    peers = row["peers"]
    memory = row.get("memory")
    mem = (
        " / ".join(f"{memory[k] / 2**20:.3g}" for k in ("hand", "engine", "compiled"))
        + f" (+ {memory['held'] / 2**20:.3g})"
        if memory
        else "–"
    )
    cells = [
        row["dtype"],
        f"{row['size']} {row['shape']}",
        _time(med["hand"]),
        _time(med["engine"]),
        f"{ratio['engine']:.2f}",
        _time(med["compiled"]),
        f"**{ratio['compiled']:.2f}**",
        f"**{ratio['composed']:.2f}**",
        *[f"{ratio[p]:.2f}" if p in ratio else "–" for p in peers],
        f"{bound['hand']:.0%}",
        f"{bound['compiled']:.0%}",
        mem,
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument(
        "--peers", default="torch,autograd,jax,micrograd", help="those importable join"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]}; choose from {', '.join(SIZES)}")
    peers = list(available_peers([p for p in args.peers.split(",") if p]))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"peers: {', '.join(peers) or 'none importable'}; medians of interleaved runs\n")
    print(header(peers))
    run(sizes, args.dtypes.split(","), peers, args.quick)


if __name__ == "__main__":
    main()
