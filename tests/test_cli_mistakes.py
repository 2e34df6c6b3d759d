"""Every mistake a user can make with the command: one line on stderr, exit code 2, no
traceback, no warning, and nothing written, replaced or left behind."""

import io
import os
import stat
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from test_cli import run_cli

from tinygrad_fnn import cli, datasets, fnn
from tinygrad_fnn.cli import main
from tinygrad_fnn.persist import (
    MEMORY_CEILING,
    ParameterFileError,
    load_parameters,
    save_parameters,
)


def _params(n_x, hidden=16, seed=0):
    return {k: p.data for k, p in fnn.initialize_parameters(n_x, hidden, seed=seed).items()}


def _npy_header(shape, descr="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _rewrite(src, dst, members):
    """Copy the archive `src` to `dst`, replacing or adding the given members' bytes."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            if name not in members:
                b.writestr(name, a.read(name))
        for name, data in members.items():
            b.writestr(name, data)


def _savez(path, **arrays):
    with open(path, "wb") as f:  # a file object, so that np.savez adds no suffix
        np.savez(f, **arrays)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of good and bad inputs, built without training; every test leaves it as it was
    (the table's test checks that)."""
    tmp_path = tmp_path_factory.mktemp("inputs")
    bc = tmp_path / "bc.npz"
    save_parameters(bc, _params(30), np.zeros((30, 1)), np.ones((30, 1)), "breast_cancer")
    stats30 = {"mean": np.zeros((30, 1)), "std": np.ones((30, 1))}
    name = {"dataset": np.array("breast_cancer")}
    _savez(
        tmp_path / "w2_two_rows.npz", **{**_params(30), "W2": np.zeros((2, 16))}, **stats30, **name
    )
    _savez(
        tmp_path / "w1_five_features.npz",
        **_params(5),
        mean=np.zeros((5, 1)),
        std=np.ones((5, 1)),
        **name,
    )
    _savez(
        tmp_path / "pickled.npz",
        **{**_params(30), "W1": np.array([[object()]], dtype=object)},
        **stats30,
        **name,
    )
    _savez(
        tmp_path / "nan_weight.npz",
        **{**_params(30), "b2": np.full((1, 1), np.nan)},
        **stats30,
        **name,
    )
    _savez(
        tmp_path / "three_d.npz", **{**_params(30), "b1": np.zeros((16, 1, 1))}, **stats30, **name
    )
    _savez(tmp_path / "unknown_set.npz", **_params(30), **stats30, dataset=np.array("iris"))
    _rewrite(bc, tmp_path / "huge_W1.npz", {"W1.npy": _npy_header((10**6, 10**6))})
    _rewrite(bc, tmp_path / "huge_unused.npz", {"junk.npy": _npy_header((10**6, 10**6))})
    _rewrite(
        bc, tmp_path / "bad_header.npz", {"b1.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': zz}  \n"}
    )
    _rewrite(bc, tmp_path / "garbage.npz", {"W2.npy": b"random garbage, not an array at all"})
    _rewrite(bc, tmp_path / "truncated.npz", {"W1.npy": _npy_header((16, 30)) + b"\0" * 100})
    _rewrite(bc, tmp_path / "too_long.npz", {"b2.npy": _npy_header((1, 1)) + b"\0" * 16})
    raw = bytearray(bc.read_bytes())
    raw[raw.index(b"\x93NUMPY", raw.index(b"W1.npy")) + 200] ^= 0xFF  # a flipped data byte
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    (tmp_path / "not_a_zip.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "pics.png").mkdir()
    X, _, _ = datasets.load_breast_cancer()
    np.savetxt(tmp_path / "rows.csv", X[:, :3].T, delimiter=",")
    good_row = ",".join(["1.5"] * 30)
    for name, text in {
        "empty.csv": "",
        "blank.csv": "\n  \n",
        "nan.csv": f"{good_row}\n" + ",".join(["1"] * 29 + ["nan"]) + "\n",
        "inf.csv": f"{good_row}\n{good_row}\n" + ",".join(["1", "-inf"] + ["1"] * 28) + "\n",
        "huge.csv": ",".join(["1e400"] + ["1"] * 29) + "\n",
        "text.csv": ",".join(["1", "abc"] + ["1"] * 28) + "\n",
        "ragged.csv": f"{good_row}\n1,2,3\n",
        "narrow.csv": "1,2,3\n",
    }.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.npz").symlink_to(bc)
    return tmp_path


def _snapshot(folder):
    """Every entry of the folder: its kind and, for regular files, its bytes."""
    found = {}
    for entry in sorted(folder.rglob("*")):
        mode = entry.lstat().st_mode
        if stat.S_ISREG(mode):
            found[entry.name] = ("file", entry.read_bytes())
        elif stat.S_ISLNK(mode):
            found[entry.name] = ("link", os.readlink(entry))
        else:
            found[entry.name] = ("fifo" if stat.S_ISFIFO(mode) else "dir", None)
    return found


T = ["train", "--data", "xor", "--epochs", "3"]  # a tiny run, where training is the point
P = "{d}/bc.npz"

MISTAKES = [
    # --- predict: the parameters file
    (["predict", "{d}/w2_two_rows.npz"], "b2 has shape (1, 1), but W2 has shape (2, 16): b2"),
    (["predict", "{d}/w1_five_features.npz"], "takes 5 features (W1 has shape (16, 5)), but the"),
    (["predict", "{d}/w1_five_features.npz", "--csv", "{d}/rows.csv"], "--csv {d}/rows.csv has 30"),
    (["predict", "{d}/huge_W1.npz"], "W1 has shape (1000000, 1000000)), more than the"),
    (["predict", "{d}/bad_header.npz"], "b1: malformed .npy header"),
    (["predict", "{d}/garbage.npz"], "W2: malformed .npy header (the magic string is not correct"),
    (["predict", "{d}/pickled.npz"], "W1 must be float32 or float64, got object"),
    (["predict", "{d}/nan_weight.npz"], "b2 holds values that are not finite numbers"),
    (["predict", "{d}/three_d.npz"], "b1 must be a non-empty 2-D array, got shape (16, 1, 1)"),
    (["predict", "{d}/truncated.npz"], "W1: truncated: 100 of 3840 bytes"),
    (["predict", "{d}/too_long.npz"], "b2: more bytes than its header's shape (1, 1) holds"),
    (["predict", "{d}/crc.npz"], "W1: damaged archive member (Bad CRC-32"),
    (["predict", "{d}/not_a_zip.npz"], "not an .npz archive"),
    (["predict", "{d}/rows.csv"], "not an .npz archive"),
    (["predict", "{d}/unknown_set.npz"], "unknown data set 'iris'; give the rows with --csv"),
    (["predict", "{d}/missing.npz"], "{d}/missing.npz: no such file"),
    (["predict", "{d}/a_folder"], "{d}/a_folder: is a directory, not a parameters file"),
    (["predict", "{d}/fifo"], "{d}/fifo: not a regular file"),
    # --- predict: the rows
    (["predict", P, "--csv", "{d}/empty.csv"], "the file is empty: no rows to classify"),
    (["predict", P, "--csv", "{d}/blank.csv"], "the file is empty: no rows to classify"),
    (["predict", P, "--csv", "{d}/nan.csv"], "row 2, column 30: 'nan' is not a finite number"),
    (["predict", P, "--csv", "{d}/inf.csv"], "row 3, column 2: '-inf' is not a finite number"),
    (["predict", P, "--csv", "{d}/huge.csv"], "row 1, column 1: '1e400' is not a finite number"),
    (["predict", P, "--csv", "{d}/text.csv"], "row 1, column 2: 'abc' is not a number"),
    (["predict", P, "--csv", "{d}/ragged.csv"], "row 2 has 3 values, the first row 30"),
    (["predict", P, "--csv", "{d}/narrow.csv"], "takes 30 features (W1 has shape (16, 30)), but"),
    (["predict", P, "--csv", "{d}/binary.csv"], "not a text file (not UTF-8)"),
    (["predict", P, "--csv", "{d}/a_folder"], "--csv {d}/a_folder: is a directory"),
    (["predict", P, "--csv", "{d}/nowhere.csv"], "--csv {d}/nowhere.csv: no such file"),
    (["predict", P, "--seed", "3"], "--seed: the shipped breast_cancer data is read as it is"),
    (["predict", P, "--csv", "{d}/rows.csv", "--seed", "0"], "--seed: --csv {d}/rows.csv is read"),
    # --- options, checked before any work
    (["train", "--seed", "-1"], "argument --seed: must be 0 or a positive whole number, got -1"),
    (["compare", "--seed", "-2"], "argument --seed: must be 0 or a positive"),
    (["predict", P, "--seed", "-3"], "argument --seed: must be 0 or a positive"),
    (["graph", "--seed", "-4", "--out", "{d}/g"], "argument --seed: must be 0 or a positive"),
    (["train", "--seed", "1.5"], "argument --seed: must be a whole number, got '1.5'"),
    (["train", "--data", "moons", "--m", "10000000000"], "would need about"),
    (["train", "--hidden", "1000000"], "hidden=1000000, m=569 would need about"),
    (["compare", "--data", "xor", "--m", "100000000"], "this command stops at 1 GiB"),
    (["graph", "--m", "100000000", "--out", "{d}/g"], "would need about"),
    (["train", "--epochs", "2000000"], "argument --epochs: at most 1,000,000"),
    (["demo", "--epochs", "2000000", "--out", "{d}/demo"], "argument --epochs: at most"),
    (["train", "--lr", "inf"], "argument --lr: must be a positive finite number, got inf"),
    (["train", "--lr", "nan"], "argument --lr: must be a positive finite number, got nan"),
    (["train", "--lr", "-0.1"], "argument --lr: must be a positive finite number"),
    (["train", "--lr", "fast"], "argument --lr: must be a number, got 'fast'"),
    (["train", "--print-every", "-1"], "argument --print-every: must be 0 or a positive"),
    (
        [*T, "--plot", "{d}/out.foo"],
        "--plot {d}/out.foo: the extension .foo is not one it writes; use one of",
    ),
    ([*T, "--plot", "{d}/out"], "--plot {d}/out: it has no extension; use one of"),
    ([*T, "--plot", "{d}/nowhere/out.png"], "the folder {d}/nowhere does not exist"),
    ([*T, "--plot", "{d}/pics.png"], "--plot {d}/pics.png: refusing to replace a directory"),
    ([*T, "--save", "{d}/nowhere/p.npz"], "--save {d}/nowhere/p.npz: the folder {d}/nowhere does"),
    ([*T, "--save", "{d}/fifo"], "--save {d}/fifo: refusing to replace a FIFO"),
    ([*T, "--save", "{d}/link.npz"], "--save {d}/link.npz: refusing to replace a symbolic link"),
    ([*T, "--save", "{d}/a_folder"], "--save {d}/a_folder: refusing to replace a directory"),
    ([*T, "--save", "/dev/null"], "--save /dev/null: refusing to replace a device"),
    (["graph", "--out", "{d}/bc.npz"], "--out {d}/bc.npz: {d}/bc.npz exists and is not a folder"),
    (["demo", "--out", "{d}/bc.npz/sub"], "--out {d}/bc.npz/sub: {d}/bc.npz exists and is not a"),
    # --- long options are taken whole, never abbreviated
    (["train", "--layer", "2,4,1"], "unrecognized arguments: --layer 2,4,1"),
    (["compare", "--bat", "8"], "unrecognized arguments: --bat 8"),
    (["derive", "--lo", "composed"], "unrecognized arguments: --lo composed"),
    (["predict", P, "--cs", "{d}/rows.csv"], "unrecognized arguments: --cs {d}/rows.csv"),
    (["graph", "--rank", "TB", "--out", "{d}/g"], "unrecognized arguments: --rank TB"),
    (["demo", "--epoch", "3", "--out", "{d}/demo"], "unrecognized arguments: --epoch 3"),
    (["--deb", "derive"], "unrecognized arguments: --deb"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["bench"], "invalid choice: 'bench'"),
    # --- the network, for every command that builds one (one parser, one check)
    (["graph", "--layers", "2,0,1", "--out", "{d}/g"], "argument --layers: must be two or more"),
    (["graph", "--layers", "2", "--out", "{d}/g"], "argument --layers: must be two or more"),
    (["graph", "--layers", "3,4,1", "--out", "{d}/g"], "xor needs 2 inputs and 1 output(s), so"),
    (["graph", "--data", "digits", "--layers", "64,8,1"], "must start with 64 and end with 10"),
    (["graph", "--layers", "2,4,1", "--hidden", "3"], "give either --layers or --hidden, not both"),
    (["graph", "--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
    (["graph", "--layers", "2,50000000,1", "--out", "{d}/g"], "hidden=50000000, m=4 would need"),
    (["graph", "--layers", "2," + "1," * 100 + "1"], "at most 100 layers (101 sizes), got 101"),
    ([*T, "--layers", "2," + "1," * 100 + "1"], "--layers: at most 100 layers (101 sizes), got"),
    ([*T, "--layers", "2,8,2", "--save", "{d}/p.npz"], "must start with 2 and end with 1; got 2,8"),
    (["compare", "--layers", "30,4,1", "--data", "digits"], "digits needs 64 inputs and 10 output"),
]


@pytest.mark.parametrize("args, message", MISTAKES, ids=[" ".join(a)[:60] for a, _ in MISTAKES])
def test_every_mistake_is_one_line_exit_2_and_touches_nothing(args, message, files, capsys):
    args = [a.format(d=files) for a in args]
    message = message.format(d=files)
    before = _snapshot(files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(args)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # found before any work
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygrad-fnn: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert [str(w.message) for w in caught] == []
    assert _snapshot(files) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_composed_loss_going_nan_stops_at_once_with_a_hint(tmp_path):
    """Before: 3,000 epochs of `Cost: nan`, then exit code 0. Now: one line, exit code 2."""
    args = ["train", "--data", "xor", "--loss", "composed", "--lr", "50", "--epochs", "3000"]
    result = run_cli(*args, "--save", "p.npz", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("tinygrad-fnn: error: training stopped at epoch ")
    assert "the cost became nan" in lines[0] and "--loss fused" in lines[0]
    assert "nan" not in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing saved


def test_exit_codes_from_a_real_process(tmp_path):
    bad = run_cli("train", "--plot", "x.doc", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    good = run_cli("--help", cwd=tmp_path)
    assert good.returncode == 0 and good.stderr == ""


def test_a_broken_pipe_exits_quietly(tmp_path):
    """`tinygrad-fnn predict ... | head -1`: no traceback, no 'Exception ignored' at exit."""
    params = tmp_path / "p.npz"
    save_parameters(params, _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
    rows = tmp_path / "rows.csv"
    np.savetxt(rows, np.random.default_rng(0).standard_normal((20_000, 2)), delimiter=",")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_fnn", "predict", str(params), "--csv", str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline() == b"class probability\n"
    proc.stdout.close()  # the reader goes away with most of the 20,000 lines unread
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert err == b""


def test_help_lists_only_commands_that_exist(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    listed = text.split("{", 1)[1].split("}", 1)[0].split(",")
    assert sorted(listed) == sorted(cli.COMMANDS)
    assert "bench" not in text
    assert "--debug" in text


def test_an_unexpected_error_is_one_line_exit_1_and_debug_shows_it(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("a bug in the command")

    monkeypatch.setitem(cli.COMMANDS, "compare", broken)
    assert main(["compare"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected RuntimeError: a bug in the command" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="a bug in the command"):
        main(["--debug", "compare"])


@pytest.mark.parametrize("where", ["params", "csv"])
def test_unreadable_files_say_permission_denied(where, files, monkeypatch, capsys):
    """Run as root, chmod cannot make a file unreadable, so the refusal is simulated."""
    from pathlib import Path

    from tinygrad_fnn import persist

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    if where == "params":
        monkeypatch.setattr(persist, "open", refuse, raising=False)
        args, expected = ["predict", f"{files}/bc.npz"], f"{files}/bc.npz: permission denied"
    else:
        monkeypatch.setattr(Path, "open", refuse)
        args = ["predict", f"{files}/bc.npz", "--csv", f"{files}/rows.csv"]
        expected = f"--csv {files}/rows.csv: permission denied"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tinygrad-fnn: error: {expected}"]


def test_only_the_needed_members_are_read(files):
    """A member nobody needs may claim any shape: it is never parsed, let alone allocated."""
    tracemalloc.start()
    try:
        saved = load_parameters(files / "huge_unused.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20
    reference = load_parameters(files / "bc.npz")
    for k in ("W1", "b1", "W2", "b2", "mean", "std"):
        assert np.array_equal(saved[k], reference[k])


def test_a_header_over_the_ceiling_is_refused_before_reading(tmp_path, monkeypatch):
    """The claimed size is checked against MEMORY_CEILING before any data is read."""
    good = tmp_path / "good.npz"
    save_parameters(good, _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
    hidden = MEMORY_CEILING // (8 * 2) + 1  # W1 alone one row over the ceiling
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, {"W1.npy": _npy_header((hidden, 2))})
    from tinygrad_fnn import persist

    monkeypatch.setattr(persist.ParameterFile, "_data", None)  # any data read would fail
    with pytest.raises(ParameterFileError, match="more than the 1,073,741,824"):
        persist.ParameterFile(bad)


def test_print_every_zero_silences_the_epoch_lines(capsys):
    assert main(["train", "--data", "xor", "--epochs", "150", "--print-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "Epoch" not in out and "train accuracy:" in out
    assert main(["train", "--data", "xor", "--epochs", "150", "--print-every", "50"]) == 0
    out = capsys.readouterr().out
    assert [line.split(",")[0] for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch 0",
        "Epoch 50",
        "Epoch 100",
    ]


@pytest.mark.parametrize("seed", range(4))
def test_train_stops_before_a_nan_update(seed):
    """fnn.train raises at the first non-finite cost, naming the epoch and the fused loss,
    and the parameters are those of the step before (all finite)."""
    ds = datasets.load("xor", seed=seed)
    params = fnn.initialize_parameters(ds.n_x, 8, seed=seed)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(fnn.NonFiniteCostError, match=r"^epoch \d+: .*loss='fused'") as e:
            fnn.train(
                ds.X_train,
                ds.Y_train,
                params,
                3000,
                50.0,
                "composed",
                None,
                callback=lambda i, c: seen.append(c),
            )
    epoch = int(str(e.value).split()[1].rstrip(":"))
    assert epoch == len(seen) and all(np.isfinite(seen))
    assert all(np.isfinite(p.data).all() for p in params.values())
    # the same run with the fused loss trains to the end, every cost finite
    params = fnn.initialize_parameters(ds.n_x, 8, seed=seed)
    costs = fnn.train(ds.X_train, ds.Y_train, params, epoch + 5, 50.0, "fused", None)
    assert len(costs) == epoch + 5 and np.isfinite(costs).all()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_a_saved_file_follows_the_umask(umask, tmp_path):
    old = os.umask(umask)
    try:
        save_parameters(tmp_path / "p.npz", _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
        (tmp_path / "plain").write_bytes(b"")  # what open() makes under the same umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "p.npz").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_save_removes_its_temporary_file(failing, tmp_path, monkeypatch):
    target = tmp_path / "p.npz"
    target.write_bytes(b"old")

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, explode)
    with pytest.raises(OSError, match="No space left"):
        save_parameters(target, _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"] and target.read_bytes() == b"old"


def test_save_refuses_what_is_not_a_regular_file_from_python_too(files, tmp_path):
    for name, kind in [
        ("fifo", "a FIFO"),
        ("link.npz", "a symbolic link"),
        ("a_folder", "a directory"),
    ]:
        before = _snapshot(files)
        with pytest.raises(ParameterFileError, match=f"refusing to replace {kind}"):
            save_parameters(files / name, _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
        assert _snapshot(files) == before
    existing = tmp_path / "existing.npz"
    existing.write_bytes(b"old bytes")
    save_parameters(existing, _params(2, 4), np.zeros((2, 1)), np.ones((2, 1)), "xor")
    assert load_parameters(existing)["dataset"] == "xor"  # a regular file is replaced


@pytest.mark.parametrize(
    "n_x, hidden, m, dtype",
    [
        (2, 64, 20_000, np.float64),
        (2, 256, 4000, np.float32),
        (2, 4000, 100, np.float64),
        (30, 1000, 569, np.float64),
        (30, 500, 569, np.float32),
        (2, 8, 400, np.float64),
    ],
)
def test_the_memory_estimate_bounds_what_training_allocates(n_x, hidden, m, dtype):
    """The ceiling is honest only if the estimate bounds the real peak (data, a few training
    steps, a prediction), and useful only if it is not wildly above it."""
    tracemalloc.start()
    try:
        ds = datasets.load("breast_cancer" if n_x == 30 else "moons", m=m, dtype=dtype)
        params = fnn.initialize_parameters(n_x, hidden, seed=0, dtype=dtype)
        fnn.train(ds.X_train, ds.Y_train, params, 3, 0.1, "composed", None)
        fnn.predict_proba(ds.X_train, params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = cli.estimate_bytes(n_x, hidden, m, np.dtype(dtype).itemsize)
    assert peak <= estimate <= 3 * peak + cli.BASE_BYTES


@pytest.mark.parametrize(
    "layers, m, dtype, activation",
    [
        ([2, 1500, 1500, 1], 64, np.float64, "tanh"),
        ([2, 1500, 1500, 1], 64, np.float32, "relu"),
        ([2, 600, 600, 600, 1], 128, np.float32, "sigmoid"),
        ([64, 800, 800, 10], 300, np.float64, "leaky_relu"),
        ([2] + [50] * 8 + [1], 320, np.float64, "tanh"),
    ],
)
def test_the_memory_estimate_bounds_what_training_a_deeper_network_allocates(
    layers, m, dtype, activation
):
    """Deeper networks: the weights between hidden layers can outweigh the intermediates."""
    tracemalloc.start()
    try:
        ds = datasets.load("digits" if layers[0] == 64 else "moons", m=m, dtype=dtype)
        X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
        params = fnn.initialize_parameters(layers, seed=0, dtype=dtype, activation=activation)
        fnn.train(X, Y, params, 3, 0.1, "fused", None, activation=activation)
        fnn.train(X, Y, params, 2, 0.1, "fused", None, activation=activation, compiled=False)
        fnn.predict_proba(X, params, activation)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    itemsize, hidden = np.dtype(dtype).itemsize, sum(layers[1:-1])
    count = sum(p.size for p in params.values())
    assert cli.parameter_count(layers) == count
    estimate = cli.estimate_bytes(layers[0], hidden, X.shape[1], itemsize, count)
    assert peak <= estimate <= 3 * peak + cli.BASE_BYTES


def test_a_csv_over_the_size_ceiling_is_refused_unread(files, tmp_path, capsys):
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.truncate(cli.MAX_CSV_BYTES + 1)  # sparse: nothing is really written
    assert main(["predict", str(files / "bc.npz"), "--csv", str(big)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tinygrad-fnn: error: --csv {big}: larger than 64 MiB"]


def test_the_plot_extension_names_its_format(tmp_path, capsys):
    """PNG is tested in test_cli.py; SVG here, and the others are matplotlib's own."""
    ext, magic = "svg", b"<?xml"
    plot = tmp_path / f"cost.{ext}"
    assert main(["train", "--data", "xor", "--epochs", "3", "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(magic)
    assert ext in cli._plot_formats()


@pytest.mark.parametrize("name", datasets.NAMES)
@pytest.mark.parametrize("m", [None, 7, 1000])
def test_the_sizes_known_without_loading_are_the_data_sets_sizes(name, m):
    """The memory check runs before any data is built, from shapes the CLI knows by heart."""
    if name == "breast_cancer":
        X, _, _ = datasets.load_breast_cancer()
    elif name == "digits":
        X, _ = datasets.load_digits()
    else:
        X, _ = datasets.GENERATED[name](**({} if m is None else {"m": m}))
    assert cli._data_shape(name, m) == X.shape
    assert cli._data_outputs(name) == datasets.load(name, m=m).n_y


def test_a_fused_loss_that_overflows_stops_too(capsys):
    code = main(["train", "--data", "xor", "--epochs", "50", "--lr", "1e300"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("tinygrad-fnn: error: training stopped at epoch ")
    assert line.endswith("the parameters overflowed; try a smaller learning rate")
    assert "Cost: nan" not in out
