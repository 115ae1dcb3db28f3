"""Atomic output: every file is written beside its final name and renamed into place, so an interrupted run leaves
the previous result intact and never half a workbook."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers pick the right format); when the block ends
    without error it is renamed onto `path`, otherwise removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = _temporary_beside(path)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files colleagues must be able to open
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: Path | str, content: bytes | str) -> Path:
    """Write bytes (or text as UTF-8) atomically; returns the path. Same steps as atomic_output, written through
    the temporary file's own descriptor (a run writes several small files per unit and one cache entry per input
    file: opening each twice and creating its folder each time cost a third of the write)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path = Path(path)
    try:
        fd, name = _temporary_beside(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def _temporary_beside(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
