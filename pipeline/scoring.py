"""Scoring: apply a framework's rules to every unit at once.

Inputs (see docs/ARCHITECTURE.md): `indicators` (one row per unit × 计算方法), `management` (one row per unit ×
评价内容) and `targets` (one row per unit × target). Output `Scores`: `details` (one row per unit × scored item),
`totals` (one row per unit) and the issues found while scoring.

Each framework row is applied to all units in one go with numpy (the loop is over the ~20 framework rows, never
over units). Rules work on rates as displayed (fractions rounded to 4 decimals = percent to 2 decimals) so that a
reader can redo the arithmetic of every 扣分说明 from the printed figures.

Decisions where SCORING.md leaves room:
- 偏离度 tiers and 分档 boundaries compare the displayed (4-decimal) rate.
- A target whose 指标值 is 0 or negative has no meaningful ratio: it scores 100% when met (≥ 0 with ≥, …) and
  0% otherwise; 偏离度 is then not computed. Nothing is ever divided by zero.
- Group points (绩效目标 rows) are spread over a unit's targets by their 分值; blanks get the mean of the given 分值,
  all blank (or all 0) means equal shares. Shares are rounded to 小数位数 by largest remainder so that they add up to
  the group total exactly (25 over 3 targets → 8.34 + 8.33 + 8.33) and full marks print as full marks.
- A unit without any target of a group: 0 points and an 错误 (param `不适用=满分` gives full points and an 提示).
- 不适用 items always carry a note in 扣分说明 (also at full points), because a reader must see why the rate is
  missing; every other item has a note exactly when it lost points.
- The grade is read from the total as printed (rounded to 小数位数): 89.995 → 90.00 → 优.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import spec
from .framework import TIER_OTHER, Framework
from .issues import Issue, error, info, warning
from .numbers import excel_round

UNIT_KEY = list(spec.UNIT_KEY)
DETAIL_COLUMNS = ("单位编码", "财年", "指标编码", "一级指标", "二级指标", "三级指标", "指标值", "实际完成值", "完成率",
                  "分值", "得分", "扣分说明", "状态", "计算方法", "评分方法", "_file", "_row",
                  "_rule", "_value", "_target", "_op", "_deviation", "_cut")
# The `_rule` … `_cut` columns carry what the workbook's live formulas read (see formulas_xl.py), on 正常 rows:
# `_rule` the framework's 指标编码; `_value` the figure the rule reads (the indicator's unrounded value, the
# 结转结余数 for 结余控制, the ratio for 定性 items and 定性 targets, the actual value of a quantitative target);
# `_target` the 上年结转数 (结余控制) or a target's 指标值; `_op` a target's 比较符; `_deviation` and `_cut` a
# target's rounded 偏离度 (NaN where not computed) and the share of its points deducted for it.
STATE_OK, STATE_NA, STATE_FAIL, STATE_MISSING = "正常", "不适用", "无法计算", "数据缺失"
RATE_DIGITS = 4  # rates are fractions: 4 decimals = percent with 2 decimals

INDICATOR_COLUMNS = ("值", "分子", "分母", "参照", "状态", "说明")
MANAGEMENT_COLUMNS = ("评价内容", "自评结论", "得分比例", "单元格", "_file")
TARGET_COLUMNS = ("序号", "一级指标", "二级指标", "三级指标", "比较符", "计量单位", "分值", "指标值", "实际完成值", "结论",
                  "指标值文本", "实际完成值文本", "单元格", "_file", "_sheet", "_row")


@dataclass
class Scores:
    """`details`: one row per unit × scored item (columns DETAIL_COLUMNS); target items get 指标编码 = framework
    code + `-` + 序号, and `_file`/`_row` of their 绩效目标 row (blank for other items); `_rule` … `_cut` are the
    inputs of the workbook's formulas (see DETAIL_COLUMNS). `totals`: one row per unit: 单位编码, 财年, 总分, 等级, then one column per 一级指标 in
    framework order. `issues`: problems found while scoring (missing conclusions, missing actual values, …)."""

    details: pd.DataFrame
    totals: pd.DataFrame
    issues: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class _Rule:
    """One framework row with what every scorer needs."""

    code: str
    level1: str
    level2: str
    name: str
    points: float
    calc: str
    method: str
    params: dict
    digits: int
    glob: dict  # the framework's 参数 sheet

    def round(self, x):
        return excel_round(x, self.digits)

    def num(self, x) -> np.ndarray:
        """Scores as printed: `4.67`."""
        return _texts("{:.%df}" % self.digits, self.round(x))


def score_units(framework: Framework, indicators: pd.DataFrame, management: pd.DataFrame,
                targets: pd.DataFrame) -> Scores:
    """Score every unit found in any of the three tables under `framework`. Pure: no file is touched."""
    indicators = _prepared(indicators, INDICATOR_COLUMNS + ("计算方法",))
    management = _prepared(management, MANAGEMENT_COLUMNS)
    targets = _prepared(targets, TARGET_COLUMNS)
    units = pd.concat([t[UNIT_KEY] for t in (indicators, management, targets)]).drop_duplicates() \
        .sort_values(UNIT_KEY).reset_index(drop=True)
    parts, issues = [], []
    for order, row in enumerate(framework.rows.to_dict("records")):
        rule = _Rule(row["指标编码"], row["一级指标"], row["二级指标"], row["三级指标"], float(row["分值"]),
                     row["计算方法"], row["评分方法"], row["_params"], framework.digits, framework.params)
        part, found = _score_rule(rule, units, indicators, management, targets)
        parts.append(part.assign(_order=order))
        issues += found
    details = _finish(parts)
    return Scores(details, _totals(details, units, framework), issues)


def _prepared(df: pd.DataFrame | None, columns: tuple[str, ...]) -> pd.DataFrame:
    """A copy with every expected column present and the unit key in one dtype (str code, int year)."""
    df = pd.DataFrame(columns=UNIT_KEY + list(columns)) if df is None else df.copy()
    for col in UNIT_KEY + list(columns):
        if col not in df.columns:
            df[col] = np.nan
    df = df[df["单位编码"].notna() & df["财年"].notna()].copy()  # keyless rows are reported by checks upstream
    df["单位编码"] = df["单位编码"].astype(str)
    df["财年"] = pd.to_numeric(df["财年"]).astype("int64") if len(df) else df["财年"].astype("int64")
    return df.reset_index(drop=True)


def _score_rule(rule: _Rule, units, indicators, management, targets) -> tuple[pd.DataFrame, list[Issue]]:
    if rule.method == "定性":
        return _score_management(rule, units, management)
    if rule.method == "绩效目标":
        return _score_targets(rule, units, targets)
    return _score_indicator(rule, units, indicators)


def _finish(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack the parts in framework order (then unit, then target order) with exactly DETAIL_COLUMNS."""
    details = pd.concat(parts, ignore_index=True)
    if "_sub" not in details.columns:
        details["_sub"] = 0
    details["_sub"] = details["_sub"].fillna(0)
    details = details.sort_values(UNIT_KEY + ["_order", "_sub"], kind="stable")
    details = details.reindex(columns=list(DETAIL_COLUMNS)).reset_index(drop=True)
    for col in ("完成率", "分值", "得分", "_value", "_target", "_deviation", "_cut"):
        details[col] = details[col].astype(float)
    return details


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers (user-facing figures).

