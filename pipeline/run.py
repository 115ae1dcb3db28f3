"""Orchestration: input folder → scored tables → output files. Glue only; each stage lives in its own module.

Scale (many units, reruns): `run_streaming` is what `python -m pipeline run` does.
- Map 1, over files (in the executor's workers, a task of several files at a time): read and stage each workbook and
  keep the result in the staged-file cache `output/.cache/staged/`, one pack per task (each file keyed by the
  SHA-256 of its bytes, its relative name and the pipeline's code; see incremental.py); only the file's unit key
  and the reference of its entry travel back, into the run's file index on disk (fileindex.FileIndex: the paths
  found, sorted there, with each file's cache entry reference and 单位编码).
- Map 2, over batches of units (all fiscal years of up to `BATCH_UNITS` 单位编码 per batch): a worker takes the
  batch's staged files from the cache, runs every pure stage vectorised over the batch's units (`evaluate_staged`),
  renders the units whose inputs changed, writes its part of each year's 评分明细.csv into the cache and returns
  only small tables (a row per unit of the 汇总's figures, summary.unit_rows; the tally of its issues, spooled to
  disk; the batch's points lost per 汇总 line). A batch is made when the executor takes it: its files and its units'
  old manifest entries are read from disk then. The main process never holds the staged tables or score details of
  all units, any workbook, the list of files, the paths written, the manifest or a row per unit: the units' 汇总
  figures go into a store on disk as their batch returns (unitstore.UnitStore) and each year's 汇总 reads them back
  a chunk at a time; a worker's memory grows with the batch size only.
- Incremental: the manifest `output/.pipeline-state.sqlite` (manifest.py) maps each unit to a hash of its inputs
  (files' SHA-256, 评分标准, code digest, options, its issues) and to the files written for it. Only units whose
  hash changed are rendered again (and the 评分明细.csv / 汇总.xlsx of their 财年); outputs of units that
  disappeared from a 财年 present in the input are removed (only files the manifest says this program wrote); years
  absent from the input are left as they are. `force=True` (`--force`) ignores cache and manifest.

`evaluate` + `write_outputs` do the same over everything at once in memory (one batch): the monitoring run
and the tests use them; both paths share every stage and the per-unit and per-year writers.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, checks, issues as iss, rollover, summary
from .atomic import atomic_output, write_atomic
from .incremental import (CACHE_DIR, cache_get, cache_prune, code_digest, load_and_stage, outputs_intact, ref_pack,
                          sha256_file, stage_files, task_cuts)
from .dataset import Dataset, assemble
from .fileindex import FileIndex
from .framework import Framework
from .indicators import compute_indicators, unit_amounts
from .intermediate import aggregate_work_stats, resolve_targets
from .load import discover_paths
from .manifest import Manifest, ManifestWriter, new_manifest
from .numbers import records
from .parallel import Counted, Executor
from .render import (DETAIL_COLUMNS, LISTED_TABLES, UnitReport, collector_paused, column_lists, render_unit_workbook,
                     set_columns)
from .monitoring import monitor  # issue #6: 绩效运行监控
from .report import template_digest, write_unit_report  # issue #6: 绩效自评报告
from .scoring import Scores, score_units
from .spec import UNIT_KEY, safe_name
from .spool import IssueLog, SpooledPaths, remove_stale, spool_batch, spool_outputs
from .summary import SUMMARY_FILE, fits_in_memory, summary_tables, write_summary
from .unitstore import UnitStore

DETAILS_CSV = "评分明细.csv"


@dataclass
class Evaluation:
    """All stage outputs of one evaluation over a set of input files (every unit of every year at once)."""

    dataset: Dataset
    work_stats: pd.DataFrame      # one row per unit × 统计项
    targets: pd.DataFrame         # one row per unit × target, resolved and scored
    indicators: pd.DataFrame      # one row per unit × 计算方法
    scores: Scores
    issues: list[iss.Issue]
    timings: dict[str, float] = field(default_factory=dict)
    input_dir: Path | None = None  # for the 数据问题 links back to the input files
    # what write_outputs did: lists of paths under "written", "unchanged", "removed" (filled by write_outputs)
    outputs: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(i.severity == iss.SEVERITY_ERROR for i in self.issues)

    @property
    def units(self) -> pd.DataFrame:
        return self.dataset.units

    @property
    def totals(self) -> pd.DataFrame:
        return self.scores.totals

    @property
    def details(self) -> pd.DataFrame:
        return self.scores.details

    @functools.cached_property
    def losses(self) -> pd.DataFrame:
        """Points lost per year and 汇总 line, summed over the units (summary.loss_totals)."""
        return summary.loss_totals(self.details)

    @property
    def unit_rows(self) -> pd.DataFrame:
        """What the 汇总 needs of each unit (summary.unit_rows)."""
        return summary.unit_rows(self.units, self.totals, self.indicators)

    @functools.cached_property
    def store(self) -> UnitStore:
        """The unit_rows in a UnitStore, as a run keeps them: the 汇总 and the end-of-run summary read them (RunResult
        has the same attributes store, losses and issues)."""
        return UnitStore.of(self.unit_rows)


@dataclass
class RunResult:
    """What a streamed run (`run_streaming`) keeps in the main process: the 汇总 figures of each unit in a UnitStore
    on disk, the points lost per 汇总 line (summed over the batches) and the counts of the issues and of the paths
    written (the issues and the paths themselves are spooled to disk: spool.IssueLog, spool.SpooledPaths); never
    score details, staged tables or workbooks, a row per unit or anything per batch. Same attribute names as
    Evaluation (store, losses, issues), so that the summary tables and the end-of-run summary read either."""

    store: UnitStore
    losses: pd.DataFrame
    issues: IssueLog
    files: int = 0                 # input files found
    timings: dict[str, float] = field(default_factory=dict)
    # as Evaluation's, but path strings; "written" and "unchanged" spooled to disk by the batches (spool.SpooledPaths)
    outputs: dict[str, Sequence[str]] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return self.issues.counts[iss.SEVERITY_ERROR] > 0


def load_dataset(input_dir: Path, executor: Executor | None = None, cache_dir: Path | None = None,
                 progress: bool = False) -> tuple[Dataset, list[iss.Issue]]:
    """Read and stage every workbook under input_dir; a bad file becomes issues, never an exception.

    With `executor`, files are read and staged in its workers (the file map); with `cache_dir`, a file whose
    bytes, relative name and pipeline code are unchanged since a previous run is taken from the cache instead."""
    input_dir = Path(input_dir)
    paths = discover_paths(input_dir)
    mapped: list = [None] * len(paths)  # in input order, whatever order the tasks finish in
    for seq, _, entry in map_files(paths, len(paths), input_dir, executor or Executor(), cache_dir, want=True,
                                   progress=progress):
        mapped[seq] = entry
    if cache_dir is not None:
        cache_prune(cache_dir, {ref_pack(ref) for ref, _, _ in mapped if ref is not None})
    return _assemble_results([result for _, _, result in mapped])


def map_files(paths: Iterable[str], total: int, input_dir: Path, executor: Executor, cache_dir: Path | None, *,
              force: bool = False, want: bool, progress: bool = False) -> Iterator[tuple[int, str, tuple]]:
    """The file map: stage_files over the `total` files of `paths` (taken as the tasks are sent), a few files per
    task (one task per file would cost the main process more than a worker spends on it; the files of a task share
    one pack of the cache), with a progress bar. Tasks are cut where incremental.task_cuts says, so that a rerun
    finds the same tasks and their packs: `every` files on average (a power of two, FILES_PER_TASK at most, fewer
    for a small input so that every worker gets several tasks), 4 × `every` at most.
    Yields (place in `paths`, path, (entry reference, unit key, result)) per file as the tasks finish: a caller that
    needs input order restores it from the place (a unit whose files fall in two tasks must get its files, and so
    its issues, its 绩效自评报告 and its manifest hash, in the same order on every run). The result is None when it
    stayed in the cache (`want` False)."""
    size = max(1, min(FILES_PER_TASK, -(-total // (executor.workers * 8))))
    every = 1 << (size.bit_length() - 1)
    common = (str(input_dir), None if cache_dir is None else str(cache_dir), force, want)
    prefix = os.path.join(str(input_dir), "")
    sent: dict[int, tuple[int, list[str]]] = {}  # the first place and the paths of the tasks in flight

    def tasks():
        number, chunk = itertools.count(), []
        for place, path in enumerate(paths):
            chunk.append(path)
            rel = path[len(prefix):] if path.startswith(prefix) else path
            if task_cuts(rel, every) or len(chunk) == 4 * every:
                sent[next(number)] = (place + 1 - len(chunk), chunk)
                yield [(p, *common) for p in chunk]
                chunk = []
        if chunk:
            sent[next(number)] = (place + 1 - len(chunk), chunk)
            yield [(p, *common) for p in chunk]

    bar = progress_bar(total, "读取", "文件", progress)
    try:  # the number of tasks is estimated (the cuts are known as the paths are read): it only decides inline runs
        for c, staged in executor.imap(stage_files, Counted(tasks(), -(-total // every))):
            start, chunk = sent.pop(c)
            for j, (path, entry) in enumerate(zip(chunk, staged)):
                yield start + j, path, entry
            bar.update(len(staged))
    finally:
        bar.close()


def _assemble_results(results: list) -> tuple[Dataset, list[iss.Issue]]:
    """(StagedFile or None, issues) per file → the Dataset and every issue so far (load's, staging's, assemble's)."""
    staged, found = [], []
    for staged_file, problems in results:
        found.extend(problems)
        if staged_file is not None:
            staged.append(staged_file)
    dataset = assemble(staged)
    return dataset, found + list(dataset.issues)


class _NoBar:
    """What progress_bar gives when there is no bar to show: its two methods, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str, enabled: bool):
    """A tqdm bar on stderr (units done, rate, time left); when disabled (or with nothing to count) a no-op object,
    without importing tqdm: that takes ≈ 15 ms, at the start of the run, before any worker has a task."""
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                smoothing=0.1)


def management_for_scoring(ds: Dataset) -> pd.DataFrame:
    """管理情况 with the cell of each 得分比例, as scoring names it in its issues."""
    m = ds.management
    where = zip(*(m[c].tolist() for c in ("_file", "_sheet", "_row")))
    return m.assign(单元格=[f"{sheet}!{ds.cell({'_file': file, '_sheet': sheet, '_row': row}, '得分比例')}"
                         for file, sheet, row in where])


def evaluate(input_dir: Path, framework: Framework, *, executor: Executor | None = None,
             cache_dir: Path | None = None, progress: bool = False) -> Evaluation:
    """Run every pure stage over all units of input_dir at once, in memory. `executor` reads files in parallel;
    `cache_dir` (normally `<output>/.cache`) reuses the staged files of unchanged inputs; `progress` shows a bar."""
    t0 = time.perf_counter()
    ds, found = load_dataset(input_dir, executor, cache_dir, progress)
    t1 = time.perf_counter()
    ev = evaluate_staged(ds, found, framework, input_dir)
    ev.timings = {"read": t1 - t0, "compute": time.perf_counter() - t1}
    return ev


def evaluate_staged(ds: Dataset, found: list[iss.Issue], framework: Framework, input_dir: Path | None) -> Evaluation:
    """The pure stages over an assembled Dataset (any set of units: a whole input or one batch of it)."""
    found = found + checks.check_budget_lines(ds.budget_lines, ds.cell)
    found += checks.check_monthly(ds.monthly, ds.budget_lines, ds.cell)
    found += checks.check_management(ds.management, ds.files)
    stats, problems = aggregate_work_stats(ds.work_stats, ds.cell)
    targets, more = resolve_targets(ds.targets, stats, ds.cell)
    indicators = compute_indicators(unit_amounts(ds.units, ds.budget_lines, ds.sangong))
    scores = score_units(framework, indicators, management_for_scoring(ds), targets)
    all_issues = _with_units(found + problems + more + list(scores.issues), ds)
    return Evaluation(ds, stats, targets, indicators, scores, all_issues,
                      input_dir=None if input_dir is None else Path(input_dir))


def _with_units(found: list[iss.Issue], ds: Dataset) -> list[iss.Issue]:
    """Attach the unit key to issues raised by a file of a known unit (a loader issue knows only the file)."""
    owner = {f["文件"]: (f["单位编码"], f["财年"]) for f in ds.files.to_dict("records")}
    out = []
    for i in found:
        if not i.unit and i.file in owner:
            i = i.with_unit(*owner[i.file])
        out.append(i)
    return out


def run_time() -> datetime:
    """Now, or SOURCE_DATE_EPOCH when set, so that a rerun can produce byte-identical workbooks."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), tz=timezone.utc).replace(tzinfo=None)
    return datetime.now().replace(microsecond=0)


def unit_workbook_name(unit: dict) -> str:
    """`<单位编码>_<单位名称>_绩效评价.xlsx`, both parts made safe as a file name (cell text never picks the folder)."""
    return f"{safe_name(unit['单位编码'], '未编码单位')}_{safe_name(unit.get('单位名称'), '未命名单位')}_绩效评价.xlsx"


# --- writing: per unit (render_units) and per 财年 (finish_outputs) --------------------------------------------------


def write_outputs(ev: Evaluation, framework: Framework, output_dir: Path, *, executor: Executor | None = None,
                  force: bool = False, progress: bool = False) -> list[Path]:
    """One workbook per unit, one 评分明细.csv and one 汇总.xlsx per 财年, from an in-memory Evaluation; returns the
    paths written. Incremental as `run_streaming` (see the module doc); what happened is in `ev.outputs`
    ("written", "unchanged", "removed")."""
    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    with Manifest.open(output_dir) as on_disk, _new_manifest(output_dir) as manifest:
        old = Manifest() if force else on_disk
        mine = old.units_of(map(str, ev.units["单位编码"].unique()))
        bar = progress_bar(len(ev.units), "输出", "单位", progress)
        try:
            new_units, written, unchanged, dirty = render_units(ev, framework, output_dir, mine, run_time(),
                                                                executor, on_unit=lambda: bar.update(1))
        finally:
            bar.close()
        manifest.add(new_units)
        parts = details_csv_parts(ev)
        done = finish_outputs(ev, framework, output_dir, old, on_disk, manifest, dirty,
                              lambda year: [parts[year]] if year in parts else [])
        ev.outputs = {"written": written + done["written"], "unchanged": unchanged + done["unchanged"],
                      "removed": done["removed"]}
    ev.timings["write"] = time.perf_counter() - t0
    return ev.outputs["written"]


def _new_manifest(output_dir: Path):
    """The manifest this run builds (manifest.new_manifest), naming the program that wrote the outputs."""
    return new_manifest(output_dir, {"pipeline": __version__, "code": code_digest()})


def render_units(ev: Evaluation, framework: Framework, output_dir: Path, old_units: dict, when: datetime,
                 executor: Executor | None = None, on_unit=None) -> tuple[dict, list[Path], list[Path], set[int]]:
    """Write the outputs (workbook, report, sidecar) of every unit of `ev` whose hash differs from its entry in
    `old_units` (the manifest's units) or whose recorded outputs were touched. Returns (manifest entries of all of
    ev's units, paths written, paths unchanged, 财年 with a unit rendered)."""
    parts = _UnitParts(ev)
    new_units: dict[str, dict] = {}
    todo: list[tuple[dict, str, Path]] = []
    unchanged: list[Path] = []
    for unit in ev.units.to_dict("records"):
        uid = f"{unit['财年']}/{unit['单位编码']}"
        digest = _unit_hash(ev, framework, parts, (unit["单位编码"], unit["财年"]), output_dir)
        prev = old_units.get(uid)
        if prev and prev.get("hash") == digest and outputs_intact(output_dir, prev.get("outputs", {})):
            new_units[uid] = prev
            unchanged.extend(output_dir / rel for rel in prev.get("outputs", {}))
            continue
        new_units[uid] = {"hash": digest, "outputs": {}}
        todo.append((unit, uid, output_dir / str(unit["财年"]) / unit_workbook_name(unit)))

    def reports():
        for unit, _, path in todo:
            report = _unit_report(ev, framework, unit, when, parts)
            report.source_links = _source_links(ev, report, path.parent)
            key = (unit["单位编码"], unit["财年"])  # issue #5: 年度对比 (none without a previous year)
            previous = rollover.previous_record(ev, *key, output_dir)
            report.year_on_year = summary.year_on_year(rollover.record_of(ev, *key), previous) if previous else None
            yield report, str(path)

    written: list[Path] = []
    for i, files in (executor or Executor()).imap(render_unit, reports()):
        unit, uid, _ = todo[i]
        new_units[uid]["outputs"] = {Path(p).relative_to(output_dir).as_posix(): sha for p, sha in files}
        written.extend(Path(p) for p, _ in files)
        sidecar = rollover.write_sidecar(ev, unit, output_dir)  # issue #5: .data/<单位编码>.json
        new_units[uid]["outputs"].update(sidecar)
        written.extend(output_dir / rel for rel in sidecar)
        if on_unit:
            on_unit()
    return new_units, written, unchanged, {int(unit["财年"]) for unit, _, _ in todo}


def finish_outputs(results, framework: Framework, output_dir: Path, old: Manifest, on_disk: Manifest,
                   manifest: ManifestWriter, dirty_years: set[int],
                   csv_parts: Callable[[int], list[bytes | Path]], executor: Executor | None = None,
                   shared: Path | None = None) -> dict[str, list[Path]]:
    """After every unit is rendered (and its entry is in `manifest`): remove the outputs of units gone from a 财年
    of the input, write each 财年's 评分明细.csv (`csv_parts(year)`: its rows, each batch's as text or in a file, in
    batch order: see details_csv_parts) and 汇总.xlsx when one of its units changed (`dirty_years`: the 财年 with a
    unit rendered), and complete the manifest. Returns the files it wrote, left unchanged and removed. `results`: an
    Evaluation or a RunResult (its store of the units' 汇总 figures). `old`: the manifest the run started from
    (empty when forced); `on_disk`: the manifest on disk (what this program wrote, even when forced). With an
    `executor` and a folder its workers reach (`shared`: a RunResult's issues spool there), several 财年's 汇总 are
    written at once by the workers (`write_year_summary`), from a snapshot of the store put there."""
    written, unchanged, removed, dirty_years = [], [], [], set(dirty_years)
    years = results.store.years()
    for uid, year, prev in on_disk.entries():
        if year not in years:
            # A 财年 absent from this input is kept as it is: last year's results feed 年度对比 and `templates --from`.
            manifest.add({uid: prev})
            continue
        stale = set(prev.get("outputs", {})) - set(manifest.outputs_of(uid))
        for rel in sorted(stale):
            target = output_dir / rel
            if target.is_file():
                target.unlink()
                removed.append(target)
            dirty_years.add(year)

    files_state, old_files, todo = {}, old.files(), []
    for year in years:
        outs = [output_dir / str(year) / DETAILS_CSV, output_dir / str(year) / SUMMARY_FILE]
        rels = [p.relative_to(output_dir).as_posix() for p in outs]
        prev = {r: old_files.get(r) for r in rels}
        if year not in dirty_years and outputs_intact(output_dir, prev):
            files_state.update(prev)
            unchanged.extend(outs)
        else:
            todo.append((year, outs))
    for path, digest in _year_summaries(results, framework, [(year, outs[1]) for year, outs in todo], executor,
                                          shared):
        files_state[Path(path).relative_to(output_dir).as_posix()] = digest
    for year, (csv_path, summary_path) in todo:  # each year's CSV, then its 汇总, as they were always listed
        _write_csv(csv_path, csv_parts(year))
        files_state[csv_path.relative_to(output_dir).as_posix()] = sha256_file(csv_path)
        written += [csv_path, summary_path]
    kept = on_disk.files()
    for rel in sorted(set(kept) - set(files_state)):  # a 财年 not in this input: kept
        files_state[rel] = kept[rel]
    manifest.set_files(files_state)
    return {"written": written, "unchanged": unchanged, "removed": removed}


def _year_summaries(results, framework: Framework, todo: list[tuple[int, Path]], executor: Executor | None,
                    shared: Path | None) -> Iterator[tuple[str, str]]:
    """(path, SHA-256) of each 汇总.xlsx of `todo` ((财年, path) each) once written: here, one after the other, or,
    when there are several and workers to write them (an `executor` with workers and a `shared` folder), by the
    workers at once. The 汇总 of a province's biggest year takes a good part of a second; the workers are idle by
    then, and the floor writes its files in parallel too."""
    if len(todo) < 2 or executor is None or executor.workers < 2 or shared is None:
        for year, path in todo:
            yield _year_summary(results, year, framework, path)
        return
    snapshot = results.store.snapshot(Path(shared) / "units.sqlite")
    losses = results.losses
    jobs = [YearSummaryJob(year, str(path), str(snapshot), list(results.store.columns), results.issues,
                           losses[losses["财年"] == year].reset_index(drop=True), framework) for year, path in todo]
    for _, done in executor.imap(write_year_summary, jobs, inline_below=2):
        yield done


@dataclass(frozen=True)
class YearSummaryJob:
    """What a worker needs to write one 财年's 汇总.xlsx: the store's snapshot file and columns, the run's issue log
    (its spool, on disk), the year's points-lost rows and the framework."""
    year: int
    path: str
    store: str
    columns: list
    issues: object
    losses: pd.DataFrame
    framework: Framework


def write_year_summary(job: YearSummaryJob) -> tuple[str, str]:
    """Write one 财年's 汇总.xlsx (runs in a worker); returns its path and SHA-256."""
    store = UnitStore.opened(job.store, job.columns)
    try:
        return _year_summary(RunResult(store=store, losses=job.losses, issues=job.issues), job.year, job.framework,
                             Path(job.path))
    finally:
        store.close()


def _year_summary(results, year: int, framework: Framework, path: Path) -> tuple[str, str]:
    """Write one 财年's 汇总.xlsx of `results` (an Evaluation or a RunResult); returns its path and SHA-256."""
    path = write_summary(summary_tables(results, year, framework), path, year, fits_in_memory(results, year))
    return str(path), sha256_file(path)


CSV_COLUMNS = ["单位编码", "财年", "单位名称", *[c for c, _ in DETAIL_COLUMNS]]
CSV_NUMBERS = [c for c, kind in DETAIL_COLUMNS if kind in ("percent", "number")]


def details_csv_parts(ev: Evaluation) -> dict[int, bytes]:
    """The rows of 评分明细.csv of ev's units, per 财年, as CSV text without header (UTF-8, CRLF). Number columns
    are always written as floats, so that a batch's rows never depend on the other units of its batch."""
    details, units = ev.details, ev.units
    name_of = dict(zip(zip(*(units[k].tolist() for k in UNIT_KEY)), units["单位名称"].tolist()))
    named = details.reindex(columns=CSV_COLUMNS)
    # each row's 单位名称 (a merge with the units, without its cost: the units are unique by key)
    named["单位名称"] = np.array([name_of.get(key, np.nan) for key in zip(*(details[k].tolist() for k in UNIT_KEY))],
                             dtype=object)
    for c in CSV_NUMBERS:
        named[c] = pd.to_numeric(named[c], errors="coerce").astype("float64")
    years = named["财年"].to_numpy()
    parts = {}
    for year in sorted(set(years.tolist())):  # a part per 财年, rows in order (a group-by on a batch's one or two)
        part = named if (years == year).all() else named[years == year]
        parts[int(year)] = part.to_csv(index=False, header=False, lineterminator="\r\n").encode("utf-8")
    return parts


def _write_csv(path: Path, parts: list[bytes | Path]) -> Path:
    """评分明细.csv from its parts in order: UTF-8 with BOM (so that Excel opens it), a header, the rows; atomic."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\ufeff" + ",".join(CSV_COLUMNS) + "\r\n").encode("utf-8"))
        for part in parts:
            fh.write(part if isinstance(part, bytes) else Path(part).read_bytes())
    return path


# --- the streamed run ----------------------------------------------------------------------------------------------

# Units (单位编码, all their 财年) per batch of the unit map: enough to keep the compute stages vectorised and their
# per-call overhead small (a batch costs ≈ 80 ms besides its units' own ≈ 25 ms each), few enough that a worker holds
# little (about 1 MB of staged tables per unit) and that the work spreads evenly over the workers.
BATCH_UNITS = 50
MIN_BATCH_UNITS = 10
FILES_PER_TASK = 32  # files per task of the file map


def batch_sizes(count: int, workers: int, size: int | None = None) -> list[int]:
    """The number of units (单位编码) in each consecutive batch of `count`. With `size`, batches of `size` units.
    Otherwise, when the units fit in two rounds of full batches (count ≤ 2 × workers × BATCH_UNITS), equal batches
    (sizes within one unit of each other): two per worker, or one per worker when two would hold fewer than
    MIN_BATCH_UNITS units each; a batch costs ≈ 80 ms besides its units, and two equal rounds keep the workers as
    even as smaller batches would (100 units on 2 workers: 4 batches instead of 7, ≈ 8 % less time).
    Beyond that guided: each batch takes a share of what remains (remaining ÷ (2 × workers), at most BATCH_UNITS and
    at least MIN_BATCH_UNITS), so batches shrink towards the end and the workers finish together instead of one
    idling while another works through a last full batch; a remainder below the least size joins the batch before
    it."""
    if size:
        return [min(size, count - start) for start in range(0, count, size)]
    workers = max(1, workers)
    if count <= 2 * workers * BATCH_UNITS:
        n = min(count, 2 * workers if count >= 2 * workers * MIN_BATCH_UNITS else workers)
        return [count // n + (i < count % n) for i in range(n)] if n else []
    most, least = BATCH_UNITS, MIN_BATCH_UNITS
    sizes, left = [], count
    while left > 0:
        n = min(most, max(least, -(-left // (2 * workers))))
        if left - n < least:
            n = left
        sizes.append(n)
        left -= n
    return sizes


@dataclass
class BatchJob:
    """The unit of work of the unit map: the cached (or, when the cache could not be written, inline) staged files
    of some units, and what rendering them needs."""

    files: list                   # per file: (path, entry reference or None, (StagedFile or None, issues) or None)
    cache_dir: str
    input_dir: str
    output_dir: str
    framework: Framework
    old_units: dict               # the manifest entries of the batch's units from the previous run ({} if forced)
    when: datetime
    index: int = 0                # the batch's place in the run: names its part of each 评分明细.csv
    write: bool = True            # False: evaluate only (`check`)
    spool: str = ""               # the folder of the run's IssueLog: the batch's issues are written there


def run_batch(job: BatchJob) -> dict:
    """Evaluate and write one batch of units (runs in a worker). Returns the small tables the per-year files need,
    the manifest entries, the paths written / unchanged and the seconds spent per stage. The cyclic garbage
    collector is paused meanwhile (render.collector_paused): the batch's stages allocate hundreds of thousands of
    objects that live until the batch ends and form no reference cycle, so every collection would traverse them all
    and free nothing. It is back once they are gone (freed when `_batch` returns), so that the collection its return
    triggers traverses only what the batch returns."""
    with collector_paused():
        return _batch(job)


def _batch(job: BatchJob) -> dict:
    """The work of run_batch; the batch's staged tables, evaluation and reports are freed when it returns."""
    t0 = time.perf_counter()
    # A result that travelled inline, else the cached one; a cache entry gone since the file map (another run on
    # the same output folder pruned it) is staged again from the file.
    results = [inline or cache_get(job.cache_dir, key, frames=False) or load_and_stage((path, job.input_dir))
               for path, key, inline in job.files]
    ds, found = _assemble_results(results)
    t1 = time.perf_counter()
    ev = evaluate_staged(ds, found, job.framework, Path(job.input_dir))
    t2 = time.perf_counter()
    new_units, written, unchanged, dirty = {}, [], [], set()
    if job.write:
        output_dir = Path(job.output_dir)
        new_units, written, unchanged, dirty = render_units(ev, job.framework, output_dir, job.old_units, job.when)
        for year, text in details_csv_parts(ev).items():  # found by its name (batch, year) when the CSV is written
            write_atomic(_parts_dir(job.cache_dir) / f"{job.index:06d}-{year}.csv", text)
    t3 = time.perf_counter()
    return {"units": ev.unit_rows, "losses": ev.losses, "issues": spool_batch(job.spool, job.index, ev.issues),
            # the paths as text, spooled (spool.SpooledPaths); only their numbers travel
            "new_units": new_units, "dirty": dirty,
            "outputs": spool_outputs(job.spool, job.index, list(map(str, written)), list(map(str, unchanged))),
            "timings": {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2}}


def check_input(input_dir: Path, framework: Framework, *, executor: Executor | None = None,
                progress: bool = False) -> RunResult:
    """`python -m pipeline check`: every unit evaluated in batches like `run` (same memory bound), nothing written;
    the staged-file cache lives in a temporary folder, the issues in the system's temporary folder."""
    with tempfile.TemporaryDirectory(prefix="pipeline-check-") as tmp:
        return run_streaming(input_dir, framework, Path(tmp), executor=executor, progress=progress, write=False,
                             spool_parent=Path(tempfile.gettempdir()))


def _parts_dir(cache_dir) -> Path:
    return Path(cache_dir) / "parts"


def run_streaming(input_dir: Path, framework: Framework, output_dir: Path, *, executor: Executor | None = None,
                  force: bool = False, progress: bool = False, batch_size: int | None = None,
                  write: bool = True, spool_parent: Path | None = None) -> RunResult:
    """`python -m pipeline run`: every unit of input_dir scored and written in batches (see the module doc); the
    main process keeps nothing per unit or per batch: the file index, the manifests and the units' 汇总 figures
    are on disk. Each batch's manifest entries and unit rows go in as it returns; its points lost per 汇总 line
    and issue tally are folded in batch order. With
    write=False (`check_input`) nothing but the staged-file cache is written and no manifest is read. Timings:
    "read" is the file map's wall time; the unit map's wall time is split into read / compute / write in proportion
    to the workers' time in each, and the per-year files and manifest count as write. The issues are spooled under
    `spool_parent` (default: the cache folder, where the spools of an interrupted run are removed first)."""
    t0 = time.perf_counter()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    executor = executor or Executor()
    cache_dir = output_dir / CACHE_DIR
    shutil.rmtree(_parts_dir(cache_dir), ignore_errors=True)  # parts of an interrupted run
    if spool_parent is None:
        spool_parent = cache_dir
        remove_stale(spool_parent)
    with FileIndex() as index, Manifest.open(output_dir) if write else Manifest() as on_disk:
        total, found = _index_files(index, input_dir, executor, cache_dir, force, progress)
        cache_prune(cache_dir, index)
        t1 = time.perf_counter()

        old = Manifest() if force else on_disk
        when = run_time()
        log = IssueLog.create(spool_parent, found)
        # At least one batch: files of no unit are reported by it, and an empty input still gets well-formed tables.
        sizes = batch_sizes(index.unit_count(), executor.workers, batch_size) or [0]

        def jobs():  # made as the executor takes them: a batch's files and old entries are read from disk then
            codes = index.codes()
            for b, n in enumerate(sizes):
                mine = list(itertools.islice(codes, n))
                files = index.files_of(mine) + (index.loose() if b == 0 else [])
                yield BatchJob(files, str(cache_dir), str(input_dir), str(output_dir), framework, old.units_of(mine),
                               when, b, write, str(log.folder))

        spent = {"read": 0.0, "compute": 0.0, "write": 0.0}
        dirty: set[int] = set()  # the 财年 with a unit rendered
        counts = [0, 0]  # output paths the batches wrote and left unchanged (spooled: spool.SpooledPaths)
        # Each batch's points lost per 汇总 line and issue tally are folded in batch order as the batches return (the
        # lines stay in the order of the concatenation; the 数据问题 order, spool.IssueLog.chunks, needs the batches
        # in order): nothing is kept per batch but the few that came back before an earlier one.
        losses, early, folded = None, {}, 0
        store = UnitStore()  # each unit's 汇总 figures, on disk as its batch returns
        with _new_manifest(output_dir) if write else nullcontext() as manifest:
            bar = progress_bar(sum(sizes), "评价", "单位", progress)
            try:
                for b, part in executor.imap(run_batch, Counted(jobs(), len(sizes)), inline_below=2):
                    if manifest is not None:
                        manifest.add(part["new_units"])  # on disk from here
                    store.add(b, part["units"])
                    early[b] = part["losses"], part["issues"]
                    while folded in early:
                        more, tally = early.pop(folded)
                        losses = summary.add_loss_totals(losses, more)
                        log.add(tally)
                        folded += 1
                    dirty.update(part["dirty"])
                    counts = [n + m for n, m in zip(counts, part["outputs"])]
                    for k in spent:
                        spent[k] += part["timings"][k]
                    bar.update(sizes[b])
            finally:
                bar.close()
            t2 = time.perf_counter()

            result = RunResult(store=store, losses=losses, issues=log, files=total)
            result.outputs = {"written": [], "unchanged": [], "removed": []}
            if manifest is not None:
                parts = _parts_dir(cache_dir)  # each batch's rows of each 财年's CSV, named by batch and year
                done = finish_outputs(result, framework, output_dir, old, on_disk, manifest, dirty,
                                      lambda year: sorted(parts.glob(f"*-{year}.csv")), executor, log.folder)
                result.outputs = {"written": SpooledPaths(log, 0, counts[0], map(str, done["written"])),
                                  "unchanged": SpooledPaths(log, 1, counts[1], map(str, done["unchanged"])),
                                  "removed": list(map(str, done["removed"]))}
    if write:
        shutil.rmtree(_parts_dir(cache_dir), ignore_errors=True)
    t3 = time.perf_counter()
    share = (t2 - t1) / (sum(spent.values()) or 1.0)
    result.timings = {"read": (t1 - t0) + spent["read"] * share, "compute": spent["compute"] * share,
                      "write": spent["write"] * share + (t3 - t2)}
    return result


def _index_files(index: FileIndex, input_dir: Path, executor: Executor, cache_dir: Path, force: bool,
                 progress: bool) -> tuple[int, list[iss.Issue]]:
    """The file map of a streamed run into `index`: every workbook under input_dir with its cache entry reference
    and 单位编码. Returns the number of files and the issues of those that cannot be read (in input order)."""
    total = index.discover(input_dir)
    unreadable: list[tuple[int, list]] = []  # (place, issues)
    for seq, path, (key, unit, result) in map_files(index.paths(), total, input_dir, executor, cache_dir, force=force,
                                                    want=False, progress=progress):
        if unit:
            index.add(seq, path, key, str(unit[0]), result)
        elif result is not None and result[0] is None:
            unreadable.append((seq, result[1]))  # its issues are all there is
        else:
            index.add(seq, path, key, None, result)  # a file of no unit: assembled with the first batch
    return total, [i for _, problems in sorted(unreadable, key=lambda u: u[0]) for i in problems]


def render_unit(job: tuple[UnitReport, str]) -> list[tuple[str, str]]:
    """Write every output file of one unit; returns (path, sha256) of each. The unit of work of the render map
    (runs in a worker: only the digests travel back)."""
    report, path = job
    out = render_unit_workbook(report, Path(path))
    files = [(str(out), sha256_file(out))]
    if report.monitoring is None:  # issue #6: the 绩效自评报告 .docx beside the year-end workbook
        doc = write_unit_report(report, out)
        files.append((str(doc), sha256_file(doc)))
    return files


def _unit_hash(ev: Evaluation, framework: Framework, parts: "_UnitParts", key: tuple, output_dir: Path) -> str:
    """What a unit's outputs depend on: its input files (relative name and SHA-256), the 评分标准, the program,
    the report template's wording, the run's options, where the input is seen from the output (the 数据问题 links)
    and the unit's issues (which also carry what other files said about it)."""
    h = hashlib.sha256()
    for rel, sha in sorted(zip(parts.texts("files", "文件", key), parts.texts("files", "sha256", key))):
        h.update(f"file\0{rel}\0{sha}\n".encode())
    h.update(f"framework\0{framework.sha256}\0{framework.name}\0{framework.version}\n".encode())
    h.update(f"code\0{code_digest()}\n".encode())
    h.update(f"report\0{template_digest()}\n".encode())
    h.update(f"as_of\0{getattr(ev, 'as_of', None)}\n".encode())
    if ev.input_dir is not None:
        h.update(f"input\0{os.path.relpath(_real(ev.input_dir), _real(output_dir))}\n".encode())
    for i in parts.issues.get(key, []):
        h.update(repr(i).encode() + b"\n")
    h.update(f"previous\0{rollover.previous_digest(ev, *key, output_dir)}\n".encode())  # issue #5: 年度对比
    return h.hexdigest()


class _UnitParts:
    """Every per-unit table split once by unit key (a group-by, not one boolean mask per unit: that would be
    quadratic in the number of units). Each table is reordered once so that every unit's rows are consecutive (in
    their order within the table): a unit's part is then a slice, far cheaper than gathering rows by position."""

    TABLES = {
        "totals": lambda ev: ev.scores.totals, "details": lambda ev: ev.scores.details,
        "targets": lambda ev: _scored_targets(ev), "indicators": lambda ev: ev.indicators,
        "budget_lines": lambda ev: ev.dataset.budget_lines, "sangong": lambda ev: ev.dataset.sangong,
        "work_stats": lambda ev: ev.work_stats, "files": lambda ev: ev.dataset.files,
    }

    def __init__(self, ev: Evaluation):
        self.frames = {name: get(ev) for name, get in self.TABLES.items()}
        self.groups: dict[str, dict] = {}
        self.issues: dict[tuple, list] = {}
        for i in ev.issues:
            if i.unit:
                self.issues.setdefault((i.unit, i.year), []).append(i)
        self.text_lists: dict[tuple[str, str], list[str]] = {}
        self.lists: dict[str, dict[str, list]] = {}  # table → its column lists (render.column_lists)
        self.totals: dict[tuple, dict] | None = None

    def get(self, name: str, key: tuple) -> pd.DataFrame:
        """The unit's rows of a table, indexed 0..n−1."""
        frame, (start, stop) = self._span(name, key)
        part = frame.iloc[start:stop]
        part.index = pd.RangeIndex(stop - start)  # what reset_index(drop=True) gives, without its copy of the frame
        return part

    def columns(self, name: str, key: tuple) -> dict[str, list]:
        """render's column lists (`column_lists`) of the unit's rows of a table (those `get` gives), sliced from the
        whole table's, made once per table: converting a frame costs about as much for a batch as for one unit."""
        frame, (start, stop) = self._span(name, key)
        if name not in self.lists:
            self.lists[name] = column_lists(frame)
        return {column: values[start:stop] for column, values in self.lists[name].items()}

    def texts(self, name: str, column: str, key: tuple) -> list[str]:
        """The unit's values of one column of a table as text (`astype(str)`), from one list per table."""
        frame, (start, stop) = self._span(name, key)
        if (name, column) not in self.text_lists:
            self.text_lists[(name, column)] = frame[column].astype(str).tolist()
        return self.text_lists[(name, column)][start:stop]

    def total(self, key: tuple) -> dict:
        """The unit's row of the totals as a dict, {} when it has none: its part's `.iloc[0].to_dict()` (the
        totals' columns are text and numbers, so numbers.records gives the same Python values), for every unit at
        once."""
        if self.totals is None:
            frame = self.frames["totals"]
            self.totals = {}
            for code, year, row in zip(frame["单位编码"].tolist(), frame["财年"].tolist(), records(frame)):
                self.totals.setdefault((code, year), row)  # a unit's first row
        return self.totals.get(key, {})

    def _span(self, name: str, key: tuple) -> tuple[pd.DataFrame, tuple[int, int]]:
        """The table with each unit's rows consecutive, and the unit's (start, stop) in it."""
        if name not in self.groups:
            self.groups[name] = _by_unit(self.frames[name])
        frame, spans = self.groups[name]
        return frame, spans.get(key, (0, 0))


def _by_unit(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple, tuple[int, int]]]:
    """df with each unit's rows made consecutive (units in order of first appearance, rows in table order), and
    each unit key's (start, stop) in it."""
    if df.empty:
        return df, {}
    # the rows of each key in a loop rather than groupby(...).indices, which costs over a millisecond a call whatever
    # the size (rows without a unit key may end up in several groups: no unit asks for them)
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(zip(*(df[k].tolist() for k in UNIT_KEY))):
        groups.setdefault(key, []).append(i)
    spans, start = {}, 0
    for k, idx in groups.items():
        spans[k] = (start, start + len(idx))
        start += len(idx)
    return df.take(np.concatenate(list(groups.values()))), spans


