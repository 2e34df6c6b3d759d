"""The command line and the example scripts, run as a user would run them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import datasets, fnn
from tinygrad_fnn.cli import main
from tinygrad_fnn.persist import ParameterFileError, load_parameters, save_parameters

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tinygrad_fnn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_train_prints_costs_and_accuracy_and_saves_and_plots(tmp_path, capsys):
    save, plot = tmp_path / "p.npz", tmp_path / "moons.png"
    code = main(
        ["train", "--data", "moons", "--epochs", "300", "--save", str(save)] + ["--plot", str(plot)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Epoch 0, Cost: 0.69" in out and "Epoch 200, Cost:" in out
    assert "train accuracy:" in out and "test accuracy:" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_parameters(save)
    assert saved["W1"].shape == (16, 2) and saved["dataset"] == "moons"


def test_train_in_float32_with_the_composed_loss(capsys):
    assert (
        main(
            [
                "train",
                "--data",
                "xor",
                "--epochs",
                "200",
                "--dtype",
                "float32",
                "--loss",
                "composed",
            ]
        )
        == 0
    )
    assert "dtype=float32" in capsys.readouterr().out


def test_predict_with_a_saved_file_and_a_csv(tmp_path, capsys):
    save = tmp_path / "bc.npz"
    assert main(["train", "--epochs", "300", "--save", str(save)]) == 0
    capsys.readouterr()
    assert main(["predict", str(save)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("breast_cancer: accuracy ")
    assert float(line.split("accuracy ")[1].split("%")[0]) > 95
    X, _, _ = datasets.load_breast_cancer()
    csv = tmp_path / "rows.csv"
    np.savetxt(csv, X[:, :3].T, delimiter=",")
    assert main(["predict", str(save), "--csv", str(csv)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == "class probability" and len(rows) == 3
    for row in rows:
        label, probability = row.split()
        assert label == str(int(float(probability) > 0.5))


@pytest.mark.parametrize("seed", [None, 0, 3, 11])
def test_predict_seeds_a_generated_data_set(tmp_path, capsys, seed):
    """`predict --seed` draws the generated data set with that seed (0 when not given): the
    accuracy printed is the saved network's on exactly those examples."""
    save = tmp_path / "moons.npz"
    assert main(["train", "--data", "moons", "--epochs", "50", "--save", str(save)]) == 0
    capsys.readouterr()
    assert main(["predict", str(save), *([] if seed is None else ["--seed", str(seed)])]) == 0
    printed = capsys.readouterr().out.strip()
    saved = load_parameters(save)
    X, Y = datasets.GENERATED["moons"](seed=seed or 0)
    X = datasets.standardize(X, saved["mean"], saved["std"])
    params = {k: fnn.as_tensor(saved[k], np.float64, k) for k in ("W1", "b1", "W2", "b2")}
    probs = fnn.predict_proba(X, params, saved["activation"])
    accuracy = float(np.mean((probs[0] > 0.5) == (Y[0] == 1)))
    assert printed == f"moons: accuracy {accuracy:.1%} on all {Y.shape[1]} examples"


def test_compare_prints_both_tables(capsys):
    assert main(["compare", "--batch", "64"]) == 0
    out = capsys.readouterr().out
    assert "loss=composed" in out and "loss=fused" in out
    fused = out.split("loss=fused")[1]
    assert fused.count("| yes |") == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "-3"], "--epochs: must be a positive whole number"),
        (["train", "--data", "iris"], "invalid choice: 'iris'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required"),
        (["predict", "missing.npz"], "missing.npz: no such file"),
    ],
)
def test_cli_mistakes_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygrad-fnn: error:") and message in lines[0]


