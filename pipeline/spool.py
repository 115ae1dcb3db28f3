"""A run's data issues kept on disk a batch at a time. A province's run finds tens of thousands of issues (about 8 per
unit, ~0.7 KB each in memory); the main process keeps only their counts, the units with errors and the few issues
that belong to no unit, so that its memory does not grow with the number of units.

- `spool_batch(folder, index, issues)` (in a worker): the batch's issues of its units, a file per severity in
  `folder`; returns the batch's `Tally`, which is all that travels back.
- `IssueLog`: the run's issues. Counted and listed by their tallies; iterated (read back from the files); or taken in
  the order of the 数据问题 sheet one chunk at a time (`chunks`), which is how the 汇总 and `check` write them.
  The log owns its folder and removes it when it is garbage-collected (or at exit).

The order of the 数据问题 sheet is `issues.issues_frame`'s: severity, then 单位编码, 文件, 工作表, ties in the order
found; a blank 单位编码 ("") sorts first, a missing one (None, NaN: pandas' NA) last. Batches hold consecutive ranges
of sorted 单位编码, so within one severity: the issues with a blank 单位编码, then each batch's issues in batch order,
then those with a missing one, each chunk sorted on its own. `chunks` checks that this holds (the batches' ranges do
not overlap, the issues kept in memory have a blank or missing 单位编码) and otherwise sorts everything at once
(correct, not bounded).
"""

from __future__ import annotations

import itertools
import pickle
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .atomic import write_atomic
from .issues import SEVERITY_ORDER, Issue
from .spec import SEVERITY_ERROR

_LIVE: set[str] = set()  # folders of the logs alive in this process (not stale leftovers of an interrupted run)
PREFIX = "issues-"


@dataclass(frozen=True)
class Tally:
    """What the main process keeps of one batch's issues."""

    files: dict[str, str]                   # severity → the file of the batch's issues of units of that severity
    counts: dict[str, int]                  # severity → number of issues (all of the batch's issues)
    with_errors: frozenset[tuple[str, int]]  # (单位编码, 财年) of the units with an error
    unitless: tuple[Issue, ...] = ()        # the issues of no unit, kept in memory (rare: files of no unit)
    first: str = ""                         # the smallest and largest 单位编码 among the spooled issues
    last: str = ""


def _named(issue: Issue) -> bool:
    """Whether the issue names a unit (a non-empty 单位编码 text): those are spooled."""
    return isinstance(issue.unit, str) and issue.unit != ""


def spool_batch(folder: str | Path, index: int, issues: list[Issue]) -> Tally:
    """Write the issues that name a unit, those of each severity in the order found, to `folder/<index>-<k>.pickle`
    (k: the severity's place in SEVERITY_ORDER)."""
    by_severity: dict[str, list[Issue]] = {}
    unitless: list[Issue] = []
    for i in issues:
        (by_severity.setdefault(i.severity, []) if _named(i) else unitless).append(i)
    units = sorted({i.unit for sev in by_severity.values() for i in sev})
    files = {sev: str(write_atomic(Path(folder) / f"{index:06d}-{SEVERITY_ORDER[sev]}.pickle",
                                   pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)))
             for sev, found in by_severity.items()}
    return Tally(files, dict(severity_counts(issues)), frozenset(units_with_errors(issues)),
                 tuple(unitless), units[0] if units else "", units[-1] if units else "")


def _read(tally: Tally, severity: str) -> list[Issue]:
    """The batch's spooled issues of `severity`."""
    if severity not in tally.files:
        return []
    with open(tally.files[severity], "rb") as fh:
        return pickle.load(fh)


