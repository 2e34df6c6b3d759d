"""The Wisconsin breast-cancer data (shipped with the package): 30 features, malignant or not.

Run: python examples/breast_cancer.py [--epochs N]
"""

import argparse

from tinygrad_fnn import datasets, fnn

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--epochs", type=int, default=2000)
args = parser.parse_args()
if args.epochs <= 0:
    parser.error(f"--epochs must be a positive whole number, got {args.epochs}")

data = datasets.load("breast_cancer", seed=0)
print(f"X_train {data.X_train.shape}, X_test {data.X_test.shape}: features by examples")

parameters = fnn.initialize_parameters(data.n_x, hidden_size=16, seed=0)
fnn.train(data.X_train, data.Y_train, parameters, args.epochs, learning_rate=0.1, print_every=200)

print(f"train accuracy: {fnn.accuracy(data.X_train, data.Y_train, parameters):.1%}")
print(f"test accuracy:  {fnn.accuracy(data.X_test, data.Y_test, parameters):.1%}")
