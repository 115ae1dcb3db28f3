"""绩效运行监控 (mid-year monitoring) as of a month m. Pure: tables in, one table out.

Time progress = m / 12. Three kinds of check per unit (SCORING.md, Monitoring):

- 预算执行: per 支出类别 and in total, spending of months 1..m (月度支出) ÷ 全年预算数 (预算执行) = 实际进度;
  进度比 = 实际进度 ÷ 时间进度 (the sums per 支出类别 by `numbers.group_sum`; 合计 adds them up).
- 绩效目标: each quantitative target with a 取数公式, its formula evaluated on the work statistics of months 1..m
  (aggregated by `intermediate.aggregate_work_stats`, so 合计 / 期末 / 平均 work as for the year). A target whose
  统计项 all add up over the year (汇总方式 合计) and whose unit is not `%` is compared with its pro-rated value
  指标值 × m/12; a rate (计量单位 `%`) or a stock (期末 / 平均) is compared with the full 指标值.
  进度比 = 完成率 of the value to date against that expected value, by scoring's own rule
  (`scoring.completion_rate`: ≥ a/t, ≤ t/a with actual 0 → 100%, ＝ min of both; 指标值 ≤ 0: met or not).
  A ≥ target of 0 is 不适用; a blank or unknown 比较符 无法计算.
- 进度匹配: for each pro-rated ≥ target, 进度差 = 目标完成进度 (value to date ÷ 指标值) minus the unit's total
  预算执行进度 (both rounded as shown); more than 超前预警 (default 5 percentage points) is a 黄 warning: the targets
  run ahead of the money.

Colours (预警等级) by 进度比 rounded as shown (2 decimals of a percent, like every rate of the workbook): below 监控红线
(default 60%) 红, below 监控黄线 (default 80%) 黄, else 绿. Thresholds come from the framework's 参数 sheet. A check that
cannot be made says so: 不适用 (全年预算数 0) or 无法计算 (no 月度支出, a 统计项 without monthly figures).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .formula import FormulaError, parse_formula
from .intermediate import aggregate_work_stats
from .numbers import excel_round, group_sum, is_blank
from .scoring import completion_rate
from .spec import MONTHS, UNIT_KEY

DEFAULT_THRESHOLDS = {"监控红线": 0.6, "监控黄线": 0.8, "超前预警": 0.05}
RED, YELLOW, GREEN = "红", "黄", "绿"
NOT_APPLICABLE, NOT_COMPUTABLE = "不适用", "无法计算"
WARNING_LEVELS = (RED, YELLOW)
KIND_BUDGET, KIND_TARGET, KIND_MATCH = "预算执行", "绩效目标", "进度匹配"
TOTAL = "合计"
RATE_DIGITS = 4  # fractions as shown with 0.00%

MONITOR_COLUMNS = [*UNIT_KEY, "截至月份", "类别", "项目", "全年目标", "应完成", "累计完成", "时间进度", "实际进度",
                   "进度比", "进度差", "预警等级", "说明"]


def thresholds(params: dict | None) -> dict[str, float]:
    """The monitoring thresholds of a framework's 参数, defaults for the keys it lacks."""
    params = params or {}
    return {k: float(params[k]) if params.get(k) is not None else v for k, v in DEFAULT_THRESHOLDS.items()}


def level(ratio: float, limits: dict[str, float]) -> str:
    """红 / 黄 / 绿 of a 进度比, compared as shown (rounded to 0.01%), so 59.995% (shown 60.00%) is 黄."""
    shown = excel_round(ratio, RATE_DIGITS)
    if shown < limits["监控红线"] - 1e-12:
        return RED
    if shown < limits["监控黄线"] - 1e-12:
        return YELLOW
    return GREEN


def pct(x: float) -> str:
    """A fraction as the workbook shows it: 0.90625 → `90.63%`."""
    return f"{excel_round(x, RATE_DIGITS) * 100:.2f}%"