def _texts(fmt: str, *columns) -> np.ndarray:
    """`fmt.format(...)` element-wise over equally long arrays (scalars broadcast); object array of str."""
    n = max((len(c) for c in columns if np.ndim(c)), default=1)
    cols = [c if np.ndim(c) else [c] * n for c in columns]
    return np.array([fmt.format(*vals) for vals in zip(*cols)] if n else [], dtype=object)


def _pct(x) -> np.ndarray:
    """Fractions as percent with 2 decimals, rounded as Excel does: 0.90625 → `90.63%`."""
    return _texts("{:.2f}%", excel_round(np.asarray(x, dtype=float) * 100, 2))


def short_pct(x: float) -> str:
    """A parameter as typed: 1.0 → `100%`, 0.955 → `95.5%`."""
    return f"{float(excel_round(x * 100, 4)):g}%"


def _fmt_amount(x) -> np.ndarray:
    return _texts("{:.2f}", excel_round(np.asarray(x, dtype=float), 2))


def _where(conds_values: list[tuple], default) -> np.ndarray:
    """np.select for object arrays (texts)."""
    conds = [np.asarray(c, dtype=bool) for c, _ in conds_values]
    return np.select(conds, [np.asarray(v, dtype=object) for _, v in conds_values],
                     default=np.asarray(default, dtype=object))


def _quoted(name: str) -> str:
    """`“预算执行率”`, but `“三公经费”控制率` stays as it is (it already carries quotes)."""
    return name if "“" in name else f"“{name}”"


