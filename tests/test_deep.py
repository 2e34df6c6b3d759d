"""Deeper and multi-class networks: the engine held against the hand-derived L-layer backprop,
the fused softmax cross-entropy against finite differences and PyTorch, and the digits."""

import numpy as np
import pytest
from torch_oracle import needs_torch, torch

from tinygrad_fnn import Tensor, compare_gradients, datasets, fnn, grad, gradcheck, manual
from tinygrad_fnn.compare import gradient_names
from tinygrad_fnn.engine import ShapeError
from tinygrad_fnn.losses import (
    cross_entropy,
    softmax_cross_entropy_with_logits,
)

ACTIVATIONS = manual.ACTIVATIONS
# Networks of one to three hidden layers, with one output (sigmoid) or several (softmax).
CONFIGS = [[5, 7, 1], [5, 8, 6, 1], [6, 8, 6, 4, 3], [5, 3, 10], [4, 16, 8, 8, 1]]
SEEDS = range(20)


def problem(layers, m, seed, dtype=np.float64):
    """Random inputs and labels for a network of `layers`: Y a 0/1 row or one-hot columns."""
    rng = np.random.default_rng(1000 + seed)
    X = rng.standard_normal((layers[0], m))
    if layers[-1] == 1:
        Y = (rng.random((1, m)) < 0.5).astype(np.float64)
    else:
        Y = datasets.one_hot(rng.integers(0, layers[-1], m), layers[-1])
    return X.astype(dtype), Y.astype(dtype)


def parameters(layers, seed, activation, scale, dtype=np.float64):
    return manual.initialize_deep_parameters(layers, seed, dtype, activation, scale)


# ----- initialisation and the forward pass


@pytest.mark.parametrize("s", [0, 1, 7])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_x, h, n_y", [(30, 16, 1), (2, 3, 1), (64, 32, 10)])
def test_one_hidden_layer_keeps_the_tutorial_numbers(s, dtype, n_x, h, n_y):
    tutorial = manual.initialize_parameters(n_x, h, n_y, s, dtype)
    forms = [
        fnn.initialize_parameters(n_x, h, n_y, seed=s, dtype=dtype),
        fnn.initialize_parameters(n_x, [h], n_y, seed=s, dtype=dtype),
        fnn.initialize_parameters([n_x, h, n_y], seed=s, dtype=dtype),
    ]
    for activation in ACTIVATIONS:  # one hidden layer: 0.01 whatever the activation
        forms.append(
            fnn.initialize_parameters([n_x, h, n_y], seed=s, dtype=dtype, activation=activation)
        )
    for params in forms:
        assert list(params) == ["W1", "b1", "W2", "b2"]
        for k, v in tutorial.items():
            assert params[k].dtype == dtype and np.array_equal(params[k].data, v), k
            assert params[k].requires_grad and params[k].name == k


