"""The `tinygrad-fnn` command: train, compare, predict, graph, derive and the demo.

A mistake in how it is called (an option, a file, a size) is one line on stderr and exit code
2, found before any work starts; nothing is half-written. Anything else is a bug: one line and
exit code 1, or the full traceback with --debug.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_fnn import __version__, datasets, fnn
from tinygrad_fnn.compare import compare_gradients
from tinygrad_fnn.persist import (
    MAX_LAYERS,
    MEMORY_CEILING,
    ParameterFile,
    ParameterFileError,
    check_target,
    count_layers,
    parameter_names,
    save_parameters,
)

# Settings that train each data set well with plain gradient descent: hidden size, epochs, lr.
DEFAULTS = {
    "breast_cancer": (16, 2000, 0.1),
    "digits": (64, 1000, 1.0),
    "xor": (8, 2000, 1.0),
    "moons": (16, 2000, 1.0),
    "circles": (16, 2000, 1.0),
    "spirals": (64, 10000, 3.0),
}
BREAST_CANCER_SHAPE = (30, 569)  # features, examples: known without reading the file
DIGITS_SHAPE = (64, 1797)
DIGITS_CLASSES = 10
GENERATED_FEATURES = 2
GENERATED_M = 400  # the generated sets' default size
MAX_EPOCHS = 1_000_000  # the cost of every epoch is kept (for --plot)
MAX_CSV_BYTES = 64 * 2**20
BASE_BYTES = 4 * 2**20  # reading the shipped data and the like, whatever the sizes
BOUNDARY_POINTS = 250 * 250  # the grid on which --plot draws a 2-D decision boundary
GRAPH_HIDDEN = 3  # `graph`'s hidden units: a small network keeps the pictures readable


class CliError(Exception):
    """A mistake in how the command was called: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """The command's parser and each subcommand's. A long option is taken whole: an
    abbreviation (argparse accepts `--layer` for `--layers` by default) is an unknown option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> None:  # one line, no usage dump
        raise CliError(f"{message} (see '{self.prog} --help')")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive whole number, got {text}")
    return value


def _epochs(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_EPOCHS:
        raise argparse.ArgumentTypeError(f"at most {MAX_EPOCHS:,}, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _layer_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"must be two or more positive whole numbers separated by commas, got {text}"
        )
    if len(sizes) > MAX_LAYERS + 1:  # what a parameters file can hold
        raise argparse.ArgumentTypeError(
            f"at most {MAX_LAYERS} layers ({MAX_LAYERS + 1} sizes), got {len(sizes) - 1}"
        )
    return sizes


def _add_network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--layers",
        type=_layer_list,
        help="all layer sizes n_x,h1,…,n_y, e.g. 30,16,8,1 (instead of --hidden)",
    )
    p.add_argument(
        "--activation",
        choices=fnn.ACTIVATIONS,
        default="relu",
        help="the hidden layers' activation (default relu)",
    )


def _add_data_options(p: argparse.ArgumentParser, hidden_default: int | None = None) -> None:
    p.add_argument("--data", choices=datasets.NAMES, default="breast_cancer", help="data set")
    p.add_argument(
        "--hidden",
        type=_positive_int,
        default=hidden_default,
        help="hidden units (default: per data set)",
    )
    _add_seed(p, "seed for data, split and weights")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--m", type=_positive_int, help="examples to generate (generated sets only)")


def _add_seed(p: argparse.ArgumentParser, help: str, default: int | None = 0) -> None:
    p.add_argument("--seed", type=_non_negative_int, default=default, help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinygrad-fnn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tinygrad-fnn {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train the network and report accuracy")
    _add_data_options(train)
    _add_network_options(train)
    train.add_argument(
        "--epochs", type=_epochs, help=f"default: per data set; at most {MAX_EPOCHS:,}"
    )
    train.add_argument("--lr", type=_positive_float, help="learning rate (default: per data set)")
    train.add_argument(
        "--loss",
        choices=fnn.LOSSES,
        default="fused",
        help="fused: stable cost from the logits (default); composed: the tutorial's "
        "sigmoid-then-log, which turns to nan once a prediction rounds to exactly 0 or 1",
    )
    train.add_argument(
        "--print-every",
        type=_non_negative_int,
        default=100,
        help="print the cost every N epochs (default 100; 0: never)",
    )
    train.add_argument(
        "--eager",
        action="store_true",
        help="run each step through the eager engine instead of the compiled step (same bits)",
    )
    train.add_argument("--save", type=Path, help="write the trained parameters to this .npz")
    train.add_argument(
        "--plot",
        type=Path,
        help="write the cost curve, beside the decision boundary (2-D data) or the confusion "
        "matrix and misclassified examples (several classes), to this picture; its extension "
        "is the format",
    )

    compare = sub.add_parser("compare", help="engine gradients vs the hand-derived formulas")
    _add_data_options(compare)
    _add_network_options(compare)
    compare.add_argument("--loss", choices=(*fnn.LOSSES, "both"), default="both")
    compare.add_argument(
        "--batch", type=_positive_int, default=256, help="examples to use (default 256)"
    )

    derive = sub.add_parser(
        "derive", help="print the backpropagation code the engine generates for the network"
    )
    derive.add_argument("--loss", choices=fnn.LOSSES, default="fused")
    derive.add_argument("--m", type=_positive_int, default=4, help="examples in the batch")
    derive.add_argument("--dtype", choices=("float64", "float32"), default="float64")

    predict = sub.add_parser("predict", help="classify with a saved parameters file")
    predict.add_argument("params", type=Path, help="a file written by 'train --save'")
    predict.add_argument(
        "--csv",
        type=Path,
        help="rows of raw features to classify, comma-separated, one example a line; prints "
        "'class probability' for each",
    )
    _add_seed(predict, "seed of a generated data set (default 0)", default=None)

    graph = sub.add_parser("graph", help="draw the forward and backward graphs of the network")
    graph.add_argument("--out", type=Path, default=Path("graphs"), help="folder for the pictures")
    graph.add_argument("--data", choices=datasets.NAMES, default="xor")
    graph.add_argument(
        "--hidden", type=_positive_int, help=f"hidden units (default {GRAPH_HIDDEN})"
    )
    _add_network_options(graph)
    graph.add_argument("--m", type=_positive_int, default=4, help="examples in the batch")
    graph.add_argument("--loss", choices=fnn.LOSSES, default="fused")
    _add_seed(graph, "seed for data and weights")
    graph.add_argument("--rankdir", choices=("LR", "TB"), default="LR", help="layout direction")
    graph.add_argument(
        "--formats", default="svg,png", help="comma-separated: svg, png (DOT is always written)"
    )

    demo = sub.add_parser("demo", help="train on breast cancer, compare gradients, draw graphs")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="pictures go here")
    demo.add_argument("--epochs", type=_epochs, default=2000)

    return parser


def estimate_bytes(
    n_x: int, hidden: int, m: int, itemsize: int, parameters: int | None = None
) -> int:
    """A generous estimate of the memory a training step on (n_x, m) data needs, with `hidden`
    units over all hidden layers and `parameters` weights and biases (default: the tutorial
    network's, about hidden·(n_x + 2)): the data as generated and standardised (float64), the
    (hidden, m) intermediates and their gradients, and the parameters as drawn (float64), with
    their gradients and updates (measured: up to about twice the real peak)."""
    if parameters is None:
        parameters = hidden * (n_x + 2)
    return (
        BASE_BYTES
        + 8 * (4 * n_x * m + 8 * m)
        + itemsize * 8 * hidden * m
        + (8 * itemsize + 8) * parameters
    )


def parameter_count(layers: Sequence[int]) -> int:
    """How many numbers W1, b1, …, WL, bL of a network with these layer sizes hold."""
    return sum((n_in + 1) * n for n_in, n in zip(layers, layers[1:]))


def _check_memory(layers: Sequence[int], m: int, itemsize: int) -> None:
    hidden = sum(layers[1:-1])
    need = estimate_bytes(layers[0], hidden, m, itemsize, parameter_count(layers))
    if need > MEMORY_CEILING:
        # sizes may have hundreds of digits: a float of them overflows
        about = f"{need / 2**30:,.1f}" if need < 2**80 else "more than a million billion"
        raise CliError(
            f"n_x={layers[0]}, hidden={hidden}, m={m} would need about {about} GiB; "
            f"this command stops at {MEMORY_CEILING / 2**30:g} GiB (make --hidden, --layers or "
            "--m smaller)"
        )


def _data_shape(name: str, m: int | None) -> tuple[int, int]:
    """(n_x, m) of a data set, known without building it."""
    if name == "breast_cancer":
        return BREAST_CANCER_SHAPE
    if name == "digits":
        return DIGITS_SHAPE
    return GENERATED_FEATURES, GENERATED_M if m is None else m


def _check_m(args: argparse.Namespace) -> None:
    """--m sizes a generated data set; for a shipped one it would be silently ignored."""
    if args.m is not None and args.data not in datasets.GENERATED:
        raise CliError(
            f"--m: {args.data} is shipped with a fixed number of examples; --m sizes the "
            f"generated sets ({', '.join(datasets.GENERATED)})"
        )


def _data_outputs(name: str) -> int:
    """n_y of a data set, known without building it: 1 for two classes, else the classes."""
    return DIGITS_CLASSES if name == "digits" else 1


def _plot_formats() -> set[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # pgf needs a LaTeX installation to measure text, so it would fail after training.
    return set(FigureCanvasAgg.get_supported_filetypes()) - {"pgf"}


def _check_plot(path: Path) -> None:
    formats = _plot_formats()
    ext = path.suffix[1:].lower()
    if ext not in formats:
        got = f"the extension .{ext} is not one it writes" if ext else "it has no extension"
        raise CliError(f"--plot {path}: {got}; use one of {', '.join(sorted(formats))}")
    check_target(path, "--plot")


def _check_out(path: Path) -> None:
    """A folder for pictures: it may be missing (it is made), but not something else."""
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise CliError(f"--out {path}: {folder} exists and is not a folder")
            return


def _dataset(args: argparse.Namespace) -> datasets.Dataset:
    return datasets.load(args.data, m=args.m, seed=args.seed, dtype=np.dtype(args.dtype).type)


def _progress(epochs: int):
    """A progress bar on stderr for long runs at a terminal; None otherwise."""
    if epochs < 5000 or not sys.stderr.isatty():
        return None
    step = max(1, epochs // 100)

    def show(epoch: int, cost: float) -> None:
        if epoch % step == 0 or epoch == epochs - 1:
            done = (epoch + 1) / epochs
            bar = "#" * int(done * 30)
            end = "\n" if epoch == epochs - 1 else ""
            print(f"\r[{bar:<30}] {done:4.0%} epoch {epoch + 1}/{epochs}", end=end, file=sys.stderr)

    return show


def _layers(args: argparse.Namespace, hidden_default: int | None = None) -> list[int]:
    """The network's layer sizes, known before the data is built: --layers as given (checked
    against the data set), or [n_x, --hidden or `hidden_default` (else the data set's
    default), n_y]."""
    n_x, n_y = _data_shape(args.data, None)[0], _data_outputs(args.data)
    if args.layers is None:
        return [n_x, args.hidden or hidden_default or DEFAULTS[args.data][0], n_y]
    if args.hidden is not None:
        raise CliError("give either --layers or --hidden, not both")
    if args.layers[0] != n_x or args.layers[-1] != n_y:
        raise CliError(
            f"--layers: {args.data} needs {n_x} inputs and {n_y} output(s), so the sizes "
            f"must start with {n_x} and end with {n_y}; got {_sizes(args.layers)}"
        )
    return args.layers


def _sizes(layers: Sequence[int]) -> str:
    return ",".join(str(n) for n in layers)


def _network(args: argparse.Namespace, layers: list[int]):
    return fnn.initialize_parameters(
        layers, seed=args.seed, dtype=args.dtype, activation=args.activation
    )


def cmd_train(args: argparse.Namespace) -> int:
    _, epochs, lr = DEFAULTS[args.data]
    epochs, lr = args.epochs or epochs, args.lr or lr
    _check_m(args)
    layers = _layers(args)
    n_x, m = _data_shape(args.data, args.m)
    if args.plot and n_x == 2:
        m = max(m, BOUNDARY_POINTS)
    _check_memory(layers, m, np.dtype(args.dtype).itemsize)
    if args.plot:
        _check_plot(args.plot)
    if args.save:
        check_target(args.save)
    if args.save and args.plot and _same_file(args.save, args.plot):
        raise CliError(
            f"--save and --plot name the same file ({args.save}); the plot would "
            "replace the parameters"
        )
    ds = _dataset(args)
    params = _network(args, layers)
    network = (
        f"hidden={layers[1]}"
        if len(layers) == 3 and args.activation == "relu"
        else f"layers={_sizes(layers)}, activation={args.activation}"
    )
    print(
        f"{args.data}: n_x={ds.n_x}, m={ds.X_train.shape[1]} train / {ds.X_test.shape[1]} test, "
        f"{network}, epochs={epochs}, lr={lr}, loss={args.loss}, dtype={args.dtype}"
    )
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # NumPy's overflow and log(0) warnings would be extra lines; a cost they spoil stops
            # training with one line instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            costs = fnn.train(
                ds.X_train,
                ds.Y_train,
                params,
                epochs,
                lr,
                args.loss,
                print_every=args.print_every,
                callback=_progress(epochs),
                activation=args.activation,
                compiled=not args.eager,
            )
    except fnn.NonFiniteCostError as e:
        raise CliError(f"training stopped at {e}") from None
    seconds = time.perf_counter() - start
    _report_accuracy(ds, params, seconds, args.activation)
    if ds.n_y > 1 and ds.X_test.shape[1]:
        predicted = fnn.predict(ds.X_test, params, args.activation)[0]
        print("confusion matrix (test set; rows: true class, columns: predicted class):")
        print(format_confusion(fnn.confusion_matrix(ds.labels_test, predicted, ds.n_y)))
    if args.save:
        arrays = {k: p.data for k, p in params.items()}  # the values, not the Tensors
        save_parameters(args.save, arrays, ds.mean, ds.std, args.data, args.activation)
        print(f"parameters written to {args.save}")
    if args.plot:
        _plot(args.plot, costs, ds, params, args.activation)
    return 0


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once resolved, or one existing file."""
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def format_confusion(counts: np.ndarray) -> str:
    """The confusion matrix as aligned text, classes numbered from 0."""
    width = max(3, len(str(counts.max())) + 1)
    classes = range(counts.shape[0])
    lines = ["    " + "".join(f"{j:>{width}}" for j in classes)]
    lines += [f"{i:>3} " + "".join(f"{n:>{width}}" for n in row) for i, row in zip(classes, counts)]
    return "\n".join(lines)


