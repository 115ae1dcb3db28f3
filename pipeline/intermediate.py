"""Intermediate stage: work statistics per unit, targets' resolved actual values. Pure functions."""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np
import pandas as pd

from . import issues as iss
from .formula import FormulaError, parse_formula
from .numbers import (
    excel_round,
    group_first,
    group_ids,
    group_mean,
    group_sum,
    is_blank,
    records,
)
from .spec import CONCLUSIONS, MONTHS, UNIT_KEY
from .staging import COMPARATOR_PREFIXES

STAT_COLUMNS = [*UNIT_KEY, "统计项", "业务条线", "计量单位", "汇总方式", *MONTHS, "全年", "年度值", "来源"]

_VALUE_RE = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*(.*)$")


def year_values(months: np.ndarray, how: pd.Series) -> np.ndarray:
    """Year value of each row of a (rows × 12) month matrix: 合计 = sum, 期末 = last month filled, 平均 = mean.
    Rows with no month filled give NaN."""
    filled = ~np.isnan(months)
    any_filled = filled.any(axis=1)
    total = np.where(any_filled, np.nansum(months, axis=1), np.nan)
    count = filled.sum(axis=1)
    mean = np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)
    last_idx = 11 - np.argmax(filled[:, ::-1], axis=1)
    last = np.where(any_filled, months[np.arange(len(months)), last_idx], np.nan)
    how = how.fillna("合计").to_numpy()
    return np.select([how == "期末", how == "平均"], [last, mean], default=total)


def aggregate_work_stats(work_stats: pd.DataFrame, cell) -> tuple[pd.DataFrame, list[iss.Issue]]:
    """Year value of every 统计项 of every unit.

    Args:
        work_stats: one row per 工作统计 line (Dataset.work_stats).
        cell: `Dataset.cell(row, field)`, for pointing issues at the 全年 cell.
    Returns:
        One row per unit × 统计项 (columns STAT_COLUMNS): `年度值` is the months aggregated by 汇总方式, or 全年
        where only 全年 is filled; lines of one 统计项 from several files are combined (合计 and 期末 add up, 平均
        averages). Issues: 全年 that disagrees with the months.
    """
    if work_stats.empty:
        return pd.DataFrame(columns=STAT_COLUMNS), []
    months = work_stats[list(MONTHS)].to_numpy(dtype=float)
    from_months = year_values(months, work_stats["汇总方式"])
    annual = work_stats["全年"].to_numpy(dtype=float)
    year_value = np.where(np.isnan(from_months), annual, from_months)
    mismatch = np.flatnonzero(~np.isnan(from_months) & ~np.isnan(annual) & (np.abs(from_months - annual) > 0.005))
    found = [_annual_mismatch(row, from_months[i], cell)
             for i, row in zip(mismatch, work_stats.iloc[mismatch].to_dict("records"))] if len(mismatch) else []
    return _combine_lines(work_stats, months, annual, year_value), found


def _annual_mismatch(row: dict, from_months: float, cell) -> iss.Issue:
    return iss.warning(
        "workstat-annual-mismatch",
        f"统计项“{row['统计项']}”的全年值 {row['全年']:g} 与各月按{row['汇总方式'] or '合计'}汇总的 {from_months:g} 不一致，"
        f"已采用各月汇总值；请核对各月数据或全年值。",
        file=row["_file"], sheet=row["_sheet"], cell=cell(row, "全年"), value=f"{row['全年']:g}",
        unit=row["单位编码"], year=row["财年"])


