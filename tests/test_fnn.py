"""The network written as a forward pass, held against the tutorial's hand-derived backprop."""

import numpy as np
import pytest

from tinygrad_fnn import compare_gradients, datasets, fnn, manual
from tinygrad_fnn.compare import GRADIENTS, difference, ulp_distance


def batch(m, dtype=np.float64, seed=0):
    ds = datasets.load("breast_cancer", seed=seed, dtype=dtype)
    return ds.X_train[:, :m], ds.Y_train[:, :m]


def trained_parameters(dtype, epochs=300, hidden=16):
    """Parameters after some training, so that the comparison is not only at the start."""
    X, Y = batch(455, dtype)
    params = fnn.initialize_parameters(30, hidden, seed=3, dtype=dtype)
    fnn.train(X, Y, params, epochs, 0.1, print_every=None)
    return {k: p.data.copy() for k, p in params.items()}


def start_parameters(dtype):
    return manual.initialize_parameters(30, 16, seed=3, dtype=dtype)


PARAMS = {"start": start_parameters, "trained": trained_parameters}


@pytest.mark.parametrize("when", sorted(PARAMS))
@pytest.mark.parametrize("m", [1, 2, 64, 256])
def test_fused_loss_gives_bit_identical_gradients_at_power_of_two_batch_sizes(m, when):
    X, Y = batch(m)
    result = compare_gradients(X, Y, PARAMS[when](np.float64), loss="fused")
    for name in GRADIENTS:
        assert np.array_equal(result.engine[name], result.manual[name]), name
        assert result[name].identical and result[name].max_ulp == 0


def test_comparison_detects_a_wrong_gradient():
    """The comparison must be able to fail: a perturbed reference is reported as different."""
    X, Y = batch(64)
    result = compare_gradients(X, Y, start_parameters(np.float64), loss="fused")
    wrong = result.manual["dW1"].copy()
    wrong[0, 0] = np.nextafter(wrong[0, 0], np.inf)
    d = difference(result.engine["dW1"], wrong)
    assert not d.identical and d.max_ulp == 1 and d.relative > 0


def test_ulp_distance_counts_representable_numbers():
    a = np.array([1.0, -0.0, 0.0, -1.0])
    b = np.array([np.nextafter(1.0, 2.0), 0.0, np.nextafter(0.0, 1.0), np.nextafter(-1.0, 0)])
    np.testing.assert_array_equal(ulp_distance(a, b), [1, 0, 1, 1])
    f = np.float32(1.0)
    assert ulp_distance(np.array([f]), np.array([np.nextafter(f, np.float32(3))]))[0] == 1
    assert ulp_distance(np.array([-1e-300]), np.array([1e-300]))[0] > 1


def test_the_table_reports_every_gradient():
    X, Y = batch(64)
    text = compare_gradients(X, Y, start_parameters(np.float64), loss="fused").table()
    for label in ("dW1", "db1", "dW2", "db2", "m·∂cost/∂Z1 vs dZ1", "m·∂cost/∂A1 vs dA1"):
        assert f"| {label} |" in text
    assert text.count("| yes |") == 7


def test_parameters_match_the_tutorial_initialisation():
    params = fnn.initialize_parameters(30, 16, seed=5)
    reference = manual.initialize_parameters(30, 16, seed=5)
    assert params["W1"].shape == (16, 30) and params["b1"].shape == (16, 1)
    assert params["W2"].shape == (1, 16) and params["b2"].shape == (1, 1)
    for k, p in params.items():
        assert p.requires_grad and p.name == k
        np.testing.assert_array_equal(p.data, reference[k])
    assert np.all(params["b1"].data == 0) and 0 < np.abs(params["W1"].data).max() < 0.05


def test_forward_pass_names_its_tensors_and_matches_the_tutorial():
    X, Y = batch(32)
    params = fnn.initialize_parameters(30, 16, seed=1)
    A2, cache = fnn.forward_propagation(X, params)
    A2_ref, cache_ref = manual.forward_propagation(X, {k: p.data for k, p in params.items()})
    for name in ("Z1", "A1", "Z2", "A2"):
        assert cache[name].name == name
        np.testing.assert_array_equal(cache[name].data, cache_ref[name])
    cost = fnn.compute_cost(A2, Y)
    assert cost.name == "cost"
    assert cost.item() == pytest.approx(manual.compute_cost(A2_ref, Y), rel=1e-15)


def test_autodiff_training_follows_the_hand_derived_cost_curve():
    X, Y = batch(256)
    epochs, lr = 400, 0.1
    params = fnn.initialize_parameters(30, 16, seed=2)
    start = {k: p.data.copy() for k, p in params.items()}
    for loss in ("composed", "fused"):
        params = fnn.initialize_parameters(30, 16, seed=2)
        costs = fnn.train(X, Y, params, epochs, lr, loss=loss, print_every=None)
        _, reference = manual.train(X, Y, start, epochs, lr)
        assert len(costs) == epochs
        np.testing.assert_allclose(costs, reference, rtol=0, atol=1e-10)
        assert costs[-1] < 0.2 * costs[0]