def _report_accuracy(
    ds: datasets.Dataset, params, seconds: float, activation: str = "relu"
) -> None:
    train_acc = fnn.accuracy(ds.X_train, ds.Y_train, params, activation)
    print(f"trained in {seconds:.2f} s")
    print(f"train accuracy: {train_acc:.1%} ({ds.X_train.shape[1]} examples)")
    if ds.X_test.shape[1]:
        test_acc = fnn.accuracy(ds.X_test, ds.Y_test, params, activation)
        print(f"test accuracy:  {test_acc:.1%} ({ds.X_test.shape[1]} examples)")


def _plot(path: Path, costs, ds: datasets.Dataset, params, activation: str = "relu") -> None:
    from tinygrad_fnn.plots import plot_classes, plot_training

    if ds.n_y > 1:
        predicted = fnn.predict(ds.X_test, params, activation)[0]
        plot_classes(path, costs, ds.labels_test, predicted, ds.X_test, title=f"({ds.name})")
        print(f"plot written to {path}")
        return
    plot_training(
        path,
        costs,
        title=f"({ds.name})",
        X=ds.X_train,
        Y=ds.Y_train,
        predict_proba=lambda X: fnn.predict_proba(X, params, activation),
    )
    print(f"plot written to {path}")


def cmd_compare(args: argparse.Namespace) -> int:
    _check_m(args)
    layers = _layers(args)
    _check_memory(layers, _data_shape(args.data, args.m)[1], np.dtype(args.dtype).itemsize)
    ds = _dataset(args)
    m = min(args.batch, ds.X_train.shape[1])
    X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
    params = _network(args, layers)
    losses = fnn.LOSSES if args.loss == "both" else (args.loss,)
    _print_comparisons(X, Y, params, losses, args.activation)
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    _check_memory([2, 4, 1], args.m, np.dtype(args.dtype).itemsize)
    print(fnn.derive(args.loss, args.m, args.dtype), end="")
    return 0


