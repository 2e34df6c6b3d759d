"""The tutorial's own NumPy code, unchanged, differentiated by the engine.

`manual.forward_propagation` and `manual.compute_cost` are plain NumPy (`np.dot`, `np.maximum`,
`np.exp`, `np.log`, `np.sum`). Handed Tensors instead of arrays, each NumPy call runs the
engine's operation and is recorded, so the cost can be differentiated; the gradients are then
held against the tutorial's hand-derived `backpropagation`, on literally the same code.

Run: python examples/tutorial_numpy_differentiated.py
"""

import numpy as np

from tinygrad_fnn import Tensor, datasets, manual
from tinygrad_fnn.compare import difference
from tinygrad_fnn.numpy_dispatch import catch_conversions

data = datasets.load("breast_cancer", seed=0)
X, Y = data.X_train[:, :100], data.Y_train[:, :100]
parameters = manual.initialize_parameters(30, 16, seed=0)  # NumPy arrays
tensors = {k: Tensor(v, requires_grad=True, name=k) for k, v in parameters.items()}

# 1. The tutorial's forward pass and cost, unchanged, on Tensors. `compute_cost` ends with
#    float(...), as NumPy code does; catch_conversions hands back the Tensor behind that float.
with catch_conversions() as converted:
    A2, cache = manual.forward_propagation(X, tensors)
    cost = manual.compute_cost(A2, Y)
cost_tensor = converted[-1]
print(f"A2 is a {type(A2).__name__} made by {A2.grad_fn.op}; the cost is {cost:.12f}")
cost_tensor.backward()

# 2. The tutorial's hand-derived gradients, on arrays.
A2_hand, cache_hand = manual.forward_propagation(X, parameters)
hand = manual.backpropagation(X, Y, parameters, cache_hand)
print(f"the same cost by hand:         {manual.compute_cost(A2_hand, Y):.12f}")
print()

# 3. Side by side. They differ in the last bits only: the engine differentiates the code as
#    written (log of a sigmoid written as 1/(1+exp(-Z2))), while the tutorial simplified the
#    derivative by hand to dZ2 = A2 - Y before computing it.
worst = 0.0
for name in ("W1", "b1", "W2", "b2"):
    d = difference(tensors[name].grad.data, hand["d" + name])
    worst = max(worst, d.relative)
    print(f"d{name}: relative difference {d.relative:.1e}, at most {d.max_ulp} ULP apart")
print(f"largest relative difference: {worst:.1e}")
print()

# 4. relu as the tutorial writes it, np.maximum(0, Z1), at exactly 0: the slope is 0, as its
#    hand-derived (A1 > 0) has it.
Z1 = Tensor(np.array([[-1.0, 0.0, 2.0]]), requires_grad=True)
np.sum(np.maximum(0, Z1)).backward()
print("slope of np.maximum(0, Z1) at Z1 = -1, 0, 2:", Z1.grad.data.tolist()[0])