def _source_links(ev: Evaluation, report: UnitReport, out_dir: Path) -> dict[str, str]:
    """Input file (as issues name it) → its path relative to the output workbook's folder (links keep working
    when input and output move together). Files of the unit's issues that are not in its files table (a duplicate
    file left out) are found under the input folder too."""
    if ev.input_dir is None:
        return {}
    names = {f for f in report.files["文件"].tolist() if not pd.isna(f)} | {i.file for i in report.issues if i.file}
    links = {}
    root, here = _real(ev.input_dir), _real(out_dir)
    for rel in sorted(names):
        try:
            # relpath's result is normalised: only the separator differs from Path(...).as_posix()
            links[rel] = os.path.relpath(os.path.join(root, rel), here).replace(os.sep, "/")
        except ValueError:  # another drive on Windows: no relative path exists
            continue
    return links


@functools.lru_cache(maxsize=256)
def _real(path: Path | str) -> str:
    """The folder's absolute path with symbolic links resolved, once per folder (not once per unit or file)."""
    return str(Path(path).resolve())


def _slice(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["单位编码"] == key[0]) & (df["财年"] == key[1])].reset_index(drop=True)


def _scored_targets(ev: Evaluation) -> pd.DataFrame:
    """The targets of every unit with their scored columns from the details (a target row is keyed by its file and
    row, unique across units), merged once for all units rather than once per unit."""
    scored = ev.details.dropna(subset=["_row"])[["_file", "_row", "完成率", "分值", "得分", "扣分说明"]]
    return ev.targets.drop(columns=["分值"]).merge(scored, on=["_file", "_row"], how="left")