def _print_comparisons(X, Y, params, losses, activation: str = "relu") -> None:
    for loss in losses:
        print(compare_gradients(X, Y, params, loss, activation).table())
        print()
    m = X.shape[1]
    if m & (m - 1):
        print(f"note: m={m} is not a power of two, so (1/m)·x and x/m can round differently.")


def read_rows(path: Path) -> np.ndarray:
    """Comma-separated rows of finite numbers, one example a line (blank lines skipped), as X
    of shape (columns, rows). Any other content is a CliError naming its row and column."""
    try:
        if path.is_dir():
            raise CliError(f"--csv {path}: is a directory")
        too_big = CliError(f"--csv {path}: larger than {MAX_CSV_BYTES // 2**20} MiB")
        if path.stat().st_size > MAX_CSV_BYTES:
            raise too_big
        with path.open("rb") as f:  # st_size is 0 for a stream (/dev/zero, a FIFO): read no more
            data = f.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            raise too_big
        text = data.decode("utf-8-sig")  # spreadsheets begin UTF-8 with a BOM
    except FileNotFoundError:
        raise CliError(f"--csv {path}: no such file") from None
    except PermissionError:
        raise CliError(f"--csv {path}: permission denied") from None
    except UnicodeDecodeError:
        raise CliError(f"--csv {path}: not a text file (not UTF-8)") from None
    except OSError as e:
        raise CliError(f"--csv {path}: cannot read it ({e.strerror})") from None
    rows: list[list[float]] = []
    # Only \n, \r\n and \r end a row (str.splitlines also breaks at \v, \f, \x85, …).
    for row, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if not line.strip():
            continue
        values = []
        for column, cell in enumerate(line.split(","), 1):
            where = f"--csv {path}: row {row}, column {column}"
            try:
                if "_" in cell:  # float() reads "1_0" as 10
                    raise ValueError(cell)
                value = float(cell)
            except ValueError:
                raise CliError(f"{where}: {cell.strip()!r} is not a number") from None
            if not math.isfinite(value):
                raise CliError(f"{where}: {cell.strip()!r} is not a finite number")
            values.append(value)
        if rows and len(values) != len(rows[0]):
            raise CliError(
                f"--csv {path}: row {row} has {len(values)} values, the first row {len(rows[0])}"
            )
        rows.append(values)
    if not rows:
        raise CliError(f"--csv {path}: the file is empty: no rows to classify")
    return np.array(rows, dtype=np.float64).T