@pytest.mark.parametrize("activation, gain", [("relu", 2**0.5), ("tanh", 1.0), ("sigmoid", 1.0)])
def test_deeper_networks_are_scaled_for_their_activation(activation, gain):
    params = fnn.initialize_parameters([400, 300, 200, 1], seed=0, activation=activation)
    assert list(params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k, n_in in (("W1", 400), ("W2", 300)):
        std = params[k].data.std()
        assert abs(std * np.sqrt(n_in) / gain - 1) < 0.02, (k, std)
        assert not params[k.replace("W", "b")].data.any()
    fixed = fnn.initialize_parameters([400, 300, 200, 1], seed=0, scale=0.01)
    assert abs(fixed["W2"].data.std() / 0.01 - 1) < 0.02


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([2, 0, 1],), {}, "positive whole numbers"),
        (([2],), {}, "at least an input and an output"),
        (([2, 3, 1], 4), {}, "give no hidden_size"),
        ((2,), {}, "hidden size"),
        (([2, 3, 1],), {"activation": "swish"}, "activation must be one of"),
        ((2, 2.5), {}, "positive whole numbers"),
    ],
)
def test_bad_network_shapes_are_clear_errors(args, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fnn.initialize_parameters(*args, **kwargs)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layers", CONFIGS)
def test_forward_pass_names_its_tensors_and_matches_the_hand_written_one(activation, layers):
    X, _ = problem(layers, 9, 0)
    arrays = parameters(layers, 0, activation, 0.7)
    tensors = {k: Tensor(v, requires_grad=True) for k, v in arrays.items()}
    AL, cache = fnn.forward_propagation(X, tensors, activation)
    reference_AL, reference = manual.deep_forward_propagation(X, arrays, activation)
    L = len(layers) - 1
    assert list(cache) == [f"{t}{k}" for k in range(1, L + 1) for t in "ZA"]
    for name, t in cache.items():
        assert t.name == name
        assert np.array_equal(t.data, reference[name]), name  # the same NumPy calls
    assert AL is cache[f"A{L}"] and np.array_equal(AL.data, reference_AL)
    if layers[-1] > 1:
        np.testing.assert_allclose(AL.data.sum(axis=0), 1.0, rtol=1e-15)


def test_hidden_activations_are_what_they_say():
    z = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    expected = {
        "relu": np.maximum(z, 0),
        "tanh": np.tanh(z),
        "sigmoid": 1 / (1 + np.exp(-z)),
        "leaky_relu": np.array([[-0.02, -0.005, 0.0, 0.5, 2.0]]),
    }
    for activation, value in expected.items():
        np.testing.assert_allclose(fnn.activate(Tensor(z), activation).data, value, rtol=1e-15)
        np.testing.assert_allclose(manual.activation_forward(z, activation), value, rtol=1e-15)


def test_leaky_relu_derivative_is_one_or_the_slope_and_the_slope_at_zero():
    z = Tensor([[-3.0, 0.0, 2.0]], requires_grad=True)
    (g,) = grad(fnn.activate(z, "leaky_relu").sum(), [z])
    assert g.data.tolist() == [[manual.LEAKY_SLOPE, manual.LEAKY_SLOPE, 1.0]]
    hand = manual.activation_backward(np.ones((1, 3)), z.data, None, "leaky_relu")
    assert hand.tolist() == g.data.tolist()


def test_the_general_backprop_is_the_tutorials_for_its_network():
    for seed in SEEDS:
        X, Y = problem([30, 16, 1], 64, seed)
        arrays = manual.initialize_parameters(30, 16, seed=seed)
        _, cache = manual.forward_propagation(X, arrays)
        tutorial = manual.backpropagation(X, Y, arrays, cache)
        _, deep_cache = manual.deep_forward_propagation(X, arrays)
        deep = manual.deep_backpropagation(X, Y, arrays, deep_cache)
        for name, value in tutorial.items():
            assert np.array_equal(deep[name], value), name


# ----- the hand-derived backprop against finite differences (an oracle independent of both)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layers", [[3, 4, 5, 1], [3, 5, 4, 4]])
def test_hand_derived_backprop_matches_finite_differences(activation, layers):
    X, Y = problem(layers, 6, 3)
    arrays = parameters(layers, 3, activation, 0.8)
    rng = np.random.default_rng(4)
    for k in range(1, len(layers)):  # non-zero biases: no Z exactly at relu's kink
        arrays[f"b{k}"] = rng.standard_normal(arrays[f"b{k}"].shape)
    _, cache = manual.deep_forward_propagation(X, arrays, activation)
    grads = manual.deep_backpropagation(X, Y, arrays, cache, activation)

    def cost(p):
        return manual.deep_compute_cost(manual.deep_forward_propagation(X, p, activation)[0], Y)

    eps = 1e-6
    for name, value in arrays.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            plus, minus = dict(arrays), dict(arrays)
            plus[name], minus[name] = value.copy(), value.copy()
            plus[name][idx] += eps
            minus[name][idx] -= eps
            numeric[idx] = (cost(plus) - cost(minus)) / (2 * eps)
        np.testing.assert_allclose(grads["d" + name], numeric, rtol=1e-5, atol=1e-9, err_msg=name)


# ----- the engine against the hand-derived backprop: the exactness table


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layers", CONFIGS)
@pytest.mark.parametrize("m", [1, 2, 16, 64])
def test_fused_losses_are_bit_identical_at_power_of_two_batch_sizes(activation, layers, m):
    for seed in SEEDS:
        X, Y = problem(layers, m, seed)
        for scale in (None, 0.7):  # the default start, and larger weights
            result = compare_gradients(
                X, Y, parameters(layers, seed, activation, scale), "fused", activation
            )
            assert tuple(result.differences) == gradient_names(len(layers) - 1)
            for name, d in result.differences.items():
                assert d.identical and d.max_ulp == 0, (seed, scale, name, d)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layers", CONFIGS)
@pytest.mark.parametrize(
    "loss, m", [("fused", 3), ("fused", 100), ("composed", 3), ("composed", 64)]
)
def test_any_batch_size_and_the_composed_losses_agree_to_1e_12(activation, layers, loss, m):
    for seed in SEEDS:
        X, Y = problem(layers, m, seed)
        result = compare_gradients(
            X, Y, parameters(layers, seed, activation, 0.7), loss, activation
        )
        for name, d in result.differences.items():
            assert d.relative <= 1e-12, (seed, name, d)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["fused", "composed"])