def _combine_lines(ws: pd.DataFrame, months: np.ndarray, annual: np.ndarray, year_value: np.ndarray) -> pd.DataFrame:
    """One row per unit × 统计项, in key order: months and 全年 added up (a month nobody filled stays blank), the
    first filled 业务条线 / 计量单位 / 汇总方式 (blank 汇总方式 = 合计), the files as `a.xlsx；b.xlsx`, 年度值 added up
    or, for 平均, averaged. The figures are those of `groupby(...).agg(...)` on the lines (see group_sum)."""
    keys = [*UNIT_KEY, "统计项"]
    ids, n = group_ids([ws[k].to_numpy() for k in keys], dropna=False)
    first_row = np.unique(ids, return_index=True)[1]
    out = {k: ws[k].to_numpy()[first_row] for k in keys}
    how = ws["汇总方式"].fillna("合计")
    for col, values in (("业务条线", ws["业务条线"]), ("计量单位", ws["计量单位"]), ("汇总方式", how)):
        out[col] = pd.Series(group_first(values.to_numpy(), ids, n), dtype=values.dtype)
    for j, col in enumerate(MONTHS):
        out[col] = group_sum(np.ascontiguousarray(months[:, j]), ids, n, min_count=1)
    out["全年"] = group_sum(annual, ids, n, min_count=1)
    total = group_sum(year_value, ids, n)
    mean_rows = out["汇总方式"].to_numpy() == "平均"
    if mean_rows.any():
        total = np.where(mean_rows, group_mean(year_value, ids, n), total)
    out["年度值"] = total
    out["来源"] = _joined_sources(ws["_file"].to_numpy(dtype=object), ids, n)
    return pd.DataFrame(out, columns=STAT_COLUMNS)