def cmd_predict(args: argparse.Namespace) -> int:
    with ParameterFile(args.params) as pf:
        if args.seed is not None and (args.csv or pf.dataset not in datasets.GENERATED):
            rows = f"--csv {args.csv}" if args.csv else f"the shipped {pf.dataset} data"
            raise CliError(f"--seed: {rows} is read as it is; --seed makes a generated data set")
        if args.csv:
            X, Y, source = read_rows(args.csv), None, f"--csv {args.csv}"
        else:
            X, Y = _raw_data(pf.dataset, 0 if args.seed is None else args.seed)
            source = f"the {pf.dataset} data"
        if X.shape[0] != pf.n_x:
            raise CliError(
                f"{args.params}: the network takes {pf.n_x} features (W1 has shape "
                f"{(pf.hidden, pf.n_x)}), but {source} has {X.shape[0]}"
            )
        if Y is not None and Y.shape[0] != pf.n_y:
            raise CliError(
                f"{args.params}: the network has {pf.n_y} output unit(s), but the "
                f"{pf.dataset} data needs {Y.shape[0]}; give the rows with --csv"
            )
        _check_memory(pf.layers, X.shape[1], pf.dtype.itemsize)
        saved = pf.read()

    def example(i: int) -> str:
        return f"row {i + 1} of {source}" if Y is None else f"example {i + 1} of {source}"

    with warnings.catch_warnings():
        # Overflows are refused below, in one line, instead of NumPy's warnings.
        warnings.simplefilter("ignore", RuntimeWarning)
        X = datasets.standardize(X, saved["mean"], saved["std"]).astype(pf.dtype)
        _refuse_not_finite(
            X, lambda i: f"{args.params}: {example(i)}, standardised with the file's mean and std,"
        )
        probs = predict_saved(X, saved)
    _refuse_not_finite(probs, lambda i: f"{args.params}: the network's output for {example(i)}")
    if probs.shape[0] > 1:  # softmax output: the most probable class and its probability
        predicted, confidence = np.argmax(probs, axis=0), np.max(probs, axis=0)
    else:
        predicted, confidence = (probs[0] > 0.5).astype(np.int64), probs[0]
    if Y is None:
        print("class probability")
        for label, p in zip(predicted, confidence):
            print(f"{label} {p:.4f}")
    else:
        acc = float(np.mean(predicted == datasets.labels_of(Y)))
        print(f"{saved['dataset']}: accuracy {acc:.1%} on all {Y.shape[1]} examples")
    return 0


