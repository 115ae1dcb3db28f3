"""The manifest of what a run wrote (issue #5, incremental reruns): `output/.pipeline-state.sqlite`, format 2.

Per unit (`"<财年>/<单位编码>"`): the hash of what its outputs depend on and the SHA-256 of each file written for it;
per 财年 file (评分明细.csv, 汇总.xlsx): its SHA-256; and the program that wrote them. A SQLite database rather than
one JSON document (format 1) so that a run over a province never holds it whole: a batch's entries are looked up by
单位编码 when the batch is sent, the run's new entries go to the new manifest as each batch returns, and what becomes
of each old entry (kept, its outputs removed) is decided one row at a time.

The new manifest is built under a temporary name beside the old one and renamed onto it when the run has written
everything (an interrupted run leaves the previous manifest). A manifest that cannot be read (damaged, foreign, of
another format) counts as none: every unit is rendered again. A format-1 manifest (`.pipeline-state.json`, written
before 2026-11-27) is read in its place (its outputs are still removed once stale) and deleted once the new one is in
place.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from .atomic import atomic_output
from .sqlitedb import connect, select_in

STATE_FILE = ".pipeline-state.sqlite"
LEGACY_STATE_FILE = ".pipeline-state.json"  # format 1
STATE_FORMAT = 2

_SCHEMA = """
CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE units(uid TEXT PRIMARY KEY, code TEXT NOT NULL, year INTEGER NOT NULL, hash TEXT, outputs TEXT NOT NULL);
CREATE INDEX units_by_code ON units(code);
CREATE TABLE files(rel TEXT PRIMARY KEY, sha TEXT NOT NULL);
"""


def _uid_parts(uid: str) -> tuple[str, int]:
    """"<财年>/<单位编码>" → (单位编码, 财年) (a 单位编码 may itself contain "/")."""
    year, code = uid.split("/", 1)
    return code, int(year)


class Manifest:
    """A manifest as read by a run: empty when there is none or it cannot be read. Read from a private copy (so that
    the new manifest can be renamed onto the file while this one is open, which Windows would refuse)."""

    def __init__(self, db: sqlite3.Connection | None = None):
        self._db = db

    @classmethod
    def open(cls, output_dir: Path | str) -> Manifest:
        path = os.path.join(output_dir, STATE_FILE)
        if os.path.isfile(path):
            db = connect()  # a private temporary copy on disk: the file itself is never held open
            try:
                # read-only and immutable: never a journal or lock file beside it, never a change to it
                with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro&immutable=1", uri=True)) as src:
                    src.backup(db)
                meta = dict(db.execute("SELECT name, value FROM meta"))
                if meta.get("format") == str(STATE_FORMAT) and db.execute("PRAGMA quick_check").fetchone() == ("ok",):
                    db.execute("SELECT uid, code, year, hash, outputs FROM units LIMIT 1").fetchall()
                    db.execute("SELECT rel, sha FROM files LIMIT 1").fetchall()
                    return cls(db)
            except (sqlite3.Error, ValueError):
                pass
            db.close()
            return cls()
        return cls._legacy(os.path.join(output_dir, LEGACY_STATE_FILE))

    @classmethod
    def _legacy(cls, path: str) -> Manifest:
        """A format-1 manifest (one JSON document) copied into a temporary database; none when absent or foreign."""
        try:
            with open(path, encoding="utf-8") as fh:
                state = json.load(fh)
            if not isinstance(state, dict) or state.get("format") != 1:
                return cls()
            db = connect()  # a private temporary database on disk, gone when closed
            db.executescript(_SCHEMA)
            _insert_units(db, state.get("units", {}).items())
            db.executemany("INSERT INTO files VALUES (?, ?)", state.get("files", {}).items())
            return cls(db)
        except (OSError, ValueError, TypeError, AttributeError, sqlite3.Error):
            return cls()

    def units_of(self, codes: Iterable[str]) -> dict[str, dict]:
        """uid → entry ({"hash", "outputs"}) of every 财年 of the given 单位编码."""
        codes = list(codes)
        if self._db is None or not codes:
            return {}
        rows = select_in(self._db, "SELECT uid, hash, outputs FROM units WHERE code IN ({marks})", codes)
        return {uid: _entry(digest, outputs) for uid, digest, outputs in rows}

    def entries(self) -> Iterator[tuple[str, int, dict]]:
        """(uid, 财年, entry) of every unit, in uid order, one row at a time."""
        if self._db is None:
            return
        for uid, year, digest, outputs in self._db.execute("SELECT uid, year, hash, outputs FROM units ORDER BY uid"):
            yield uid, year, _entry(digest, outputs)

    def files(self) -> dict[str, str]:
        """The per-财年 files: relative path → SHA-256 (a few per year)."""
        return {} if self._db is None else dict(self._db.execute("SELECT rel, sha FROM files"))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ManifestWriter:
    """The manifest a run builds (see `new_manifest`)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def add(self, units: dict[str, dict]) -> None:
        """Record entries (uid → {"hash", "outputs"}); an entry already recorded is replaced."""
        _insert_units(self._db, units.items(), replace=True)

    def outputs_of(self, uid: str) -> dict[str, str]:
        row = self._db.execute("SELECT outputs FROM units WHERE uid = ?", (uid,)).fetchone()
        return json.loads(row[0]) if row else {}

    def set_files(self, files: dict[str, str]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", files.items())


@contextmanager
def new_manifest(output_dir: Path | str, meta: dict[str, str]) -> Iterator[ManifestWriter]:
    """A ManifestWriter over a new database beside `output_dir/STATE_FILE`, renamed onto it when the block ends
    without error (and a format-1 manifest then deleted); removed otherwise. `meta`: the program that writes it."""
    with atomic_output(Path(output_dir) / STATE_FILE) as tmp:
        # a new file that only this process opens until it is renamed into place when complete: no locking (which
        # some network file systems refuse: the output folder of a Dask run is shared), no journal, no syncing
        with closing(connect(f"{Path(tmp).resolve().as_uri()}?nolock=1", uri=True, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.executescript(_SCHEMA)
            db.execute("BEGIN")
            yield ManifestWriter(db)
            db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", str(STATE_FORMAT)), *meta.items()])
            db.execute("COMMIT")
    Path(output_dir, LEGACY_STATE_FILE).unlink(missing_ok=True)


def read_state(output_dir: Path | str) -> dict:
    """The whole manifest as one dict ({"format", "pipeline", "code", "units", "files"}; {} when there is none):
    for inspection and tests (a run reads it a batch at a time)."""
    with Manifest.open(output_dir) as m:
        if m._db is None:
            return {}
        meta = dict(m._db.execute("SELECT name, value FROM meta")) if _has_meta(m._db) else {"format": "1"}
        return {**meta, "format": int(meta["format"]), "units": {uid: e for uid, _, e in m.entries()},
                "files": dict(sorted(m.files().items()))}


def _has_meta(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] > 0


def _entry(digest: str | None, outputs: str) -> dict:
    return {"hash": digest, "outputs": json.loads(outputs)}


def _insert_units(db: sqlite3.Connection, items: Iterable[tuple[str, dict]], replace: bool = False) -> None:
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.executemany(f"{verb} INTO units VALUES (?, ?, ?, ?, ?)",
                   ((uid, *_uid_parts(uid), e.get("hash"), json.dumps(e.get("outputs") or {}, ensure_ascii=False))
                    for uid, e in items))