def test_float32_deep_gradients_agree_to_1e_5(activation, loss):
    layers = [6, 8, 6, 4, 3]
    for seed in range(5):
        X, Y = problem(layers, 48, seed, np.float32)
        params = parameters(layers, seed, activation, 0.7, np.float32)
        result = compare_gradients(X, Y, params, loss, activation)
        assert result.dtype == np.float32
        for name, d in result.differences.items():
            assert result.engine[name].dtype == np.float32
            assert d.relative <= 1e-5, (seed, name, d)


def test_comparison_of_a_deep_network_detects_a_wrong_rule(monkeypatch):
    layers = [5, 8, 6, 1]
    X, Y = problem(layers, 16, 0)
    params = parameters(layers, 0, "tanh", 0.7)
    right = compare_gradients(X, Y, params, "fused", "tanh")
    assert all(d.identical for d in right.differences.values())
    monkeypatch.setattr(fnn, "activate", lambda Z, activation: Z.sigmoid())  # a wrong network
    wrong = compare_gradients(X, Y, params, "fused", "tanh")
    assert not wrong["dW1"].identical and wrong["dW1"].relative > 1e-3


def test_comparison_table_names_the_network_and_every_gradient():
    layers = [5, 8, 6, 3]
    X, Y = problem(layers, 8, 0)
    table = compare_gradients(X, Y, parameters(layers, 0, "tanh", None), "fused", "tanh").table()
    assert "layers=5,8,6,3, activation=tanh" in table.splitlines()[0]
    for name in ("dW3", "db3", "m·∂cost/∂Z3 vs dZ3", "m·∂cost/∂A2 vs dA2"):
        assert f"| {name} |" in table
    assert table.count("| yes |") == len(gradient_names(3))


def test_comparison_rejects_labels_that_do_not_fit_the_network():
    layers = [5, 8, 3]
    X, _ = problem(layers, 8, 0)
    with pytest.raises(ValueError, match="one-hot"):
        compare_gradients(X, np.zeros((1, 8)), parameters(layers, 0, "relu", None), "fused")


# ----- the fused softmax cross-entropy


def logits_and_targets(classes=4, m=6, seed=0, one_hot=True):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((classes, m)) * 3
    if one_hot:
        Y = datasets.one_hot(rng.integers(0, classes, m), classes)
    else:  # soft targets, each column summing to 1 or not
        Y = rng.random((classes, m))
    return Z, Y


def test_softmax_cross_entropy_is_the_textbook_formula():
    for seed in range(20):
        Z, Y = logits_and_targets(seed=seed, one_hot=seed % 2 == 0)
        A = np.exp(Z) / np.exp(Z).sum(axis=0)  # the naive formula, fine for these logits
        expected = -np.sum(Y * np.log(A)) / Z.shape[1]
        cost = softmax_cross_entropy_with_logits(Tensor(Z), Y)
        assert cost.shape == () and cost.dtype == np.float64
        np.testing.assert_allclose(cost.item(), expected, rtol=1e-13)
        np.testing.assert_allclose(
            cross_entropy(Tensor(Z).softmax(axis=0), Y).item(), expected, rtol=1e-13
        )
        np.testing.assert_allclose(
            Tensor(Z).log_softmax(axis=0).data, np.log(A), rtol=1e-12, atol=1e-14
        )


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    Z = np.array([[1000.0, -1000.0], [0.0, 1000.0], [-1000.0, 999.0]])
    Y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    z = Tensor(Z, requires_grad=True)
    cost = softmax_cross_entropy_with_logits(z, Y)
    cost.backward()
    # Column 0 is certain and right (cost 0); column 1 puts e/(1+e) on class 1, not class 2.
    expected = np.log1p(np.exp(1.0)) / 2
    np.testing.assert_allclose(cost.item(), expected, rtol=1e-14)
    assert np.all(np.isfinite(z.grad.data))


