"""The common indicators of SCORING.md, computed for every unit at once from its budget figures. Pure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .spec import UNIT_KEY

INDICATOR_COLUMNS = [*UNIT_KEY, "计算方法", "值", "分子", "分母", "参照", "状态", "说明"]
OK, NOT_APPLICABLE, NOT_COMPUTABLE = "正常", "不适用", "无法计算"

AMOUNTS = ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数")


def unit_amounts(units: pd.DataFrame, budget_lines: pd.DataFrame, sangong: pd.DataFrame) -> pd.DataFrame:
    """Every figure the indicators need, one row per unit (index: 单位编码, 财年).

    Budget sums over all lines (`全年预算数`, …), per category (`公用经费_全年预算数`, `项目支出_…`), 重点项目 budget,
    三公 sums (`三公_预算数`, `三公_实际支出数`, `三公_上年实际支出数`) and the unit's own figures (编制人数, 政府采购…).
    A blank amount counts as 0 in a sum; a figure missing altogether stays NaN.
    """
    index = pd.MultiIndex.from_frame(units[list(UNIT_KEY)])
    out = pd.DataFrame(index=index)
    lines = budget_lines.assign(**{c: budget_lines[c].astype(float) for c in AMOUNTS})
    by_unit = lines.groupby(list(UNIT_KEY))
    for col in AMOUNTS:
        out[col] = by_unit[col].sum(min_count=1)
    for prefix, category in (("人员经费", "基本支出-人员经费"), ("公用经费", "基本支出-公用经费"), ("项目支出", "项目支出")):
        part = lines[lines["支出类别"] == category].groupby(list(UNIT_KEY))
        for col in ("全年预算数", "实际支出数"):
            out[f"{prefix}_{col}"] = part[col].sum().reindex(index).fillna(0.0)
    key = lines[(lines["支出类别"] == "项目支出") & (lines["重点项目"] == "是")].groupby(list(UNIT_KEY))
    out["重点项目_全年预算数"] = key["全年预算数"].sum().reindex(index).fillna(0.0)
    sg = sangong.groupby(list(UNIT_KEY))
    for col in ("预算数", "实际支出数", "上年预算数", "上年实际支出数"):
        out[f"三公_{col}"] = sg[col].sum(min_count=1).reindex(index) if not sangong.empty else np.nan
    own = units.set_index(list(UNIT_KEY))
    for col in ("编制人数", "年末在职人数", "政府采购预算数", "政府采购实际金额", "固定资产总额", "在用固定资产总额"):
        out[col] = own[col].astype(float) if col in own else np.nan
    return out


def _fmt(v: float) -> str:
    return "未填" if pd.isna(v) else f"{v:,.2f}"


def _ratio(name: str, num: pd.Series, den: pd.Series, num_label: str, den_label: str,
           zero_both: str = NOT_APPLICABLE, ref: pd.Series | None = None) -> pd.DataFrame:
    """num / den for every unit, never dividing by zero: den = 0 and num = 0 → `zero_both` (or 100% when
    zero_both is OK); den = 0 < num, or a missing figure → 无法计算."""
    num, den = num.astype(float), den.astype(float)
    missing = num.isna() | den.isna()
    zero_den = ~missing & (den == 0)
    both_zero = zero_den & (num == 0)
    value = (num / den.where(den != 0)).where(~missing & ~zero_den)
    status = pd.Series(OK, index=num.index)
    status[missing | (zero_den & ~both_zero)] = NOT_COMPUTABLE
    if zero_both == OK:
        value[both_zero] = 1.0
    else:
        status[both_zero] = zero_both
    text = [f"{num_label} {_fmt(n)} ÷ {den_label} {_fmt(d)}" for n, d in zip(num, den)]
    reasons = np.select(
        [missing, both_zero & (zero_both != OK), zero_den & ~both_zero],
        [f"{num_label}或{den_label}未填写，无法计算", f"{den_label}与{num_label}均为 0，不适用",
         f"{den_label}为 0 而{num_label}不为 0，无法计算"], default="")
    explain = [t if not r else f"{t}；{r}" for t, r in zip(text, reasons)]
    return pd.DataFrame({
        "计算方法": name, "值": value, "分子": num, "分母": den,
        "参照": np.nan if ref is None else ref.astype(float), "状态": status, "说明": explain,
    }, index=num.index)


def compute_indicators(amounts: pd.DataFrame) -> pd.DataFrame:
    """One row per unit × 计算方法 (INDICATOR_COLUMNS); `值` is a fraction (0.9063 = 90.63%), unrounded."""
    a = amounts
    adjust = a["预算调增数"].fillna(0) + a["预算调减数"].fillna(0)
    sangong_change = a["三公_实际支出数"] - a["三公_上年实际支出数"]
    carry_change = a["结转结余数"].fillna(0) - a["上年结转数"].fillna(0)
    parts = [
        _ratio("预算执行率", a["实际支出数"], a["全年预算数"], "实际支出数", "全年预算数", NOT_COMPUTABLE),
        _ratio("预算调整率", adjust, a["年初预算数"], "预算调增数+预算调减数", "年初预算数", NOT_COMPUTABLE),
        _ratio("结转结余率", a["结转结余数"].fillna(0), a["全年预算数"], "结转结余数", "全年预算数", NOT_COMPUTABLE,
               ref=a["上年结转数"].fillna(0)),
        _ratio("结转结余变动率", carry_change, a["上年结转数"].fillna(0), "结转结余数−上年结转数", "上年结转数",
               NOT_COMPUTABLE),
        _ratio("公用经费控制率", a["公用经费_实际支出数"], a["公用经费_全年预算数"], "公用经费实际支出", "公用经费全年预算"),
        _ratio("项目支出预算控制率", a["项目支出_实际支出数"], a["项目支出_全年预算数"], "项目支出实际支出", "项目支出全年预算", OK),
        _ratio("三公经费控制率", a["三公_实际支出数"], a["三公_预算数"], "“三公经费”实际支出", "“三公经费”预算"),
        _ratio("三公经费变动率", sangong_change, a["三公_上年实际支出数"], "“三公经费”本年−上年实际支出",
               "上年实际支出"),
        _ratio("政府采购执行率", a["政府采购实际金额"], a["政府采购预算数"], "政府采购实际金额", "政府采购预算数"),
        _ratio("在职人员控制率", a["年末在职人数"], a["编制人数"], "年末在职人数", "编制人数", NOT_COMPUTABLE),
        _ratio("重点支出安排率", a["重点项目_全年预算数"], a["项目支出_全年预算数"], "重点项目预算", "项目支出预算"),
        _ratio("固定资产利用率", a["在用固定资产总额"], a["固定资产总额"], "在用固定资产总额", "固定资产总额"),
    ]
    out = pd.concat(parts).reset_index()
    return out[INDICATOR_COLUMNS]
