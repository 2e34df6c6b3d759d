"""Parameter files of any network `fnn` makes: W1, b1, …, WL, bL and the hidden activation.

A save→load round trip returns the same bits; `train --save` writes exactly the network that
training produced and `predict` runs exactly `fnn`'s forward pass on it; files of the format
before the activation was stored still load, as relu; and every hostile variation of the new
members is one clear ParameterFileError (one line, exit code 2 from the command)."""

import numpy as np
import pytest
from test_cli_mistakes import _npy_header, _rewrite, _savez

from tinygrad_fnn import cli, datasets, fnn, manual, persist
from tinygrad_fnn.cli import main
from tinygrad_fnn.persist import (
    MAX_LAYERS,
    ParameterFile,
    ParameterFileError,
    load_parameters,
    save_parameters,
)

NETWORKS = [
    ([2, 1], "relu"),
    ([2, 3, 1], "relu"),
    ([2, 5, 4, 1], "tanh"),
    ([30, 16, 8, 1], "sigmoid"),
    ([64, 12, 10], "leaky_relu"),
    ([64, 9, 7, 5, 10], "tanh"),
]


def _random_network(layers, activation, dtype, seed):
    """Parameters with random (not zero) biases, and statistics, for a round trip."""
    rng = np.random.default_rng(seed)
    made = fnn.initialize_parameters(layers, seed=seed, dtype=dtype, activation=activation)
    params = {k: (p.data + rng.standard_normal(p.shape)).astype(dtype) for k, p in made.items()}
    mean = rng.standard_normal((layers[0], 1))
    std = rng.uniform(0.5, 2.0, (layers[0], 1))
    return params, mean, std


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers, activation", NETWORKS)
def test_a_round_trip_returns_the_same_bits(layers, activation, dtype, tmp_path):
    path = tmp_path / "p.npz"
    for seed in range(5):
        params, mean, std = _random_network(layers, activation, dtype, seed)
        save_parameters(path, params, mean, std, "moons", activation)
        loaded = load_parameters(path)
        assert set(loaded) == {*params, "mean", "std", "dataset", "activation"}
        for k, array in {**params, "mean": mean, "std": std}.items():
            assert loaded[k].dtype == array.dtype and loaded[k].shape == array.shape
            assert loaded[k].tobytes() == array.tobytes(), k
        assert loaded["activation"] == activation and loaded["dataset"] == "moons"
        with ParameterFile(path) as pf:
            assert pf.layers == layers and pf.activation == activation
            assert pf.dtype == np.dtype(dtype) and (pf.n_x, pf.n_y) == (layers[0], layers[-1])


def _old_format_file(path, seed):
    """A file as `save_parameters` wrote them before the activation was stored."""
    params = {k: p.data for k, p in fnn.initialize_parameters(2, 5, seed=seed).items()}
    rng = np.random.default_rng(seed)
    params = {k: v + rng.standard_normal(v.shape) for k, v in params.items()}
    _savez(path, **params, mean=np.zeros((2, 1)), std=np.ones((2, 1)), dataset=np.array("xor"))
    return params


def test_a_file_of_the_format_before_holds_a_relu_network(tmp_path, capsys):
    rows = np.random.default_rng(0).standard_normal((12, 2))
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",")
    for seed in range(3):
        path = tmp_path / f"old{seed}.npz"
        params = _old_format_file(path, seed)
        loaded = load_parameters(path)
        assert loaded["activation"] == "relu"
        assert all(np.array_equal(loaded[k], v) for k, v in params.items())
        assert main(["predict", str(path), "--csv", str(tmp_path / "rows.csv")]) == 0
        _, *lines = capsys.readouterr().out.splitlines()
        # The hand-written NumPy forward pass of the tutorial's network is the oracle.
        A2, _ = manual.forward_propagation(rows.T, params)
        assert lines == [f"{int(p > 0.5)} {p:.4f}" for p in A2[0]]


def _raw(name):
    """The raw (unstandardised) examples of a data set and their labels, as `predict` reads
    them without --csv (generated sets: seed 0, their default size)."""
    if name == "breast_cancer":
        X, Y, _ = datasets.load_breast_cancer()
        return X, datasets.labels_of(Y)
    if name == "digits":
        return datasets.load_digits()
    X, Y = datasets.GENERATED[name](seed=0)
    return X, datasets.labels_of(Y)


