"""Rendering DOT source through a program: Graphviz's own `dot` when it is on PATH, otherwise the
self-contained `graphviz-pure` that pip installs with this package.

`Graph` is a `graphviz.Digraph` whose every rendering method (`pipe`, `render`, the Jupyter
display hooks) goes through that program, so a picture renders from Python on a machine with no
system Graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import graphviz

from tinygrad_fnn.files import check_replaceable, write_whole


class RenderError(RuntimeError):
    """No program to render DOT source could run, or it failed; the message says why."""


def find_dot() -> str | None:
    """The program that renders DOT: $TINYGRAD_FNN_DOT, Graphviz's `dot`, or `graphviz-pure`."""
    chosen = os.environ.get("TINYGRAD_FNN_DOT")
    if chosen:
        return shutil.which(chosen)
    for program in ("dot", "graphviz-pure"):
        found = shutil.which(program)
        if found:
            return found
    beside = Path(sys.executable).with_name("graphviz-pure")  # a venv run without activation
    return str(beside) if beside.exists() else None


def to_bytes(graph: graphviz.Source | graphviz.Digraph | str, fmt: str = "svg") -> bytes:
    """Render DOT source (or a graph) to `fmt` ("svg", "png", …) and return the bytes."""
    program = find_dot()
    if program is None:
        raise RenderError(
            "no program to render graphs: `pip install graphviz-pure` (self-contained) or "
            "install Graphviz (`apt-get install graphviz`, `brew install graphviz`)"
        )
    source = graph if isinstance(graph, str) else graph.source
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RenderError(f"could not run {program}: {e}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"{program} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def to_svg(graph: graphviz.Source | graphviz.Digraph | str) -> str:
    """The SVG text of a graph."""
    return to_bytes(graph, "svg").decode()


def rendered(
    graph: graphviz.Digraph, path: str | os.PathLike, formats: Iterable[str] = ("svg",)
) -> dict[Path, bytes]:
    """The files of a picture, rendered but not written: `path` + ".dot" (the DOT source) and
    one per format ("svg", "png")."""
    base = Path(path)
    files = {base.with_suffix(".dot"): graph.source.encode()}
    for fmt in formats:
        files[base.with_suffix(f".{fmt}")] = to_bytes(graph, fmt)
    return files


def write(
    graph: graphviz.Digraph, path: str | os.PathLike, formats: Iterable[str] = ("svg",)
) -> list[Path]:
    """Write `path` + ".dot" and one file per format ("svg", "png"); returns the paths written.
    Everything is rendered before anything is written (see `save`)."""
    return save(rendered(graph, path, formats))


def save(files: Mapping[Path, bytes]) -> list[Path]:
    """Write each file whole or not at all; returns the paths.

    Each goes to a temporary file beside it that is then renamed over it, so an interruption
    or a crash leaves the old file or the new one, never half of one. A symbolic link, folder or
    anything else not a regular file in a file's place is refused, never written through, and
    every place is checked before the first file is written.
    """
    for path in files:
        check_replaceable(Path(path))
    for path, data in files.items():
        write_whole(Path(path), lambda f, data=data: f.write(data), check_replaceable)
    return [Path(path) for path in files]


def _format_flag(fmt: str, renderer: str | None, formatter: str | None) -> str:
    return ":".join(part for part in (fmt, renderer, formatter) if part)


class Graph(graphviz.Digraph):
    """A `graphviz.Digraph` that renders through `find_dot()`: Graphviz's `dot` when installed,
    the bundled `graphviz-pure` otherwise. `pipe`, `render` and the Jupyter display hooks all
    work on a machine without Graphviz. The default format is SVG, which both programs write."""

    def __init__(self, *args: Any, format: str = "svg", **kwargs: Any) -> None:
        super().__init__(*args, format=format, **kwargs)

    def pipe(  # type: ignore[override]
        self,
        format: str | None = None,
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: Any = None,
        quiet: bool = False,
        *,
        engine: str | None = None,
        encoding: str | None = None,
    ) -> bytes | str:
        """The rendered graph as bytes (or text, given `encoding`), as `graphviz` documents it."""
        if engine not in (None, "dot") or neato_no_op:
            raise RenderError("only the dot layout is available for these pictures")
        data = to_bytes(self.source, _format_flag(format or self.format, renderer, formatter))
        return data.decode(encoding) if encoding else data

    def render(  # type: ignore[override]
        self,
        filename: str | os.PathLike | None = None,
        directory: str | os.PathLike | None = None,
        view: bool = False,
        cleanup: bool = False,
        format: str | None = None,
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: Any = None,
        quiet: bool = False,
        quiet_view: bool = False,
        *,
        outfile: str | os.PathLike | None = None,
        engine: str | None = None,
        raise_if_result_exists: bool = False,
        overwrite_source: bool = False,
    ) -> str:
        """Save the DOT source and the rendered file beside it; returns the rendered file's path.

        As `graphviz.Digraph.render`: `render("fwd", format="png")` writes `fwd` and `fwd.png`;
        `render(outfile="fwd.png")` writes `fwd.gv` and `fwd.png`.
        """
        if outfile is not None:
            outfile = Path(outfile)
            if directory is None and self.directory:
                outfile = Path(self.directory, outfile)
            format = format or outfile.suffix.lstrip(".") or None
            if filename is None:
                filename = outfile.with_suffix(".gv").name
                directory = directory or outfile.parent
        fmt = format or self.format
        data = self.pipe(fmt, renderer, formatter, neato_no_op, quiet, engine=engine)
        source_path = self.save(filename, directory=directory)
        target = Path(outfile) if outfile is not None else Path(f"{source_path}.{fmt}")
        if raise_if_result_exists and target.exists():
            raise FileExistsError(f"{target} exists already")
        if not overwrite_source and target.resolve() == Path(source_path).resolve():
            raise ValueError(f"{target} would replace the DOT source it is rendered from")
        save({target: data})
        if cleanup:
            os.remove(source_path)
        if view or quiet_view:
            self._view(str(target), format=fmt, quiet=quiet_view)
        return str(target)

    def save(  # type: ignore[override]
        self,
        filename: str | os.PathLike | None = None,
        directory: str | os.PathLike | None = None,
        *,
        skip_existing: bool | None = False,
    ) -> str:
        """Save the DOT source (as `graphviz.Digraph.save`, but whole or not at all: `save`)."""
        if filename is not None:
            self.filename = filename
        if directory is not None:
            self.directory = directory
        path = Path(self.filepath)
        if not (skip_existing and path.exists()):
            path.parent.mkdir(parents=True, exist_ok=True)
            save({path: self.source.encode(self.encoding)})
        return self.filepath

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict:
        return {"image/svg+xml": self._repr_image_svg_xml()}

    def _repr_image_svg_xml(self) -> str:
        return to_svg(self.source)

    def _repr_image_png(self) -> bytes:
        return to_bytes(self.source, "png")
