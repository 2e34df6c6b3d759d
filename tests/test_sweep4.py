"""A hostile sweep of parameter files, `predict`, the CLI's sizes and the logic of masks.

Each test holds a defect the sweep found (a traceback or exit code 1 where a mistake is exit 2,
a file that reads as a network nobody saved, a printed `nan` probability, a parameters file
replaced by a picture, NumPy's `logical_*` refusing numbers), except the round trips at the end,
which hold what the sweep found right.
"""

import math
import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from eager_twin import assert_compiled_is_eager
from test_cli_mistakes import _npy_header, _savez
from torch_oracle import needs_torch, torch

from tinygrad_fnn import Tensor, cli, datasets, fnn, where
from tinygrad_fnn.cli import main
from tinygrad_fnn.persist import (
    ParameterFile,
    ParameterFileError,
    load_parameters,
    save_parameters,
)

ACTIVATIONS = fnn.ACTIVATIONS


def _network(layers, activation="relu", dtype="float64", seed=0):
    made = fnn.initialize_parameters(layers, seed=seed, dtype=dtype, activation=activation)
    return {k: p.data for k, p in made.items()}


@pytest.fixture
def good(tmp_path):
    """A valid file of a 2,3,1 relu network for the xor data."""
    path = tmp_path / "good.npz"
    save_parameters(path, _network([2, 3, 1]), np.zeros((2, 1)), np.ones((2, 1)), "xor")
    return path


def _with(good, name, members, compression=zipfile.ZIP_STORED):
    """The good file with some members replaced by raw bytes."""
    path = good.parent / f"{name}.npz"
    with zipfile.ZipFile(good) as a, zipfile.ZipFile(path, "w", compression) as b:
        for member in a.namelist():
            if member not in members:
                b.writestr(member, a.read(member))
        for member, data in members.items():
            b.writestr(member, data)
    return path


def _one_line_exit_2(args, capsys, message):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("tinygrad-fnn: error: "), err
    assert message in err, err
    return err


# ----- headers whose sizes are not sizes


def test_a_negative_size_is_refused_before_any_data_is_read(good, capsys):
    """A hidden layer of -5 units: the sizes chain, the claimed bytes are negative (so under
    the memory ceiling), and reading a member of -80 bytes read the whole member, whatever its
    length (a small deflated file made `predict` read 10 MB before it said "truncated")."""
    for hidden, payload in ((-5, 10**6), (-1, 8)):
        members = {
            "W1.npy": _npy_header((hidden, 2)) + b"\0" * payload,
            "b1.npy": _npy_header((hidden, 1)),
            "W2.npy": _npy_header((1, hidden)),
        }
        path = _with(good, f"negative{hidden}", members, zipfile.ZIP_DEFLATED)
        assert path.stat().st_size < payload or payload < 100
        with pytest.raises(ParameterFileError, match=r"W1 has shape \(-?\d+, 2\): its sizes"):
            ParameterFile(path)  # refused while checking headers, before read()
        _one_line_exit_2(["predict", str(path)], capsys, "sizes must be positive whole numbers")


def test_a_huge_header_is_refused_before_it_is_read(good, capsys):
    """NumPy refuses a header over 10,000 bytes only after reading it: a 64 MiB header of
    spaces, deflated to a small file, cost twice its size in memory before the refusal."""
    path = good.parent / "header.npz"
    claimed = 64 * 2**20
    with zipfile.ZipFile(good) as a, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as b:
        for member in a.namelist():
            if member != "W2.npy":
                b.writestr(member, a.read(member))
        with b.open("W2.npy", "w") as f:
            f.write(b"\x93NUMPY\x02\x00" + claimed.to_bytes(4, "little"))
            for _ in range(64):
                f.write(b" " * 2**20)
    assert path.stat().st_size < claimed // 100
    tracemalloc.start()
    try:
        with pytest.raises(ParameterFileError, match="W2: .*header of 67,108,864 bytes"):
            ParameterFile(path)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()
    _one_line_exit_2(["predict", str(path)], capsys, "more than the 10,000")


