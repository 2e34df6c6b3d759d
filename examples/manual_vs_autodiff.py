"""The tutorial's hand-derived gradients beside the ones the engine derives, one by one.

Run: python examples/manual_vs_autodiff.py
"""

import numpy as np

from tinygrad_fnn import compare_gradients, datasets, fnn, manual

data = datasets.load("breast_cancer", seed=0)
X, Y = data.X_train[:, :256], data.Y_train[:, :256]  # m = 256, a power of two
m = X.shape[1]

# 1. By hand: forward, then the six formulas of backpropagation.
parameters = manual.initialize_parameters(30, 16, seed=0)
A2, cache = manual.forward_propagation(X, parameters)
hand = manual.backpropagation(X, Y, parameters, cache)

# 2. By the engine: the same forward pass on Tensors, then one call.
tensors = fnn.initialize_parameters(30, 16, seed=0)
A2_t, cache_t = fnn.forward_propagation(X, tensors)
cache_t["Z2"].retain_grad()  # keep the gradient of an intermediate, to show it
cost = fnn.compute_cost_with_logits(cache_t["Z2"], Y)
cost.backward()

print("dZ2 = A2 - Y by hand, and m * dcost/dZ2 from the engine, first 5 examples:")
print("  hand  ", np.round(hand["dZ2"][0, :5], 6))
print("  engine", np.round(m * cache_t["Z2"].grad.data[0, :5], 6))
print()
for name in ("W1", "b1", "W2", "b2"):
    same = np.array_equal(tensors[name].grad.data, hand["d" + name])
    print(f"d{name}: shape {hand['d' + name].shape}, bit-identical to the formula: {same}")
print()

# 3. The same comparison for both costs, as a table with ULP distances.
for loss in ("fused", "composed"):
    print(compare_gradients(X, Y, parameters, loss=loss).table())
    print()