def _unit_issue(make, code: str, message: str, unit, year, **where) -> Issue:
    return make(code, message, unit=str(unit), year=int(year), **where)


# ---------------------------------------------------------------------------------------------------------------
# Common indicators (超出扣分, 低于扣分, 分档, 比例, 结余控制).

def _score_indicator(rule: _Rule, units: pd.DataFrame, indicators: pd.DataFrame):
    """One framework row over all units: grain of the result is one row per unit."""
    ind = indicators[indicators["计算方法"] == rule.calc].drop_duplicates(UNIT_KEY)
    f = units.merge(ind[UNIT_KEY + list(INDICATOR_COLUMNS)], on=UNIT_KEY, how="left")
    value = f["值"].to_numpy(dtype=float)
    state = f["状态"].where(f["状态"].isin([STATE_OK, STATE_NA, STATE_FAIL]), STATE_FAIL).to_numpy(dtype=object)
    state = np.where((state == STATE_OK) & np.isnan(value), STATE_FAIL, state)
    note = f["说明"].where(f["说明"].notna(), "缺少计算所需数据").astype(str).to_numpy(dtype=object)
    v = excel_round(value, RATE_DIGITS)
    with np.errstate(invalid="ignore"):
        score, reason = _INDICATOR_RULES[rule.method](rule, v, f)
    score = np.asarray(rule.round(score), dtype=float)
    reason = np.where(score < rule.points, reason, "")
    score, reason = _apply_states(rule, state, note, score, reason)
    part = f[UNIT_KEY].assign(
        指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name,
        指标值=_standard_text(rule), 实际完成值=_where([(state == STATE_OK, _pct(v))], state),
        完成率=np.where(state == STATE_OK, v, np.nan), 分值=rule.points, 得分=score, 扣分说明=reason,
        状态=state, 计算方法=rule.calc, 评分方法=rule.method, _rule=rule.code,
        _value=f["分子"].to_numpy(dtype=float) if rule.method == "结余控制" else value,
        _target=f["参照"].fillna(0).to_numpy(dtype=float) if rule.method == "结余控制" else np.nan)
    return part, _indicator_issues(rule, f, state, note)


def _apply_states(rule: _Rule, state, note, score, reason):
    """不适用 → points per the `不适用` param (with a note either way); 无法计算 → 0 points."""
    na_full = rule.params.get("不适用", "满分") == "满分"
    na_points = rule.points if na_full else 0.0
    na_text = "按规则得满分" if na_full else "按规则不得分"
    score = np.select([state == STATE_NA, state == STATE_FAIL], [na_points, 0.0], score)
    reason = _where([(state == STATE_NA, _texts("不适用：{}，" + na_text, note)),
                     (state == STATE_FAIL, _texts("无法计算：{}，不得分", note))], reason)
    return score, reason


def _indicator_issues(rule: _Rule, f: pd.DataFrame, state, note) -> list[Issue]:
    bad = f[state == STATE_FAIL]
    return [_unit_issue(error, "indicator-not-computable",
                        f"{_quoted(rule.name)}无法计算：{n}。该项 {rule.points:g} 分不得分，请补充数据后重新运行。",
                        u, y, value=rule.calc)
            for u, y, n in zip(bad["单位编码"], bad["财年"], note[state == STATE_FAIL])]


def _standard_text(rule: _Rule) -> str:
    """The standard an indicator is held to, as shown in the 指标值 column."""
    p = rule.params
    if rule.method == "超出扣分":
        return f"≤{short_pct(p['阈值'])}"
    if rule.method == "低于扣分":
        return f"≥{short_pct(p['阈值'])}"
    if rule.method == "分档":
        return _tier_label(p["档"][0])
    if rule.method == "结余控制":
        return "无结转结余"
    return "100%"


def _tier_label(tier) -> str:
    op, bound, _ = tier
    return TIER_OTHER if op == TIER_OTHER else f"{op}{short_pct(bound)}"


def _over_under(rule: _Rule, v: np.ndarray, f: pd.DataFrame):
    """超出扣分 / 低于扣分: each percentage point beyond 阈值 costs 每点扣, floor 0."""
    t, k = rule.params["阈值"], rule.params["每点扣"]
    beyond = (v - t) if rule.method == "超出扣分" else (t - v)
    points_beyond = excel_round(np.maximum(beyond, 0) * 100, 2)  # percentage points as printed
    score = np.maximum(rule.points - points_beyond * k, 0)
    word = "超出" if rule.method == "超出扣分" else "低于"
    floor = np.where(points_beyond * k >= rule.points, "（扣完为止）", "")
    reason = _texts("{} {}，" + word + " {} {:.2f} 个百分点，每点扣 {:g} 分，扣 {} 分{}", rule.name, _pct(v),
                    short_pct(t), points_beyond, k, rule.num(rule.points - rule.round(score)), floor)
    return score, reason