def test_a_member_held_twice_is_refused(good, capsys):
    """A zip archive may hold two members of one name; zipfile reads the last, other tools the
    first, so the file would be two networks."""
    path = good.parent / "twice.npz"
    with zipfile.ZipFile(good) as a, zipfile.ZipFile(path, "w") as b:
        for member in a.namelist():
            b.writestr(member, a.read(member))
        with pytest.warns(UserWarning, match="Duplicate name"):
            b.writestr("W1.npy", a.read("W1.npy"))
    with pytest.raises(ParameterFileError, match="it holds W1.npy twice"):
        ParameterFile(path)
    _one_line_exit_2(["predict", str(path)], capsys, "it holds W1.npy twice")


def test_a_boolean_size_is_not_a_size(good, capsys):
    # (True, 3) == (1, 3) in Python, so it passed the shape checks, then broke reshape (exit 1)
    path = _with(good, "boolean", {"W2.npy": _npy_header((True, 3)) + b"\0" * 24})
    with pytest.raises(ParameterFileError, match=r"W2 has shape \(True, 3\)"):
        ParameterFile(path)
    _one_line_exit_2(["predict", str(path)], capsys, "sizes must be positive whole numbers")


# ----- a file without an activation is a relu network only in the format before


@pytest.mark.parametrize("layers", [[2, 1], [2, 4, 3, 1], [2, 5, 4, 3, 1]])
def test_only_a_two_layer_file_may_leave_the_activation_out(layers, tmp_path, capsys):
    """Files were written without the activation only when every file held W1, b1, W2, b2; a
    deeper (or shallower) file without one was cut, and read as relu it would be another
    network than the tanh one saved."""
    path = tmp_path / "cut.npz"
    params = _network(layers, "tanh")
    _savez(path, **params, mean=np.zeros((2, 1)), std=np.ones((2, 1)), dataset=np.array("xor"))
    with pytest.raises(ParameterFileError, match="activation is missing"):
        ParameterFile(path)
    _one_line_exit_2(["predict", str(path)], capsys, "activation is missing")
    two = _network([2, 3, 1])
    _savez(path, **two, mean=np.zeros((2, 1)), std=np.ones((2, 1)), dataset=np.array("xor"))
    assert load_parameters(path)["activation"] == "relu"


# ----- text members that are not text


TEXTS = {
    "empty_dtype": (b"", "<U0"),  # itemsize 0: NumPy cannot even make the dtype's array
    "beyond_unicode": ((0x110000).to_bytes(4, "little"), "<U1"),
    "all_ones": (b"\xff" * 8, "<U2"),
    "big_endian_beyond": ((0x7FFFFFFF).to_bytes(4, "big"), ">U1"),
}


@pytest.mark.parametrize("member", ["activation", "dataset"])
@pytest.mark.parametrize("case", TEXTS)
def test_a_text_member_that_is_not_text_is_one_line(case, member, good, capsys):
    data, descr = TEXTS[case]
    path = _with(good, case, {f"{member}.npy": _npy_header((), descr) + data})
    with pytest.raises(ParameterFileError, match=f"{member}"):
        load_parameters(path)
    _one_line_exit_2(["predict", str(path)], capsys, f"{path}: {member}")


def test_text_members_still_read_in_either_byte_order(good, capsys):
    for order in "<>":
        for name in ("tanh", "sigmoid"):
            code = np.array(name, dtype=f"{order}U{len(name)}")
            path = _with(good, f"t{order}", {"activation.npy": _npy_header((), code.dtype.str)
                                              + code.tobytes()})  # fmt: skip
            assert load_parameters(path)["activation"] == name


# ----- predict never prints a probability that is not a number


