"""The README as a new user reads it: its commands parse, its tables are tables, its Layout names
every module, its training table is what `tinygrad-fnn train` prints, and its word on dtypes."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from tinygrad_fnn import Tensor, no_grad
from tinygrad_fnn.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_commands() -> list[str]:
    """Every `tinygrad-fnn …` line in the README's sh blocks, continuations joined, comments cut."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            if "tinygrad-fnn " in line:
                commands.append("tinygrad-fnn " + line.rsplit("tinygrad-fnn ", 1)[1])
    return commands


def _inline_commands() -> list[str]:
    """Every complete `tinygrad-fnn …` command quoted in the text (not the ones with … or <…>)."""
    spans = (" ".join(s.split()) for s in re.findall(r"`(tinygrad-fnn [^`]*)`", README))
    return [s for s in spans if "…" not in s and "<" not in s]


def test_the_readme_quotes_commands_in_blocks_and_in_the_text():
    blocks, inline = _block_commands(), _inline_commands()
    assert "tinygrad-fnn demo" in blocks  # the quick start
    assert len(blocks) >= 10 and len(inline) >= 8
    assert "tinygrad-fnn compare --layers 30,16,8,1 --activation tanh" in inline  # across a line


@pytest.mark.parametrize("command", sorted(set(_block_commands() + _inline_commands())))
def test_every_readme_command_is_one_the_cli_accepts(command):
    """A renamed or removed option in a README command is caught here, not by a new user."""
    args = shlex.split(command)[1:]
    parsed = build_parser().parse_args(args)
    assert parsed.command == args[0]


def test_every_readme_table_has_its_header_separator():
    """A Markdown table without its `|---|` line is shown as plain text."""
    tables = 0
    lines = README.splitlines()
    for i, line in enumerate(lines):
        starts = line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|"))
        if starts:
            tables += 1
            assert i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]), line
    assert tables >= 8


def test_the_layout_names_every_module():
    layout = README.split("## Layout")[1].split("\n## ")[0]
    modules = sorted(p.name for p in (ROOT / "tinygrad_fnn").glob("*.py"))
    missing = [m for m in modules if m not in ("__init__.py", "__main__.py") and m not in layout]
    assert not missing


@pytest.mark.parametrize(
    "data",
    [np.float32, np.float16, np.int8, np.int64, np.uint64, bool],
)
def test_data_of_another_real_type_given_without_dtype_becomes_float64(data):
    values = np.array([[0, 1], [1, 0]]).astype(data)
    t = Tensor(values)
    assert t.dtype == np.float64
    assert t.data.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert Tensor(values.tolist()).dtype == np.float64
    assert Tensor(values, dtype=np.float32).dtype == np.float32