def _tiers(rule: _Rule, v: np.ndarray, f: pd.DataFrame):
    """分档: the first tier whose condition holds gives its points; none → 0."""
    tiers = rule.params["档"]
    tests = {"≥": np.greater_equal, "＞": np.greater, "≤": np.less_equal, "＜": np.less,
             "＝": lambda a, b: np.isclose(a, b, rtol=0, atol=1e-9)}
    conds = [np.full(len(v), True) if op == TIER_OTHER else tests[op](v, bound) for op, bound, _ in tiers]
    score = np.select(conds, [pts for _, _, pts in tiers], default=0.0)
    labels = np.select(conds, [_tier_label(t) for t in tiers], default="")
    reason = np.where(labels == "", _texts("{} {}，未达到任何档位，不得分", rule.name, _pct(v)),
                      _texts("{} {}，按“{}”档得 {} 分", rule.name, _pct(v), labels, rule.num(score)))
    return score, reason


def _proportional(rule: _Rule, v: np.ndarray, f: pd.DataFrame):
    """比例: 分值 × min(value, 100%), never below 0."""
    score = rule.points * np.clip(v, 0, 1)
    return score, _texts("{} {}，按比例得 {} 分", rule.name, _pct(v), rule.num(score))


def _surplus(rule: _Rule, v: np.ndarray, f: pd.DataFrame):
    """结余控制: no 结转结余 → full; 结余 ≤ 上年结转 (参照) → 次档; else 0. Amounts compared at 2 decimals."""
    surplus = excel_round(f["分子"].to_numpy(dtype=float), 2)
    carried = excel_round(f["参照"].fillna(0).to_numpy(dtype=float), 2)
    none_left = np.where(np.isnan(surplus), v <= 0, surplus <= 0)
    within = ~np.isnan(surplus) & (surplus <= carried)
    second = rule.params.get("次档", 0.0)
    score = np.select([none_left, within], [rule.points, second], default=0.0)
    reason = _where([
        (within, _texts("结转结余 {} 万元，不超过上年结转 {} 万元，得 {} 分", _fmt_amount(surplus),
                        _fmt_amount(carried), rule.num(second))),
        (np.isnan(surplus), _texts("{} {}，缺少结转结余数，无法与上年结转比较，不得分", rule.name, _pct(v)))],
        _texts("结转结余 {} 万元，超过上年结转 {} 万元，不得分", _fmt_amount(surplus), _fmt_amount(carried)))
    return score, reason


_INDICATOR_RULES = {"超出扣分": _over_under, "低于扣分": _over_under, "分档": _tiers, "比例": _proportional,
                    "结余控制": _surplus}


# ---------------------------------------------------------------------------------------------------------------
# 管理情况 (定性 items).

def _score_management(rule: _Rule, units: pd.DataFrame, management: pd.DataFrame):
    """One 管理情况 item over all units: explicit 得分比例 inside the conclusion's band, else the default ratio."""
    item = rule.params["项目"]
    m = management[management["评价内容"] == item].drop_duplicates(UNIT_KEY)
    f = units.merge(m[UNIT_KEY + list(MANAGEMENT_COLUMNS)], on=UNIT_KEY, how="left")
    concl = f["自评结论"].where(f["自评结论"].isin(spec.CONCLUSIONS)).to_numpy(dtype=object)
    ratio, default, explicit, in_band, lo, hi = _qualitative_ratio(rule, concl, f["得分比例"].to_numpy(dtype=float))
    valid = ~pd.isna(concl)
    score = np.asarray(rule.round(rule.points * ratio), dtype=float)
    out_of_band = valid & explicit & ~in_band
    reason = _where([
        (~valid, "未填写自评结论，不得分"),
        (out_of_band, _texts("自评结论“{}”，填写的得分比例 {} 不在该结论区间 {}–{} 内，按默认比例 {} 得 {} 分", concl,
                             _pct(f["得分比例"]), _pct(lo), _pct(hi), _pct(default), rule.num(score)))],
        _texts("自评结论“{}”，按 {} 得 {} 分", concl, _pct(ratio), rule.num(score)))
    part = f[UNIT_KEY].assign(
        指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name, 指标值="达成",
        实际完成值=np.where(valid, concl, "未填写"), 完成率=np.where(valid, excel_round(ratio, RATE_DIGITS), np.nan),
        分值=rule.points, 得分=score, 扣分说明=np.where(score < rule.points, reason, ""),
        状态=np.where(valid, STATE_OK, STATE_MISSING), 计算方法=rule.calc, 评分方法=rule.method, _rule=rule.code,
        _value=np.where(valid, ratio, np.nan))
    return part, _management_issues(rule, f, valid, out_of_band, lo, hi, default)


