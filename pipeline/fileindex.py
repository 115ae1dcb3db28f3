"""The input files of a streamed run, kept on disk (issue #5: the main process's memory must not grow with the
number of units; tens of thousands of paths, cache entry references and unit keys would).

A private temporary SQLite database (gone when closed): the workbooks found under the input folder, sorted by their
relative name on disk; then, as the file map returns, each file's cache entry reference and 单位编码 (or, for a
file whose staged result could not be cached, that result itself). The unit map's batches are formed from it: the
单位编码 in sorted order, a batch's files in input order.

Text is stored so that SQLite's byte order is Python's order of the text (UTF-8 keeps the order of code points; a
file name that is not valid UTF-8 keeps its escaped bytes, "surrogatepass"); paths are stored as the file system's
own bytes.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

from .load import iter_workbooks
from .sqlitedb import connect, select_in

_SCHEMA = """
CREATE TABLE found(sort BLOB PRIMARY KEY, path BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE files(seq INTEGER PRIMARY KEY, path BLOB NOT NULL, key TEXT, code TEXT, inline BLOB);
CREATE INDEX files_by_code ON files(code, seq);
CREATE INDEX files_by_key ON files(key);
"""


class FileIndex:
    """One run's input files (see the module doc). Used from one thread; `close` removes it."""

    def __init__(self):
        self._db = connect(isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")  # one transaction for the run: nothing here outlives it

    def discover(self, input_dir: Path | str) -> int:
        """Find the workbooks under input_dir (load.iter_workbooks); returns how many."""
        self._db.executemany("INSERT INTO found VALUES (?, ?)",
                             ((rel.encode("utf-8", "surrogatepass"), os.fsencode(path))
                              for rel, path in iter_workbooks(input_dir)))
        return self._db.execute("SELECT COUNT(*) FROM found").fetchone()[0]

    def paths(self) -> Iterator[str]:
        """The workbooks found, sorted by relative name (load.discover_paths' order), one at a time."""
        for (path,) in self._db.execute("SELECT path FROM found ORDER BY sort"):
            yield os.fsdecode(path)

    def add(self, seq: int, path: str, key: str | None, code: str | None, result=None) -> None:
        """A file as the file map returned it: its place in `paths`, its cache entry reference, its 单位编码 (None
        for a file of no unit) and its staged result when that travelled instead of being cached."""
        inline = None if result is None else pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        self._db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?)", (seq, os.fsencode(path), key, code, inline))

    def unit_count(self) -> int:
        return self._db.execute("SELECT COUNT(DISTINCT code) FROM files").fetchone()[0]

    def codes(self) -> Iterator[str]:
        """Every 单位编码, sorted, one at a time."""
        for (code,) in self._db.execute("SELECT DISTINCT code FROM files WHERE code IS NOT NULL ORDER BY code"):
            yield code

    def files_of(self, codes: list[str]) -> list[tuple]:
        """(path, cache entry reference, result or None) of the files of the given 单位编码: unit by unit, each
        unit's files in input order."""
        return _decoded(select_in(self._db, f"{_FILES} WHERE code IN ({{marks}}) ORDER BY code, seq", codes))

    def loose(self) -> list[tuple]:
        """(path, cache entry reference, result or None) of the files of no unit, in input order."""
        return _decoded(self._db.execute(f"{_FILES} WHERE code IS NULL ORDER BY seq"))

    def __contains__(self, pack: object) -> bool:
        """Whether a file of the run is in this pack of the cache (its entry reference is `<pack>/<place>`:
        incremental.cache_prune keeps those packs)."""
        if not isinstance(pack, str):
            return False
        found = self._db.execute("SELECT 1 FROM files WHERE key >= ? AND key < ? LIMIT 1", (pack + "/", pack + "0"))
        return found.fetchone() is not None

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_FILES = "SELECT path, key, inline FROM files"


def _decoded(rows) -> list[tuple]:
    """(path, cache entry reference, result or None) of rows of _FILES."""
    return [(os.fsdecode(path), key, None if inline is None else pickle.loads(inline)) for path, key, inline in rows]
