"""Beyond the tutorial's network: two hidden layers, a softmax output, and ten classes of digits.

1. A network with two tanh hidden layers on the handwritten digits: the engine's gradients and
   the hand-derived ones (`manual.deep_backpropagation`) side by side, bit for bit.
2. The same kind of network trained with the engine, then its test accuracy and confusion matrix.

Run: python examples/deep_digits.py [--epochs 1000]
"""

import argparse

import numpy as np

from tinygrad_fnn import compare_gradients, datasets, fnn, manual

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1000)
epochs = parser.parse_args().epochs
if epochs <= 0:
    parser.error(f"--epochs must be a positive whole number, got {epochs}")

data = datasets.load("digits", seed=0)  # X (64, m): pixels / 16; Y one-hot (10, m)
layers, activation = [64, 32, 16, 10], "tanh"
X, Y = data.X_train[:, :256], data.Y_train[:, :256]  # m = 256, a power of two

# 1. By hand: forward through both hidden layers and the softmax, then backpropagation.
#    dZ3 = A3 − Y, dW3 = (1/m)·dZ3·A2ᵀ, dZ2 = W3ᵀ·dZ3 ∗ (1 − A2²), … (manual.py).
parameters = manual.initialize_deep_parameters(layers, seed=0, activation=activation)
A3, cache = manual.deep_forward_propagation(X, parameters, activation)
hand = manual.deep_backpropagation(X, Y, parameters, cache, activation)
print(f"cost by hand: {manual.deep_compute_cost(A3, Y):.6f} (log 10 = {np.log(10):.6f})")

# 2. By the engine: the same forward pass on Tensors, the fused softmax cross-entropy, one call.
tensors = fnn.initialize_parameters(layers, seed=0, activation=activation)
logits = fnn.forward_logits(X, tensors, activation)["Z3"]
cost = fnn.compute_cost_with_logits(logits, Y)
cost.backward()
print(f"cost, engine: {cost.item():.6f}")
for name in tensors:
    same = np.array_equal(tensors[name].grad.data, hand["d" + name])
    print(f"d{name}: shape {hand['d' + name].shape}, bit-identical to the formula: {same}")
print()
print(compare_gradients(X, Y, parameters, "fused", activation).table())
print()

# 3. Training on all 1,438 training digits (the command-line default: one relu layer of 64).
params = fnn.initialize_parameters([64, 64, 10], seed=0)
fnn.train(data.X_train, data.Y_train, params, epochs, 1.0, print_every=max(1, epochs // 5))
predicted = fnn.predict(data.X_test, params)[0]
print(f"test accuracy: {fnn.accuracy(data.X_test, data.Y_test, params):.1%}")
print("confusion matrix (rows: true digit, columns: predicted digit):")
print(fnn.confusion_matrix(data.labels_test, predicted, 10))