def _joined_sources(files: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Per group: its distinct files in order of first appearance, joined by `；`."""
    file_ids = pd.factorize(files)[0]
    rows = np.unique(ids * (file_ids.max() + 1) + file_ids, return_index=True)[1]  # first row of each group × file
    rows = rows[np.lexsort((rows, ids[rows]))]  # by group, then in order of appearance
    groups = ids[rows]
    out = files[rows[np.r_[True, groups[1:] != groups[:-1]]]]
    several = set(np.flatnonzero(np.bincount(groups, minlength=n) > 1).tolist())
    if several:
        names: dict[int, list] = {}
        for g, f in zip(groups.tolist(), files[rows].tolist()):
            if g in several:
                names.setdefault(g, []).append(f)
        for g, parts in names.items():
            out[g] = "；".join(parts)
    return out


def split_target_value(raw) -> tuple[str | None, float | None, str]:
    """`≥80次` → ("≥", 80.0, "次"); `不低于70%` → ("≥", 70.0, "%"); 81 → (None, 81.0, ""); `达成` → (None, None, "达成")."""
    if is_blank(raw):
        return None, None, ""
    if isinstance(raw, bool):
        return None, None, str(raw)
    if isinstance(raw, (int, float)):
        return None, float(raw), ""
    s = unicodedata.normalize("NFKC", str(raw)).strip().replace(",", "")
    comparator = None
    for word, symbol in COMPARATOR_PREFIXES:
        if s.startswith(word):
            comparator, s = symbol, s[len(word):].strip()
            break
    m = _VALUE_RE.match(s)
    if not m:
        return comparator, None, s
    return comparator, float(m.group(1)), m.group(2).strip()


TARGET_COLUMNS = [
    *UNIT_KEY, "序号", "一级指标", "二级指标", "三级指标", "比较符", "计量单位", "分值", "指标值", "实际完成值", "结论",
    "指标值文本", "实际完成值文本", "填报实际值", "公式计算值", "取数公式", "偏差原因分析及改进措施", "单元格", "_file", "_sheet", "_row",
]


def resolve_targets(targets: pd.DataFrame, stats: pd.DataFrame, cell) -> tuple[pd.DataFrame, list[iss.Issue]]:
    """Each target's value and actual value as numbers, the actual taken from its 取数公式 where one is given.

    Args:
        targets: one row per 绩效目标 (Dataset.targets).
        stats: one row per unit × 统计项 (aggregate_work_stats).
        cell: `Dataset.cell(row, field)`.
    Returns:
        One row per unit × target (TARGET_COLUMNS), and the issues: unparseable or unknown 统计项 in a formula,
        a typed 实际完成值 that differs from the formula's, comparator or unit typed into 指标值 that contradicts
        the columns, a quantitative target without actual value.
    """
    values: dict[tuple, dict] = {}
    keyed = stats[stats["单位编码"].notna() & stats["财年"].notna()]  # as groupby, which drops missing keys
    for code, year, name, value in zip(*(keyed[c].tolist() for c in (*UNIT_KEY, "统计项", "年度值"))):
        values.setdefault((code, year), {})[name] = value
    rows, found = [], []
    for row in records(targets):
        resolved, problems = _resolve_one(row, values.get((row["单位编码"], row["财年"]), {}), cell)
        rows.append(resolved)
        found.extend(problems)
    return pd.DataFrame(rows, columns=TARGET_COLUMNS), found


def _resolve_one(row: dict, unit_stats: dict, cell) -> tuple[dict, list[iss.Issue]]:
    row = {k: (None if is_blank(v) else v) for k, v in row.items()}
    problems: list[iss.Issue] = []
    comparator = row.get("比较符")
    unit = row.get("计量单位") or ""
    typed_cmp, target, typed_unit = split_target_value(row.get("指标值"))
    if typed_cmp and comparator and typed_cmp != comparator:
        problems.append(iss.warning(
            "target-comparator-conflict",
            f"指标值“{row['指标值']}”中的比较符 {typed_cmp} 与比较符列的 {comparator} 不一致，已按比较符列计算；请改正其一。",
            value=str(row["指标值"]), **iss.located(row, "指标值", cell)))
    comparator = comparator or typed_cmp
    if target is not None and typed_unit and not unit:
        unit = typed_unit
    elif target is not None and typed_unit and typed_unit != unit:
        problems.append(iss.warning(
            "target-unit-conflict", f"指标值“{row['指标值']}”中的单位“{typed_unit}”与计量单位列的“{unit}”不一致，请改正其一。",
            value=str(row["指标值"]), **iss.located(row, "指标值", cell)))
    qualitative = comparator == "定性"
    _, typed_actual, typed_actual_text = split_target_value(row.get("实际完成值"))
    computed = _evaluate(row, unit_stats, cell, problems)
    actual = computed if computed is not None else typed_actual
    if computed is not None and typed_actual is not None and not _same_when_rounded(typed_actual, computed):
        problems.append(iss.warning(
            "actual-formula-mismatch",
            f"“{row['三级指标']}”填报的实际完成值 {typed_actual:g} 与取数公式 {row['取数公式']} 计算的 "
            f"{excel_round(computed, 2):.2f} 不一致，已采用公式计算值；请核对工作统计表或改正填报值。",
            value=str(row.get("实际完成值")), **iss.located(row, "实际完成值", cell)))
    conclusion = None
    if qualitative:
        conclusion = typed_actual_text if typed_actual_text in CONCLUSIONS else None
    elif actual is None:
        problems.append(iss.error(
            "target-actual-missing", f"“{row['三级指标']}”没有实际完成值：请填写实际完成值，或填写取数公式。",
            value="", **iss.located(row, "实际完成值", cell)))
    shown_target = _shown(comparator, target, unit, row.get("指标值"), qualitative)
    shown_actual = (conclusion or typed_actual_text or "") if qualitative else _shown(None, actual, unit, None, False)
    return {
        **{k: row.get(k) for k in (*UNIT_KEY, "序号", "一级指标", "二级指标", "三级指标", "分值", "取数公式",
                                   "偏差原因分析及改进措施", "_file", "_sheet", "_row")},
        "比较符": comparator, "计量单位": unit,
        "指标值": np.nan if qualitative or target is None else target,
        "实际完成值": np.nan if qualitative or actual is None else actual,
        "结论": conclusion, "单元格": cell(row, "实际完成值"), "指标值文本": shown_target, "实际完成值文本": shown_actual,
        "填报实际值": row.get("实际完成值"), "公式计算值": np.nan if computed is None else computed,
    }, problems


def _evaluate(row: dict, unit_stats: dict, cell, problems: list) -> float | None:
    text = row.get("取数公式")
    if is_blank(text):
        return None
    try:
        return parse_formula(str(text)).evaluate(unit_stats)
    except FormulaError as exc:
        problems.append(iss.error(
            "formula-error", f"“{row['三级指标']}”的取数公式 {text} 无法计算：{exc}。已改用填报的实际完成值。",
            value=str(text), **iss.located(row, "取数公式", cell)))
        return None


def _same_when_rounded(typed: float, computed: float) -> bool:
    """A typed 91.97 matches a computed 91.9724: compare at the precision the user typed (at most 4 decimals)."""
    text = f"{typed:.10g}"
    decimals = min(len(text.split(".")[1]) if "." in text else 0, 4)
    return math.isclose(excel_round(computed, decimals), typed, abs_tol=1e-9)


def _shown(comparator, value, unit, raw, qualitative) -> str:
    if qualitative or value is None:
        return "" if is_blank(raw) else str(raw).strip()
    number = f"{excel_round(value, 2):.2f}".rstrip("0").rstrip(".")
    return f"{comparator or ''}{number}{unit}"
