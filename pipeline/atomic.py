"""Atomic output: every file is written beside its final name and renamed into place, so an interrupted run leaves
the previous result intact and never half a workbook."""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A temporary file is created new (never an existing file or a link followed), write-only, in binary mode on Windows.
_CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
_MODE = 0o644  # outputs are ordinary files colleagues must be able to open, whatever the umask
_serial = itertools.count()  # numbers this process's temporary files


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
        os.chmod(tmp, _MODE)  # the writer may have created the file again, under the umask
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: Path | str, content: bytes | str) -> Path:
    """Write bytes (or text as UTF-8) atomically; returns the path. Same steps as atomic_output, written through
    the temporary file's own descriptor, which also sets its mode (a run writes several small files per unit and
    one cache entry per input file: each system call and each path lookup counts)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path = Path(path)
    try:
        fd, name = _temporary_beside(path)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = _temporary_beside(path)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


def _write_all(fd: int, data: bytes) -> None:
    """All of `data` into the new file `fd`, with the output mode (os.write may write less than it is given). The
    mode is changed only when the umask took something away: a change of mode is a journaled metadata write on
    most file systems, looking at it is not."""
    if hasattr(os, "fchmod") and stat.S_IMODE(os.fstat(fd).st_mode) != _MODE:
        os.fchmod(fd, _MODE)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new empty file in `path`'s folder, open for writing, named like mkstemp's (`.{stem}.{8 characters}{suffix}`,
    so no longer than before) but with the 8 characters made from the pid and a serial number rather than drawn at
    random. A name already taken (by another process, or left behind by a killed one) falls back to mkstemp. The
    mode set here is the umask's; the callers set the output mode."""
    token = f"{os.getpid() & 0xFFF:03x}{next(_serial) & 0xFFFFF:05x}"
    name = os.path.join(path.parent, f".{path.stem}.{token}{path.suffix}")
    try:
        return os.open(name, _CREATE_FLAGS, _MODE), name
    except FileExistsError:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