def num(x: float) -> str:
    """A figure as shown: amounts with thousands separators and 2 decimals, trailing zeros dropped for counts."""
    v = excel_round(x, 2)
    return f"{v:,.2f}"


def monitor(dataset, targets: pd.DataFrame, as_of_month: int, params: dict | None = None) -> pd.DataFrame:
    """One row per unit × check (MONITOR_COLUMNS), for every unit of `dataset`.

    Args:
        dataset: `Dataset` (uses units, budget_lines, monthly, work_stats).
        targets: resolved targets (`intermediate.resolve_targets`): 取数公式, 比较符, 指标值, 计量单位 per target.
        as_of_month: m, 1..12.
        params: the framework's parsed 参数 (监控红线, 监控黄线, 超前预警); defaults where absent.
    """
    if not 1 <= int(as_of_month) <= 12:
        raise ValueError(f"月份应在 1 到 12 之间：{as_of_month}")
    m = int(as_of_month)
    limits = thresholds(params)
    stats = work_stats_to_month(dataset.work_stats, m)
    rows = []
    for unit in dataset.units[list(UNIT_KEY)].to_dict("records"):
        key = (unit["单位编码"], unit["财年"])
        label = f"{key[1]}-{m:02d}"
        budget = _budget_rows(_of(dataset.budget_lines, key), _of(dataset.monthly, key), m, limits)
        total = next((r for r in budget if r["项目"] == TOTAL), None)
        spent_share = total["实际进度"] if total and not pd.isna(total["实际进度"]) else np.nan
        target_rows = _target_rows(_of(targets, key), _of(stats, key), m, limits, spent_share)
        for r in budget + target_rows:
            rows.append({"单位编码": key[0], "财年": key[1], "截至月份": label, **r})
    return pd.DataFrame(rows, columns=MONITOR_COLUMNS)


def warning_counts(monitoring: pd.DataFrame) -> pd.DataFrame:
    """One row per unit: 红色预警, 黄色预警, 预警合计 (红 + 黄), 检查项 — for the summary workbook (汇总) of a
    monitoring run."""
    cols = [*UNIT_KEY, "截至月份", "红色预警", "黄色预警", "预警合计", "检查项"]
    if monitoring.empty:
        return pd.DataFrame(columns=cols)
    g = monitoring.groupby([*UNIT_KEY, "截至月份"], sort=True)["预警等级"]
    out = pd.DataFrame({
        "红色预警": g.apply(lambda s: int((s == RED).sum())),
        "黄色预警": g.apply(lambda s: int((s == YELLOW).sum())),
        "检查项": g.size(),
    }).reset_index()
    out["预警合计"] = out["红色预警"] + out["黄色预警"]
    return out[cols]


def work_stats_to_month(work_stats: pd.DataFrame, m: int) -> pd.DataFrame:
    """Work statistics of months 1..m per unit × 统计项: later months and 全年 blanked, then aggregated exactly as
    for the year (`aggregate_work_stats`), so `年度值` is the value to date."""
    ws = work_stats.copy()
    for month in MONTHS[m:]:
        ws[month] = np.nan
    ws["全年"] = np.nan
    stats, _ = aggregate_work_stats(ws, lambda row, field: "")
    return stats


def _of(df: pd.DataFrame, key: tuple) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.DataFrame(columns=[] if df is None else df.columns)
    return df[(df["单位编码"] == key[0]) & (df["财年"] == key[1])]


def _check(item, kind, full, expected, done, time_share, share, ratio, colour, text, gap=np.nan) -> dict:
    return {"类别": kind, "项目": item, "全年目标": full, "应完成": expected, "累计完成": done,
            "时间进度": time_share, "实际进度": share, "进度比": ratio, "进度差": gap, "预警等级": colour, "说明": text}


