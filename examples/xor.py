"""XOR, the smallest problem a straight line cannot solve, learnt by the tutorial network.

Run: python examples/xor.py [--epochs N]
"""

import argparse

from tinygrad_fnn import datasets, fnn

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=2000)
args = parser.parse_args()
if args.epochs <= 0:
    parser.error(f"--epochs must be a positive whole number, got {args.epochs}")

# The four rows of the truth table, as columns: X is (n_x, m) = (2, 4), Y is (1, 4).
X, Y = datasets.make_xor(m=4, noise=0.0)
parameters = fnn.initialize_parameters(input_size=2, hidden_size=4, seed=0)

# Training is forward pass, cost, cost.backward() and a gradient step; fnn.train loops it.
costs = fnn.train(X, Y, parameters, epochs=args.epochs, learning_rate=1.0, print_every=500)

A2 = fnn.predict_proba(X, parameters)
for x1, x2, y, p in zip(X[0], X[1], Y[0], A2[0]):
    print(f"{x1:.0f} XOR {x2:.0f} = {y:.0f}   network says {p:.3f}")
print(f"accuracy: {fnn.accuracy(X, Y, parameters):.0%}")