def test_training_prints_the_cost_every_100_epochs():
    X, Y = batch(64)
    lines = []
    fnn.train(X, Y, fnn.initialize_parameters(30, 4, seed=0), 250, 0.1, log=lines.append)
    assert [line.split(",")[0] for line in lines] == ["Epoch 0", "Epoch 100", "Epoch 200"]
    assert all(line.split("Cost: ")[1].replace(".", "").isdigit() for line in lines)


def test_sgd_step_and_zero_grad():
    params = fnn.initialize_parameters(2, 3, seed=0)
    before = params["W1"].data.copy()
    opt = fnn.SGD(params, lr=0.5)
    _, cache = fnn.forward_propagation(np.ones((2, 4)), params)
    fnn.cost_of(cache, np.ones((1, 4))).backward()
    expected = before - 0.5 * params["W1"].grad.data
    opt.step()
    np.testing.assert_array_equal(params["W1"].data, expected)
    opt.zero_grad()
    assert all(p.grad is None for p in params.values())


def test_unknown_loss_is_an_error():
    with pytest.raises(ValueError, match="loss must be one of"):
        fnn.train(np.ones((2, 4)), np.ones((1, 4)), fnn.initialize_parameters(2, 3), 1, 0.1, "mse")


# ----- accuracy targets


def test_breast_cancer_reaches_95_percent_test_accuracy():
    ds = datasets.load("breast_cancer")
    params = fnn.initialize_parameters(ds.n_x, 16, seed=0)
    fnn.train(ds.X_train, ds.Y_train, params, 2000, 0.1, print_every=None)
    assert fnn.accuracy(ds.X_test, ds.Y_test, params) >= 0.95
    assert fnn.accuracy(ds.X_train, ds.Y_train, params) >= 0.97


@pytest.mark.parametrize(
    "name, hidden, epochs, lr",
    [
        ("xor", 8, 2000, 1.0),
        ("moons", 16, 2000, 1.0),
        ("circles", 16, 2000, 1.0),
        ("spirals", 64, 10000, 3.0),
    ],
)
def test_generated_sets_are_separated(name, hidden, epochs, lr):
    ds = datasets.load(name)
    params = fnn.initialize_parameters(ds.n_x, hidden, seed=0)
    fnn.train(ds.X_train, ds.Y_train, params, epochs, lr, print_every=None)
    assert fnn.accuracy(ds.X_train, ds.Y_train, params) >= 0.97


# ----- data


def test_breast_cancer_data_is_the_wisconsin_set():
    X, Y, names = datasets.load_breast_cancer()
    assert X.shape == (30, 569) and Y.shape == (1, 569) and len(names) == 30
    assert int(Y.sum()) == 212  # malignant
    assert names[0] == "radius_mean" and names[-1] == "fractal_dimension_worst"
    assert X[0, 0] == 17.99 and X[3].max() == 2501.0  # first radius; largest mean area


def test_split_and_standardisation_use_the_training_set_only():
    ds = datasets.load("breast_cancer", seed=4)
    assert ds.X_train.shape == (30, 455) and ds.X_test.shape == (30, 114)
    np.testing.assert_allclose(ds.X_train.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.std(axis=1), 1, atol=1e-12)
    assert not np.allclose(ds.X_test.mean(axis=1), 0, atol=1e-3)
    again = datasets.load("breast_cancer", seed=4)
    np.testing.assert_array_equal(ds.X_test, again.X_test)
    assert not np.array_equal(ds.X_test, datasets.load("breast_cancer", seed=5).X_test)


@pytest.mark.parametrize("name", sorted(datasets.GENERATED))
def test_generated_sets_are_balanced_and_seeded(name):
    X, Y = datasets.GENERATED[name](m=200, seed=1)
    assert X.shape == (2, 200) and Y.shape == (1, 200)
    assert set(np.unique(Y)) == {0.0, 1.0} and abs(Y.mean() - 0.5) <= 0.01
    np.testing.assert_array_equal(X, datasets.GENERATED[name](m=200, seed=1)[0])
    assert not np.array_equal(X, datasets.GENERATED[name](m=200, seed=2)[0])


def test_xor_truth_table():
    X, Y = datasets.make_xor(m=4, noise=0.0)
    np.testing.assert_array_equal(X, [[0, 0, 1, 1], [0, 1, 0, 1]])
    np.testing.assert_array_equal(Y, [[0, 1, 1, 0]])


def test_unknown_data_set_is_an_error():
    with pytest.raises(ValueError, match="unknown data set 'iris'"):
        datasets.load("iris")


def test_the_reference_imports_nothing_from_the_engine():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(manual.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "numpy"}, imported