def _qualitative_ratio(rule: _Rule, concl: np.ndarray, given: np.ndarray):
    """Per row: (ratio used, default ratio, explicit?, explicit within band?, band low, band high); ratio 0 where
    the conclusion is missing."""
    bands, ratios = rule.glob["定性区间"], rule.glob["定性比例"]
    lo = np.array([bands.get(c, (np.nan, np.nan))[0] for c in concl], dtype=float)
    hi = np.array([bands.get(c, (np.nan, np.nan))[1] for c in concl], dtype=float)
    default = np.array([ratios.get(c, 0.0) for c in concl], dtype=float)
    explicit = ~np.isnan(given)
    with np.errstate(invalid="ignore"):
        in_band = explicit & (given >= lo - 1e-9) & (given <= hi + 1e-9)
    ratio = np.where(in_band, given, default)
    return np.where(pd.isna(concl), 0.0, ratio), default, explicit, in_band, lo, hi


def _split_cell(ref) -> tuple[str, str]:
    """`管理情况!C5` → (`管理情况`, `C5`)."""
    if not isinstance(ref, str) or not ref:
        return "管理情况", ""
    sheet, bang, cell = ref.rpartition("!")
    return (sheet, cell) if bang else ("管理情况", ref)


def _management_issues(rule: _Rule, f: pd.DataFrame, valid, out_of_band, lo, hi, default) -> list[Issue]:
    issues = []
    for i in np.flatnonzero(~valid | out_of_band):
        r = f.iloc[i]
        sheet, cell = _split_cell(r["单元格"])
        where = dict(file="" if pd.isna(r["_file"]) else str(r["_file"]), sheet=sheet, cell=cell)
        if not valid[i]:
            issues.append(_unit_issue(error, "management-conclusion-missing",
                                      f"管理情况“{rule.params['项目']}”未填写自评结论（达成/部分达成/未达成），"
                                      f"该项 {rule.points:g} 分不得分。请在管理情况表中填写。", *r[UNIT_KEY], **where))
        else:
            issues.append(_unit_issue(warning, "management-ratio-out-of-band",
                                      f"管理情况“{rule.params['项目']}”：得分比例 {short_pct(r['得分比例'])} 不在"
                                      f"“{r['自评结论']}”对应区间 {short_pct(lo[i])}–{short_pct(hi[i])}，"
                                      f"已按默认比例 {short_pct(default[i])} 计分。", *r[UNIT_KEY],
                                      value=short_pct(r["得分比例"]), **where))
    return issues


# ---------------------------------------------------------------------------------------------------------------
# 绩效目标 groups.

_POSITIVE, _REVERSE, _EQUAL, _QUALITATIVE = ("≥", "＞"), ("≤", "＜"), ("＝",), ("定性",)


def _score_targets(rule: _Rule, units: pd.DataFrame, targets: pd.DataFrame):
    """A framework group over all units' targets of the named 一级指标: one row per unit × target, plus one row per
    unit that has no target in the group."""
    t = targets[targets["一级指标"].isin(rule.params["一级指标"])]
    t = units.merge(t, on=UNIT_KEY, how="inner").reset_index(drop=True)
    rate, dev, ratio, missing = _target_rates(t, rule.glob["定性比例"])
    share = _allocate(t, rule)
    cut = _deviation_cut(t["比较符"].to_numpy(dtype=object), dev, rule.glob)
    score = np.asarray(rule.round(np.where(missing == "", share * (ratio - cut), 0.0)), dtype=float)
    part = t[UNIT_KEY].assign(
        指标编码=_target_codes(t, rule.code), 一级指标=rule.level1, 二级指标=t["二级指标"], 三级指标=t["三级指标"],
        指标值=_target_text(t), 实际完成值=_actual_text(t), 完成率=np.where(missing == "", rate, np.nan),
        分值=share, 得分=score, 扣分说明=_target_reasons(rule, t, rate, dev, ratio, cut, share, score, missing),
        状态=np.where(missing == "", STATE_OK, STATE_MISSING), 计算方法=rule.calc, 评分方法=rule.method,
        _sub=np.arange(1, len(t) + 1), _file=t["_file"], _row=t["_row"], _rule=rule.code,
        _value=np.where(t["比较符"] == "定性", _qualitative_values(t, rule.glob["定性比例"]),
                        t["实际完成值"].to_numpy(dtype=float)),
        _target=t["指标值"].to_numpy(dtype=float), _op=t["比较符"], _deviation=dev, _cut=cut)
    empty, empty_issues = _empty_groups(rule, units, t)
    return pd.concat([part, empty], ignore_index=True), _target_issues(rule, t, dev, cut, missing) + empty_issues


