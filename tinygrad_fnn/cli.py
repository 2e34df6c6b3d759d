"""The `tinygrad-fnn` command: train, compare, predict, graph, bench and the demo."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinygrad_fnn import __version__, datasets, fnn
from tinygrad_fnn.compare import compare_gradients
from tinygrad_fnn.persist import ParameterFileError, load_parameters, save_parameters

# Settings that train each data set well with plain gradient descent: hidden size, epochs, lr.
DEFAULTS = {
    "breast_cancer": (16, 2000, 0.1),
    "digits": (64, 1000, 1.0),
    "xor": (8, 2000, 1.0),
    "moons": (16, 2000, 1.0),
    "circles": (16, 2000, 1.0),
    "spirals": (64, 10000, 3.0),
}


class CliError(Exception):
    """A mistake in how the command was called: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise CliError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
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
    p.add_argument("--seed", type=int, default=0, help="seed for data, split and weights")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--m", type=_positive_int, help="examples to generate (generated sets only)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygrad-fnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinygrad-fnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train the network and report accuracy")
    _add_data_options(train)
    _add_network_options(train)
    train.add_argument("--epochs", type=_positive_int, help="default: per data set")
    train.add_argument("--lr", type=_positive_float, help="learning rate (default: per data set)")
    train.add_argument(
        "--loss",
        choices=fnn.LOSSES,
        default="fused",
        help="fused: stable cost from the logits (default); composed: the tutorial's "
        "sigmoid-then-log, which turns to nan once a prediction rounds to exactly 0 or 1",
    )
    train.add_argument("--print-every", type=_positive_int, default=100)
    train.add_argument("--save", type=Path, help="write the trained parameters to this .npz")
    train.add_argument(
        "--plot",
        type=Path,
        help="write the cost curve as PNG, beside the decision boundary (2-D data) or the "
        "confusion matrix and misclassified examples (several classes)",
    )

    compare = sub.add_parser("compare", help="engine gradients vs the hand-derived formulas")
    _add_data_options(compare)
    _add_network_options(compare)
    compare.add_argument("--loss", choices=(*fnn.LOSSES, "both"), default="both")
    compare.add_argument(
        "--batch", type=_positive_int, default=256, help="examples to use (default 256)"
    )

    predict = sub.add_parser("predict", help="classify with a saved parameters file")
    predict.add_argument("params", type=Path, help="a file written by 'train --save'")
    predict.add_argument("--csv", type=Path, help="rows of raw features to classify")
    predict.add_argument("--seed", type=int, default=0, help="seed of a generated data set")

    graph = sub.add_parser("graph", help="draw the forward and backward graphs of the network")
    graph.add_argument("--out", type=Path, default=Path("graphs"), help="folder for the pictures")
    graph.add_argument("--data", choices=datasets.NAMES, default="xor")
    graph.add_argument("--hidden", type=_positive_int, default=3)
    graph.add_argument("--m", type=_positive_int, default=4, help="examples in the batch")
    graph.add_argument("--loss", choices=fnn.LOSSES, default="fused")
    graph.add_argument("--seed", type=int, default=0)
    graph.add_argument("--rankdir", choices=("LR", "TB"), default="LR", help="layout direction")
    graph.add_argument(
        "--formats", default="svg,png", help="comma-separated: svg, png (DOT is always written)"
    )

    demo = sub.add_parser("demo", help="train on breast cancer, compare gradients, draw graphs")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="pictures go here")
    demo.add_argument("--epochs", type=_positive_int, default=2000)

    return parser


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


def _layers(args: argparse.Namespace, ds: datasets.Dataset) -> list[int]:
    """The network's layer sizes: --layers as given (checked against the data), or
    [n_x, --hidden or the data set's default, n_y]."""
    if args.layers is None:
        return [ds.n_x, args.hidden or DEFAULTS[args.data][0], ds.n_y]
    if args.hidden is not None:
        raise CliError("give either --layers or --hidden, not both")
    if args.layers[0] != ds.n_x or args.layers[-1] != ds.n_y:
        raise CliError(
            f"--layers: {args.data} needs {ds.n_x} inputs and {ds.n_y} output(s), so the sizes "
            f"must start with {ds.n_x} and end with {ds.n_y}; got {_sizes(args.layers)}"
        )
    return args.layers


def _sizes(layers: Sequence[int]) -> str:
    return ",".join(str(n) for n in layers)


def _network(args: argparse.Namespace, ds: datasets.Dataset):
    layers = _layers(args, ds)
    params = fnn.initialize_parameters(
        layers, seed=args.seed, dtype=args.dtype, activation=args.activation
    )
    return layers, params