def _budget_rows(lines: pd.DataFrame, monthly: pd.DataFrame, m: int, limits: dict) -> list[dict]:
    time_share = m / 12
    months = list(MONTHS[:m])
    budget, budget_total = _category_sums(lines["支出类别"], pd.to_numeric(lines["全年预算数"], errors="coerce")) \
        if len(lines) else ({}, 0.0)
    if monthly.empty:
        return [_check(TOTAL, KIND_BUDGET, budget_total, excel_round(budget_total * time_share, 2), np.nan,
                       time_share, np.nan, np.nan, NOT_COMPUTABLE,
                       "未填写月度支出表，无法监控预算执行进度；请在预算执行表的“月度支出”工作表按月填写实际支出。")]
    spent, spent_total = _category_sums(
        monthly["支出类别"], monthly[months].apply(pd.to_numeric, errors="coerce").fillna(0).sum(axis=1))
    rows, total_ok = [], True
    for category in dict.fromkeys([*budget, *spent]):
        b = budget.get(category, 0.0)
        if category not in spent:
            total_ok = total_ok and b == 0
            rows.append(_check(category, KIND_BUDGET, b, excel_round(b * time_share, 2), np.nan, time_share, np.nan,
                               np.nan, NOT_APPLICABLE if b == 0 else NOT_COMPUTABLE,
                               "全年预算数为 0，不适用" if b == 0 else
                               f"月度支出表没有“{category}”一行，无法监控其执行进度。"))
            continue
        rows.append(_budget_check(category, b, spent[category], m, limits))
    if total_ok:
        rows.append(_budget_check(TOTAL, budget_total, spent_total, m, limits))
    else:
        rows.append(_check(TOTAL, KIND_BUDGET, budget_total, excel_round(budget_total * time_share, 2), np.nan,
                           time_share, np.nan, np.nan, NOT_COMPUTABLE, "有支出类别未填写月度支出，无法计算合计执行进度。"))
    return rows


def _category_sums(categories: pd.Series, values) -> tuple[dict[str, float], float]:
    """Per 支出类别 (in order of first appearance, a blank one left out) the sum of `values` (NaN skipped), with
    numbers.group_sum as every per-unit sum; and the 合计: those category sums added up in their order, as a reader
    adds up the category rows (it depends on the unit's own rows only)."""
    ids, uniques = pd.factorize(categories.to_numpy(dtype=object), sort=False, use_na_sentinel=True)
    sums = group_sum(np.asarray(values, dtype=float), ids, len(uniques))
    return dict(zip(uniques.tolist(), sums.tolist())), float(np.sum(sums))


def _budget_check(item: str, b: float, spent: float, m: int, limits: dict) -> dict:
    time_share = m / 12
    expected = excel_round(b * time_share, 2)
    if b == 0:
        return _check(item, KIND_BUDGET, b, expected, excel_round(spent, 2), time_share, np.nan, np.nan,
                      NOT_APPLICABLE if spent == 0 else NOT_COMPUTABLE,
                      "全年预算数为 0，不适用" if spent == 0 else
                      f"全年预算数为 0 而 1–{m} 月已支出 {num(spent)} 万元，无法计算执行进度；请核对预算。")
    share = spent / b
    ratio = share / time_share
    colour = level(ratio, limits)
    text = (f"1–{m} 月支出 {num(spent)} 万元 ÷ 全年预算数 {num(b)} 万元 = {pct(share)}，时间进度 {pct(time_share)}，"
            f"进度比 {pct(ratio)}")
    return _check(item, KIND_BUDGET, b, expected, excel_round(spent, 2), time_share, excel_round(share, RATE_DIGITS),
                  excel_round(ratio, RATE_DIGITS), colour, text + _colour_note(colour, limits))


def _colour_note(colour: str, limits: dict) -> str:
    if colour == RED:
        return f"，低于红线 {pct(limits['监控红线'])}，红色预警。"
    if colour == YELLOW:
        return f"，低于黄线 {pct(limits['监控黄线'])}，黄色预警。"
    return "。"