def _overflowing(kind, activation, dtype):
    """Finite members whose forward pass is not finite: weights whose products overflow, or a
    standard deviation so small that standardising overflows."""
    one = dict(W2=np.array([[1.0, -1.0]]), b1=np.zeros((2, 1)), b2=np.zeros((1, 1)))
    if kind == "weights":
        big = 1e308 if dtype == "float64" else 3e38
        arrays = dict(W1=np.full((2, 2), big), mean=np.zeros((2, 1)), std=np.ones((2, 1)), **one)
    else:
        arrays = dict(W1=np.eye(2), mean=np.zeros((2, 1)), std=np.full((2, 1), 1e-320), **one)
    return {
        **{k: v.astype(dtype) if k[0] in "Wb" else v for k, v in arrays.items()},
        "activation": np.array(activation),
        "dataset": np.array("xor"),
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["weights", "std"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_predict_refuses_to_print_what_is_not_a_number(activation, kind, dtype, tmp_path, capsys):
    path, rows = tmp_path / "p.npz", tmp_path / "rows.csv"
    _savez(path, **_overflowing(kind, activation, dtype))
    rows.write_text("1.0,1.0\n0.0,0.0\n-1.0,2.0\n")
    if kind == "weights" and activation in ("tanh", "sigmoid"):
        # A1 saturates at exactly 1 (or is 0 or 0.5), as it would without overflow: both
        # hidden units agree, W2 = [1, -1] cancels them, and every probability is 0.5.
        assert main(["predict", str(path), "--csv", str(rows)]) == 0
        assert capsys.readouterr().out.splitlines()[1:] == ["0 0.5000"] * 3
        return
    err = _one_line_exit_2(["predict", str(path), "--csv", str(rows)], capsys, f"{path}: ")
    assert "row 1 of --csv" in err and "not a finite number" in err
    err = _one_line_exit_2(["predict", str(path)], capsys, f"{path}: ")
    assert "of the xor data" in err and "not a finite number" in err


def test_a_float32_network_refuses_features_that_overflow_float32(tmp_path, capsys):
    path, rows = tmp_path / "p.npz", tmp_path / "rows.csv"
    params = _network([2, 3, 1], "tanh", "float32")
    save_parameters(path, params, np.zeros((2, 1)), np.ones((2, 1)), "xor", "tanh")
    rows.write_text("0.5,0.5\n1e39,0.5\n")  # finite as float64, infinite as float32
    err = _one_line_exit_2(["predict", str(path), "--csv", str(rows)], capsys, f"{path}: ")
    assert "row 2 of --csv" in err and "float32" in err
    rows.write_text("0.5,0.5\n1e37,-1e37\n")  # still finite in float32: classified
    assert main(["predict", str(path), "--csv", str(rows)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


# ----- sizes too large for a float are a mistake, not a bug


BIG = "9" * 400


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--data", "xor", "--layers", f"2,{BIG},1"],
        ["train", "--data", "xor", "--hidden", BIG],
        ["train", "--data", "xor", "--m", BIG],
        ["compare", "--data", "xor", "--hidden", BIG],
        ["graph", "--layers", f"2,3,{BIG},1"],
        ["graph", "--m", BIG],
        ["derive", "--m", BIG],
    ],
    ids=lambda a: " ".join(a)[:30],
)
def test_a_size_beyond_a_float_is_one_line_exit_2(args, capsys):
    _one_line_exit_2(args, capsys, "this command stops at 1 GiB")


@pytest.mark.parametrize("command", ["train", "compare"])
@pytest.mark.parametrize("data", ["breast_cancer", "digits"])
def test_m_for_a_shipped_data_set_is_a_mistake(command, data, tmp_path, capsys):
    """`--m` sizes the generated sets only; `train --data digits --m 5` trained on all 1,797
    digits and said nothing."""
    args = [command, "--data", data, "--m", "5"]
    _one_line_exit_2(args, capsys, f"--m: {data} is shipped with a fixed number of examples")


# ----- --save and --plot naming one file


def test_save_and_plot_naming_one_file_are_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "old.png").write_bytes(b"old")
    os.link(tmp_path / "old.png", tmp_path / "linked.png")
    pairs = [("same.png", "same.png"), ("same.png", "./sub/../same.png"),
             (str(tmp_path / "same.png"), "same.png"), ("linked.png", "old.png")]  # fmt: skip
    for save, plot in pairs:
        args = ["train", "--data", "xor", "--epochs", "2", "--save", save, "--plot", plot]
        _one_line_exit_2(args, capsys, "--save and --plot name the same file")
        assert not (tmp_path / "same.png").exists()
        assert (tmp_path / "old.png").read_bytes() == b"old"


# ----- save refuses the values load refuses


@pytest.mark.parametrize(
    "change",
    [
        {"W2": np.full((1, 3), np.nan)},
        {"b1": np.full((3, 1), np.inf)},
        {"mean": np.array([[0.0], [-np.inf]])},
        {"std": np.array([[1.0], [-1.0]])},
        {"std": np.array([[np.nan], [1.0]])},
    ],
    ids=["W2_nan", "b1_inf", "mean_inf", "std_negative", "std_nan"],
)
def test_save_refuses_values_that_load_would_refuse_and_writes_nothing(change, tmp_path):
    params = {**_network([2, 3, 1]), **{k: v for k, v in change.items() if k[0] in "Wb"}}
    stats = {"mean": np.zeros((2, 1)), "std": np.ones((2, 1))}
    stats.update({k: v for k, v in change.items() if k in stats})
    path = tmp_path / "p.npz"
    with pytest.raises(ParameterFileError, match="not saved: .* (not finite|negative)"):
        save_parameters(path, params, stats["mean"], stats["std"], "xor")
    assert list(tmp_path.iterdir()) == []


# ----- --csv: a row is a line, a number is a number


def test_csv_rows_are_lines_and_cells_are_plain_numbers(good, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    # str.splitlines also breaks at \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029
    for separator in ("\v", "\f", "\x1c", "\x85", "\u2028"):
        rows.write_text(f"1,2{separator}3,4\n", encoding="utf-8")
        _one_line_exit_2(["predict", str(good), "--csv", str(rows)], capsys, "row 1, column 2")
    rows.write_text("1_0,2\n")  # float() reads "1_0" as 10
    _one_line_exit_2(["predict", str(good), "--csv", str(rows)], capsys, "'1_0' is not a number")
    # Windows line ends and a UTF-8 byte-order mark (as spreadsheets write) are read as such
    rows.write_text("\ufeff1,2\r\n-0.5,3e-1\r\n\r\n", encoding="utf-8")
    assert main(["predict", str(good), "--csv", str(rows)]) == 0
    _, *lines = capsys.readouterr().out.splitlines()
    saved = load_parameters(good)
    X = datasets.standardize(np.array([[1.0, -0.5], [2.0, 0.3]]), saved["mean"], saved["std"])
    p = cli.predict_saved(X, saved)[0]
    assert lines == [f"{int(q > 0.5)} {q:.4f}" for q in p]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_csv_that_is_a_stream_is_held_to_the_size_ceiling_too(good):
    """The ceiling was checked on st_size, which is 0 for /dev/zero, a FIFO or /dev/stdin:
    `--csv /dev/zero` read until memory ran out."""
    run = subprocess.run(
        [sys.executable, "-m", "tinygrad_fnn", "predict", str(good), "--csv", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == "tinygrad-fnn: error: --csv /dev/zero: larger than 64 MiB\n"


# ----- NumPy's logical_* on numbers: the truth of each number, as NumPy and PyTorch


def _numbers(seed, shape):
    x = np.random.default_rng(seed).standard_normal(shape)
    x.flat[:: max(1, x.size // 3)] = 0.0
    if x.size > 2:
        x.flat[1], x.flat[2] = np.nan, -0.0  # nan is true, -0.0 false, as in NumPy
    return x


SHAPES = [(3,), (4, 5), (2, 3, 4), (1, 1)]
LOGICAL = [np.logical_and, np.logical_or, np.logical_xor]


@pytest.mark.parametrize("requires_grad", [False, True])
def test_numpys_logical_functions_on_numbers_are_numpys(requires_grad):
    for seed, shape in enumerate(SHAPES):
        a, b = _numbers(seed, shape), _numbers(seed + 10, shape)
        x = Tensor(a, requires_grad=requires_grad)
        y = Tensor(b, dtype=np.float32)
        m = Tensor(b) > 0
        for f in LOGICAL:
            for ours, want in (
                (f(x, y), f(a, b)),
                (f(x, m), f(a, b > 0)),
                (f(m, x), f(b > 0, a)),
                (f(x, b), f(a, b)),
                (f(b, x), f(b, a)),
                (f(x, 2.5), f(a, 2.5)),
                (f(0, x), f(0, a)),
                (f(x, np.float32(0.0)), f(a, np.float32(0.0))),
            ):
                assert isinstance(ours, Tensor) and ours.dtype == np.bool_, f
                assert not ours.requires_grad and np.array_equal(ours.data, want), f
        got = np.logical_not(x)
        assert got.dtype == np.bool_ and np.array_equal(got.data, np.logical_not(a))


def test_a_logical_function_reads_an_arrays_truth_in_the_arrays_own_dtype():
    """An array beside a float32 Tensor became a float32 constant first: 1e-50 rounded to 0,
    false, where NumPy (and PyTorch) read it as true."""
    x = Tensor(np.array([1.0, 0.0, 2.0]), dtype=np.float32)
    tiny = np.array([1e-50, 1e-50, 0.0])
    for f in LOGICAL:
        want = f(x.data, tiny)
        assert np.array_equal(f(x, tiny).data, want) and np.array_equal(f(tiny, x).data, want)
    assert np.array_equal(np.logical_and(x, [1e-50, 0, 3]).data, [True, False, True])


def test_the_operators_and_bitwise_functions_still_refuse_numbers():
    x = Tensor(_numbers(0, (3, 4)))
    m = x > 0
    refused = [lambda: ~x, lambda: m & x, lambda: np.invert(x), lambda: np.bitwise_and(m, x)]
    refused += [lambda: np.bitwise_or(x, m), lambda: np.bitwise_xor(x, 1.0)]
    for f in refused:
        with pytest.raises(TypeError, match="works on masks"):
            f()


@needs_torch
def test_numpys_logical_functions_on_numbers_agree_with_pytorch():
    pairs = [(np.logical_and, torch.logical_and), (np.logical_or, torch.logical_or)]
    pairs += [(np.logical_xor, torch.logical_xor)]
    for seed, shape in enumerate(SHAPES):
        a, b = _numbers(seed, shape), _numbers(seed + 10, shape)
        x = Tensor(a, requires_grad=True)
        t = torch.tensor(a, requires_grad=True)
        for ours, theirs in pairs:
            got, want = ours(x, Tensor(b) > 0), theirs(t, torch.from_numpy(b > 0))
            assert not want.requires_grad and not got.requires_grad
            assert np.array_equal(got.data, want.numpy())
        assert np.array_equal(np.logical_not(x).data, torch.logical_not(t).numpy())


def test_logical_functions_on_numbers_in_a_compiled_step_give_the_eager_bits():
    rng = np.random.default_rng(11)
    x = Tensor(np.where(rng.random((4, 6)) < 0.3, 0.0, rng.standard_normal((4, 6))))

    def cost(w: Tensor) -> Tensor:
        both = np.logical_and(x, w > 0)
        either = np.logical_or(w, np.logical_not(x))  # w is 0 nowhere: all true
        return (where(np.logical_xor(both, either), w * w, -w)).sum()

    assert_compiled_is_eager(cost, Tensor(rng.standard_normal((4, 6)), requires_grad=True), 0.1)


# ----- what the sweep found right: train --save then predict, every activation and depth


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_train_save_predict_is_the_in_memory_network_bit_for_bit(
    activation, dtype, tmp_path, capsys
):
    rows = tmp_path / "rows.csv"
    X, _ = datasets.GENERATED["moons"](m=40, seed=9)
    rows.write_text("".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X.T))
    for depth, seed in ((0, 1), (1, 2), (2, 3), (4, 4)):
        layers = [2, *range(3, 3 + depth), 1]
        save = tmp_path / f"p{depth}.npz"
        args = ["train", "--data", "moons", "--layers", ",".join(map(str, layers))]
        args += ["--activation", activation, "--dtype", dtype, "--epochs", "7", "--lr", "0.7"]
        args += ["--seed", str(seed), "--print-every", "0", "--save", str(save)]
        assert main(args) == 0
        capsys.readouterr()
        ds = datasets.load("moons", seed=seed, dtype=np.dtype(dtype).type)
        params = fnn.initialize_parameters(layers, seed=seed, dtype=dtype, activation=activation)
        fnn.train(ds.X_train, ds.Y_train, params, 7, 0.7, print_every=0, activation=activation)
        want = fnn.predict_proba(
            datasets.standardize(X, ds.mean, ds.std).astype(dtype), params, activation
        )
        saved = load_parameters(save)
        read = cli.read_rows(rows)
        got = cli.predict_saved(datasets.standardize(read, saved["mean"], saved["std"]), saved)
        assert np.array_equal(read, X) and got.tobytes() == want.tobytes()
        assert main(["predict", str(save), "--csv", str(rows)]) == 0
        _, *lines = capsys.readouterr().out.splitlines()
        assert lines == [f"{int(p > 0.5)} {p:.4f}" for p in want[0]]
        assert all(math.isfinite(p) for p in want[0])