def _refuse_not_finite(values: np.ndarray, what: Callable[[int], str]) -> None:
    """A CliError naming the first column (example) of `values` that holds nan or ±inf."""
    bad = ~np.isfinite(values).all(axis=0)
    if bad.any():
        i = int(np.argmax(bad))
        raise CliError(f"{what(i)} is not a finite number in {values.dtype}")


def predict_saved(X: np.ndarray, saved: dict) -> np.ndarray:
    """The output probabilities (one row per output unit) of a network read by
    `load_parameters`, on standardised X: `fnn`'s forward pass with the saved layers and
    activation, in the saved dtype."""
    dtype = saved["W1"].dtype
    params = {k: fnn.as_tensor(saved[k], dtype, k) for k in parameter_names(count_layers(saved))}
    return fnn.predict_proba(X.astype(dtype), params, saved["activation"])


def _raw_data(name: str, seed: int):
    if name == "breast_cancer":
        X, Y, _ = datasets.load_breast_cancer()
        return X, Y
    if name == "digits":
        X, labels = datasets.load_digits()
        return X, datasets.one_hot(labels, 10)
    if name in datasets.GENERATED:
        return datasets.GENERATED[name](seed=seed)
    raise CliError(
        f"the parameters file names an unknown data set {name!r}; give the rows with --csv"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    _check_out(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    hidden, _, lr = DEFAULTS["breast_cancer"]
    ds = datasets.load("breast_cancer")
    params = fnn.initialize_parameters(ds.n_x, hidden, seed=0)
    print("== 1. Training the tutorial network on the breast-cancer data")
    print(f"   n_x={ds.n_x}, hidden={hidden}, m={ds.X_train.shape[1]}, lr={lr}, loss=fused")
    start = time.perf_counter()
    costs = fnn.train(ds.X_train, ds.Y_train, params, args.epochs, lr, "fused", print_every=100)
    _report_accuracy(ds, params, time.perf_counter() - start)

    print("\n== 2. The engine's gradients vs the tutorial's hand-derived formulas")
    X, Y = ds.X_train[:, :256], ds.Y_train[:, :256]
    _print_comparisons(X, Y, fnn.initialize_parameters(ds.n_x, hidden, seed=0), fnn.LOSSES)

    print("== 3. Pictures")
    _plot(args.out / "cost.png", costs, ds, params)
    from tinygrad_fnn.pictures import network_pictures

    m = 4  # a small batch keeps the graphs readable; the shapes are those of the trained network
    print(
        f"   the graphs show the network just trained (breast cancer, n_x={ds.n_x}, "
        f"hidden={hidden}, loss=fused) on a batch of its first {m} training examples"
    )
    X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
    _draw(lambda: network_pictures(args.out, X, Y, params, "fused", ("svg", "png")))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    layers = _layers(args, GRAPH_HIDDEN)
    _check_memory(layers, args.m, 8)
    _check_out(args.out)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - {"svg", "png"})
    if unknown:
        raise CliError(f"--formats: unknown format {', '.join(unknown)}; choose svg, png")
    from tinygrad_fnn.pictures import tutorial_graphs

    _draw(
        lambda: tutorial_graphs(
            args.out,
            args.data,
            layers[1:-1],
            args.m,
            args.loss,
            args.seed,
            formats,
            args.rankdir,
            args.activation,
        )
    )
    return 0


def _draw(make_pictures) -> None:
    from tinygrad_fnn.render import RenderError

    try:
        written = make_pictures()
    except RenderError as e:
        raise CliError(str(e)) from None
    for path in written:
        print(f"written {path}")


COMMANDS = {
    "train": cmd_train,
    "compare": cmd_compare,
    "derive": cmd_derive,
    "predict": cmd_predict,
    "graph": cmd_graph,
    "demo": cmd_demo,
}


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "(no message)"


def _fail(message: str, code: int = 2) -> int:
    print(f"tinygrad-fnn: error: {_one_line(message)}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """After a broken pipe: send what is still buffered to /dev/null, so that Python's own
    flush at exit does not fail a second time (the recipe in Python's `signal` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, 2 for a mistake in how it was called, 1 for a bug."""
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
        code = COMMANDS[args.command](args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except (CliError, ParameterFileError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except MemoryError:
        if debug:
            raise
        return _fail("out of memory (make --hidden, --m or --batch smaller)")
    except OSError as e:
        if debug:
            raise
        return _fail(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
    except Exception as e:
        if debug:
            raise
        return _fail(
            f"unexpected {type(e).__name__}: {e} (a bug: 'tinygrad-fnn --debug ...' shows the "
            "traceback)",
            1,
        )


if __name__ == "__main__":
    sys.exit(main())