def cmd_train(args: argparse.Namespace) -> int:
    _, epochs, lr = DEFAULTS[args.data]
    epochs, lr = args.epochs or epochs, args.lr or lr
    ds = _dataset(args)
    layers, params = _network(args, ds)
    if args.save and (len(layers) != 3 or args.activation != "relu"):
        raise CliError(
            "--save: parameter files hold networks with one relu hidden layer only; "
            f"this one has layers {_sizes(layers)} and activation {args.activation}"
        )
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
    )
    seconds = time.perf_counter() - start
    _report_accuracy(ds, params, seconds, args.activation)
    if ds.n_y > 1 and ds.X_test.shape[1]:
        predicted = fnn.predict(ds.X_test, params, args.activation)[0]
        print("confusion matrix (test set; rows: true class, columns: predicted class):")
        print(format_confusion(fnn.confusion_matrix(ds.labels_test, predicted, ds.n_y)))
    if args.save:
        arrays = {k: p.data for k, p in params.items()}  # the values, not the Tensors
        save_parameters(args.save, arrays, ds.mean, ds.std, args.data)
        print(f"parameters written to {args.save}")
    if args.plot:
        _plot(args.plot, costs, ds, params, args.activation)
    return 0


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
    ds = _dataset(args)
    m = min(args.batch, ds.X_train.shape[1])
    X, Y = ds.X_train[:, :m], ds.Y_train[:, :m]
    _, params = _network(args, ds)
    losses = fnn.LOSSES if args.loss == "both" else (args.loss,)
    _print_comparisons(X, Y, params, losses, args.activation)
    return 0


def _print_comparisons(X, Y, params, losses, activation: str = "relu") -> None:
    for loss in losses:
        print(compare_gradients(X, Y, params, loss, activation).table())
        print()
    m = X.shape[1]
    if m & (m - 1):
        print(f"note: m={m} is not a power of two, so (1/m)·x and x/m can round differently.")


def cmd_predict(args: argparse.Namespace) -> int:
    saved = load_parameters(args.params)
    n_x = saved["W1"].shape[1]
    if args.csv:
        try:
            raw = np.loadtxt(args.csv, delimiter=",", ndmin=2)
        except (OSError, ValueError) as e:
            raise CliError(f"{args.csv}: cannot read numbers from it ({e})") from None
        if raw.shape[1] != n_x:
            raise CliError(f"{args.csv}: rows have {raw.shape[1]} values; the network takes {n_x}")
        X, Y = raw.T, None
    else:
        X, Y = _raw_data(saved["dataset"], args.seed)
    X = datasets.standardize(X, saved["mean"], saved["std"]).astype(saved["W1"].dtype)
    params = {k: fnn.as_tensor(saved[k], saved["W1"].dtype, k) for k in ("W1", "b1", "W2", "b2")}
    probs = fnn.predict_proba(X, params)
    if probs.shape[0] > 1:  # softmax output: the most probable class and its probability
        predicted, confidence = np.argmax(probs, axis=0), np.max(probs, axis=0)
    else:
        predicted, confidence = (probs[0] > 0.5).astype(np.int64), probs[0]
    if Y is None:
        for label, p in zip(predicted, confidence):
            print(f"{label} {p:.4f}")
    else:
        acc = float(np.mean(predicted == datasets.labels_of(Y)))
        print(f"{saved['dataset']}: accuracy {acc:.1%} on all {Y.shape[1]} examples")
    return 0


def _raw_data(name: str, seed: int):
    if name == "breast_cancer":
        X, Y, _ = datasets.load_breast_cancer()
        return X, Y
    if name == "digits":
        X, labels = datasets.load_digits()
        return X, datasets.one_hot(labels, 10)
    if name in datasets.GENERATED:
        return datasets.GENERATED[name](seed=seed)
    raise CliError(f"the parameters file names an unknown data set {name!r}")


def cmd_demo(args: argparse.Namespace) -> int:
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
    _draw(args.out, "xor", 3, 4, "fused", 0, ("svg", "png"), "LR")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - {"svg", "png"})
    if unknown:
        raise CliError(f"--formats: unknown format {', '.join(unknown)}; choose svg, png")
    _draw(args.out, args.data, args.hidden, args.m, args.loss, args.seed, formats, args.rankdir)
    return 0


def _draw(out: Path, data, hidden, m, loss, seed, formats, rankdir) -> None:
    from tinygrad_fnn.graph import RenderError
    from tinygrad_fnn.pictures import tutorial_graphs

    try:
        written = tutorial_graphs(out, data, hidden, m, loss, seed, formats, rankdir)
    except RenderError as e:
        raise CliError(str(e)) from None
    for path in written:
        print(f"written {path}")


COMMANDS = {
    "train": cmd_train,
    "compare": cmd_compare,
    "predict": cmd_predict,
    "graph": cmd_graph,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except (CliError, ParameterFileError, OSError) as e:
        print(f"tinygrad-fnn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