def test_softmax_cross_entropy_gradient_is_a_minus_y_over_m_bit_for_bit():
    for seed in range(20):
        for m in (1, 5, 8, 100):
            Z, Y = logits_and_targets(classes=10, m=m, seed=seed)
            z = Tensor(Z, requires_grad=True)
            softmax_cross_entropy_with_logits(z, Y).backward()
            assert np.array_equal(z.grad.data, (manual.softmax(Z) - Y) / m)


@pytest.mark.parametrize("one_hot", [True, False])
def test_softmax_cross_entropy_gradients_match_finite_differences(one_hot):
    for seed in range(10):
        Z, Y = logits_and_targets(seed=seed, one_hot=one_hot)
        z, y = Tensor(Z, requires_grad=True), Tensor(Y, requires_grad=True)
        assert gradcheck(softmax_cross_entropy_with_logits, z, y, rtol=1e-6, atol=1e-9)
        # and its gradient, differentiated again through the Tensor rules
        assert gradcheck(
            lambda z, Y=Y: grad(softmax_cross_entropy_with_logits(z, Y), [z], create_graph=True)[0],
            z,
        )


def test_softmax_cross_entropy_mistakes_are_clear_errors():
    with pytest.raises(ShapeError, match="differ in shape"):
        softmax_cross_entropy_with_logits(Tensor(np.zeros((3, 4))), np.zeros((1, 4)))
    with pytest.raises(ShapeError, match="classes, m"):
        softmax_cross_entropy_with_logits(Tensor(np.zeros(4)), np.zeros(4))
    with pytest.raises(TypeError, match="dtypes"):
        softmax_cross_entropy_with_logits(
            Tensor(np.zeros((3, 4))), Tensor(np.zeros((3, 4)), dtype=np.float32)
        )


def test_softmax_cross_entropy_stays_float32():
    Z, Y = logits_and_targets()
    z = Tensor(Z, requires_grad=True, dtype=np.float32)
    cost = softmax_cross_entropy_with_logits(z, Y)
    cost.backward()
    assert cost.dtype == np.float32 and z.grad.dtype == np.float32