def _target_rows(targets: pd.DataFrame, stats: pd.DataFrame, m: int, limits: dict, spent_share: float) -> list[dict]:
    values = dict(zip(stats["统计项"], stats["年度值"])) if len(stats) else {}
    how = dict(zip(stats["统计项"], stats["汇总方式"])) if len(stats) else {}
    time_share = m / 12
    rows, matches = [], []
    for t in targets.to_dict("records"):
        formula_text, op, target = t.get("取数公式"), t.get("比较符"), t.get("指标值")
        if is_blank(formula_text) or op == "定性" or is_blank(target):
            continue
        name, unit = str(t["三级指标"]), "" if is_blank(t.get("计量单位")) else str(t["计量单位"])
        target = float(target)
        try:
            formula = parse_formula(str(formula_text))
            done = formula.evaluate(values)
        except FormulaError as exc:
            rows.append(_check(name, KIND_TARGET, target, np.nan, np.nan, time_share, np.nan, np.nan, NOT_COMPUTABLE,
                               f"取数公式 {formula_text} 无法用 1–{m} 月工作统计计算：{exc}。"))
            continue
        additive = unit != "%" and all((how.get(n) or "合计") == "合计" for n in formula.names)
        expected = target * time_share if additive else target
        if op in ("≥", "＞") and expected == 0:  # nothing to make progress towards
            rows.append(_check(name, KIND_TARGET, target, expected, done, time_share, np.nan, np.nan, NOT_APPLICABLE,
                               "指标值为 0，不适用"))
            continue
        ratio = completion_rate(op, done, expected)
        if pd.isna(ratio):
            rows.append(_check(name, KIND_TARGET, target, expected, done, time_share, np.nan, np.nan, NOT_COMPUTABLE,
                               "未填写比较符，无法计算进度比。" if is_blank(op) else
                               f"比较符“{op}”无法识别，无法计算进度比。"))
            continue
        share = completion_rate(op, done, target)
        colour = level(ratio, limits)
        basis = (f"按时间进度应完成 {num(target)}{unit} × {pct(time_share)} = {num(expected)}{unit}" if additive
                 else f"比率或期末值，按全年指标值 {num(target)}{unit} 比较")
        text = f"1–{m} 月 {formula_text} = {num(done)}{unit}，{basis}，进度比 {pct(ratio)}" + _colour_note(colour, limits)
        rows.append(_check(name, KIND_TARGET, target, excel_round(expected, 2), excel_round(done, 2), time_share,
                           excel_round(share, RATE_DIGITS), excel_round(ratio, RATE_DIGITS), colour, text))
        if additive and op in ("≥", "＞"):
            matches.append(_match_check(name, target, done, unit, share, spent_share, time_share, limits))
    return rows + matches


def _match_check(name, target, done, unit, share, spent_share, time_share, limits) -> dict:
    """绩效目标完成进度 against the unit's 预算执行进度: ahead by more than 超前预警 → 黄 (warning)."""
    ahead_limit = limits["超前预警"]
    if pd.isna(spent_share):
        return _check(name, KIND_MATCH, target, np.nan, excel_round(done, 2), time_share,
                      excel_round(share, RATE_DIGITS), np.nan, NOT_COMPUTABLE, "预算执行进度无法计算，不能比较。")
    gap = excel_round(share, RATE_DIGITS) - excel_round(spent_share, RATE_DIGITS)
    ahead = gap > ahead_limit + 1e-12
    text = (f"目标完成进度 {pct(share)}（{num(done)}{unit} ÷ {num(target)}{unit}）− 预算执行进度 {pct(spent_share)} = "
            f"{pct(gap)}")
    text += (f"，超过 {pct(ahead_limit)}：目标完成进度明显快于预算执行进度，请核实目标值是否偏低或支出是否滞后。"
             if ahead else f"，未超过 {pct(ahead_limit)}。")
    return _check(name, KIND_MATCH, target, np.nan, excel_round(done, 2), time_share, excel_round(share, RATE_DIGITS),
                  np.nan, YELLOW if ahead else GREEN, text, gap=excel_round(gap, RATE_DIGITS))
