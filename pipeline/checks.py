"""Consistency checks within and across a unit's sheets. Pure: a Dataset in, issues out.

Each check states its rule the way TEMPLATES.md does, with the tolerance of 0.01 万元.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import issues as iss
from .numbers import group_ids, group_sum
from .spec import MANAGEMENT_ITEMS, MONTHS, UNIT_KEY

TOLERANCE = 0.01  # 万元
YUAN_SUSPECT = 1_000_000  # 万元: 100 亿元 in one line is far more likely a figure typed in 元


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=float)


def check_budget_lines(lines: pd.DataFrame, cell) -> list[iss.Issue]:
    """全年预算数 = 上年结转数 + 年初预算数 + 预算调增数 − 预算调减数 and 结转结余数 = 全年预算数 − 实际支出数 per
    line, with the sheet's totals in the message so the user sees the effect on the unit's figures."""
    if lines.empty:
        return []
    parts = [np.where(np.isnan(x), 0.0, x) for x in (_num(lines, c) for c in ("上年结转数", "年初预算数", "预算调增数",
                                                                              "预算调减数"))]
    expected = parts[0] + parts[1] + parts[2] - parts[3]
    budget, spent, balance = _num(lines, "全年预算数"), _num(lines, "实际支出数"), _num(lines, "结转结余数")
    found = []
    with np.errstate(invalid="ignore"):
        bad_budget = ~np.isnan(budget) & (np.abs(budget - expected) > TOLERANCE + 1e-9)
        bad_balance = ~np.isnan(balance) & ~np.isnan(budget) & ~np.isnan(spent) & \
            (np.abs(balance - (budget - spent)) > TOLERANCE + 1e-9)
    if bad_budget.any():  # the sheet's totals, only when a message needs them
        total_expected, total_budget = _unit_totals(lines, expected, budget)
    for i, row in _rows(lines, bad_budget):
        found.append(iss.warning(
            "budget-total-mismatch",
            f"{row['支出类别']}{'“' + row['项目名称'] + '”' if row.get('项目名称') else ''}："
            f"全年预算数 {budget[i]:.2f} "
            f"≠ 上年结转数 {parts[0][i]:.2f} + 年初预算数 {parts[1][i]:.2f} + 预算调增数 {parts[2][i]:.2f} "
            f"− 预算调减数 {parts[3][i]:.2f} = {expected[i]:.2f}（本表合计：全年预算数 {total_budget[i]:.2f}，"
            f"按公式应为 {total_expected[i]:.2f}）。已按填报的全年预算数评分；请核对预算调整或全年预算数。",
            value=f"{budget[i]:.2f}", **iss.located(row, "全年预算数", cell)))
    for i, row in _rows(lines, bad_balance):
        found.append(iss.warning(
            "balance-mismatch",
            f"{row['支出类别']}：结转结余数 {balance[i]:.2f} ≠ 全年预算数 {budget[i]:.2f} − 实际支出数 "
            f"{spent[i]:.2f} = {budget[i] - spent[i]:.2f}；请核对。",
            value=f"{balance[i]:.2f}", **iss.located(row, "结转结余数", cell)))
    return found + _suspect_yuan(lines, cell)


def _unit_totals(lines: pd.DataFrame, *columns: np.ndarray) -> list[np.ndarray]:
    """Per row, each column summed over the rows of the row's unit (NaN skipped; NaN for a row without a unit key):
    numbers.group_sum, so a unit's totals never depend on which other units share its batch."""
    ids, n = group_ids([lines[k].to_numpy() for k in UNIT_KEY])
    return [np.append(group_sum(column, ids, n), np.nan)[ids] for column in columns]


def _rows(df: pd.DataFrame, mask: np.ndarray):
    """(position, row as a dict) of the rows where mask holds."""
    at = np.flatnonzero(mask)
    return zip(at, df.iloc[at].to_dict("records")) if len(at) else ()


def _suspect_yuan(lines: pd.DataFrame, cell) -> list[iss.Issue]:
    found = []
    for col in ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数"):
        with np.errstate(invalid="ignore"):
            big = np.abs(_num(lines, col)) >= YUAN_SUSPECT
        for _, row in _rows(lines, big):
            found.append(iss.warning(
                "amount-in-yuan", f"{col} {row[col]:,.2f} 万元过大，可能误填为“元”；金额单位为万元，请换算后填写。",
                value=f"{row[col]}", **iss.located(row, col, cell)))
    return found


def check_monthly(monthly: pd.DataFrame, lines: pd.DataFrame, cell) -> list[iss.Issue]:
    """月度支出 summed over the year = 实际支出数 of that 支出类别 (optional sheet: no rows, no check)."""
    if monthly.empty:
        return []
    keys = [*UNIT_KEY, "支出类别"]
    month_sum = monthly[list(MONTHS)].astype(float).sum(axis=1, min_count=1).to_numpy()
    # 实际支出数 per unit × 支出类别 (groupby-sum over the lines), looked up for each monthly row
    ids, n = group_ids([np.concatenate([lines[k].to_numpy(), monthly[k].to_numpy()]) for k in keys])
    line_ids, month_ids = ids[:len(lines)], ids[len(lines):]
    in_lines = np.bincount(line_ids[line_ids >= 0], minlength=n) > 0
    sums = np.where(in_lines, group_sum(_num(lines, "实际支出数"), line_ids, n), np.nan)
    actual = np.append(sums, np.nan)[month_ids]  # a key not in the lines (id -1) takes the NaN at the end
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isnan(month_sum) &
                             (np.abs(month_sum - np.where(np.isnan(actual), 0.0, actual)) > TOLERANCE + 1e-9))
    if not len(bad):
        return []
    merged = monthly.iloc[bad].assign(_sum=month_sum[bad], _actual=actual[bad])
    return [iss.warning(
        "monthly-sum-mismatch",
        f"{r['支出类别']}：1–12 月支出合计 {r['_sum']:.2f} ≠ 预算执行表的实际支出数 {0 if pd.isna(r['_actual']) else r['_actual']:.2f}；"
        "请核对月度支出或实际支出数。", value=f"{r['_sum']:.2f}", **iss.located(r, "12月", cell))
        for r in merged.to_dict("records")]


def check_management(management: pd.DataFrame, files: pd.DataFrame) -> list[iss.Issue]:
    """Every 预算执行表 rates all eight 管理情况 items."""
    found = []
    have: dict[tuple, set] = {}
    for code, year, item in zip(*(management[c].tolist() for c in (*UNIT_KEY, "评价内容"))):
        if not (pd.isna(code) or pd.isna(year)):  # as groupby, which drops missing keys
            have.setdefault((code, year), set()).add(item)
    for f in files[files["模板类型"] == "预算执行表"].to_dict("records"):
        rated = have.get((f["单位编码"], f["财年"]), set())
        missing = [m for m in MANAGEMENT_ITEMS if m not in rated]
        if missing:
            found.append(iss.error(
                "management-missing", f"管理情况表缺少以下评价内容的自评：{'、'.join(missing)}；请补齐后重新运行。",
                file=f["文件"], sheet="管理情况", unit=f["单位编码"], year=f["财年"]))
    return found
