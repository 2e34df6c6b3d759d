"""Files are written whole or not at all, and never through a link (`tinygrad_fnn.files`), by
every writer: parameter files, pictures, the step-through page and the training plots."""

import os
import stat

import numpy as np
import pytest

from tinygrad_fnn import plots
from tinygrad_fnn.files import check_replaceable, in_the_way, write_whole


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_whole_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    write_whole(path, lambda f: f.write(b"new contents"), check_replaceable)
    assert path.read_bytes() == b"new contents"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fail_in", ["write", "check"])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, fail_in):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def write(f):
        f.write(b"half")
        if fail_in == "write":
            raise OSError("disk full")

    def check(p):
        if fail_in == "check":
            raise FileExistsError("something appeared")

    with pytest.raises(OSError):
        write_whole(path, write, check)
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_the_mode_follows_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = tmp_path / "out.bin"
        write_whole(path, lambda f: f.write(b"x"), check_replaceable)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_what_stands_in_the_way_is_named_and_refused(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    expected = {"link": "a symbolic link", "folder": "a directory", "fifo": "a FIFO"}
    for name, kind in expected.items():
        assert in_the_way(tmp_path / name) == kind
        with pytest.raises(FileExistsError, match=f"refusing to replace {kind}"):
            check_replaceable(tmp_path / name)
    assert in_the_way(target) is None and in_the_way(tmp_path / "nothing") is None
    assert target.read_text() == "keep me"


def _curve(path):
    return plots.plot_training(path, costs=list(np.linspace(1.0, 0.1, 20)), title="t")


def test_a_plot_is_never_written_through_a_link(tmp_path):
    target = tmp_path / "target.png"
    target.write_bytes(b"not a plot")
    (tmp_path / "link.png").symlink_to(target)
    with pytest.raises(FileExistsError, match="symbolic link"):
        _curve(tmp_path / "link.png")
    assert target.read_bytes() == b"not a plot"


@pytest.mark.parametrize(
    "suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")]
)
def test_a_plot_is_written_in_its_suffix_format(tmp_path, suffix, magic):
    path = _curve(tmp_path / f"curve{suffix}")
    assert path.read_bytes().startswith(magic)
    assert _leftovers(tmp_path) == []


def test_a_plot_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    import matplotlib.figure

    path = tmp_path / "curve.png"
    path.write_bytes(b"old plot")

    def broken(self, *args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        _curve(path)
    assert path.read_bytes() == b"old plot"
    assert _leftovers(tmp_path) == []
