"""Excel formulas of the evaluation workbook: one builder per 评分方法, pure (cell references and parameters in,
formula text out, always with the leading `=`).

Every formula mirrors its Python scorer in scoring.py step by step, so that Excel (or LibreOffice) recalculating
the workbook gets exactly the cached value the pipeline wrote, and a user who corrects a visible input cell sees
the score move as the rules say:

- rates are rounded to 4 decimals before any rule is applied (`ROUND(x,4)`, the 完成率 cell);
- 超出/低于扣分 round the percentage points beyond the threshold to 2 decimals before multiplying by 每点扣;
- 分档 tests the tiers in the order written, `＝` within 1e-9, `其他` always holds;
- 结余控制 compares amounts rounded to 2 decimals;
- a 绩效目标's 完成率 follows its 比较符 (a ratio is only taken when both figures are positive, otherwise 100%
  when the comparator holds and 0 when it does not), floored at 0; its score is 分值 × (min(完成率, 1) − 偏离度扣减);
- each score is rounded to the framework's 小数位数.

Numbers are written in plain decimal notation (`0.000000001`, never `1e-09`) so that every spreadsheet parses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

TIER_OTHER = "其他"
EQUAL_TOLERANCE = 1e-9          # 分档 `＝`, as np.isclose(atol=1e-9) in scoring
DEVIATION_TOLERANCE = 1e-9      # 偏离度档 bounds, as `dev >= bound - 1e-9` in scoring
RATE_DIGITS = 4


@dataclass(frozen=True)
class RowRefs:
    """Cell references (A1 style, same row) of one 评分明细 row."""

    points: str       # 分值
    rate: str         # 完成率
    value: str        # 计算值: the figure the rule reads
    target: str       # 目标值: 阈值 / 上年结转数 / a target's 指标值
    per_point: str    # 每点扣
    deviation: str    # 偏离度 (targets)
    cut: str          # 偏离度扣减 (targets)


def num(x: float) -> str:
    """A number as a formula literal: 0.9 → `0.9`, 5.0 → `5`, 1e-09 → `0.000000001`."""
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = format(Decimal(repr(x)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def text(s: str) -> str:
    """A string literal: `优` → `"优"` (quotes doubled)."""
    return '"' + str(s).replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------------------------------
# 完成率 (the rate the rules read).

def rate_of_value(r: RowRefs) -> str:
    """An indicator or a 定性 item: the 计算值 as displayed (4 decimals)."""
    return f"=ROUND({r.value},{RATE_DIGITS})"


_RATIO = {
    "≥": "IF({t}>0,{a}/{t},IF({a}>={t},1,0))",
    "＞": "IF({t}>0,{a}/{t},IF({a}>{t},1,0))",
    "≤": "IF(AND({a}>0,{t}>0),{t}/{a},IF({a}<={t},1,0))",
    "＜": "IF(AND({a}>0,{t}>0),{t}/{a},IF({a}<{t},1,0))",
    "＝": "IF({a}={t},1,IF(AND({a}>0,{t}>0),MIN({a}/{t},{t}/{a}),0))",
    "定性": "{a}",
}


def target_rate(r: RowRefs, op: str) -> str:
    """A 绩效目标's 完成率 from 实际 (计算值) and 指标值 (目标值) by its 比较符; 定性: the conclusion's ratio."""
    return f"=ROUND(MAX({_RATIO[op].format(a=r.value, t=r.target)},0),{RATE_DIGITS})"


def has_target_rate(op) -> bool:
    return op in _RATIO


# ---------------------------------------------------------------------------------------------------------------
# Scores, one builder per 评分方法. Signature: (refs, rule params, digits, **row extras) → formula.

def score_proportional(r: RowRefs, params: dict, digits: int, **_) -> str:
    """比例: 分值 × min(完成率, 100%), never below 0."""
    return f"=ROUND({r.points}*MAX(MIN({r.rate},1),0),{digits})"


def score_over(r: RowRefs, params: dict, digits: int, **_) -> str:
    """超出扣分: each percentage point (2 decimals) above 阈值 costs 每点扣, floor 0."""
    return f"=ROUND(MAX({r.points}-ROUND(MAX({r.rate}-{r.target},0)*100,2)*{r.per_point},0),{digits})"


def score_under(r: RowRefs, params: dict, digits: int, **_) -> str:
    """低于扣分: each percentage point (2 decimals) below 阈值 costs 每点扣, floor 0."""
    return f"=ROUND(MAX({r.points}-ROUND(MAX({r.target}-{r.rate},0)*100,2)*{r.per_point},0),{digits})"


_TIER_TESTS = {"≥": "{v}>={b}", "＞": "{v}>{b}", "≤": "{v}<={b}", "＜": "{v}<{b}",
               "＝": "ABS({v}-{b})<=" + num(EQUAL_TOLERANCE)}


def score_tiers(r: RowRefs, params: dict, digits: int, **_) -> str:
    """分档: the first tier whose condition holds gives its points; none → 0."""
    out = "0"
    for op, bound, points in reversed(params["档"]):
        if op == TIER_OTHER:
            out = num(points)
        else:
            out = f"IF({_TIER_TESTS[op].format(v=r.rate, b=num(bound))},{num(points)},{out})"
    return f"=ROUND({out},{digits})"


def score_surplus(r: RowRefs, params: dict, digits: int, **_) -> str:
    """结余控制: 结转结余 (计算值) ≤ 0 → 分值; ≤ 上年结转 (目标值) → 次档; else 0; amounts at 2 decimals."""
    second = num(params.get("次档", 0.0))
    left = f"ROUND({r.value},2)"
    return f"=ROUND(IF({left}<=0,{r.points},IF({left}<=ROUND({r.target},2),{second},0)),{digits})"


def score_qualitative(r: RowRefs, params: dict, digits: int, **_) -> str:
    """定性 (管理情况): 分值 × the ratio (计算值)."""
    return f"=ROUND({r.points}*{r.value},{digits})"


def score_target(r: RowRefs, params: dict, digits: int, deviation: bool = False, **_) -> str:
    """绩效目标: 分值 × (min(完成率, 1) − 偏离度扣减); without a 偏离度 cell the deduction is 0."""
    ratio = f"MIN({r.rate},1)"
    return f"=ROUND({r.points}*({ratio}-{r.cut}),{digits})" if deviation else f"=ROUND({r.points}*{ratio},{digits})"


SCORE_BUILDERS = {
    "比例": score_proportional,
    "超出扣分": score_over,
    "低于扣分": score_under,
    "分档": score_tiers,
    "结余控制": score_surplus,
    "定性": score_qualitative,
    "绩效目标": score_target,
}


def score_formula(method: str, refs: RowRefs, params: dict, digits: int, **extra) -> str:
    return SCORE_BUILDERS[method](refs, params, digits, **extra)


# ---------------------------------------------------------------------------------------------------------------
# 偏离度 of a ≥/＞ target and the deduction it triggers.

def deviation(r: RowRefs) -> str:
    """(实际 − 指标值) ÷ 指标值 at 4 decimals; empty text when 指标值 ≤ 0 (no ratio, no deduction)."""
    return f'=IF({r.target}>0,ROUND(({r.value}-{r.target})/{r.target},{RATE_DIGITS}),"")'


def deviation_cut(r: RowRefs, tiers) -> str:
    """The share of the points deducted: the highest 偏离度档 reached ((bound, share) pairs), 0 below all."""
    out = "0"
    for bound, share in sorted(tiers):
        out = f"IF({r.deviation}>={num(bound - DEVIATION_TOLERANCE)},{num(share)},{out})"
    return f"=IF(ISNUMBER({r.deviation}),{out},0)"


# ---------------------------------------------------------------------------------------------------------------
# Totals and grade.

def sum_range(rng: str, digits: int) -> str:
    return f"=ROUND(SUM({rng}),{digits})"


def sum_if(criteria_rng: str, criterion: str, sum_rng: str, digits: int) -> str:
    return f"=ROUND(SUMIF({criteria_rng},{criterion},{sum_rng}),{digits})"


def difference(a: str, b: str, digits: int) -> str:
    return f"=ROUND({a}-{b},{digits})"


def share(part: str, whole: str) -> str:
    return f'=IF({whole}=0,"",ROUND({part}/{whole},{RATE_DIGITS}))'


def grade(total: str, grades, none: str = "无法评级") -> str:
    """The first grade (in the framework's order, 最低分 descending) whose 最低分 the total reaches."""
    out = text(none)
    for name, low in reversed(list(grades)):
        out = f"IF({total}>={num(low)},{text(name)},{out})"
    return "=" + out