TRAINED = [
    ("xor", [2, 6, 5, 1], "tanh", "float64"),
    ("moons", [2, 8, 8, 1], "leaky_relu", "float32"),
    ("circles", [2, 1], "relu", "float64"),
    ("breast_cancer", [30, 8, 4, 1], "sigmoid", "float64"),
    ("digits", [64, 16, 12, 10], "relu", "float32"),
    ("digits", [64, 20, 10], "tanh", "float64"),
    ("spirals", [2, 7, 6, 5, 1], "leaky_relu", "float64"),
]


@pytest.mark.parametrize("data, layers, activation, dtype", TRAINED)
def test_train_save_predict_runs_fnn_on_exactly_the_trained_network(
    data, layers, activation, dtype, tmp_path, capsys
):
    save, seed, epochs, lr = tmp_path / "p.npz", 3, 40, 0.5
    sizes = ",".join(map(str, layers))
    args = ["train", "--data", data, "--layers", sizes, "--activation", activation]
    args += ["--dtype", dtype, "--epochs", str(epochs), "--lr", str(lr), "--seed", str(seed)]
    assert main([*args, "--print-every", "0", "--save", str(save)]) == 0
    assert f"parameters written to {save}" in capsys.readouterr().out

    # The same training, done here: the file must hold its parameters bit for bit.
    ds = datasets.load(data, seed=seed, dtype=np.dtype(dtype).type)
    params = fnn.initialize_parameters(layers, seed=seed, dtype=dtype, activation=activation)
    fnn.train(ds.X_train, ds.Y_train, params, epochs, lr, print_every=0, activation=activation)
    saved = load_parameters(save)
    for k, p in params.items():
        assert saved[k].dtype == p.dtype and saved[k].tobytes() == p.data.tobytes(), k
    assert np.array_equal(saved["mean"], ds.mean) and np.array_equal(saved["std"], ds.std)
    assert (saved["activation"], saved["dataset"]) == (activation, data)

    X, labels = _raw(data)
    expected = fnn.predict_proba(
        datasets.standardize(X, ds.mean, ds.std).astype(dtype), params, activation
    )
    got = cli.predict_saved(datasets.standardize(X, saved["mean"], saved["std"]), saved)
    assert got.dtype == np.dtype(dtype) and got.tobytes() == expected.tobytes()
    # An independent oracle: the hand-written NumPy forward pass, in float64.
    as64 = {k: p.data.astype(np.float64) for k, p in params.items()}
    oracle, _ = manual.deep_forward_propagation(
        datasets.standardize(X, ds.mean, ds.std), as64, activation
    )
    np.testing.assert_allclose(expected, oracle, rtol=0, atol=1e-5 if dtype == "float32" else 1e-12)

    if layers[-1] == 1:
        classes, confidence = (expected[0] > 0.5).astype(int), expected[0]
    else:
        classes, confidence = expected.argmax(axis=0), expected.max(axis=0)
    assert main(["predict", str(save)]) == 0
    accuracy = np.mean(classes == labels)
    out = capsys.readouterr().out
    assert out == f"{data}: accuracy {accuracy:.1%} on all {X.shape[1]} examples\n"

    rows = tmp_path / "rows.csv"
    np.savetxt(rows, X[:, :30].T, delimiter=",")
    assert main(["predict", str(save), "--csv", str(rows)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == "class probability"
    assert lines == [f"{c} {p:.4f}" for c, p in zip(classes[:30], confidence[:30])]


# --- hostile files: the new members


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A good file of a 2,4,3,1 tanh network, and the members it is made of."""
    folder = tmp_path_factory.mktemp("deep")
    params, mean, std = _random_network([2, 4, 3, 1], "tanh", "float64", 0)
    path = folder / "deep.npz"
    save_parameters(path, params, mean, std, "xor", "tanh")
    members = {**params, "mean": mean, "std": std, "dataset": np.array("xor")}
    return folder, path, {**members, "activation": np.array("tanh")}


def _variant(deep, name, drop=(), raw=None, **arrays):
    """The good file with members dropped, replaced by arrays, or replaced by raw bytes."""
    folder, good, members = deep
    path = folder / f"{name}.npz"
    kept = {k: v for k, v in members.items() if k not in drop}
    _savez(path, **{**kept, **arrays})
    if raw:
        copy = folder / f"{name}.raw.npz"
        _rewrite(path, copy, raw)
        copy.replace(path)
    return path


GiB_HALF = (1, 2**26)  # 2**29 bytes of float64: half the ceiling

HOSTILE = [
    ("swish", {"activation": np.array("swish")}, (), None, "activation must be one of relu, "
     "tanh, sigmoid, leaky_relu, got 'swish'"),
    ("act_number", {"activation": np.array(1.0)}, (), None, "activation must be a short text, "
     "got float64 of shape ()"),
    ("act_long", {"activation": np.array("tanh" * 101)}, (), None, "activation must be a short "
     "text, got <U404 of shape ()"),
    ("act_list", {"activation": np.array(["relu", "tanh"])}, (), None, "activation must be a "
     "short text, got <U4 of shape (2,)"),
    ("no_b3", {}, ("b3",), None, "not a parameters file: missing b3"),
    ("gap", {}, ("W2", "b2"), None, "not a parameters file: missing W2, b2 (it holds layer 3, "
     "which needs every layer below it)"),
    ("b4", {"b4": np.zeros((1, 1))}, (), None, "not a parameters file: missing W4 (it holds "
     "layer 4"),
    ("W101", {"W101": np.zeros((1, 1))}, (), None, "it claims a layer W101, more than the 100 "
     "layers this program reads"),
    ("W_long", {}, (), {"W" + "9" * 5000 + ".npy": b""}, "it claims a layer W9999999999999999999…,"
     " more than the 100 layers"),
    ("W01", {"W01": np.zeros((4, 2))}, (), None, "W01 is not a layer's name"),
    ("b0", {"b0": np.zeros((4, 1))}, (), None, "b0 is not a layer's name"),
    ("W3_columns", {"W3": np.zeros((1, 4))}, (), None, "W3 has shape (1, 4), but W2 has shape "
     "(3, 4): W3 must have 3 columns, one for each output of layer 2"),
    ("b2_rows", {"b2": np.zeros((4, 1))}, (), None, "b2 has shape (4, 1), but W2 has shape "
     "(3, 4): b2 must be (3, 1)"),
    ("b3_row", {"b3": np.zeros((1,))}, (), None, "b3 must be a non-empty 2-D array, got shape "
     "(1,)"),
    ("mean_deep", {"mean": np.zeros((3, 1))}, (), None, "mean has shape (3, 1), but W1 has shape "
     "(4, 2): mean must be (2, 1)"),
    ("W3_float32", {"W3": np.zeros((1, 3), np.float32)}, (), None, "W3 is float32, but W1 is "
     "float64"),
    ("W3_pickled", {"W3": np.array([[object()]], dtype=object)}, (), None, "W3 must be float32 or"
     " float64, got object"),
    ("W3_nan", {"W3": np.full((1, 3), np.nan)}, (), None, "W3 holds values that are not finite"),
    ("b2_inf", {"b2": np.full((3, 1), -np.inf)}, (), None, "b2 holds values that are not finite"),
    ("W3_truncated", {}, (), {"W3.npy": _npy_header((1, 3)) + b"\0" * 7}, "W3: truncated: 7 of "
     "24 bytes"),
    ("sum_over_ceiling", {}, (), {"W2.npy": _npy_header(GiB_HALF), "W3.npy": _npy_header(GiB_HALF)},
     "(W2 has shape (1, 67108864)), more than the 1,073,741,824 this program reads"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, arrays, drop, raw, message", HOSTILE, ids=[case[0] for case in HOSTILE]
)
def test_hostile_members_are_one_clear_line(name, arrays, drop, raw, message, deep, capsys):
    path = _variant(deep, name, drop, raw, **arrays)
    with pytest.raises(ParameterFileError) as refused:
        load_parameters(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)
    assert main(["predict", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"tinygrad-fnn: error: {refused.value}\n"


@pytest.mark.parametrize("name", ["W101", "W_long", "W01", "gap", "no_b3", "sum_over_ceiling"])
def test_names_and_sizes_are_refused_before_any_data_is_read(name, deep, monkeypatch):
    """What the member names claim is refused before any header is parsed; what the headers
    claim, before any data is read."""
    _, arrays, drop, raw, _ = next(case for case in HOSTILE if case[0] == name)
    path = _variant(deep, f"{name}_early", drop, raw, **arrays)
    monkeypatch.setattr(persist.ParameterFile, "_data", None)  # any data read would fail
    if name != "sum_over_ceiling":
        monkeypatch.setattr(persist.ParameterFile, "_header", None)  # so would a header
    with pytest.raises(ParameterFileError, match="missing|layer|more than"):
        ParameterFile(path)


def test_the_layer_limit_is_what_train_accepts(tmp_path, capsys):
    """The deepest network --layers accepts saves and loads; one layer more is refused both by
    --layers and by the file reader."""
    deepest = [2] + [1] * (MAX_LAYERS - 1) + [1]
    params = {k: p.data for k, p in fnn.initialize_parameters(deepest, seed=0).items()}
    path = tmp_path / "deepest.npz"
    save_parameters(path, params, np.zeros((2, 1)), np.ones((2, 1)), "xor")
    with ParameterFile(path) as pf:
        assert len(pf.layers) == MAX_LAYERS + 1
    too_deep = {
        **params,
        f"W{MAX_LAYERS + 1}": np.ones((1, 1)),
        f"b{MAX_LAYERS + 1}": np.ones((1, 1)),
    }
    with pytest.raises(ParameterFileError, match=f"not saved: it claims a layer W{MAX_LAYERS + 1}"):
        save_parameters(
            tmp_path / "too_deep.npz", too_deep, np.zeros((2, 1)), np.ones((2, 1)), "xor"
        )
    assert main(["compare", "--data", "xor", "--layers", ",".join(map(str, deepest))]) == 0
    capsys.readouterr()
    one_more = ",".join(map(str, [2, *deepest[1:-1], 1, 1]))
    assert main(["train", "--data", "xor", "--layers", one_more]) == 2
    assert f"at most {MAX_LAYERS} layers" in capsys.readouterr().err


SAVE_REFUSALS = [
    ({"activation": "swish"}, "activation must be one of relu"),
    ({"drop": ("W2", "b2")}, "missing W2, b2"),
    ({"drop": ("b3",)}, "missing b3"),
    ({"replace": {"W3": np.zeros((1, 4))}}, "W3 has shape (1, 4), but W2 has shape (3, 4)"),
    ({"replace": {"W2": np.zeros((3, 4), np.float32)}}, "W2 is float32, but W1 is float64"),
    ({"mean": np.zeros((3, 1))}, "mean has shape (3, 1), but W1 has shape (4, 2)"),
    ({"dataset": None}, "dataset must be a short text"),
]


@pytest.mark.parametrize("change, message", SAVE_REFUSALS, ids=[m for _, m in SAVE_REFUSALS])
def test_save_refuses_a_network_it_could_not_read_back_and_writes_nothing(
    change, message, tmp_path
):
    params, mean, std = _random_network([2, 4, 3, 1], "tanh", "float64", 1)
    params = {k: v for k, v in params.items() if k not in change.get("drop", ())}
    params.update(change.get("replace", {}))
    args = {"mean": mean, "std": std, "dataset": "xor", "activation": "tanh"}
    args.update({k: v for k, v in change.items() if k in args})
    target = tmp_path / "p.npz"
    with pytest.raises(ParameterFileError, match="not saved: ") as refused:
        save_parameters(target, params, **args)
    assert message in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_predict_refuses_a_network_whose_outputs_do_not_fit_its_data_set(tmp_path, capsys):
    """A file naming the digits but holding one output unit would score a wrong accuracy."""
    params = {k: p.data for k, p in fnn.initialize_parameters([64, 5, 1], seed=0).items()}
    path = tmp_path / "p.npz"
    save_parameters(path, params, np.zeros((64, 1)), np.ones((64, 1)), "digits")
    assert main(["predict", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"tinygrad-fnn: error: {path}: the network has 1 output unit(s), but the digits data "
        "needs 10; give the rows with --csv"
    ]


def test_the_readme_deep_save_and_predict_commands_run(tmp_path, monkeypatch, capsys):
    """The README's `deep.npz` lines, as written: the file holds the network the line asks for
    and `predict` scores it on the whole data set."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [line.split("#")[0] for line in readme.splitlines() if "deep.npz" in line]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("tinygrad-fnn ")]
    assert [c[0] for c in commands] == ["train", "predict"]
    monkeypatch.chdir(tmp_path)
    assert main(commands[0]) == 0
    train_out = capsys.readouterr().out
    with ParameterFile(tmp_path / "deep.npz") as pf:
        asked = commands[0][commands[0].index("--layers") + 1]
        assert ",".join(map(str, pf.layers)) == asked
        assert pf.activation == commands[0][commands[0].index("--activation") + 1]
    assert main(commands[1]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digits: accuracy ") and out.endswith(" on all 1797 examples\n")
    assert "layers=64,32,16,10, activation=tanh" in train_out
    assert float(out.split("accuracy ")[1].split("%")[0]) >= 95.0  # trained: chance is 10%