def _unit_report(ev: Evaluation, framework: Framework, unit: dict, when: datetime,
                 parts: _UnitParts | None = None) -> UnitReport:
    key = (unit["单位编码"], unit["财年"])
    parts = parts or _UnitParts(ev)
    report = UnitReport(
        unit=unit,
        total=parts.total(key),
        details=parts.get("details", key),
        indicators=parts.get("indicators", key),
        budget_lines=parts.get("budget_lines", key),
        sangong=parts.get("sangong", key),
        targets=parts.get("targets", key),
        work_stats=parts.get("work_stats", key),
        issues=parts.issues.get(key, []),
        files=parts.get("files", key),
        framework=framework,
        run_time=when,
    )
    for name in LISTED_TABLES:
        set_columns(report, name, parts.columns(name, key))
    return report


# --- issue #6: 绩效运行监控 as of a month ---------------------------------------------------------------------------


def monitoring_dir(year: int, month: int) -> str:
    """Sub-folder of output/<财年>/ for a run as of a month, so that a year-end result is never overwritten."""
    return f"监控_{year}-{month:02d}"


def write_monitoring_outputs(ev: Evaluation, framework: Framework, output_dir: Path, year: int,
                             month: int) -> list[Path]:
    """A run as of (year, month): the units of that 财年 into output/<财年>/监控_<YYYY-MM>/, each workbook with its
    监控预警 sheet, plus 评分明细.csv and 监控预警.csv (every check of every unit). No 绩效自评报告 (a year-end
    document), no 汇总, sidecar or manifest (the year-end run's)."""
    t0 = time.perf_counter()
    written, when = [], run_time()
    folder = Path(output_dir) / str(year) / monitoring_dir(year, month)
    units = ev.dataset.units[ev.dataset.units["财年"] == year]
    checks_all = monitor(ev.dataset, ev.targets, month, framework.params)
    checks_all = checks_all[checks_all["财年"] == year].reset_index(drop=True)
    parts = _UnitParts(ev)  # split once: a group-by, not a scan of every table per unit
    for unit in units.to_dict("records"):
        report = _unit_report(ev, framework, unit, when, parts)
        path = folder / unit_workbook_name(unit)
        report.source_links = _source_links(ev, report, path.parent)
        report.monitoring = _slice(checks_all, (unit["单位编码"], unit["财年"]))
        written.append(render_unit_workbook(report, path))
    rows = details_csv_parts(ev).get(year)
    if rows:
        written.append(_write_csv(folder / DETAILS_CSV, [rows]))
    named = checks_all.merge(units[[*UNIT_KEY, "单位名称"]], on=list(UNIT_KEY), how="left")
    with atomic_output(folder / "监控预警.csv") as tmp:
        named.to_csv(tmp, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    written.append(folder / "监控预警.csv")
    ev.timings["write"] = time.perf_counter() - t0
    return written
