"""The common indicators of SCORING.md, computed for every unit at once from its budget figures. Pure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .numbers import TEXT_DTYPE, group_ids, group_sum
from .spec import UNIT_KEY

INDICATOR_COLUMNS = [*UNIT_KEY, "计算方法", "值", "分子", "分母", "参照", "状态", "说明"]
OK, NOT_APPLICABLE, NOT_COMPUTABLE = "正常", "不适用", "无法计算"

AMOUNTS = ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数")


def unit_amounts(units: pd.DataFrame, budget_lines: pd.DataFrame, sangong: pd.DataFrame) -> pd.DataFrame:
    """Every figure the indicators need, one row per unit (index: 单位编码, 财年).

    Budget sums over all lines (`全年预算数`, …), per category (`公用经费_全年预算数`, `项目支出_…`), 重点项目 budget,
    三公 sums (`三公_预算数`, `三公_实际支出数`, `三公_上年实际支出数`) and the unit's own figures (编制人数, 政府采购…).
    A blank amount counts as 0 in a sum; a figure missing altogether stays NaN. Sums are those of
    `groupby(单位编码, 财年).sum()` (see numbers.group_sum), computed for all units at once.
    """
    index = pd.MultiIndex.from_frame(units[list(UNIT_KEY)])
    tables = (units, budget_lines, sangong)
    ids, n = group_ids([np.concatenate([t[k].to_numpy() for t in tables]) for k in UNIT_KEY])
    unit_ids, line_ids, sg_ids = np.split(ids, np.cumsum([len(units), len(budget_lines)]))

    def per_unit(sums: np.ndarray) -> np.ndarray:
        return np.append(sums, np.nan)[unit_ids]  # a unit without a key (id -1) takes the NaN at the end

    out: dict[str, np.ndarray] = {}
    lines = {c: budget_lines[c].to_numpy(dtype=float) for c in AMOUNTS}
    for col in AMOUNTS:
        out[col] = per_unit(group_sum(lines[col], line_ids, n, min_count=1))
    category = budget_lines["支出类别"].to_numpy(dtype=object)
    key_project = (category == "项目支出") & (budget_lines["重点项目"].to_numpy(dtype=object) == "是")
    parts = [(f"{prefix}_{col}", category == name, col) for prefix, name in
             (("人员经费", "基本支出-人员经费"), ("公用经费", "基本支出-公用经费"), ("项目支出", "项目支出"))
             for col in ("全年预算数", "实际支出数")] + [("重点项目_全年预算数", key_project, "全年预算数")]
    for name, rows, col in parts:
        sums = per_unit(group_sum(lines[col][rows], line_ids[rows], n))
        out[name] = np.where(np.isnan(sums), 0.0, sums)
    for col in ("预算数", "实际支出数", "上年预算数", "上年实际支出数"):
        out[f"三公_{col}"] = per_unit(group_sum(sangong[col].to_numpy(dtype=float), sg_ids, n, min_count=1)) \
            if not sangong.empty else np.full(len(units), np.nan)
    for col in ("编制人数", "年末在职人数", "政府采购预算数", "政府采购实际金额", "固定资产总额", "在用固定资产总额"):
        out[col] = units[col].to_numpy(dtype=float) if col in units else np.full(len(units), np.nan)
    return pd.DataFrame(out, index=index)


def _fmt(v: float) -> str:
    return "未填" if math.isnan(v) else f"{v:,.2f}"


def _filled(x: np.ndarray) -> np.ndarray:
    """A blank amount as 0 (`fillna(0)`)."""
    return np.where(np.isnan(x), 0.0, x)


def _ratio(name: str, num: np.ndarray, den: np.ndarray, num_label: str, den_label: str,
           zero_both: str = NOT_APPLICABLE, ref: np.ndarray | None = None) -> dict:
    """num / den for every unit, never dividing by zero: den = 0 and num = 0 → `zero_both` (or 100% when
    zero_both is OK); den = 0 < num, or a missing figure → 无法计算. The columns of INDICATOR_COLUMNS but the key."""
    missing = np.isnan(num) | np.isnan(den)
    zero_den = ~missing & (den == 0)
    both_zero = zero_den & (num == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(~missing & ~zero_den, num / np.where(den != 0, den, np.nan), np.nan)
    status = np.full(len(num), OK, dtype=object)
    status[missing | (zero_den & ~both_zero)] = NOT_COMPUTABLE
    if zero_both == OK:
        value[both_zero] = 1.0
    else:
        status[both_zero] = zero_both
    text = [f"{num_label} {_fmt(n)} ÷ {den_label} {_fmt(d)}" for n, d in zip(num.tolist(), den.tolist())]
    reasons = np.select(
        [missing, both_zero & (zero_both != OK), zero_den & ~both_zero],
        [f"{num_label}或{den_label}未填写，无法计算", f"{den_label}与{num_label}均为 0，不适用",
         f"{den_label}为 0 而{num_label}不为 0，无法计算"], default="")
    explain = [t if not r else f"{t}；{r}" for t, r in zip(text, reasons)]
    return {"计算方法": name, "值": value, "分子": num, "分母": den,
            "参照": np.full(len(num), np.nan) if ref is None else ref, "状态": status, "说明": explain}


def compute_indicators(amounts: pd.DataFrame) -> pd.DataFrame:
    """One row per unit × 计算方法 (INDICATOR_COLUMNS); `值` is a fraction (0.9063 = 90.63%), unrounded."""
    values = amounts.to_numpy(dtype=float)
    a = {c: values[:, j] for j, c in enumerate(amounts.columns)}
    adjust = _filled(a["预算调增数"]) + _filled(a["预算调减数"])
    sangong_change = a["三公_实际支出数"] - a["三公_上年实际支出数"]
    carry_change = _filled(a["结转结余数"]) - _filled(a["上年结转数"])
    parts = [
        _ratio("预算执行率", a["实际支出数"], a["全年预算数"], "实际支出数", "全年预算数", NOT_COMPUTABLE),
        _ratio("预算调整率", adjust, a["年初预算数"], "预算调增数+预算调减数", "年初预算数", NOT_COMPUTABLE),
        _ratio("结转结余率", _filled(a["结转结余数"]), a["全年预算数"], "结转结余数", "全年预算数", NOT_COMPUTABLE,
               ref=_filled(a["上年结转数"])),
        _ratio("结转结余变动率", carry_change, _filled(a["上年结转数"]), "结转结余数−上年结转数", "上年结转数",
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
    # The parts stacked: calculation method by calculation method, units in the order of `amounts`.
    out = {k: np.tile(amounts.index.get_level_values(k).to_numpy(), len(parts)) for k in UNIT_KEY}
    out["计算方法"] = pd.array(np.repeat(np.array([p["计算方法"] for p in parts], dtype=object), len(amounts)),
                           dtype=TEXT_DTYPE)
    for col in ("值", "分子", "分母", "参照"):
        out[col] = np.concatenate([p[col] for p in parts])
    out["状态"] = pd.array(np.concatenate([p["状态"] for p in parts]), dtype=TEXT_DTYPE)
    out["说明"] = [text for p in parts for text in p["说明"]]
    return pd.DataFrame(out)[INDICATOR_COLUMNS]
