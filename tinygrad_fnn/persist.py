"""Saving and loading trained parameters as `.npz`: written atomically, read without pickle.

A file holds any network `fnn.initialize_parameters` makes: W1, b1, …, WL, bL, the hidden
layers' activation, the standardisation statistics `mean` and `std`, and the data set's name.
Files written before the activation was stored (W1, b1, W2, b2 only) load as relu networks;
a file of another depth without an activation is refused (it was cut).

Reading never trusts the file: the member names must describe W1, b1, …, WL, bL without a gap
and with at most MAX_LAYERS layers, then each member's `.npy` header is parsed and checked
(dtype, shape, size, agreement with the other members) before a single byte of its data is
allocated, and only the members the network needs are opened.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from tinygrad_fnn.engine import as_array
from tinygrad_fnn.files import in_the_way, write_whole
from tinygrad_fnn.manual import ACTIVATIONS

STATISTICS = ("mean", "std")
TEXTS = ("dataset", "activation")  # short text members; `activation` may be absent (relu)
DEFAULT_ACTIVATION = "relu"  # what a file without an `activation` member was trained with
_LAYERS_BEFORE_ACTIVATION = 2  # every such file held W1, b1, W2, b2: a deeper one was cut

# The most layers (weight matrices) a file may hold. Each layer is two archive members whose
# headers are parsed before anything else, so the limit bounds that work whatever a file claims;
# plain gradient descent does not train a network anywhere near this deep (the gradients of its
# first layers vanish or explode), and `train --layers` refuses more.
MAX_LAYERS = 100
# The most memory a command may ask for: the arrays a parameters file claims, or the arrays a
# training run or prediction would need (see `cli.estimate_bytes`).
MEMORY_CEILING = 2**30
_MAX_NAME_CHARS = 100  # the text members are short names
_MAX_HEADER_BYTES = 10_000  # NumPy's own limit on a `.npy` header (`max_header_size`)
_LAYER_MEMBER = re.compile(r"([Wb])([0-9]+)")
# What can go wrong while parsing a hostile archive member; each becomes a ParameterFileError.
_READ_ERRORS = (
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    OSError,
    RuntimeError,
    zipfile.BadZipFile,
    zlib.error,
)

Header = tuple[tuple[int, ...], np.dtype]  # a member's shape and dtype


class ParameterFileError(ValueError):
    """A parameters file is missing, unreadable or does not describe the network."""


def parameter_names(L: int) -> tuple[str, ...]:
    """W1, b1, …, WL, bL."""
    return tuple(f"{p}{k}" for k in range(1, L + 1) for p in "Wb")


def count_layers(names: Iterable[str]) -> int:
    """L, from the names of a file's members (without `.npy`): W1, b1, …, WL, bL must all be
    there, with no gap and no stray layer, and L at most MAX_LAYERS. Other names are ignored.
    Raises ParameterFileError with the reason (without the file's name)."""
    layers: dict[str, set[int]] = {"W": set(), "b": set()}
    for name in names:
        match = _LAYER_MEMBER.fullmatch(name)
        if match is None:
            continue
        letter, digits = match.groups()
        if digits.startswith("0"):
            shown = name if len(name) <= 20 else name[:20] + "…"
            raise ParameterFileError(f"{shown} is not a layer's name (layers count W1, b1, W2, …)")
        if len(digits) > len(str(MAX_LAYERS)) or int(digits) > MAX_LAYERS:
            shown = name if len(name) <= 20 else name[:20] + "…"
            raise ParameterFileError(
                f"it claims a layer {shown}, more than the {MAX_LAYERS} layers this program reads"
            )
        layers[letter].add(int(digits))
    L = max(layers["W"] | layers["b"], default=0)
    missing = [f"{p}{k}" for k in range(1, max(L, 1) + 1) for p in "Wb" if k not in layers[p]]
    if missing:
        gap = f" (it holds layer {L}, which needs every layer below it)" if L > 1 else ""
        raise ParameterFileError(f"not a parameters file: missing {', '.join(missing)}{gap}")
    return L


def check_network(headers: Mapping[str, Header], L: int) -> list[int]:
    """The layer sizes [n_x, h1, …, n_y] that the shapes and dtypes of W1 … bL, mean and std
    describe; raises ParameterFileError (without the file's name) where they disagree."""
    for k in (*parameter_names(L), *STATISTICS):
        shape, dtype = headers[k]
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise ParameterFileError(f"{k} must be float32 or float64, got {dtype}")
        if len(shape) != 2 or 0 in shape:
            raise ParameterFileError(f"{k} must be a non-empty 2-D array, got shape {shape}")
        if not all(type(n) is int and n > 0 for n in shape):  # a header may say -5 or True
            raise ParameterFileError(
                f"{k} has shape {shape}: its sizes must be positive whole numbers"
            )
    claimed = sum(math.prod(s) * d.itemsize for s, d in headers.values() if d.kind == "f")
    if claimed > MEMORY_CEILING:
        floats = [k for k in headers if headers[k][1].kind == "f"]
        big = max(floats, key=lambda k: math.prod(headers[k][0]))
        raise ParameterFileError(
            f"its arrays claim {claimed:,} bytes ({big} has shape {headers[big][0]}), "
            f"more than the {MEMORY_CEILING:,} this program reads"
        )
    sizes = [headers["W1"][0][1]]
    for k in range(1, L + 1):
        W = headers[f"W{k}"][0]
        if W[1] != sizes[-1]:
            previous = headers[f"W{k - 1}"][0]
            raise ParameterFileError(
                f"W{k} has shape {W}, but W{k - 1} has shape {previous}: W{k} must have "
                f"{previous[0]} columns, one for each output of layer {k - 1}"
            )
        if headers[f"b{k}"][0] != (W[0], 1):
            raise ParameterFileError(
                f"b{k} has shape {headers[f'b{k}'][0]}, but W{k} has shape {W}: b{k} must be "
                f"{(W[0], 1)}"
            )
        sizes.append(W[0])
    for k in STATISTICS:
        if headers[k][0] != (sizes[0], 1):
            raise ParameterFileError(
                f"{k} has shape {headers[k][0]}, but W1 has shape {headers['W1'][0]}: {k} must "
                f"be {(sizes[0], 1)}, one value for each of the {sizes[0]} features"
            )
    dtype = headers["W1"][1].newbyteorder("=")
    for k in parameter_names(L)[1:]:
        if headers[k][1].newbyteorder("=") != dtype:
            raise ParameterFileError(f"{k} is {headers[k][1]}, but W1 is {dtype}")
    return sizes


def _check_text(key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if shape != () or dtype.kind != "U" or not 0 < dtype.itemsize <= 4 * _MAX_NAME_CHARS:
        raise ParameterFileError(f"{key} must be a short text, got {dtype} of shape {shape}")


def check_values(arrays: Mapping[str, np.ndarray]) -> None:
    """Every number finite and every standard deviation non-negative: what `read` and
    `save_parameters` require of W1 … bL, mean and std. Raises ParameterFileError."""
    for k, array in arrays.items():
        if not np.isfinite(array).all():
            raise ParameterFileError(f"{k} holds values that are not finite numbers")
    if (arrays["std"] < 0).any():
        raise ParameterFileError("std holds negative standard deviations")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ParameterFileError(
            f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )


def check_target(path: str | os.PathLike, what: str = "--save") -> Path:
    """Refuse a destination that cannot take a new regular file: a missing folder, or an
    existing FIFO, symlink, device or directory. Called before any work and again on save."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ParameterFileError(f"{what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParameterFileError(f"{what} {path}: the folder {folder} is not writable")
    kind = in_the_way(path)
    if kind is not None:
        raise ParameterFileError(f"{what} {path}: refusing to replace {kind}")
    return path


def save_parameters(
    path: str | os.PathLike,
    parameters: Mapping[str, Any],
    mean: np.ndarray,
    std: np.ndarray,
    dataset: str,
    activation: str = DEFAULT_ACTIVATION,
) -> None:
    """Write W1, b1, …, WL, bL, the hidden activation, the standardisation statistics and the
    data set's name to `path`.

    What is written is first held to the checks `load_parameters` makes, so a network that could
    not be read back is refused (ParameterFileError) before anything is written. The file is
    written under a temporary name in the same folder and renamed into place, so `path` is never
    left half-written; a failed save removes the temporary file. The file's mode follows the
    umask, as a plain `open` would.
    """
    path = check_target(path)
    try:
        L = count_layers(parameters)
        arrays = {k: as_array(parameters[k]) for k in parameter_names(L)}
        arrays.update(mean=as_array(mean), std=as_array(std))
        check_network({k: (a.shape, a.dtype) for k, a in arrays.items()}, L)
        check_values(arrays)
        texts = {"dataset": np.array(dataset), "activation": np.array(activation)}
        for k, text in texts.items():
            _check_text(k, text.shape, text.dtype)
        _check_activation(activation)
    except ParameterFileError as e:
        raise ParameterFileError(f"{path}: not saved: {e}") from None
    arrays.update(texts)
    write_whole(path, lambda f: np.savez(f, **arrays), check_target)


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    # The header's length comes first; NumPy would read all of it before refusing a long one.
    field = f.read(2 if version == (1, 0) else 4)
    length = int.from_bytes(field, "little")
    if length > _MAX_HEADER_BYTES:
        raise ValueError(f"a header of {length:,} bytes, more than the {_MAX_HEADER_BYTES:,}")
    header = io.BytesIO(field + f.read(length))
    if version == (1, 0):
        return npy_format.read_array_header_1_0(header)
    return npy_format.read_array_header_2_0(header)


class ParameterFile:
    """An open parameters file whose headers have been checked and whose data is not yet read.

    `layers` ([n_x, h1, …, n_y]), `activation`, `dataset`, `n_x`, `n_y`, `hidden` (W1's rows)
    and `dtype` describe the network, so that a caller can check them against its data (and its
    memory) before `read()` allocates anything.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            mode = self.path.stat().st_mode
            if stat.S_ISDIR(mode):
                raise ParameterFileError(f"{self.path}: is a directory, not a parameters file")
            if not stat.S_ISREG(mode):
                raise ParameterFileError(f"{self.path}: not a regular file")
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise ParameterFileError(f"{self.path}: no such file") from None
        except PermissionError:
            raise ParameterFileError(f"{self.path}: permission denied") from None
        except OSError as e:
            raise ParameterFileError(f"{self.path}: cannot read it ({e.strerror})") from None
        try:
            self._check()
        except ParameterFileError as e:
            self.close()
            raise self._error(str(e)) from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ParameterFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive and the file under it."""
        if hasattr(self, "_zip"):
            self._zip.close()
        self._file.close()

    def _error(self, message: str) -> ParameterFileError:
        return ParameterFileError(f"{self.path}: {message}")

    def _check(self) -> None:
        # Messages raised here name no file; __init__ adds its path.
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise ParameterFileError(f"not an .npz archive ({e})") from None
        names = [n for n in self._zip.namelist() if n.endswith(".npy")]
        twice = sorted(n for n, count in Counter(names).items() if count > 1)
        if twice:  # zipfile reads the last of them, other tools the first
            raise ParameterFileError(f"it holds {', '.join(twice)} twice")
        present = {n[: -len(".npy")] for n in names}
        self.L = count_layers(present)
        missing = [k for k in (*STATISTICS, "dataset") if k not in present]
        if missing:
            raise ParameterFileError(f"not a parameters file: missing {', '.join(missing)}")
        if "activation" not in present and self.L != _LAYERS_BEFORE_ACTIVATION:
            raise ParameterFileError(
                f"its activation is missing: only files of {_LAYERS_BEFORE_ACTIVATION} layers "
                f"were written without one (relu), and it has {self.L}"
            )
        wanted = (*parameter_names(self.L), *STATISTICS, *(k for k in TEXTS if k in present))
        full = {k: self._header(k) for k in wanted}
        self.headers = full
        for k in TEXTS:
            if k in full:
                _check_text(k, full[k][0], full[k][2])
        self.layers = check_network({k: (s, d) for k, (s, _, d) in full.items()}, self.L)
        self.n_x, self.n_y, self.hidden = self.layers[0], self.layers[-1], self.layers[1]
        self.dtype = full["W1"][2].newbyteorder("=")
        self.dataset = self._text("dataset")
        self.activation = self._text("activation") if "activation" in full else DEFAULT_ACTIVATION
        _check_activation(self.activation)

    def _header(self, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            with self._zip.open(f"{key}.npy") as f:
                return _read_header(f)
        except (zipfile.BadZipFile, zlib.error) as e:
            raise ParameterFileError(f"{key}: damaged archive member ({e})") from None
        except _READ_ERRORS as e:
            raise ParameterFileError(f"{key}: malformed .npy header ({e})") from None

    def _data(self, key: str) -> np.ndarray:
        shape, fortran, dtype = self.headers[key]
        size = math.prod(shape) * dtype.itemsize
        try:
            with self._zip.open(f"{key}.npy") as f:
                _read_header(f)
                raw = f.read(size)
                trailing = f.read(1)  # reading to the end also checks the member's CRC
        except _READ_ERRORS as e:
            raise ParameterFileError(f"{key}: unreadable data ({e})") from None
        if len(raw) != size:
            raise ParameterFileError(f"{key}: truncated: {len(raw)} of {size} bytes")
        if trailing:
            raise ParameterFileError(f"{key}: more bytes than its header's shape {shape} holds")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return array.astype(dtype.newbyteorder("="), order="C")

    def _text(self, key: str) -> str:
        text = self._data(key)
        # NumPy stores text as UTF-32 code points; one beyond Unicode makes str() fail.
        if (text.reshape(1).view(np.uint32) > 0x10FFFF).any():
            raise ParameterFileError(f"{key} is not text: it holds a code beyond Unicode")
        return str(text[()])

    def read(self) -> dict[str, np.ndarray | str]:
        """W1, b1, …, WL, bL, mean and std as native arrays, the activation and the data set's
        name; every number must be finite and every standard deviation non-negative."""
        try:
            found: dict[str, Any] = {
                k: self._data(k) for k in (*parameter_names(self.L), *STATISTICS)
            }
            check_values(found)
        except ParameterFileError as e:
            raise self._error(str(e)) from None
        found["activation"] = self.activation
        found["dataset"] = self.dataset
        return found


def load_parameters(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """Read a file written by `save_parameters`, checking every header before reading data."""
    with ParameterFile(path) as pf:
        return pf.read()