def test_corrupt_and_mismatched_files_are_one_line_errors(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W1=np.array([object()], dtype=object))
    params = {k: p.data for k, p in fnn.initialize_parameters(3, 4).items()}
    mismatched = tmp_path / "mismatched.npz"
    arrays = {**params, "W2": np.zeros((1, 5)), "mean": np.zeros((3, 1)), "std": np.ones((3, 1))}
    with open(mismatched, "wb") as f:
        np.savez(f, **arrays, dataset=np.array("xor"))
    with pytest.raises(ParameterFileError, match="not saved: W2 has shape"):
        save_parameters(tmp_path / "refused.npz", arrays, arrays["mean"], arrays["std"], "xor")
    assert not (tmp_path / "refused.npz").exists()
    for path, message in [
        (corrupt, "not an .npz archive"),
        (pickled, "not a parameters file: missing b1"),
        (mismatched, "W2 has shape (1, 5), but W1 has shape (4, 3): W2 must have 4 columns"),
    ]:
        result = run_cli("predict", str(path))
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
        with pytest.raises(ParameterFileError):
            load_parameters(path)


def test_saving_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    target = tmp_path / "params.npz"
    params = {k: p.data for k, p in fnn.initialize_parameters(3, 4).items()}
    save_parameters(target, params, np.zeros((3, 1)), np.ones((3, 1)), "xor")
    good = target.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        save_parameters(target, params, np.zeros((3, 1)), np.ones((3, 1)), "xor")
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["params.npz"]


