"""Files written whole or not at all, and never through a link: the parameter files, the
pictures and the step-through page all go through `write_whole`."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

_KINDS = [
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
]


def in_the_way(path: Path) -> str | None:
    """What stands at `path` that a new file must not replace (a directory, a symbolic link, a
    FIFO, a device: writing there would follow it or clobber it), or None."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "something not a regular file")


def check_replaceable(path: Path) -> None:
    """Refuse (FileExistsError) to replace what `in_the_way` names."""
    kind = in_the_way(path)
    if kind is not None:
        raise FileExistsError(errno.EEXIST, f"refusing to replace {kind}", str(path))


def write_whole(
    path: Path, write: Callable[[IO[bytes]], None], check: Callable[[Path], None]
) -> None:
    """Write `path` whole or not at all: `write` fills a temporary file beside it, which is then
    renamed over it, so an interruption leaves the old file or the new one, never half of one.
    `check` looks at the place again just before the rename (something may have appeared there
    meanwhile). The file's mode follows the umask, as a plain `open` would give it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        check(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading it means setting it: put it back at once
    os.umask(mask)
    return mask
