"""Saving and loading trained parameters as `.npz`: written atomically, read without pickle.

Reading never trusts the file: each member's `.npy` header is parsed and checked (dtype, shape,
size, agreement with the other members) before a single byte of its data is allocated, and
only the members the network needs are opened.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from tinygrad_fnn.engine import as_array

PARAMETERS = ("W1", "b1", "W2", "b2")
STATISTICS = ("mean", "std")

# The most memory a command may ask for: the arrays a parameters file claims, or the arrays a
# training run or prediction would need (see `cli.estimate_bytes`).
MEMORY_CEILING = 2**30
_MAX_NAME_CHARS = 100  # the `dataset` member is a short name
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


class ParameterFileError(ValueError):
    """A parameters file is missing, unreadable or does not describe the network."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_target(path: str | os.PathLike, what: str = "--save") -> Path:
    """Refuse a destination that cannot take a new regular file: a missing folder, or an
    existing FIFO, symlink, device or directory. Called before any work and again on save."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise ParameterFileError(f"{what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParameterFileError(f"{what} {path}: the folder {folder} is not writable")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link")]
        kinds += [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")]
        kind = next((name for test, name in kinds if test(mode)), "something not a regular file")
        raise ParameterFileError(f"{what} {path}: refusing to replace {kind}")
    return path


def save_parameters(
    path: str | os.PathLike,
    parameters: dict,
    mean: np.ndarray,
    std: np.ndarray,
    dataset: str,
) -> None:
    """Write W1, b1, W2, b2, the standardisation statistics and the data set's name to `path`.

    The file is written under a temporary name in the same folder and renamed into place, so
    `path` is never left half-written; a failed save removes the temporary file. The file's mode
    follows the umask, as a plain `open` would.
    """
    path = check_target(path)
    arrays = {k: as_array(parameters[k]) for k in PARAMETERS}
    arrays.update(mean=as_array(mean), std=as_array(std), dataset=np.array(dataset))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        check_target(path)  # something may have appeared there while we wrote
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(f)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(f)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(f)
    raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")


class ParameterFile:
    """An open parameters file whose headers have been checked and whose data is not yet read.

    `dataset`, `hidden`, `n_x` and `dtype` describe the network, so that a caller can check them
    against its data (and its memory) before `read()` allocates anything.
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
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise self._error(f"not an .npz archive ({e})") from None
        present = set(self._zip.namelist())
        missing = [k for k in (*PARAMETERS, *STATISTICS, "dataset") if f"{k}.npy" not in present]
        if missing:
            raise self._error(f"not a parameters file: missing {', '.join(missing)}")
        self.headers = {k: self._header(k) for k in (*PARAMETERS, *STATISTICS, "dataset")}
        shape, _, dtype = self.headers["dataset"]
        if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * _MAX_NAME_CHARS:
            raise self._error(f"dataset must be a short text, got {dtype} of shape {shape}")
        for k in (*PARAMETERS, *STATISTICS):
            shape, _, dtype = self.headers[k]
            if dtype.kind != "f" or dtype.itemsize not in (4, 8):
                raise self._error(f"{k} must be float32 or float64, got {dtype}")
            if len(shape) != 2 or 0 in shape:
                raise self._error(f"{k} must be a non-empty 2-D array, got shape {shape}")
        claimed = sum(
            math.prod(s) * d.itemsize for s, _, d in self.headers.values() if d.kind == "f"
        )
        if claimed > MEMORY_CEILING:
            big = max(PARAMETERS + STATISTICS, key=lambda k: math.prod(self.headers[k][0]))
            raise self._error(
                f"its arrays claim {claimed:,} bytes ({big} has shape {self.headers[big][0]}), "
                f"more than the {MEMORY_CEILING:,} this program reads"
            )
        self.hidden, self.n_x = self.headers["W1"][0]
        self.n_y = self.headers["W2"][0][0]
        self.dtype = self.headers["W1"][2].newbyteorder("=")
        expected = {
            "b1": (self.hidden, 1),
            "W2": (self.n_y, self.hidden),
            "b2": (self.n_y, 1),
            "mean": (self.n_x, 1),
            "std": (self.n_x, 1),
        }
        for k, shape in expected.items():
            if self.headers[k][0] != shape:
                raise self._error(
                    f"{k} has shape {self.headers[k][0]}, but W1 {self.headers['W1'][0]} and "
                    f"{self.n_y} output unit(s) imply {shape}"
                )
        for k in PARAMETERS[1:]:
            if self.headers[k][2].newbyteorder("=") != self.dtype:
                raise self._error(f"{k} is {self.headers[k][2]}, but W1 is {self.dtype}")
        self.dataset = str(self._data("dataset")[()])

    def _header(self, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        try:
            with self._zip.open(f"{key}.npy") as f:
                return _read_header(f)
        except (zipfile.BadZipFile, zlib.error) as e:
            raise self._error(f"{key}: damaged archive member ({e})") from None
        except _READ_ERRORS as e:
            raise self._error(f"{key}: malformed .npy header ({e})") from None

    def _data(self, key: str) -> np.ndarray:
        shape, fortran, dtype = self.headers[key]
        size = math.prod(shape) * dtype.itemsize
        try:
            with self._zip.open(f"{key}.npy") as f:
                _read_header(f)
                raw = f.read(size)
                trailing = f.read(1)  # reading to the end also checks the member's CRC
        except _READ_ERRORS as e:
            raise self._error(f"{key}: unreadable data ({e})") from None
        if len(raw) != size:
            raise self._error(f"{key}: truncated: {len(raw)} of {size} bytes")
        if trailing:
            raise self._error(f"{key}: more bytes than its header's shape {shape} holds")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return array.astype(dtype.newbyteorder("="), order="C")

    def read(self) -> dict[str, np.ndarray | str]:
        """W1, b1, W2, b2, mean and std as native arrays, and the data set's name; every number
        must be finite and every standard deviation non-negative."""
        found: dict[str, Any] = {k: self._data(k) for k in (*PARAMETERS, *STATISTICS)}
        for k, array in found.items():
            if not np.isfinite(array).all():
                raise self._error(f"{k} holds values that are not finite numbers")
        if (found["std"] < 0).any():
            raise self._error("std holds negative standard deviations")
        found["dataset"] = self.dataset
        return found


def load_parameters(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """Read a file written by `save_parameters`, checking every header before reading data."""
    with ParameterFile(path) as pf:
        return pf.read()
