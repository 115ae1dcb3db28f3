"""How the run's SQLite databases are opened (the file index, the unit store, the manifest and its private copy).

Each connection's page cache is limited to CACHE_KIB (SQLite's default is 2 MiB per connection, and a run has four
of them): a province's index and manifest are several megabytes, so with the default the main process would grow by
the caches until they are full; with this limit it stays flat from a few hundred units on. Pages beyond the cache
are read back from the file (the operating system's page cache), which costs little: every access here is a short
range scan or an index lookup. The limit also bounds SQLite's in-memory sort (it spills to a temporary file beyond
its larger of 250 pages and the cache)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

CACHE_KIB = 256
PARAMS = 500  # values per IN (…) list, within SQLite's limit on parameters


def connect(target: str = "", **options) -> sqlite3.Connection:
    """sqlite3.connect(target, **options) with the page cache limited to CACHE_KIB. The default target "" is a
    private temporary database on disk, removed when the connection is closed."""
    db = sqlite3.connect(target, **options)
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return db


def select_in(db: sqlite3.Connection, sql: str, values: Sequence, args: tuple = ()) -> Iterator[tuple]:
    """The rows of `sql` for every value of `values`: `sql` has one `IN ({marks})`, filled PARAMS values at a time
    (one statement per part, the rows of each part in the statement's order); `args` are bound before the list."""
    for i in range(0, len(values), PARAMS):
        part = values[i:i + PARAMS]
        yield from db.execute(sql.format(marks=",".join("?" * len(part))), (*args, *part))
