"""Drawing large graphs: DOT source for a chain of operations, from 1,000 to 20,000 nodes.

Run: python benchmarks/bench_graph.py
"""

import argparse
import statistics
import time

from tinygrad_fnn import Tensor
from tinygrad_fnn.graph import draw_backward, draw_graph


def chain(ops: int) -> Tensor:
    x = Tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(ops):
        y = y.tanh()  # one operation node and one tensor node each
    return y


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help, and no stray arguments
    print("| nodes in the picture | forward graph to DOT | backward graph to DOT |")
    print("|--:|--:|--:|")
    for ops in (500, 2500, 5000, 10000):
        y = chain(ops)
        nodes = 2 * ops + 1
        timings = {"forward": [], "backward": []}
        for _ in range(5):
            for kind, draw in (("forward", draw_graph), ("backward", draw_backward)):
                start = time.perf_counter()
                _ = draw(y).source
                timings[kind].append(time.perf_counter() - start)
        f, b = (statistics.median(timings[k]) for k in ("forward", "backward"))
        print(f"| {nodes:,} | {f * 1e3:.0f} ms | {b * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
