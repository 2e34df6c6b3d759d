"""Saving and loading trained parameters as `.npz`: written atomically, read without pickle."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PARAMETERS = ("W1", "b1", "W2", "b2")


class ParameterFileError(ValueError):
    """A parameters file is missing, unreadable or does not describe the network."""


def save_parameters(
    path: str | os.PathLike,
    parameters: dict,
    mean: np.ndarray,
    std: np.ndarray,
    dataset: str,
) -> None:
    """Write W1, b1, W2, b2, the standardisation statistics and the data set's name to `path`.

    The file is written under a temporary name in the same folder and renamed into place, so
    `path` is never left half-written.
    """
    path = Path(path)
    arrays = {k: np.asarray(getattr(parameters[k], "data", parameters[k])) for k in PARAMETERS}
    arrays.update(mean=np.asarray(mean), std=np.asarray(std), dataset=np.array(dataset))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_parameters(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """Read a file written by `save_parameters`, checking every array and the shapes' fit."""
    path = Path(path)
    if not path.is_file():
        raise ParameterFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ParameterFileError(f"{path}: not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ParameterFileError(f"{path}: not a readable .npz parameters file ({e})") from None
    missing = [k for k in (*PARAMETERS, "mean", "std", "dataset") if k not in found]
    if missing:
        raise ParameterFileError(f"{path}: missing {', '.join(missing)}")
    W1, b1, W2, b2 = (found[k] for k in PARAMETERS)
    for k in (*PARAMETERS, "mean", "std"):
        if found[k].dtype.kind != "f" or found[k].ndim != 2:
            raise ParameterFileError(f"{path}: {k} must be a 2-D float array, got {found[k].dtype}")
    h, n_x = W1.shape
    expected = {"b1": (h, 1), "W2": (W2.shape[0], h), "b2": (W2.shape[0], 1)}
    expected.update(mean=(n_x, 1), std=(n_x, 1))
    for k, shape in expected.items():
        if found[k].shape != shape:
            raise ParameterFileError(
                f"{path}: {k} has shape {found[k].shape}, but W1 {W1.shape} implies {shape}"
            )
    return {**{k: found[k] for k in (*PARAMETERS, "mean", "std")}, "dataset": str(found["dataset"])}
