"""The 汇总's figures of every unit of a run, kept on disk (issue #5: the main process's memory must not grow with
the number of units). Each batch returns a few figures per unit (summary.unit_rows: key, name, rounded total, grade,
一级指标 scores, budget amounts); they go into a private temporary SQLite database as the batch returns, and each
fiscal year's 汇总 tables read them back a chunk at a time (summary.summary_tables), sorted or counted by SQLite.

The store keeps the columns of the frames it is given (their names in order of first appearance; a column a later
batch brings is added, earlier rows have no value there) and the place of each row: batch, then row within the batch,
which is the order of the in-memory tables concatenated in batch order. Text is compared by SQLite's byte order, which
for UTF-8 is Python's order of the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd

from .sqlitedb import connect, select_in

CHUNK = 500  # rows per chunk read back
YEAR, CODE, NAME, SCORE = "财年", "单位编码", "单位名称", "总分"  # columns the store orders and filters by


class UnitStore:
    """One run's per-unit 汇总 figures (see the module doc). Used from one thread; `close` (or garbage collection)
    removes it."""

    def __init__(self):
        self._db = connect(isolation_level=None)
        self._db.execute("CREATE TABLE units(batch INTEGER NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (batch, pos))")
        self._db.execute("BEGIN")  # one transaction for the run: nothing here outlives it
        self.columns: list[str] = []
        self._indexed = False

    @classmethod
    def of(cls, rows: pd.DataFrame) -> "UnitStore":
        """A store holding `rows` (one batch)."""
        store = cls()
        store.add(0, rows)
        return store

    def _col(self, name: str) -> str:
        return f'"c{self.columns.index(name)}"'

    def add(self, batch: int, rows: pd.DataFrame) -> None:
        """The rows of one batch (batches may come in any order; each batch once)."""
        for name in rows.columns:
            if name not in self.columns:
                self.columns.append(name)
                self._db.execute(f"ALTER TABLE units ADD COLUMN {self._col(name)}")
        if not self._indexed and {YEAR, SCORE, CODE} <= set(self.columns):  # a year's rows read in order, not sorted
            year = self._col(YEAR)
            self._db.execute(f"CREATE INDEX by_place ON units({year}, batch, pos)")
            self._db.execute(f"CREATE INDEX by_score ON units({year}, {self._col(SCORE)} DESC, {self._col(CODE)}, "
                             "batch, pos)")
            self._indexed = True
        names = ", ".join(["batch", "pos", *map(self._col, rows.columns)])
        places = ", ".join("?" * (len(rows.columns) + 2))
        values = [rows[c].astype(object).where(rows[c].notna(), None).tolist() for c in rows.columns]
        self._db.executemany(f"INSERT INTO units({names}) VALUES ({places})",
                             ((batch, pos, *row) for pos, row in enumerate(zip(*values))))

    def _where(self, year: int | None) -> tuple[str, tuple]:
        if year is None:
            return "", ()
        return f"WHERE {self._col(YEAR)} = ?", (int(year),)

    def count(self, year: int | None = None) -> int:
        """The number of units (of one 财年, or all)."""
        if YEAR not in self.columns:
            return 0
        where, args = self._where(year)
        return self._db.execute(f"SELECT COUNT(*) FROM units {where}", args).fetchone()[0]

    def years(self) -> list[int]:
        """The 财年 present, in order."""
        if YEAR not in self.columns:
            return []
        return [int(y) for (y,) in self._db.execute(f"SELECT DISTINCT {self._col(YEAR)} FROM units ORDER BY 1")]

    def rows(self, year: int | None = None, *, by_score: bool = False,
             size: int | None = None) -> Iterator[pd.DataFrame]:
        """The rows (of one 财年, or all) a chunk of `size` (default CHUNK) at a time, in the order they were added;
        with by_score, best 总分 first, rows without one last, ties by 单位编码. Each chunk is a DataFrame of the
        store's columns; a missing value is None (NaN in a column of numbers)."""
        if not self.columns:
            return
        where, args = self._where(year)
        order = "batch, pos"
        if by_score:
            score = self._col(SCORE)
            order = f"{score} DESC, {self._col(CODE)}, batch, pos"  # SQLite sorts NULL lowest: last here
        cursor = self._db.execute(f"SELECT {', '.join(map(self._col, self.columns))} FROM units {where} "
                                  f"ORDER BY {order}", args)
        while chunk := cursor.fetchmany(size or CHUNK):
            yield pd.DataFrame.from_records(chunk, columns=self.columns, coerce_float=False)

    def frame(self, year: int | None = None, **options) -> pd.DataFrame:
        """All the rows of `rows` as one frame (small stores: tests, a small run's listing)."""
        return pd.concat([*self.rows(year, **options), pd.DataFrame(columns=self.columns)], ignore_index=True)

    def tally(self, year: int | None, by: str) -> pd.DataFrame:
        """Units per value of column `by` (of one 财年, or all): columns `by`, 单位数 and 最低分 (the lowest 总分 of
        those units, missing when none has one), in order of the value (missing first)."""
        if by not in self.columns:
            return pd.DataFrame(columns=[by, "单位数", "最低分"])
        where, args = self._where(year)
        col = self._col(by)
        cursor = self._db.execute(f"SELECT {col}, COUNT(*), MIN({self._col(SCORE)}) FROM units {where} "
                                  f"GROUP BY {col} ORDER BY {col}", args)
        return pd.DataFrame.from_records(cursor.fetchall(), columns=[by, "单位数", "最低分"], coerce_float=False)

    def names(self, year: int, codes: list[str]) -> dict[str, str]:
        """单位编码 → 单位名称 of the given codes of one 财年 (those present)."""
        code = self._col(CODE)
        return dict(select_in(self._db, f"SELECT {code}, {self._col(NAME)} FROM units WHERE {self._col(YEAR)} = ? "
                                        f"AND {code} IN ({{marks}}) ORDER BY batch, pos",
                              list(dict.fromkeys(codes)), (int(year),)))

    def snapshot(self, path: Path | str) -> Path:
        """A copy of the store in a new database file at `path` (SQLite's backup: page by page, the rows added so
        far), which another process opens with `opened`: a worker writing one fiscal year's 汇总 while others write
        the other years. The store itself stays private and goes on."""
        path = Path(path)
        self._db.execute("COMMIT")  # the backup copies what is committed
        try:
            with closing(connect(str(path))) as copy:
                self._db.backup(copy)
        finally:
            self._db.execute("BEGIN")
        return path

    @classmethod
    def opened(cls, path: Path | str, columns: list[str]) -> "UnitStore":
        """A snapshot (`snapshot`) of a store with these columns, opened read-only."""
        store = cls.__new__(cls)
        store._db = connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        store.columns, store._indexed = list(columns), True
        return store

    def close(self) -> None:
        self._db.close()
