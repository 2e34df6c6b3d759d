"""Two interleaving half moons, and a picture of the boundary the network draws between them.

Run: python examples/two_moons.py [--epochs N] [--out moons.png]
"""

import argparse

from tinygrad_fnn import datasets, fnn
from tinygrad_fnn.plots import plot_training

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=2000)
parser.add_argument("--out", default="moons.png")
args = parser.parse_args()
if args.epochs <= 0:
    parser.error(f"--epochs must be a positive whole number, got {args.epochs}")

data = datasets.load("moons", m=400, seed=0)  # standardised, split 80/20
parameters = fnn.initialize_parameters(data.n_x, hidden_size=16, seed=0)
costs = fnn.train(data.X_train, data.Y_train, parameters, args.epochs, 1.0, print_every=500)

print(f"train accuracy: {fnn.accuracy(data.X_train, data.Y_train, parameters):.1%}")
print(f"test accuracy:  {fnn.accuracy(data.X_test, data.Y_test, parameters):.1%}")

plot_training(
    args.out,
    costs,
    title="(two moons)",
    X=data.X_train,
    Y=data.Y_train,
    predict_proba=lambda X: fnn.predict_proba(X, parameters),
)
print(f"cost curve and decision boundary written to {args.out}")