def test_console_script_is_installed():
    result = subprocess.run(
        [Path(sys.executable).with_name("tinygrad-fnn"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "train" in result.stdout and "demo" in result.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == "tinygrad-fnn 0.1.0"


# ----- the examples, each with fewer epochs


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("xor.py", ["--epochs", "1500"], "accuracy: 100%"),
        ("two_moons.py", ["--epochs", "300", "--out", "m.png"], "decision boundary written"),
        ("breast_cancer.py", ["--epochs", "300"], "test accuracy:"),
        ("manual_vs_autodiff.py", [], "bit-identical to the formula: True"),
        ("second_derivatives.py", [], "largest difference: "),
    ],
)
def test_examples_run(script, args, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    if script == "two_moons.py":
        assert (tmp_path / "m.png").stat().st_size > 10_000
    if script == "second_derivatives.py":
        assert float(result.stdout.rsplit(": ", 1)[1]) < 1e-6


@pytest.mark.parametrize("script", ["xor.py", "two_moons.py", "breast_cancer.py", "deep_digits.py"])
@pytest.mark.parametrize("epochs", ["0", "-5"])
def test_examples_refuse_epochs_that_train_nothing(script, epochs, tmp_path):
    """`fnn.train` with no epochs returns the untrained network; an example would print its
    accuracy as if it had trained. It says so instead, as the CLI does, and writes nothing."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--epochs", epochs],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1].endswith(
        f"error: --epochs must be a positive whole number, got {epochs}"
    )
    assert list(tmp_path.iterdir()) == []


def test_demo_trains_compares_and_draws(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "300"]) == 0
    out = capsys.readouterr().out
    assert "Epoch 0, Cost:" in out and "Epoch 200, Cost:" in out
    assert "test accuracy:" in out
    assert (
        out.count("bit-identical") == 2 and out.split("loss=fused, m=256")[1].count("| yes |") == 7
    )
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("forward", "forward_grad", "backward"):
        assert (tmp_path / f"{name}.svg").exists() and (tmp_path / f"{name}.png").exists()
    assert (tmp_path / "backprop.html").exists()


def test_long_runs_show_progress_at_a_terminal(monkeypatch, capsys):
    from tinygrad_fnn import cli

    assert cli._progress(10_000) is None  # not a terminal under pytest
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    show = cli._progress(10_000)
    for epoch in range(10_000):
        show(epoch, 0.5)
    err = capsys.readouterr().err
    assert err.count("\r") == 101 and err.endswith("100% epoch 10000/10000\n")
    assert cli._progress(100) is None  # short runs stay quiet


def test_the_readme_shows_what_compare_prints(capsys):
    """The README's tables are the command's output. Rows that are bit-identical must match to
    the letter; in the others the last bits depend on the CPU's BLAS kernel, so their numbers
    need only be of the same order (tests/test_exactness.py holds them to the README's bounds)."""
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- compare:start")[1].split("-->", 1)[1].split("<!-- compare:end")[0]
    assert main(["compare"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    shown_lines = shown.strip().splitlines()
    assert len(shown_lines) == len(printed)
    for ours, theirs in zip(shown_lines, printed):
        if not ours.endswith("| no |"):
            assert ours == theirs
            continue
        a, b = ours.split(" | "), theirs.split(" | ")
        assert a[0] == b[0] and b[-1] == "no |"
        for x, y in zip(a[1:3], b[1:3]):  # max abs and relative difference
            assert float(y) <= 100 * float(x) and float(x) <= 100 * float(y)


def test_the_readme_python_examples_run():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["cost"].item() < 0.1  # the training loop trained


def _graph(out, *args):
    assert main(["graph", "--out", str(out), "--formats", "", *args]) == 0


def test_graph_layers_of_one_hidden_layer_draw_the_tutorial_network(tmp_path, capsys):
    """--layers n_x,h,1 is --hidden h: the same pictures, byte for byte."""
    _graph(tmp_path / "default")
    _graph(tmp_path / "hidden", "--hidden", "3")
    _graph(tmp_path / "layers", "--layers", "2,3,1", "--activation", "relu")
    for name in ("forward.dot", "forward_grad.dot", "backward.dot", "backprop.html"):
        default = (tmp_path / "default" / name).read_bytes()
        assert (tmp_path / "hidden" / name).read_bytes() == default
        assert (tmp_path / "layers" / name).read_bytes() == default
    assert b"n_x=2, hidden=3, m=4, loss=fused" in default


@pytest.mark.parametrize(
    "data, layers, activation, loss",
    [
        ("moons", [2, 4, 3, 1], "tanh", "fused"),
        ("xor", [2, 5, 1], "leaky_relu", "composed"),
        ("digits", [64, 6, 5, 10], "sigmoid", "fused"),
        ("circles", [2, 3, 3, 3, 1], "relu", "composed"),
    ],
)
def test_graph_draws_a_deeper_network_held_against_the_formulas(
    data, layers, activation, loss, tmp_path, capsys
):
    from tinygrad_fnn.compare import compare_gradients, gradient_names

    sizes = ",".join(map(str, layers))
    args = ["--data", data, "--layers", sizes, "--activation", activation, "--loss", loss]
    _graph(tmp_path, *args, "--seed", "2", "--m", "5")
    forward = (tmp_path / "forward.dot").read_text()
    backward = (tmp_path / "backward.dot").read_text()
    title = f"layers={sizes}, activation={activation}, m=5, loss={loss}"
    assert f"Forward pass ({title})" in forward and f"in order ({title})" in backward
    L = len(layers) - 1
    for k in range(1, L + 1):
        assert f'label="Z{k}\\n({layers[k]}, 5) float64"' in forward
        assert f'label="W{k}\\n({layers[k]}, {layers[k - 1]}) float64"' in forward
    for k in range(1, L):
        assert f'label="A{k}\\n({layers[k]}, 5) float64"' in forward
    # Every gradient the hand-derived backpropagation has, with the verdict of comparing
    # the same network on the same batch.
    ds = datasets.load(data, m=5, test_fraction=0.0, seed=2)
    params = fnn.initialize_parameters(layers, seed=2, activation=activation)
    X, Y = ds.X_train[:, :5], ds.Y_train[:, :5]
    comparison = compare_gradients(X, Y, params, loss, activation)
    verdicts = [
        "bit-identical" if d.identical else f"{d.max_ulp} ULP, rel {d.relative:.2g}"
        for d in comparison.differences.values()
    ]
    drawn = [line.split("vs formula: ")[1].split('"')[0] for line in backward.splitlines()[1:]
             if "vs formula: " in line]  # fmt: skip
    assert len(comparison.differences) == len(gradient_names(L)) == len(drawn)
    assert sorted(drawn) == sorted(verdicts)
