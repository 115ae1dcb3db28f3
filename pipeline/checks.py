"""Consistency checks within and across a unit's sheets. Pure: a Dataset in, issues out.

Each check states its rule the way TEMPLATES.md does, with the tolerance of 0.01 万元.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import issues as iss
from .spec import MANAGEMENT_ITEMS, MONTHS, UNIT_KEY

TOLERANCE = 0.01  # 万元
YUAN_SUSPECT = 1_000_000  # 万元: 100 亿元 in one line is far more likely a figure typed in 元


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col].astype(float)


def check_budget_lines(lines: pd.DataFrame, cell) -> list[iss.Issue]:
    """全年预算数 = 上年结转数 + 年初预算数 + 预算调增数 − 预算调减数 and 结转结余数 = 全年预算数 − 实际支出数 per
    line, with the sheet's totals in the message so the user sees the effect on the unit's figures."""
    if lines.empty:
        return []
    parts = [_num(lines, c).fillna(0) for c in ("上年结转数", "年初预算数", "预算调增数", "预算调减数")]
    expected = parts[0] + parts[1] + parts[2] - parts[3]
    budget, spent, balance = _num(lines, "全年预算数"), _num(lines, "实际支出数"), _num(lines, "结转结余数")
    totals = lines.assign(_exp=expected, _b=budget).groupby(list(UNIT_KEY))[["_exp", "_b"]].sum()
    found = []
    bad_budget = budget.notna() & ((budget - expected).abs() > TOLERANCE + 1e-9)
    for i in np.flatnonzero(bad_budget.to_numpy()):
        row = lines.iloc[i].to_dict()
        t = totals.loc[(row["单位编码"], row["财年"])]
        found.append(iss.warning(
            "budget-total-mismatch",
            f"{row['支出类别']}{'“' + row['项目名称'] + '”' if row.get('项目名称') else ''}：全年预算数 {budget.iloc[i]:.2f} "
            f"≠ 上年结转数 {parts[0].iloc[i]:.2f} + 年初预算数 {parts[1].iloc[i]:.2f} + 预算调增数 {parts[2].iloc[i]:.2f} "
            f"− 预算调减数 {parts[3].iloc[i]:.2f} = {expected.iloc[i]:.2f}（本表合计：全年预算数 {t['_b']:.2f}，"
            f"按公式应为 {t['_exp']:.2f}）。已按填报的全年预算数评分；请核对预算调整或全年预算数。",
            value=f"{budget.iloc[i]:.2f}", **iss.located(row, "全年预算数", cell)))
    bad_balance = balance.notna() & budget.notna() & spent.notna() & \
        ((balance - (budget - spent)).abs() > TOLERANCE + 1e-9)
    for i in np.flatnonzero(bad_balance.to_numpy()):
        row = lines.iloc[i].to_dict()
        found.append(iss.warning(
            "balance-mismatch",
            f"{row['支出类别']}：结转结余数 {balance.iloc[i]:.2f} ≠ 全年预算数 {budget.iloc[i]:.2f} − 实际支出数 "
            f"{spent.iloc[i]:.2f} = {budget.iloc[i] - spent.iloc[i]:.2f}；请核对。",
            value=f"{balance.iloc[i]:.2f}", **iss.located(row, "结转结余数", cell)))
    return found + _suspect_yuan(lines, cell)


def _suspect_yuan(lines: pd.DataFrame, cell) -> list[iss.Issue]:
    found = []
    for col in ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数"):
        big = _num(lines, col).abs() >= YUAN_SUSPECT
        for i in np.flatnonzero(big.to_numpy()):
            row = lines.iloc[i].to_dict()
            found.append(iss.warning(
                "amount-in-yuan", f"{col} {row[col]:,.2f} 万元过大，可能误填为“元”；金额单位为万元，请换算后填写。",
                value=f"{row[col]}", **iss.located(row, col, cell)))
    return found


def check_monthly(monthly: pd.DataFrame, lines: pd.DataFrame, cell) -> list[iss.Issue]:
    """月度支出 summed over the year = 实际支出数 of that 支出类别 (optional sheet: no rows, no check)."""
    if monthly.empty:
        return []
    keys = [*UNIT_KEY, "支出类别"]
    months = monthly.assign(_sum=monthly[list(MONTHS)].astype(float).sum(axis=1, min_count=1))
    actual = lines.assign(_e=_num(lines, "实际支出数")).groupby(keys)["_e"].sum().rename("_actual")
    merged = months.join(actual, on=keys)
    bad = merged["_sum"].notna() & ((merged["_sum"] - merged["_actual"].fillna(0)).abs() > TOLERANCE + 1e-9)
    return [iss.warning(
        "monthly-sum-mismatch",
        f"{r['支出类别']}：1–12 月支出合计 {r['_sum']:.2f} ≠ 预算执行表的实际支出数 {0 if pd.isna(r['_actual']) else r['_actual']:.2f}；"
        "请核对月度支出或实际支出数。", value=f"{r['_sum']:.2f}", **iss.located(r, "12月", cell))
        for r in merged[bad].to_dict("records")]


def check_management(management: pd.DataFrame, files: pd.DataFrame) -> list[iss.Issue]:
    """Every 预算执行表 rates all eight 管理情况 items."""
    found = []
    have = management.groupby(list(UNIT_KEY))["评价内容"].agg(set) if not management.empty else pd.Series(dtype=object)
    for f in files[files["模板类型"] == "预算执行表"].to_dict("records"):
        rated = have.get((f["单位编码"], f["财年"]), set())
        missing = [m for m in MANAGEMENT_ITEMS if m not in rated]
        if missing:
            found.append(iss.error(
                "management-missing", f"管理情况表缺少以下评价内容的自评：{'、'.join(missing)}；请补齐后重新运行。",
                file=f["文件"], sheet="管理情况", unit=f["单位编码"], year=f["财年"]))
    return found