def _target_rates(t: pd.DataFrame, ratios: dict):
    """Per target: (完成率 rounded to 4 decimals, 偏离度 rounded or NaN, ratio scored = min(完成率, 1), reason the
    target cannot be scored or "")."""
    op = t["比较符"].to_numpy(dtype=object)
    a, tv = t["实际完成值"].to_numpy(dtype=float), t["指标值"].to_numpy(dtype=float)
    concl = t["结论"].where(t["结论"].isin(spec.CONCLUSIONS)).to_numpy(dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        met = _met(op, a, tv)
        pos = np.where(tv > 0, a / tv, met)
        rev = np.where((a > 0) & (tv > 0), tv / a, met)
        eq = np.where(a == tv, 1.0, np.where((a > 0) & (tv > 0), np.minimum(a / tv, tv / a), 0.0))
        dev = np.where(np.isin(op, _POSITIVE) & (tv > 0), (a - tv) / tv, np.nan)
    qual = np.array([ratios.get(c, np.nan) for c in concl], dtype=float)
    rate = np.select([np.isin(op, _POSITIVE), np.isin(op, _REVERSE), np.isin(op, _EQUAL), np.isin(op, _QUALITATIVE)],
                     [pos, rev, eq, qual], default=np.nan)
    rate = excel_round(np.clip(rate, 0, None), RATE_DIGITS)
    missing = _missing_reason(op, a, tv, concl)
    rate = np.where(missing == "", rate, np.nan)
    return rate, excel_round(dev, RATE_DIGITS), np.where(missing == "", np.minimum(rate, 1.0), 0.0), missing


def _qualitative_values(t: pd.DataFrame, ratios: dict) -> np.ndarray:
    """The ratio a 定性 target's conclusion gives (NaN without a conclusion)."""
    concl = t["结论"].where(t["结论"].isin(spec.CONCLUSIONS)).to_numpy(dtype=object)
    return np.array([ratios.get(c, np.nan) for c in concl], dtype=float)


def _met(op, a, tv) -> np.ndarray:
    """1.0 where the actual value satisfies the comparator (used where a ratio is meaningless: 指标值 ≤ 0)."""
    conds = [op == "≥", op == "＞", op == "≤", op == "＜", op == "＝"]
    return np.select(conds, [a >= tv, a > tv, a <= tv, a < tv, a == tv], default=False).astype(float)


def _missing_reason(op, a, tv, concl) -> np.ndarray:
    known = np.isin(op, _POSITIVE + _REVERSE + _EQUAL + _QUALITATIVE)
    qual = np.isin(op, _QUALITATIVE)
    return _where([(~known, "比较符缺失或无法识别"),
                   (qual & pd.isna(concl), "未填写实际完成情况（达成/部分达成/未达成）"),
                   (~qual & np.isnan(tv), "指标值不是数字"),
                   (~qual & np.isnan(a), "未填写实际完成值")], "")


def _deviation_cut(op, dev, glob: dict) -> np.ndarray:
    """Share of the item's points deducted for 偏离度 (0 when switched off or not a ≥/＞ target)."""
    cut = np.zeros(len(op))
    if not glob.get("偏离度扣分", True):
        return cut
    for bound, pct in sorted(glob.get("偏离度档", [])):
        with np.errstate(invalid="ignore"):
            cut = np.where(dev >= bound - 1e-9, pct, cut)
    return cut


def _allocate(t: pd.DataFrame, rule: _Rule) -> np.ndarray:
    """Spread the group's points over each unit's targets by 分值 (blank → mean of the given ones, all blank or all
    0 → equal), rounded to 小数位数 by largest remainder so that the shares sum to the group's points exactly."""
    if t.empty:
        return np.zeros(0)
    g = t.groupby(UNIT_KEY, sort=False)
    w = t["分值"].astype(float).where(t["分值"].astype(float) >= 0)
    w = w.fillna(w.groupby([t["单位编码"], t["财年"]]).transform("mean")).fillna(1.0)
    w = w.where(w.groupby([t["单位编码"], t["财年"]]).transform("sum") > 0, 1.0)
    scale = 10 ** rule.digits
    raw = rule.points * scale * w / w.groupby([t["单位编码"], t["财年"]]).transform("sum")
    base = np.floor(raw + 1e-9)
    deficit = round(rule.points * scale) - base.groupby([t["单位编码"], t["财年"]]).transform("sum")
    order = (raw - base).to_frame("rem").assign(k=g.ngroup(), i=np.arange(len(t))) \
        .sort_values(["k", "rem", "i"], ascending=[True, False, True])
    rank = order.groupby("k").cumcount().reindex(t.index)
    return ((base + (rank < deficit)) / scale).to_numpy(dtype=float)


def _target_codes(t: pd.DataFrame, code: str) -> np.ndarray:
    """`A19-3` from 序号; a blank 序号 takes the target's position among the unit's targets of the group."""
    pos = t.groupby(UNIT_KEY, sort=False).cumcount() + 1
    seq = pd.to_numeric(t["序号"], errors="coerce")
    label = [f"{int(s)}" if not np.isnan(s) and float(s).is_integer() else (f"{s:g}" if not np.isnan(s) else f"{p}")
             for s, p in zip(seq.to_numpy(dtype=float), pos)]
    return np.array([f"{code}-{x}" for x in label], dtype=object)


def _with_unit(text: str, unit) -> str:
    unit = "" if pd.isna(unit) else str(unit)
    return text if not unit or text.endswith(unit) else text + unit


def _number_texts(x) -> list[str]:
    """Numbers as typed by users: 18.65 → `18.65`, 80.0 → `80`; NaN → ``."""
    return ["" if np.isnan(v) else f"{v:g}" for v in excel_round(np.asarray(x, dtype=float), 4)]


def _target_text(t: pd.DataFrame, with_op: bool = True) -> np.ndarray:
    """The target as users read it: `≥3%`, `≤5天`, or the 定性 text; `with_op=False` gives `3%` for sentences."""
    out = []
    for op, text, num, unit in zip(t["比较符"], t["指标值文本"], _number_texts(t["指标值"]), t["计量单位"]):
        shown = str(text).strip() if not pd.isna(text) and str(text).strip() else num
        if op == "定性" or shown[:1] in "≥＞＝≤＜><=":
            out.append(shown if with_op or op == "定性" else shown[1:].lstrip("="))
        else:
            out.append(("" if pd.isna(op) or not with_op else str(op)) + _with_unit(shown, unit))
    return np.array(out, dtype=object)


def _actual_text(t: pd.DataFrame) -> np.ndarray:
    out = []
    for op, text, num, concl, unit in zip(t["比较符"], t["实际完成值文本"], _number_texts(t["实际完成值"]),
                                          t["结论"], t["计量单位"]):
        if op == "定性":
            out.append("未填写" if pd.isna(concl) else str(concl))
        elif not pd.isna(text) and str(text).strip():
            out.append(_with_unit(str(text).strip(), unit))
        else:
            out.append("未填写" if not num else _with_unit(num, unit))
    return np.array(out, dtype=object)


def _target_reasons(rule: _Rule, t, rate, dev, ratio, cut, share, score, missing) -> np.ndarray:
    """扣分说明 of each target: why it scored less than its share (empty when it got the share)."""
    op = t["比较符"].to_numpy(dtype=object)
    target, plain, actual = _target_text(t), _target_text(t, with_op=False), _actual_text(t)
    word = _where([(np.isin(op, _REVERSE), "高于"), (np.isin(op, _EQUAL), "不等于")], "低于")
    lost = rule.num(share - score)
    reason = _where([
        (missing != "", _texts("{}，该项 {} 分不得分", missing, rule.num(share))),
        (np.isin(op, _QUALITATIVE), _texts("实际完成“{}”，按 {} 得 {} 分", actual, _pct(ratio), rule.num(score))),
        (cut > 0, _texts("实际 {}，指标值 {}，完成率 {}，偏离度 {} 达到 {} 档，指标值可能设置过低，扣减该项分值的 {}"
                         "（{} 分），得 {} 分", actual, target, _pct(rate), _pct(dev),
                         [short_pct(_tier_bound(c, rule.glob)) for c in cut], [short_pct(c) for c in cut],
                         lost, rule.num(score)))],
        _texts("实际 {}，{}指标值 {}，完成率 {}，按比例得 {} 分", actual, word, plain, _pct(rate), rule.num(score)))
    return np.where(score < share, reason, "")


def _tier_bound(cut: float, glob: dict) -> float:
    """The 偏离度 threshold whose deduction is `cut` (for the text only)."""
    return next((b for b, p in sorted(glob.get("偏离度档", []), reverse=True) if p == cut), 0.0)


def _empty_groups(rule: _Rule, units: pd.DataFrame, t: pd.DataFrame):
    """One row per unit without any target of the group: 0 points and an 错误, or full points with `不适用=满分`."""
    have = t[UNIT_KEY].drop_duplicates().assign(_has=True)
    lacking = units.merge(have, on=UNIT_KEY, how="left")
    lacking = lacking[lacking["_has"].isna()][UNIT_KEY].reset_index(drop=True)
    levels = "、".join(rule.params["一级指标"])
    full = rule.params.get("不适用") == "满分"
    part = lacking.assign(
        指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name, 指标值="", 实际完成值="未填写",
        完成率=np.nan, 分值=rule.points, 得分=rule.points if full else 0.0,
        扣分说明=f"不适用：未填写{levels}，按规则得满分" if full else f"未填写{levels}，该项 {rule.points:g} 分不得分",
        状态=STATE_NA if full else STATE_MISSING, 计算方法=rule.calc, 评分方法=rule.method, _sub=0, _rule=rule.code)
    make, text = (info, "按规则得满分") if full else (error, "不得分。请在绩效目标表中填写")
    issues = [_unit_issue(make, "targets-group-missing", f"未填写{levels}，{_quoted(rule.name)}{rule.points:g} 分{text}。",
                          u, y, sheet="绩效目标") for u, y in zip(lacking["单位编码"], lacking["财年"])]
    return part, issues


def _target_issues(rule: _Rule, t: pd.DataFrame, dev, cut, missing) -> list[Issue]:
    """错误 for targets that cannot be scored; 提示 for 偏离度 deductions (the target was probably set too low)."""
    issues = []
    for i in np.flatnonzero((missing != "") | (cut > 0)):
        r = t.iloc[i]
        where = dict(file="" if pd.isna(r["_file"]) else str(r["_file"]),
                     sheet="绩效目标" if pd.isna(r["_sheet"]) else str(r["_sheet"]),
                     cell="" if pd.isna(r["单元格"]) else str(r["单元格"]))
        row = "" if pd.isna(r["_row"]) else f"第 {int(r['_row'])} 行"
        if missing[i]:
            issues.append(_unit_issue(error, "target-not-scorable", f"绩效目标{row}“{r['三级指标']}”{missing[i]}，"
                                      "该项不得分。请补填后重新运行。", *r[UNIT_KEY], **where))
        else:
            issues.append(_unit_issue(info, "target-deviation", f"绩效目标{row}“{r['三级指标']}”偏离度 "
                                      f"{_pct([dev[i]])[0]}，指标值可能设置过低，已扣减该项分值的 {short_pct(cut[i])}。",
                                      *r[UNIT_KEY], value=_pct([dev[i]])[0], **where))
    return issues


# ---------------------------------------------------------------------------------------------------------------
# Totals.

def _totals(details: pd.DataFrame, units: pd.DataFrame, framework: Framework) -> pd.DataFrame:
    """One row per unit: 总分 (sum of the rounded item scores), 等级, and the score of each 一级指标."""
    by_level = details.pivot_table(index=UNIT_KEY, columns="一级指标", values="得分", aggfunc="sum", observed=True)
    by_level = by_level.reindex(columns=framework.level1_order, fill_value=0.0).fillna(0.0)
    totals = units.merge(by_level.reset_index(), on=UNIT_KEY, how="left")
    total = excel_round(details.groupby(UNIT_KEY)["得分"].sum().reindex(
        pd.MultiIndex.from_frame(units)).fillna(0.0).to_numpy(dtype=float), framework.digits)
    lows = [low for _, low in framework.grades]
    grade = np.select([total >= low for low in lows], [g for g, _ in framework.grades], default="") \
        if lows else np.full(len(total), "")
    levels = {c: excel_round(totals[c].to_numpy(dtype=float), framework.digits) for c in framework.level1_order}
    return totals[UNIT_KEY].assign(总分=total, 等级=grade.astype(object), **levels)
