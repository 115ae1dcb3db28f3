"""Orchestration: input folder → scored tables → output files. Glue only; each stage lives in its own module."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from . import checks, issues as iss
from .dataset import Dataset, assemble
from .framework import Framework
from .indicators import compute_indicators, unit_amounts
from .intermediate import aggregate_work_stats, resolve_targets
from .load import discover, load_file
from .render import UnitReport, render_unit_workbook, write_details_csv
from .scoring import Scores, score_units
from .spec import UNIT_KEY
from .staging import stage_file


@dataclass
class Evaluation:
    """All stage outputs of one run over an input folder (every unit of every year at once)."""

    dataset: Dataset
    work_stats: pd.DataFrame      # one row per unit × 统计项
    targets: pd.DataFrame         # one row per unit × target, resolved and scored
    indicators: pd.DataFrame      # one row per unit × 计算方法
    scores: Scores
    issues: list[iss.Issue]
    timings: dict[str, float] = field(default_factory=dict)
    input_dir: Path | None = None  # for the 数据问题 links back to the input files

    def unit_issues(self, unit: str, year: int) -> list[iss.Issue]:
        return [i for i in self.issues if i.unit == unit and i.year == year]

    @property
    def has_errors(self) -> bool:
        return any(i.severity == iss.SEVERITY_ERROR for i in self.issues)


def load_dataset(input_dir: Path) -> tuple[Dataset, list[iss.Issue]]:
    """Read and stage every workbook under input_dir; a bad file becomes issues, never an exception."""
    staged, found = [], []
    for path in discover(input_dir):
        source, problems = load_file(path, input_dir)
        found.extend(problems)
        if source is None:
            continue
        staged_file, problems = stage_file(source)
        found.extend(problems)
        staged.append(staged_file)
    dataset = assemble(staged)
    return dataset, found + list(dataset.issues)


def management_for_scoring(ds: Dataset) -> pd.DataFrame:
    """管理情况 with the cell of each 得分比例, as scoring names it in its issues."""
    m = ds.management.copy()
    m["单元格"] = [f"{r['_sheet']}!{ds.cell(r, '得分比例')}" for r in m.to_dict("records")] if len(m) else []
    return m


def evaluate(input_dir: Path, framework: Framework) -> Evaluation:
    """Run every pure stage over all units of input_dir."""
    t0 = time.perf_counter()
    ds, found = load_dataset(input_dir)
    t1 = time.perf_counter()
    found += checks.check_budget_lines(ds.budget_lines, ds.cell)
    found += checks.check_monthly(ds.monthly, ds.budget_lines, ds.cell)
    found += checks.check_management(ds.management, ds.files)
    stats, problems = aggregate_work_stats(ds.work_stats, ds.cell)
    targets, more = resolve_targets(ds.targets, stats, ds.cell)
    indicators = compute_indicators(unit_amounts(ds.units, ds.budget_lines, ds.sangong))
    scores = score_units(framework, indicators, management_for_scoring(ds), targets)
    all_issues = _with_units(found + problems + more + list(scores.issues), ds)
    t2 = time.perf_counter()
    return Evaluation(ds, stats, targets, indicators, scores, all_issues, {"read": t1 - t0, "compute": t2 - t1},
                      input_dir=Path(input_dir))


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
    name = "".join(ch for ch in str(unit.get("单位名称") or "") if ch not in '\\/:*?"<>|').strip() or "未命名单位"
    return f"{unit['单位编码']}_{name}_绩效评价.xlsx"


def write_outputs(ev: Evaluation, framework: Framework, output_dir: Path) -> list[Path]:
    """One workbook per unit and one 评分明细.csv per 财年; returns the paths written."""
    t0 = time.perf_counter()
    written, when = [], run_time()
    units = ev.dataset.units
    details = ev.scores.details.merge(units[[*UNIT_KEY, "单位名称"]], on=list(UNIT_KEY), how="left")
    for unit in units.to_dict("records"):
        report = _unit_report(ev, framework, unit, when)
        path = output_dir / str(unit["财年"]) / unit_workbook_name(unit)
        report.source_links = _source_links(ev, report, path.parent)
        written.append(render_unit_workbook(report, path))
    for year, part in details.groupby("财年"):
        written.append(write_details_csv(part, output_dir / str(year) / "评分明细.csv"))
    ev.timings["write"] = time.perf_counter() - t0
    return written


def _source_links(ev: Evaluation, report: UnitReport, out_dir: Path) -> dict[str, str]:
    """Input file (as issues name it) → its path relative to the output workbook's folder (links keep working
    when input and output move together). Files of the unit's issues that are not in its files table (a duplicate
    file left out) are found under the input folder too."""
    if ev.input_dir is None:
        return {}
    names = set(report.files["文件"].dropna()) | {i.file for i in report.issues if i.file}
    links = {}
    for rel in sorted(names):
        try:
            links[rel] = Path(os.path.relpath((ev.input_dir / rel).resolve(), out_dir.resolve())).as_posix()
        except ValueError:  # another drive on Windows: no relative path exists
            continue
    return links


def _slice(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["单位编码"] == key[0]) & (df["财年"] == key[1])].reset_index(drop=True)


def _unit_report(ev: Evaluation, framework: Framework, unit: dict, when: datetime) -> UnitReport:
    key = (unit["单位编码"], unit["财年"])
    totals = _slice(ev.scores.totals, key)
    details = _slice(ev.scores.details, key)
    scored = details.dropna(subset=["_row"])[["_file", "_row", "完成率", "分值", "得分", "扣分说明"]]
    targets = _slice(ev.targets, key).merge(scored, on=["_file", "_row"], how="left")
    return UnitReport(
        unit=unit,
        total=totals.iloc[0].to_dict() if len(totals) else {},
        details=details,
        indicators=_slice(ev.indicators, key),
        budget_lines=_slice(ev.dataset.budget_lines, key),
        sangong=_slice(ev.dataset.sangong, key),
        targets=targets,
        work_stats=_slice(ev.work_stats, key),
        issues=ev.unit_issues(*key),
        files=_slice(ev.dataset.files, key),
        framework=framework,
        run_time=when,
    )
