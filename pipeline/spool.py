"""A run's data issues kept on disk a batch at a time. A province's run finds tens of thousands of issues (about 8 per
unit, ~0.7 KB each in memory); the main process keeps only their counts, the number of units with errors and the few
issues that belong to no unit, nothing per batch, so that its memory does not grow with the number of units.

- `spool_batch(folder, index, issues)` (in a worker): the batch's issues of its units, a file per severity in
  `folder`; returns the batch's `Tally`, which is all that travels back.
- `IssueLog`: the run's issues. Counted by their tallies; iterated (read back from the files); or taken in
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
OUTPUTS = "outputs"  # the name of a batch's spool file of output paths: <batch>-outputs.pickle


@dataclass(frozen=True)
class Tally:
    """What the main process keeps of one batch's issues."""

    counts: dict[str, int]                  # severity → number of issues (all of the batch's issues)
    error_units: int                        # how many of its units (单位编码, 财年) have an error
    unitless: tuple[Issue, ...] = ()        # the issues of no unit, kept in memory (rare: files of no unit)
    first: str = ""                         # the smallest and largest 单位编码 among the spooled issues ("" when
    last: str = ""                          # the batch spooled none)


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
    for sev, found in by_severity.items():
        write_atomic(Path(folder) / f"{index:06d}-{SEVERITY_ORDER[sev]}.pickle",
                     pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
    return Tally(dict(severity_counts(issues)), len(units_with_errors(issues)),
                 tuple(unitless), units[0] if units else "", units[-1] if units else "")


def _read(file: Path) -> list[Issue]:
    """The issues of one spool file."""
    with open(file, "rb") as fh:
        return pickle.load(fh)


@dataclass(eq=False)
class IssueLog:
    """The issues of a run: those of no unit found before the batches (`loose`, e.g. unreadable files), then each
    batch's, spooled by the batch (spool_batch) and folded in here in batch order (`add`). The log keeps only their
    counts, the few issues of no unit and whether the batches hold increasing ranges of 单位编码; the files are
    found again by their names (`<batch>-<severity>.pickle`) when the issues are read back."""

    loose: list[Issue] = field(default_factory=list)
    folder: Path | None = None
    counts: Counter = field(default_factory=Counter)  # severity → number of issues
    error_units: int = 0            # units with an error, summed over the batches (each holds its own units)
    unitless: list[Issue] = field(default_factory=list)  # the batches' issues of no unit
    ordered: bool = True            # the batches' 单位编码 ranges are increasing (see `chunks`)
    _last: str = ""

    def __post_init__(self):
        self.counts = Counter(i.severity for i in self.loose) + Counter(self.counts)
        self.error_units += len(units_with_errors(self.loose))

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
        """One batch's tally; the batches in batch order."""
        self.counts.update(tally.counts)
        self.error_units += tally.error_units
        self.unitless.extend(tally.unitless)
        if tally.last:  # it spooled issues
            if self._last and tally.first <= self._last:
                self.ordered = False
            self._last = max(self._last, tally.last)

    def _files(self, severity: str | None = None) -> list[Path]:
        """The batches' spool files (of one severity, or all) in batch order, each batch's by severity."""
        if self.folder is None:
            return []
        k = "[0-9]" if severity is None else str(SEVERITY_ORDER[severity])
        return sorted(self.folder.glob(f"*-{k}.pickle"))

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Issue]:
        """Every issue (read back from the files): those of no unit, then each batch's by severity."""
        yield from self.loose
        yield from self.unitless
        for file in self._files():
            yield from _read(file)

    def chunks(self, keep: Callable[[Issue], bool] = lambda i: True) -> Iterator[list[Issue]]:
        """The issues that `keep`, in chunks whose concatenation, each chunk sorted by issues_frame, is issues_frame
        of them all (the 数据问题 order, see the module doc); one batch's issues of one severity at most in memory.
        Empty chunks are left out."""
        unitless = [i for i in [*self.loose, *self.unitless] if keep(i)]
        blank = [i for i in unitless if isinstance(i.unit, str) and not i.unit]
        missing = [i for i in unitless if not isinstance(i.unit, str) and pd.isna(i.unit)]
        if len(blank) + len(missing) < len(unitless) or not self.ordered:
            # not partitioned by unit after all (never in a run): one chunk of everything
            everything = [i for i in self if keep(i)]
            if everything:
                yield everything
            return
        for sev in SEVERITY_ORDER:
            chunks = itertools.chain([[i for i in blank if i.severity == sev]],
                                     ([i for i in _read(f) if keep(i)] for f in self._files(sev)),  # lazily
                                     [[i for i in missing if i.severity == sev]])
            yield from (chunk for chunk in chunks if chunk)


def spool_outputs(folder: str | Path, index: int, written: list[str],
                  unchanged: list[str]) -> tuple[int, int]:
    """A batch's output paths (written, unchanged) in `folder/<index>-outputs.pickle` (no file when both are
    empty); returns how many of each: a province's run writes tens of thousands of files, listed only for a small
    run (SpooledPaths)."""
    if written or unchanged:
        write_atomic(Path(folder) / f"{index:06d}-{OUTPUTS}.pickle",
                     pickle.dumps((written, unchanged), protocol=pickle.HIGHEST_PROTOCOL))
    return len(written), len(unchanged)


class SpooledPaths(Sequence):
    """Output paths of one kind (0: written, 1: unchanged) of a run: those of each batch's spool_outputs file in
    the log's folder, in batch order, then `tail` (the few the main process wrote itself). `count`: how many the
    batches spooled (their sum of spool_outputs' numbers). Counted in memory, read back when iterated; holds the
    run's IssueLog, whose folder the files are in."""

    def __init__(self, log: IssueLog | None, kind: int, count: int = 0, tail: Iterable[str] = ()):
        self._log, self._kind, self._count, self._tail = log, kind, count, list(tail)

    def __len__(self) -> int:
        return self._count + len(self._tail)

    def __iter__(self) -> Iterator[str]:
        if self._count:
            for file in sorted(self._log.folder.glob(f"*-{OUTPUTS}.pickle")):
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


def units_with_errors(issues: Iterable[Issue]) -> set:
    """(单位编码, 财年) of every unit with an error, of a list of issues."""
    return {(i.unit, i.year) for i in issues if i.severity == SEVERITY_ERROR and i.unit}


def error_unit_count(issues: IssueLog | Iterable[Issue]) -> int:
    """How many units (单位编码, 财年) have an error, of a log or a list."""
    return issues.error_units if isinstance(issues, IssueLog) else len(units_with_errors(issues))