@dataclass(eq=False)
class IssueLog:
    """The issues of a run: those of no unit found before the batches (`loose`, e.g. unreadable files), then each
    batch's tally in batch order (`add`)."""

    loose: list[Issue] = field(default_factory=list)
    folder: Path | None = None
    tallies: list[Tally] = field(default_factory=list)

    @classmethod
    def create(cls, parent: Path, loose: Iterable[Issue] = ()) -> "IssueLog":
        """A log spooling into a new folder under `parent` (which must be reachable by every worker: for a Dask
        cluster, on the shared file system); the folder goes when the log does."""
        parent = Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=PREFIX, dir=parent)
        _LIVE.add(folder)
        log = cls(list(loose), Path(folder))
        weakref.finalize(log, _remove, folder)
        return log

    def add(self, tally: Tally) -> None:
        self.tallies.append(tally)

    @property
    def counts(self) -> Counter:
        """Severity → number of issues."""
        total = Counter(i.severity for i in self.loose)
        for t in self.tallies:
            total.update(t.counts)
        return total

    @property
    def with_errors(self) -> set[tuple[str, int]]:
        """(单位编码, 财年) of every unit with an error."""
        return units_with_errors(self.loose) | {key for t in self.tallies for key in t.with_errors}

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Issue]:
        """Every issue (read back from the files): those of no unit, then each batch's by severity."""
        yield from self.loose
        for t in self.tallies:
            yield from t.unitless
        for t in self.tallies:
            for sev in SEVERITY_ORDER:
                yield from _read(t, sev)

    def chunks(self, keep: Callable[[Issue], bool] = lambda i: True) -> Iterator[list[Issue]]:
        """The issues that `keep`, in chunks whose concatenation, each chunk sorted by issues_frame, is issues_frame
        of them all (the 数据问题 order, see the module doc); one batch's issues of one severity at most in memory.
        Empty chunks are left out."""
        spooled = [t for t in self.tallies if t.files]
        unitless = [i for i in [*self.loose, *(i for t in self.tallies for i in t.unitless)] if keep(i)]
        blank = [i for i in unitless if isinstance(i.unit, str) and not i.unit]
        missing = [i for i in unitless if not isinstance(i.unit, str) and pd.isna(i.unit)]
        if len(blank) + len(missing) < len(unitless) or any(a.last >= b.first for a, b in zip(spooled, spooled[1:])):
            # not partitioned by unit after all (never in a run): one chunk of everything
            everything = [i for i in self if keep(i)]
            if everything:
                yield everything
            return
        for sev in SEVERITY_ORDER:
            chunks = itertools.chain([[i for i in blank if i.severity == sev]],
                                     ([i for i in _read(t, sev) if keep(i)] for t in spooled),  # lazily
                                     [[i for i in missing if i.severity == sev]])
            yield from (chunk for chunk in chunks if chunk)


def spool_outputs(folder: str | Path, index: int, written: list[str],
                  unchanged: list[str]) -> tuple[str | None, int, int]:
    """A batch's output paths (written, unchanged) in `folder/<index>-outputs.pickle`; returns (the file, or None when
    both are empty, and how many of each): a province's run writes tens of thousands of files, listed only for a
    small run."""
    if not written and not unchanged:
        return None, 0, 0
    file = write_atomic(Path(folder) / f"{index:06d}-outputs.pickle",
                        pickle.dumps((written, unchanged), protocol=pickle.HIGHEST_PROTOCOL))
    return str(file), len(written), len(unchanged)


class SpooledPaths(Sequence):
    """Output paths of one kind (0: written, 1: unchanged) of a run: those of each batch's spool_outputs file in
    batch order, then `tail` (the few the main process wrote itself). Counted in memory, read back when iterated;
    holds the run's IssueLog, whose folder the files are in."""

    def __init__(self, parts: list[tuple[str | None, int, int]], kind: int, tail: Iterable[str] = (), log=None):
        self._parts = [(file, counts[kind]) for file, *counts in parts if counts[kind]]
        self._kind, self._tail, self._log = kind, list(tail), log

    def __len__(self) -> int:
        return sum(n for _, n in self._parts) + len(self._tail)

    def __iter__(self) -> Iterator[str]:
        for file, _ in self._parts:
            with open(file, "rb") as fh:
                yield from pickle.load(fh)[self._kind]
        yield from self._tail

    def __getitem__(self, i):
        return list(self)[i]

    def __eq__(self, other) -> bool:
        return isinstance(other, (list, tuple, SpooledPaths)) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"SpooledPaths({len(self)} paths)"


def _remove(folder: str) -> None:
    _LIVE.discard(folder)
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale(parent: Path) -> None:
    """Remove the spool folders under `parent` left by an interrupted run (not those of a log alive here)."""
    parent = Path(parent)
    if parent.is_dir():
        for p in parent.glob(f"{PREFIX}*"):
            if str(p) not in _LIVE and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def sheet_chunks(issues: IssueLog | Iterable[Issue],
                 keep: Callable[[Issue], bool] = lambda i: True) -> Iterator[list[Issue]]:
    """The issues that `keep` in chunks (see IssueLog.chunks); a plain list of issues (an in-memory Evaluation's) is
    one chunk."""
    if isinstance(issues, IssueLog):
        yield from issues.chunks(keep)
        return
    chunk = [i for i in issues if keep(i)]
    if chunk:
        yield chunk


def severity_counts(issues: IssueLog | Iterable[Issue]) -> Counter:
    """Severity → number of issues, of a log or a list."""
    return issues.counts if isinstance(issues, IssueLog) else Counter(i.severity for i in issues)


def units_with_errors(issues: IssueLog | Iterable[Issue]) -> set:
    """(单位编码, 财年) of every unit with an error, of a log or a list."""
    if isinstance(issues, IssueLog):
        return issues.with_errors
    return {(i.unit, i.year) for i in issues if i.severity == SEVERITY_ERROR and i.unit}