@needs_torch
class TestAgainstTorch:
    @pytest.mark.parametrize("one_hot", [True, False])
    def test_value_gradient_and_hessian_vector_products(self, one_hot):
        for seed in range(10):
            Z, Y = logits_and_targets(classes=5, m=7, seed=seed, one_hot=one_hot)
            V = np.random.default_rng(seed + 50).standard_normal(Z.shape)
            z = Tensor(Z, requires_grad=True)
            cost = softmax_cross_entropy_with_logits(z, Y)
            (gz,) = grad(cost, [z], create_graph=True)
            (hvp,) = grad((gz * V).sum(), [z])

            tz = torch.tensor(Z.T, requires_grad=True)  # torch puts the classes on axis 1
            tcost = torch.nn.functional.cross_entropy(tz, torch.tensor(Y.T), reduction="sum") / 7
            (tg,) = torch.autograd.grad(tcost, tz, create_graph=True)
            (thvp,) = torch.autograd.grad((tg * torch.tensor(V.T)).sum(), tz)

            np.testing.assert_allclose(cost.item(), tcost.item(), rtol=1e-12)
            np.testing.assert_allclose(gz.data, tg.detach().numpy().T, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(hvp.data, thvp.numpy().T, rtol=1e-12, atol=1e-15)

    def test_a_deep_network_gradient(self):
        layers = [5, 8, 6, 4]
        X, Y = problem(layers, 10, 0)
        arrays = parameters(layers, 0, "tanh", 0.7)
        tensors = {k: Tensor(v, requires_grad=True) for k, v in arrays.items()}
        _, cache = fnn.forward_propagation(X, tensors, "tanh")
        fnn.cost_of(cache, Y, "fused").backward()

        t = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
        A = torch.tensor(X)
        A = torch.tanh(t["W1"] @ A + t["b1"])
        A = torch.tanh(t["W2"] @ A + t["b2"])
        Z3 = t["W3"] @ A + t["b3"]
        torch.nn.functional.cross_entropy(Z3.T, torch.tensor(Y.T)).backward()
        for k in arrays:
            np.testing.assert_allclose(
                tensors[k].grad.data, t[k].grad.numpy(), rtol=1e-12, atol=1e-16
            )


# ----- a learner's first steps


def test_two_hidden_layer_tanh_network_learns_the_moons():
    ds = datasets.load("moons")
    params = fnn.initialize_parameters([2, 8, 8, 1], seed=0, activation="tanh")
    X, Y = Tensor(ds.X_train[:, :32]), ds.Y_train[:, :32]

    def cost(*tensors):
        named = dict(zip(params, tensors))
        _, cache = fnn.forward_propagation(X, named, "tanh")
        return fnn.cost_of(cache, Y, "fused")

    assert gradcheck(cost, *params.values(), rtol=1e-6, atol=1e-9)  # its first gradient
    costs = fnn.train(
        ds.X_train, ds.Y_train, params, 1000, 0.5, print_every=None, activation="tanh"
    )
    assert costs[-1] < 0.05 * costs[0]
    assert fnn.accuracy(ds.X_test, ds.Y_test, params, "tanh") >= 0.97


def test_mean_squared_error_written_by_hand():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        W = Tensor(rng.standard_normal((1, 3)), requires_grad=True)
        X, Y = rng.standard_normal((3, 8)), rng.standard_normal((1, 8))

        def mse(W, X=X, Y=Y):
            return ((W @ X - Y) ** 2).mean()

        assert gradcheck(mse, W, rtol=1e-7, atol=1e-10)
        mse(W).backward()
        hand = 2 / 8 * (W.data @ X - Y) @ X.T  # d/dW mean((WX − Y)²) = (2/m)(WX − Y)Xᵀ
        np.testing.assert_allclose(W.grad.data, hand, rtol=1e-13)


def test_picking_the_labels_log_probability_by_hand():
    """The fused cost is the mean of −log_softmax at each label: written with a one-hot mask."""
    Z, Y = logits_and_targets(classes=10, m=8, seed=3)
    z = Tensor(Z, requires_grad=True)
    by_hand = -(z.log_softmax(axis=0) * Y).sum(axis=0).mean()
    fused = softmax_cross_entropy_with_logits(z, Y)
    np.testing.assert_allclose(by_hand.item(), fused.item(), rtol=1e-14)
    (g_hand,) = grad(by_hand, [z])
    (g_fused,) = grad(fused, [z])
    np.testing.assert_allclose(g_hand.data, g_fused.data, rtol=1e-12, atol=1e-17)


# ----- the digits


def test_digits_data_is_the_uci_test_set():
    X, labels = datasets.load_digits()
    assert X.shape == (64, 1797) and labels.shape == (1797,)
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_load_scaled_one_hot_and_split_like_the_others():
    ds = datasets.load("digits", seed=3)
    X, labels = datasets.load_digits()
    Y = datasets.one_hot(labels, 10)
    X_train, Y_train, X_test, Y_test = datasets.train_test_split(X, Y, 0.2, 3)
    assert ds.n_x == 64 and ds.n_y == 10 and ds.X_test.shape == (64, 359)
    assert np.array_equal(ds.X_train, X_train / 16) and np.array_equal(ds.X_test, X_test / 16)
    assert np.array_equal(ds.Y_train, Y_train) and np.all(ds.Y_test.sum(axis=0) == 1)
    assert np.array_equal(ds.labels_test, np.argmax(Y_test, axis=0))
    assert np.array_equal(datasets.standardize(X_test, ds.mean, ds.std), ds.X_test)
    assert datasets.load("digits", dtype=np.float32).X_train.dtype == np.float32


def test_one_hot_rejects_what_is_not_a_label():
    assert datasets.one_hot(np.array([2, 0]), 3).tolist() == [[0, 1], [0, 0], [1, 0]]
    with pytest.raises(ValueError, match="0 … 2"):
        datasets.one_hot(np.array([3]), 3)
    with pytest.raises(ValueError, match="integer"):
        datasets.one_hot(np.array([0.5]), 3)


def test_confusion_matrix_counts_true_against_predicted():
    counts = fnn.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1], 3)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 2]]
    with pytest.raises(ValueError, match="5 true labels but 4 predictions"):
        fnn.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2], 3)


# ----- the command line