def _training_table() -> list[list[str]]:
    section = README.split("## Training")[1].split("```")[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_training_table_lists_the_six_data_sets():
    assert [row[0].split("`")[1] for row in _training_table()] == [
        "breast_cancer",
        "xor",
        "moons",
        "circles",
        "spirals",
        "digits",
    ]


@pytest.mark.parametrize("row", _training_table(), ids=lambda row: row[0].split("`")[1])
def test_the_training_table_is_what_train_prints_with_its_defaults(row, capsys):
    """Each row: the data set's defaults (examples, hidden units, epochs, lr) and the accuracies
    that `tinygrad-fnn train --data NAME` prints with them, seed 0."""
    name = row[0].split("`")[1]
    examples, hidden, epochs, lr, train, test = row[1:]
    assert main(["train", "--data", name, "--print-every", "0"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    m_train, m_test = re.search(r"m=(\d+) train / (\d+) test", header).groups()
    assert int(m_train) + int(m_test) == int(examples.replace(",", ""))
    assert f"hidden={hidden}," in header
    assert f"epochs={epochs.replace(',', '')}," in header
    assert f"lr={float(lr)}," in header and "loss=fused" in header
    printed = dict(re.findall(r"(train|test) accuracy:\s+([\d.]+)%", out))
    assert float(printed["train"]) == pytest.approx(float(train.rstrip("%")), abs=0.05)
    assert float(printed["test"]) == pytest.approx(float(test.rstrip("%")), abs=0.05)


def test_every_file_the_readme_links_or_names_as_a_path_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    paths = re.findall(r"`((?:tinygrad_fnn|examples|tests|benchmarks|viz)/[\w./]+)`", README)
    assert len(links) >= 4 and len(paths) >= 10
    missing = [p for p in links + paths if not (ROOT / p.rstrip("/")).exists()]
    assert not missing


def test_bench_step_quick_measures_memory_at_the_two_large_sizes_only(monkeypatch, capsys):
    """The Speed section: `--quick` leaves the memory column empty at the three small sizes.
    The large sizes are shrunk here to XOR's shape, so only the rule by name is exercised."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_step", ROOT / "benchmarks/bench_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert list(bench.SIZES) == ["xor", "moons", "breast_cancer", "medium", "large"]
    for size in bench.SIZES:
        monkeypatch.setitem(bench.SIZES, size, (2, 4, 4))
    quick = bench.run(["xor", "moons", "breast_cancer", "medium", "large"], ["float64"], [], True)
    assert ["memory" in row for row in quick] == [False, False, False, True, True]
    printed = capsys.readouterr().out.splitlines()
    assert [line.endswith("| – |") for line in printed] == [True, True, True, False, False]
    full = bench.run(["xor"], ["float64"], [], False)
    assert full[0]["memory"]["compiled"] < full[0]["memory"]["engine"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_compiled_cost_is_a_tensor_over_a_new_array_at_each_call(dtype):
    """The compile section: the cost returned is a Tensor, as the eager cost is, and each call's
    is its own array (one kept is never overwritten by the next call)."""
    from tinygrad_fnn import compile, fnn

    rng = np.random.default_rng(0)
    X = fnn.as_tensor(rng.standard_normal((3, 8)), dtype=dtype)
    Y = fnn.as_tensor((rng.random((1, 8)) > 0.5).astype(float), dtype=dtype, name="Y")
    params = fnn.initialize_parameters(3, 4, seed=0, dtype=dtype)
    eager = {k: Tensor(p.data.copy(), requires_grad=True, dtype=dtype) for k, p in params.items()}
    step = compile(lambda: fnn.cost_of(fnn.forward_logits(X, params), Y, "fused"))
    costs, values = [], []
    for _ in range(4):
        cost = step()
        step.sgd(0.5)
        expected = fnn.cost_of(fnn.forward_logits(X, eager), Y, "fused")
        expected.backward()
        with no_grad():
            for p in eager.values():
                p -= 0.5 * p.grad
                p.grad = None
        for p in params.values():
            p.grad = None
        assert isinstance(cost, Tensor) and cost.dtype == dtype and cost.shape == ()
        assert cost.data.tobytes() == expected.data.tobytes()
        costs.append(cost)
        values.append(cost.data.copy())
    for i, cost in enumerate(costs):
        assert cost.data.tobytes() == values[i].tobytes()  # not overwritten by a later call
        assert not any(np.shares_memory(cost.data, other.data) for other in costs[:i])


@pytest.mark.parametrize(
    "loss, lr, why",
    [
        ("composed", "50", "use the fused loss"),
        ("fused", "1e300", "try a smaller learning rate"),
        ("composed", "1e300", "try a smaller learning rate"),  # overflow, not log(0)
    ],
)
def test_a_cost_gone_nan_stops_training_with_exit_code_2_and_writes_nothing(
    loss, lr, why, tmp_path, capsys
):
    """The Training section: one line that says why, exit code 2, no parameters and no plot."""
    save, plot = tmp_path / "p.npz", tmp_path / "p.png"
    args = ["train", "--data", "xor", "--loss", loss, "--lr", lr, "--epochs", "3000"]
    code = main([*args, "--print-every", "1", "--save", str(save), "--plot", str(plot)])
    out, err = capsys.readouterr()
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("tinygrad-fnn: error: training stopped at epoch ") and why in line
    assert "nan" not in out and "inf" not in out
    assert list(tmp_path.iterdir()) == []


def test_compare_gradients_in_python_is_what_the_command_prints(capsys):
    """The comparison section: `.table()` is `tinygrad-fnn compare`'s table (the fused half here,
    whose rows are bit-identical on every machine), one row by name, and both gradient sets."""
    from tinygrad_fnn import compare_gradients, datasets, fnn

    data = datasets.load("breast_cancer", seed=0)
    X, Y = data.X_train[:, :256], data.Y_train[:, :256]
    result = compare_gradients(X, Y, fnn.initialize_parameters(data.n_x, 16, seed=0), "fused")
    assert main(["compare", "--loss", "fused"]) == 0
    assert result.table() == capsys.readouterr().out.strip()
    row = result["dW1"]
    assert (row.max_abs, row.relative, row.max_ulp, row.identical) == (0.0, 0.0, 0, True)
    assert set(result.engine) == set(result.manual) >= {"dW1", "db1", "dW2", "db2", "dZ2"}
    for name, gradient in result.manual.items():
        assert np.array_equal(result.engine[name], gradient), name


def _quoted_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z_]\w*", " ".join(re.findall(r"`([^`]*)`", text))))


def test_the_engine_section_lists_methods_the_tensor_has():
    """The Engine section's lists: every method named is one a Tensor has, and each function
    beside them is exported by the package."""
    import tinygrad_fnn

    for label in ("- Elementwise methods:", "- Reductions:", "- Shape:"):
        line = README.split(label)[1].split("\n- ")[0]
        methods, _, functions = line.partition(";")
        names = _quoted_words(methods) - {"ddof"}
        assert len(names) >= 6, label
        missing = [n for n in names if not hasattr(Tensor, n)]
        assert not missing, (label, missing)
        exported = _quoted_words(functions) - {"cond", "x", "y"}
        assert all(hasattr(tinygrad_fnn, n) for n in exported), (label, exported)


def test_what_dispatches_is_the_dispatch_tables():
    """The NumPy section's list of ufuncs and functions is UFUNCS and FUNCTIONS, no more, no less
    (the comparisons are named as a group)."""
    from tinygrad_fnn.numpy_dispatch import FUNCTIONS, UFUNCS

    listed = README.split("What dispatches")[1].split("Everything else")[0]
    words = _quoted_words(listed) - {"tinygrad_fnn", "numpy_dispatch", "py"}
    comparisons = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}
    assert "the comparisons" in listed
    assert words == {u.__name__ for u in UFUNCS} - comparisons | {f.__name__ for f in FUNCTIONS}


def test_predict_without_csv_measures_a_fresh_draw_of_the_default_size(tmp_path, capsys):
    """The Training section: for a generated set, `predict` draws the default 400 examples with its
    own --seed, whatever `train --m/--seed` were; the accuracy is the hand forward pass's."""
    from tinygrad_fnn import datasets, manual
    from tinygrad_fnn.persist import load_parameters

    save = tmp_path / "p.npz"
    args = ["train", "--data", "moons", "--m", "120", "--seed", "5", "--epochs", "60"]
    assert main([*args, "--hidden", "4", "--print-every", "0", "--save", str(save)]) == 0
    capsys.readouterr()
    saved = load_parameters(save)
    arrays = {k: saved[k].astype(np.float64) for k in ("W1", "b1", "W2", "b2")}
    printed = []
    for seed in (None, 0, 7):
        assert main(["predict", str(save), *([] if seed is None else ["--seed", str(seed)])]) == 0
        X, Y = datasets.make_moons(seed=0 if seed is None else seed)
        A2, _ = manual.forward_propagation(
            datasets.standardize(X, saved["mean"], saved["std"]), arrays
        )
        accuracy = np.mean((A2 > 0.5) == (Y > 0.5))
        out = capsys.readouterr().out
        assert out == f"moons: accuracy {accuracy:.1%} on all 400 examples\n"
        printed.append(out)
    assert printed[0] == printed[1] and printed[2] != printed[0]  # --seed draws another set


def test_logistic_regression_does_as_well_as_the_network_on_breast_cancer(capsys):
    """The Training section's comparison: `--layers 30,1` at seed 0 as printed by `train`, and
    both networks' mean test accuracy over seeds 0 to 9, as the README states them."""
    from tinygrad_fnn import datasets, fnn

    said = re.search(
        r"\(`--layers 30,1`\), does as well or better on this data: ([\d.]+)%\s+at seed 0, and "
        r"([\d.]+)% against the network's ([\d.]+)% on average over seeds 0 to 9",
        README,
    )
    assert said, "the README's sentence changed"
    at_seed_0, logistic_mean, network_mean = (float(x) / 100 for x in said.groups())
    assert main(["train", "--data", "breast_cancer", "--layers", "30,1", "--print-every", "0"]) == 0
    printed = re.search(r"test accuracy:\s+([\d.]+)%", capsys.readouterr().out).group(1)
    assert float(printed) / 100 == pytest.approx(at_seed_0, abs=5e-4)
    means = []
    for layers in ([30, 1], [30, 16, 1]):
        accuracies = []
        for seed in range(10):
            data = datasets.load("breast_cancer", seed=seed)
            parameters = fnn.initialize_parameters(layers, seed=seed)
            fnn.train(data.X_train, data.Y_train, parameters, 2000, 0.1, print_every=0)
            accuracies.append(fnn.accuracy(data.X_test, data.Y_test, parameters))
        means.append(np.mean(accuracies))
    assert means == pytest.approx([logistic_mean, network_mean], abs=5e-4)
    assert means[0] >= means[1]


def test_the_db2_the_breast_cancer_graph_draws_is_far_in_ulps_yet_within_the_bound(tmp_path):
    """The 'what holds' section: the db2 of `graph --data breast_cancer --hidden 4 --m 8 --loss
    composed` is thousands of ULPs from the formula (its terms cancel) yet a fraction of eps·Ĝ.
    The last bits of a product depend on the BLAS kernel, so the counts need only be of the
    README's order; the drawn label must be the comparison's own number."""
    from tinygrad_fnn import compare_gradients, datasets, fnn

    said = re.search(
        r"draws is ([\d,]+) ULP \(([\d.e-]+) relative\) from the formula, "
        r"yet only\s+([\d.]+)·eps·Ĝ",
        README,
    )
    assert said, "the README's sentence changed"
    ulps, relative, ratio = int(said[1].replace(",", "")), float(said[2]), float(said[3])
    args = ["graph", "--out", str(tmp_path), "--formats", "", "--data", "breast_cancer"]
    assert main([*args, "--hidden", "4", "--m", "8", "--loss", "composed"]) == 0
    ds = datasets.load("breast_cancer", m=8, test_fraction=0.0, seed=0)
    parameters = fnn.initialize_parameters(ds.n_x, 4, ds.n_y, seed=0)
    arrays = {k: p.data for k, p in parameters.items()}
    result = compare_gradients(ds.X_train[:, :8], ds.Y_train[:, :8], arrays, "composed")
    db2 = result["db2"]
    drawn = (tmp_path / "backward.dot").read_text()
    assert "db2 (tutorial)\\n(1, 1)" in drawn and f"vs formula: {db2.max_ulp} ULP" in drawn
    assert ulps / 4 <= db2.max_ulp <= ulps * 4 and db2.max_ulp > 1000
    assert relative / 10 <= db2.relative <= relative * 10
    assert result.rounding_ratio("db2") == pytest.approx(ratio, abs=0.1)
    assert result.rounding_ratio("db2") <= 8 + 6  # the (m + 6)·eps·Ĝ bound, m = 8