def test_cli_compare_covers_a_deep_tanh_network(capsys):
    from tinygrad_fnn.cli import main

    args = ["compare", "--layers", "30,16,8,1", "--activation", "tanh", "--batch", "64"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "loss=composed, m=64, dtype=float64, layers=30,16,8,1, activation=tanh" in out
    fused = out.split("loss=fused")[1]
    assert fused.count("| yes |") == len(gradient_names(3)) and "| no |" not in fused
    assert "| dW3 |" in fused and "m·∂cost/∂A2 vs dA2" in fused


def test_cli_compare_on_the_digits_uses_softmax(capsys):
    from tinygrad_fnn.cli import main

    assert main(["compare", "--data", "digits", "--hidden", "32", "--batch", "128"]) == 0
    out = capsys.readouterr().out
    assert "layers=64,32,10, activation=relu" in out
    assert out.split("loss=fused")[1].count("| yes |") == len(gradient_names(2))


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "--layers", "30,16,2"], "must start with 30 and end with 1"),
        (["compare", "--layers", "30,x,1"], "positive whole numbers separated by commas"),
        (["train", "--layers", "30,8,1", "--hidden", "8"], "either --layers or --hidden"),
        (["train", "--activation", "swish"], "invalid choice: 'swish'"),
        (["train", "--layers", "30," + "2," * 100 + "1", "--save", "p.npz"], "at most 100 layers"),
    ],
)
def test_cli_network_mistakes_are_one_line_errors(args, message, capsys, tmp_path, monkeypatch):
    from tinygrad_fnn.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "p.npz").exists()


def test_cli_trains_the_digits_with_a_confusion_matrix_and_predicts(tmp_path, capsys):
    from tinygrad_fnn.cli import main
    from tinygrad_fnn.persist import load_parameters

    save, plot = tmp_path / "digits.npz", tmp_path / "digits.png"
    # The documented default: one relu layer of 64, 1,000 epochs, lr 1.0, seed 0.
    assert main(["train", "--data", "digits", "--save", str(save), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "digits: n_x=64, m=1438 train / 359 test, hidden=64, epochs=1000, lr=1.0" in out
    matrix = out.split("columns: predicted class):\n")[1].splitlines()[1:11]
    counts = np.array([[int(n) for n in row.split()[1:]] for row in matrix])
    accuracy = float(out.split("test accuracy:")[1].split("%")[0]) / 100
    assert counts.sum() == 359 and abs(np.trace(counts) / 359 - accuracy) < 0.0015
    assert accuracy >= 0.97
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000
    assert load_parameters(save)["W2"].shape == (10, 64)

    assert main(["predict", str(save)]) == 0
    assert "digits: accuracy" in capsys.readouterr().out
    X, labels = datasets.load_digits()
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, X[:, :5].T, delimiter=",")
    assert main(["predict", str(save), "--csv", str(rows)]) == 0
    lines = capsys.readouterr().out.split()[2:]  # after the header "class probability"
    predicted = [int(n) for n in lines[0::2]]
    assert len(predicted) == 5 and all(0 <= n <= 9 for n in predicted)
    assert np.mean(np.array(predicted) == labels[:5]) >= 0.8
    assert all(0.1 <= float(p) <= 1 for p in lines[1::2])


def test_cli_trains_a_deep_tanh_network(capsys):
    from tinygrad_fnn.cli import main

    args = ["train", "--data", "moons", "--layers", "2,8,8,1", "--activation", "tanh"]
    assert main([*args, "--epochs", "1000", "--lr", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "layers=2,8,8,1, activation=tanh" in out and "test accuracy:  100.0%" in out


def test_the_deep_digits_example_runs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "deep_digits.py"
    result = subprocess.run(
        [sys.executable, str(script), "--epochs", "100"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("bit-identical to the formula: True") == 6
    assert "| no |" not in result.stdout and "confusion matrix" in result.stdout


def test_the_readme_shows_what_compare_prints_for_a_deep_network(capsys):
    from pathlib import Path

    from tinygrad_fnn.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("<!-- compare-deep:start")[1].split("-->", 1)[1]
    shown = shown.split("<!-- compare-deep:end")[0].strip()
    args = ["compare", "--layers", "30,16,8,1", "--activation", "tanh", "--loss", "fused"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == shown  # every row is bit-identical: exact text
