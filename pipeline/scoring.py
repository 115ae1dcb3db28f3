"""Scoring: apply a framework's rules to every unit at once.

Inputs (see docs/ARCHITECTURE.md): `indicators` (one row per unit × 计算方法), `management` (one row per unit ×
评价内容) and `targets` (one row per unit × target). Output `Scores`: `details` (one row per unit × scored item),
`totals` (one row per unit) and the issues found while scoring.

Each framework row is applied to all units in one go with numpy (the loop is over the ~20 framework rows, never
over units). Rules work on rates as displayed (fractions rounded to 4 decimals = percent to 2 decimals) so that a
reader can redo the arithmetic of every 扣分说明 from the printed figures.

The run scores units in batches, so the fixed cost of a call matters as much as the cost per unit: the three
input tables become column arrays once, every unit's row of an indicator or 管理情况 item is found by position
(no merge per rule), the per-target texts and rates are worked out once for all 绩效目标 rules, each rule
contributes column arrays, and `details` is built as one DataFrame at the end. 扣分说明 texts are formatted only
for the rows that show one. Group sums use numbers.group_sum, i.e. pandas' own arithmetic.

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
from .numbers import TEXT_DTYPE, excel_round, group_ids, group_mean, group_sum, records

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

_NUMBER_COLUMNS = frozenset({"完成率", "分值", "得分", "_value", "_target", "_deviation", "_cut"})  # always float


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
    tables = _Tables(_Table(indicators, INDICATOR_COLUMNS + ("计算方法",)), _Table(management, MANAGEMENT_COLUMNS),
                     _Table(targets, TARGET_COLUMNS))
    details, issues = _Details(tables), []
    for order, row in enumerate(records(framework.rows)):
        rule = _Rule(row["指标编码"], row["一级指标"], row["二级指标"], row["三级指标"], float(row["分值"]),
                     row["计算方法"], row["评分方法"], row["_params"], framework.digits, framework.params)
        for part in _score_rule(rule, tables, issues):
            details.add(order, part)
    frame = details.frame()
    return Scores(frame, _totals(frame, details, framework), issues)


def _score_rule(rule: _Rule, tables: _Tables, issues: list[Issue]) -> list[dict]:
    if rule.method == "定性":
        return [_score_management(rule, tables, issues)]
    if rule.method == "绩效目标":
        return _score_targets(rule, tables, issues)
    return [_score_indicator(rule, tables, issues)]


# ---------------------------------------------------------------------------------------------------------------
# Inputs as column arrays.

class _Table:
    """An input table as numpy columns: every expected column present (NaN where absent), rows without a unit key
    left out (checks upstream report them), the key in one dtype (str code, int year). `unit` is each row's
    position in the sorted units (set by _Tables)."""

    def __init__(self, df: pd.DataFrame | None, columns: tuple[str, ...]):
        df = pd.DataFrame(columns=UNIT_KEY + list(columns)) if df is None else df
        keyed = all(c in df.columns for c in UNIT_KEY)
        keep = (df["单位编码"].notna() & df["财年"].notna()).to_numpy() if keyed else np.zeros(len(df), dtype=bool)
        self.frame = df if keep.all() else df[keep]
        self.n = len(self.frame)
        codes = self.frame["单位编码"].to_numpy(dtype=object) if keyed else np.zeros(0, dtype=object)
        if pd.api.types.infer_dtype(codes) not in ("string", "empty"):
            codes = pd.Series(codes, dtype=object).astype(str).to_numpy(dtype=object)
        self.codes = codes
        years = self.frame["财年"] if keyed else pd.Series([], dtype="int64")
        self.years = (years if years.dtype == np.int64 else pd.to_numeric(years).astype("int64")).to_numpy()
        self.unit = np.zeros(self.n, dtype=np.intp)
        self._cache: dict = {}

    def values(self, col: str) -> np.ndarray:
        """The column as an object array (NaN where missing)."""
        if ("o", col) not in self._cache:
            self._cache["o", col] = self.frame[col].to_numpy(dtype=object) if col in self.frame.columns \
                else np.full(self.n, np.nan, dtype=object)
        return self._cache["o", col]

    def dtype(self, col: str):
        """The column's dtype (float for a column the table lacks: it is NaN throughout)."""
        return self.frame[col].dtype if col in self.frame.columns else np.dtype(float)

    def numbers(self, col: str) -> np.ndarray:
        """The column as floats (NaN where missing)."""
        if ("f", col) not in self._cache:
            self._cache["f", col] = self.frame[col].to_numpy(dtype=float) if col in self.frame.columns \
                else np.full(self.n, np.nan)
        return self._cache["f", col]

    def first_rows(self, col: str, label, n_units: int) -> np.ndarray:
        """Per unit, the first row whose `col` equals `label` (-1 where none): `drop_duplicates(UNIT_KEY)` of the
        rows of one 计算方法 / 评价内容."""
        if ("codes", col) not in self._cache:
            codes, uniques = pd.factorize(self.values(col))
            self._cache["codes", col] = (codes, {v: i for i, v in enumerate(uniques)})
        codes, lookup = self._cache["codes", col]
        out = np.full(n_units, -1, dtype=np.intp)
        k = lookup.get(label)
        if k is not None:
            rows = np.flatnonzero(codes == k)
            units, first = np.unique(self.unit[rows], return_index=True)
            out[units] = rows[first]
        return out


class _Tables:
    """The three inputs and the units found in any of them, sorted by 单位编码 and 财年."""

    def __init__(self, indicators: _Table, management: _Table, targets: _Table):
        self.indicators, self.management, self.targets = indicators, management, targets
        parts = (indicators, management, targets)
        codes = np.concatenate([t.codes for t in parts])
        years = np.concatenate([t.years for t in parts])
        ids, self.n = group_ids([codes, years])
        first = np.unique(ids, return_index=True)[1]
        self.codes, self.years = codes[first], years[first]
        for t, unit in zip(parts, np.split(ids, np.cumsum([indicators.n, management.n]))):
            t.unit = unit
        self._targets: _TargetFacts | None = None

    def target_facts(self, glob: dict) -> _TargetFacts:
        """The per-target facts, worked out at the first 绩效目标 rule (`glob`: the framework's 参数)."""
        if self._targets is None:
            self._targets = _TargetFacts(self.targets, glob)
        return self._targets


def _take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows], NaN where rows is -1 (a unit without such a row, as after a left merge)."""
    return np.append(values, np.array([np.nan], dtype=values.dtype if values.dtype == object else float))[rows]


class _Details:
    """The parts of `details` as they are scored, stacked into one frame at the end; `pos` then holds the unit
    position of each row of the frame.

    A part is a dict: `pos` (unit position per row), `_sub` (order among a unit's rows of the part), the columns
    (arrays or scalars) and, for columns taken over from the targets table, their dtype under `dtypes`. A column's
    dtype in the frame is the one pandas gives when stacking the parts as frames (`pd.concat`): text where every
    part holds text; object where a part holds anything else, even when it has no rows (a batch without targets)."""

    def __init__(self, tables: _Tables):
        self.tables = tables
        self.parts: list[tuple[int, dict]] = []

    def add(self, order: int, part: dict) -> None:
        self.parts.append((order, part))

    def frame(self) -> pd.DataFrame:
        """Rows by unit, then framework order, then target order, with exactly DETAIL_COLUMNS."""
        sizes = [len(p["pos"]) for _, p in self.parts]
        ends = np.cumsum(sizes).tolist()
        spans = list(zip([0] + ends[:-1], ends))
        total = ends[-1] if ends else 0
        pos, order, sub = np.zeros(total, dtype=np.intp), np.zeros(total, dtype=np.intp), np.zeros(total)
        for (o, p), (a, b) in zip(self.parts, spans):
            pos[a:b], order[a:b], sub[a:b] = p["pos"], o, p.get("_sub", 0)
        self.rows = np.lexsort((sub, order, pos))
        self.pos = pos[self.rows]
        data = {"单位编码": pd.array(self.tables.codes[self.pos], dtype=TEXT_DTYPE),
                "财年": self.tables.years[self.pos]}
        for col in DETAIL_COLUMNS[2:]:
            number = col in _NUMBER_COLUMNS
            values = np.full(total, np.nan, dtype=float if number else object)
            dtypes = []
            for (_, p), (a, b) in zip(self.parts, spans):
                if col in p:
                    values[a:b] = p[col]
                    if not number:  # (a number column is float whatever its parts)
                        given = p.get("dtypes", {}).get(col)
                        dtypes.append(_dtype_of(p[col]) if given is None else given)
            values = values[self.rows]
            dtype = np.dtype(float) if number else _stacked_dtype(dtypes, len(dtypes) < len(self.parts))
            data[col] = pd.Series(values, dtype=dtype)  # a Series: an object column is not re-inferred as text
        return pd.DataFrame(data)


def _dtype_of(value) -> np.dtype | pd.api.extensions.ExtensionDtype:
    """The dtype of a column assigned `value` in a frame: text for a string or strings (blanks allowed), object for
    other objects and for an empty object array."""
    if not np.ndim(value):
        return TEXT_DTYPE if isinstance(value, str) else np.asarray(value).dtype
    if value.dtype.kind == "U" or (value.dtype == object and len(value)
                                   and pd.api.types.infer_dtype(value, skipna=True) == "string"):
        return TEXT_DTYPE
    return value.dtype


def _stacked_dtype(dtypes: list, some_lack: bool):
    """The dtype of a column after pd.concat of parts of these dtypes (`some_lack`: parts without the column, as
    NaN): one common dtype, integers widened to float where NaN comes in; a column no part has is float NaN."""
    if not dtypes:
        return np.dtype(float)
    if all(d == TEXT_DTYPE for d in dtypes):
        return TEXT_DTYPE
    if all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dtypes):
        common = np.result_type(*dtypes)
        return np.dtype(float) if some_lack or common.kind == "f" else common
    return np.dtype(object)


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


def _pick(rows: np.ndarray, cases: list[tuple[np.ndarray, object]], default) -> np.ndarray:
    """The texts of `rows` (indices into the masks): for each row the first case whose mask holds, else `default`.
    A text is a string or a function of the row indices it applies to, so that it is formatted only where shown."""
    out = np.empty(len(rows), dtype=object)
    left = np.ones(len(rows), dtype=bool)
    for mask, text in cases:
        at = left & np.asarray(mask, dtype=bool)[rows]
        if at.any():
            out[at] = text(rows[at]) if callable(text) else text
        left &= ~at
    if left.any():
        out[left] = default(rows[left]) if callable(default) else default
    return out


def _quoted(name: str) -> str:
    """`“预算执行率”`, but `“三公经费”控制率` stays as it is (it already carries quotes)."""
    return name if "“" in name else f"“{name}”"


def _unit_issue(make, code: str, message: str, unit, year, **where) -> Issue:
    return make(code, message, unit=str(unit), year=int(year), **where)


def _isin(values: np.ndarray, choices) -> np.ndarray:
    """values ∈ choices, element-wise (object arrays with NaN welcome)."""
    out = np.zeros(len(values), dtype=bool)
    for c in choices:
        out |= values == c
    return out


# ---------------------------------------------------------------------------------------------------------------
# Common indicators (超出扣分, 低于扣分, 分档, 比例, 结余控制).

def _score_indicator(rule: _Rule, tables: _Tables, issues: list[Issue]) -> dict:
    """One framework row over all units: grain of the result is one row per unit."""
    ind, n = tables.indicators, tables.n
    rows = ind.first_rows("计算方法", rule.calc, n)
    value = _take(ind.numbers("值"), rows)
    state = _take(ind.values("状态"), rows)
    state = np.where(_isin(state, (STATE_OK, STATE_NA, STATE_FAIL)), state, STATE_FAIL).astype(object)
    state = np.where((state == STATE_OK) & np.isnan(value), STATE_FAIL, state)
    notes = _take(ind.values("说明"), rows)
    v = excel_round(value, RATE_DIGITS)
    f = {"分子": _take(ind.numbers("分子"), rows), "参照": _take(ind.numbers("参照"), rows)}
    f["参照"] = np.where(np.isnan(f["参照"]), 0.0, f["参照"])
    with np.errstate(invalid="ignore"):
        score, reason_of = _INDICATOR_RULES[rule.method](rule, v, f)
        score = np.asarray(rule.round(score), dtype=float)
        lost = np.flatnonzero((score < rule.points) & (state == STATE_OK))
    reason = np.full(n, "", dtype=object)
    if len(lost):
        reason[lost] = reason_of(lost)
    score, reason = _apply_states(rule, state, notes, score, reason)
    ok = state == STATE_OK
    shown = state.copy()
    shown[ok] = _pct(v[ok])
    _indicator_issues(rule, tables, state, notes, issues)
    return dict(
        pos=np.arange(n), 指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name,
        指标值=_standard_text(rule), 实际完成值=shown, 完成率=np.where(ok, v, np.nan), 分值=rule.points, 得分=score,
        扣分说明=reason, 状态=state, 计算方法=rule.calc, 评分方法=rule.method, _rule=rule.code,
        _value=f["分子"] if rule.method == "结余控制" else value,
        _target=f["参照"] if rule.method == "结余控制" else np.nan)


def _note(notes: np.ndarray, rows: np.ndarray) -> list[str]:
    """The indicator's 说明 of these rows as text; a unit without the indicator: 缺少计算所需数据."""
    return [str(x) if not pd.isna(x) else "缺少计算所需数据" for x in notes[rows]]


def _apply_states(rule: _Rule, state, notes, score, reason):
    """不适用 → points per the `不适用` param (with a note either way); 无法计算 → 0 points."""
    na_full = rule.params.get("不适用", "满分") == "满分"
    na_points = rule.points if na_full else 0.0
    na_text = "按规则得满分" if na_full else "按规则不得分"
    score = np.select([state == STATE_NA, state == STATE_FAIL], [na_points, 0.0], score)
    for which, fmt in ((STATE_NA, "不适用：{}，" + na_text), (STATE_FAIL, "无法计算：{}，不得分")):
        rows = np.flatnonzero(state == which)
        if len(rows):
            reason[rows] = _texts(fmt, _note(notes, rows))
    return score, reason


def _indicator_issues(rule: _Rule, tables: _Tables, state, notes, issues: list[Issue]) -> None:
    bad = np.flatnonzero(state == STATE_FAIL)
    issues += [_unit_issue(error, "indicator-not-computable",
                           f"{_quoted(rule.name)}无法计算：{n}。该项 {rule.points:g} 分不得分，请补充数据后重新运行。",
                           u, y, value=rule.calc)
               for u, y, n in zip(tables.codes[bad], tables.years[bad].tolist(), _note(notes, bad))]


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


# Each indicator rule: (rule, displayed rate v, the unit's 分子 and 参照) → (score per unit, function giving the
# 扣分说明 of the given units).

def _over_under(rule: _Rule, v: np.ndarray, f: dict):
    """超出扣分 / 低于扣分: each percentage point beyond 阈值 costs 每点扣, floor 0."""
    t, k = rule.params["阈值"], rule.params["每点扣"]
    beyond = (v - t) if rule.method == "超出扣分" else (t - v)
    points_beyond = excel_round(np.maximum(beyond, 0) * 100, 2)  # percentage points as printed
    score = np.maximum(rule.points - points_beyond * k, 0)
    word = "超出" if rule.method == "超出扣分" else "低于"

    def reason(i):
        floor = np.where(points_beyond[i] * k >= rule.points, "（扣完为止）", "")
        return _texts("{} {}，" + word + " {} {:.2f} 个百分点，每点扣 {:g} 分，扣 {} 分{}", rule.name, _pct(v[i]),
                      short_pct(t), points_beyond[i], k, rule.num(rule.points - rule.round(score[i])), floor)
    return score, reason


def _tiers(rule: _Rule, v: np.ndarray, f: dict):
    """分档: the first tier whose condition holds gives its points; none → 0."""
    tiers = rule.params["档"]
    tests = {"≥": np.greater_equal, "＞": np.greater, "≤": np.less_equal, "＜": np.less,
             "＝": lambda a, b: np.isclose(a, b, rtol=0, atol=1e-9)}
    conds = [np.full(len(v), True) if op == TIER_OTHER else tests[op](v, bound) for op, bound, _ in tiers]
    score = np.select(conds, [pts for _, _, pts in tiers], default=0.0)
    labels = np.select(conds, [_tier_label(t) for t in tiers], default="")

    def reason(i):
        return _pick(i, [(labels == "", lambda j: _texts("{} {}，未达到任何档位，不得分", rule.name, _pct(v[j])))],
                     lambda j: _texts("{} {}，按“{}”档得 {} 分", rule.name, _pct(v[j]), labels[j], rule.num(score[j])))
    return score, reason


def _proportional(rule: _Rule, v: np.ndarray, f: dict):
    """比例: 分值 × min(value, 100%), never below 0."""
    score = rule.points * np.clip(v, 0, 1)
    return score, lambda i: _texts("{} {}，按比例得 {} 分", rule.name, _pct(v[i]), rule.num(score[i]))


def _surplus(rule: _Rule, v: np.ndarray, f: dict):
    """结余控制: no 结转结余 → full; 结余 ≤ 上年结转 (参照) → 次档; else 0. Amounts compared at 2 decimals."""
    surplus = excel_round(f["分子"], 2)
    carried = excel_round(f["参照"], 2)
    none_left = np.where(np.isnan(surplus), v <= 0, surplus <= 0)
    within = ~np.isnan(surplus) & (surplus <= carried)
    second = rule.params.get("次档", 0.0)
    score = np.select([none_left, within], [rule.points, second], default=0.0)

    def reason(i):
        return _pick(i, [
            (within, lambda j: _texts("结转结余 {} 万元，不超过上年结转 {} 万元，得 {} 分", _fmt_amount(surplus[j]),
                                      _fmt_amount(carried[j]), rule.num(second))),
            (np.isnan(surplus), lambda j: _texts("{} {}，缺少结转结余数，无法与上年结转比较，不得分", rule.name,
                                                 _pct(v[j])))],
            lambda j: _texts("结转结余 {} 万元，超过上年结转 {} 万元，不得分", _fmt_amount(surplus[j]),
                             _fmt_amount(carried[j])))
    return score, reason


_INDICATOR_RULES = {"超出扣分": _over_under, "低于扣分": _over_under, "分档": _tiers, "比例": _proportional,
                    "结余控制": _surplus}


# ---------------------------------------------------------------------------------------------------------------
# 管理情况 (定性 items).

def _score_management(rule: _Rule, tables: _Tables, issues: list[Issue]) -> dict:
    """One 管理情况 item over all units: explicit 得分比例 inside the conclusion's band, else the default ratio."""
    man, n = tables.management, tables.n
    rows = man.first_rows("评价内容", rule.params["项目"], n)
    concl = _take(man.values("自评结论"), rows)
    concl = np.where(_isin(concl, spec.CONCLUSIONS), concl, np.nan).astype(object)
    given = _take(man.numbers("得分比例"), rows)
    ratio, default, explicit, in_band, lo, hi = _qualitative_ratio(rule, concl, given)
    valid = ~pd.isna(concl)
    score = np.asarray(rule.round(rule.points * ratio), dtype=float)
    out_of_band = valid & explicit & ~in_band
    reason = np.full(n, "", dtype=object)
    lost = np.flatnonzero(score < rule.points)
    if len(lost):
        reason[lost] = _pick(lost, [
            (~valid, "未填写自评结论，不得分"),
            (out_of_band, lambda j: _texts(
                "自评结论“{}”，填写的得分比例 {} 不在该结论区间 {}–{} 内，按默认比例 {} 得 {} 分", concl[j],
                _pct(given[j]), _pct(lo[j]), _pct(hi[j]), _pct(default[j]), rule.num(score[j])))],
            lambda j: _texts("自评结论“{}”，按 {} 得 {} 分", concl[j], _pct(ratio[j]), rule.num(score[j])))
    _management_issues(rule, tables, rows, given, valid, out_of_band, lo, hi, default, issues)
    return dict(
        pos=np.arange(n), 指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name,
        指标值="达成", 实际完成值=np.where(valid, concl, "未填写"),
        完成率=np.where(valid, excel_round(ratio, RATE_DIGITS), np.nan), 分值=rule.points, 得分=score, 扣分说明=reason,
        状态=np.where(valid, STATE_OK, STATE_MISSING), 计算方法=rule.calc, 评分方法=rule.method, _rule=rule.code,
        _value=np.where(valid, ratio, np.nan))


def _qualitative_ratio(rule: _Rule, concl: np.ndarray, given: np.ndarray):
    """Per row: (ratio used, default ratio, explicit?, explicit within band?, band low, band high); ratio 0 where
    the conclusion is missing."""
    bands, ratios = rule.glob["定性区间"], rule.glob["定性比例"]
    lo, hi, default = np.full(len(concl), np.nan), np.full(len(concl), np.nan), np.zeros(len(concl))
    for c, (low, high) in bands.items():
        at = concl == c
        lo[at], hi[at] = low, high
    for c, r in ratios.items():
        default[concl == c] = r
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


def _management_issues(rule: _Rule, tables: _Tables, rows, given, valid, out_of_band, lo, hi, default,
                       issues: list[Issue]) -> None:
    man = tables.management
    for i in np.flatnonzero(~valid | out_of_band):
        r = rows[i]
        sheet, cell = _split_cell(man.values("单元格")[r] if r >= 0 else np.nan)
        file = man.values("_file")[r] if r >= 0 else np.nan
        where = dict(file="" if pd.isna(file) else str(file), sheet=sheet, cell=cell)
        unit, year = tables.codes[i], tables.years[i]
        if not valid[i]:
            issues.append(_unit_issue(error, "management-conclusion-missing",
                                      f"管理情况“{rule.params['项目']}”未填写自评结论（达成/部分达成/未达成），"
                                      f"该项 {rule.points:g} 分不得分。请在管理情况表中填写。", unit, year, **where))
        else:
            issues.append(_unit_issue(warning, "management-ratio-out-of-band",
                                      f"管理情况“{rule.params['项目']}”：得分比例 {short_pct(given[i])} 不在"
                                      f"“{man.values('自评结论')[r]}”对应区间 {short_pct(lo[i])}–{short_pct(hi[i])}，"
                                      f"已按默认比例 {short_pct(default[i])} 计分。", unit, year,
                                      value=short_pct(given[i]), **where))


# ---------------------------------------------------------------------------------------------------------------
# 绩效目标 groups.

_POSITIVE, _REVERSE, _EQUAL, _QUALITATIVE = ("≥", "＞"), ("≤", "＜"), ("＝",), ("定性",)


class _TargetFacts:
    """What does not depend on the framework row, worked out once for all targets: rates, 偏离度, the reason a
    target cannot be scored, the texts shown."""

    def __init__(self, t: _Table, glob: dict):
        self.table = t
        self.op = t.values("比较符")
        self.actual, self.target = t.numbers("实际完成值"), t.numbers("指标值")
        concl = t.values("结论")
        self.concl = np.where(_isin(concl, spec.CONCLUSIONS), concl, np.nan).astype(object)
        self.level1 = t.values("一级指标")
        self.seq = pd.to_numeric(t.frame["序号"], errors="coerce").to_numpy(dtype=float) \
            if "序号" in t.frame.columns else np.full(t.n, np.nan)
        self.weights = t.numbers("分值")
        qual = np.array([glob["定性比例"].get(c, np.nan) for c in self.concl], dtype=float)  # default ratio
        self.rate, self.dev, self.ratio, self.missing = _target_rates(self.op, self.actual, self.target, self.concl,
                                                                      qual)
        self.cut = _deviation_cut(self.op, self.dev, glob)
        self.value = np.where(self.op == "定性", qual, self.actual)
        units = _unit_texts(t.values("计量单位"))
        args = (self.op, t.values("指标值文本"), _number_texts(self.target), units)
        self.texts = {"target": _target_text(*args), "plain": _target_text(*args, with_op=False),
                      "actual": _actual_text(self.op, t.values("实际完成值文本"), _number_texts(self.actual),
                                             self.concl, units)}


def _score_targets(rule: _Rule, tables: _Tables, issues: list[Issue]) -> list[dict]:
    """A framework group over all units' targets of the named 一级指标: one row per unit × target, plus one row per
    unit that has no target in the group."""
    facts = tables.target_facts(rule.glob)
    t = facts.table
    rows = np.flatnonzero(_isin(facts.level1, rule.params["一级指标"]))
    rows = rows[np.argsort(t.unit[rows], kind="stable")]  # units.merge(targets, how="inner"): by unit, then as given
    unit = t.unit[rows]
    missing, rate, ratio, cut = facts.missing[rows], facts.rate[rows], facts.ratio[rows], facts.cut[rows]
    scored = missing == ""
    share = _allocate(rule, unit, facts.weights[rows], tables.n)
    score = np.asarray(rule.round(np.where(scored, share * (ratio - cut), 0.0)), dtype=float)
    part = dict(
        pos=unit, _sub=np.arange(1, len(rows) + 1), 指标编码=_target_codes(rule.code, unit, facts.seq[rows]),
        一级指标=rule.level1, 二级指标=t.values("二级指标")[rows], 三级指标=t.values("三级指标")[rows],
        指标值=facts.texts["target"][rows], 实际完成值=facts.texts["actual"][rows],
        完成率=np.where(scored, rate, np.nan), 分值=share, 得分=score,
        扣分说明=_target_reasons(rule, facts, rows, share, score), 状态=np.where(scored, STATE_OK, STATE_MISSING),
        计算方法=rule.calc, 评分方法=rule.method, _file=t.values("_file")[rows], _row=t.values("_row")[rows],
        _rule=rule.code, _value=facts.value[rows], _target=facts.target[rows], _op=facts.op[rows],
        _deviation=facts.dev[rows], _cut=cut,
        dtypes={c: t.dtype(k) for c, k in (("二级指标", "二级指标"), ("三级指标", "三级指标"), ("_file", "_file"),
                                            ("_row", "_row"), ("_op", "比较符"))})
    _target_issues(tables, facts, rows, issues)
    return [part, _empty_groups(rule, tables, unit, issues)]


def _target_rates(op, a, tv, concl, qual: np.ndarray):
    """Per target: (完成率 rounded to 4 decimals, 偏离度 rounded or NaN, ratio scored = min(完成率, 1), reason the
    target cannot be scored or ""). `qual`: the framework's 定性比例 of each target's 结论 (NaN where none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(np.isin(op, _POSITIVE) & (tv > 0), (a - tv) / tv, np.nan)
    rate = np.where(np.isin(op, _QUALITATIVE), excel_round(np.clip(qual, 0, None), RATE_DIGITS),
                    completion_rates(op, a, tv))
    missing = _missing_reason(op, a, tv, concl)
    rate = np.where(missing == "", rate, np.nan)
    return rate, excel_round(dev, RATE_DIGITS), np.where(missing == "", np.minimum(rate, 1.0), 0.0), missing


def completion_rates(op, actual, target) -> np.ndarray:
    """完成率 of quantitative targets, element-wise (SCORING.md): ≥ / ＞ actual ÷ 指标值; ≤ / ＜ 指标值 ÷ actual
    (actual 0 → 100%); ＝ 100% when equal, else the smaller of both ratios. Where a ratio means nothing (指标值 ≤ 0,
    or actual ≤ 0 for ≤ / ＜) 100% when the comparison holds and 0% otherwise. Never negative, rounded as shown (4
    decimals of a fraction); NaN for any other comparator (定性, blank, unknown) and where a figure is missing."""
    op = np.asarray(op, dtype=object)
    a, tv = np.asarray(actual, dtype=float), np.asarray(target, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        met = _met(op, a, tv)
        pos = np.where(tv > 0, a / tv, met)
        rev = np.where((a > 0) & (tv > 0), tv / a, met)
        eq = np.where(a == tv, 1.0, np.where((a > 0) & (tv > 0), np.minimum(a / tv, tv / a), 0.0))
    rate = np.select([np.isin(op, _POSITIVE), np.isin(op, _REVERSE), np.isin(op, _EQUAL)], [pos, rev, eq],
                     default=np.nan)
    rate = np.where(np.isnan(a) | np.isnan(tv), np.nan, rate)
    return excel_round(np.clip(rate, 0, None), RATE_DIGITS)


def completion_rate(op, actual: float, target: float) -> float:
    """completion_rates of one target (monitoring's 进度比 uses it with the value to date and the expected value)."""
    return float(completion_rates([op], [actual], [target])[0])


def _met(op, a, tv) -> np.ndarray:
    """1.0 where the actual value satisfies the comparator (used where a ratio is meaningless: 指标值 ≤ 0)."""
    conds = [op == "≥", op == "＞", op == "≤", op == "＜", op == "＝"]
    return np.select(conds, [a >= tv, a > tv, a <= tv, a < tv, a == tv], default=False).astype(float)


def _missing_reason(op, a, tv, concl) -> np.ndarray:
    known = np.isin(op, _POSITIVE + _REVERSE + _EQUAL + _QUALITATIVE)
    qual = np.isin(op, _QUALITATIVE)
    conds = [~known, qual & pd.isna(concl), ~qual & np.isnan(tv), ~qual & np.isnan(a)]
    texts = ["比较符缺失或无法识别", "未填写实际完成情况（达成/部分达成/未达成）", "指标值不是数字", "未填写实际完成值"]
    return np.select(conds, [np.asarray(t, dtype=object) for t in texts], default=np.asarray("", dtype=object))


def _deviation_cut(op, dev, glob: dict) -> np.ndarray:
    """Share of the item's points deducted for 偏离度 (0 when switched off or not a ≥/＞ target)."""
    cut = np.zeros(len(op))
    if not glob.get("偏离度扣分", True):
        return cut
    for bound, pct in sorted(glob.get("偏离度档", [])):
        with np.errstate(invalid="ignore"):
            cut = np.where(dev >= bound - 1e-9, pct, cut)
    return cut


def _allocate(rule: _Rule, unit: np.ndarray, weights: np.ndarray, n_units: int) -> np.ndarray:
    """Spread the group's points over each unit's targets by 分值 (blank → mean of the given ones, all blank or all
    0 → equal), rounded to 小数位数 by largest remainder so that the shares sum to the group's points exactly.
    `unit`: the targets' unit positions (sorted); the sums and means are those of groupby-transform."""
    if not len(unit):
        return np.zeros(0)
    w = np.where(weights >= 0, weights, np.nan)
    w = np.where(np.isnan(w), group_mean(w, unit, n_units)[unit], w)
    w = np.where(np.isnan(w), 1.0, w)
    w = np.where(group_sum(w, unit, n_units)[unit] > 0, w, 1.0)
    scale = 10 ** rule.digits
    raw = rule.points * scale * w / group_sum(w, unit, n_units)[unit]
    base = np.floor(raw + 1e-9)
    deficit = round(rule.points * scale) - group_sum(base, unit, n_units)[unit]
    # rank of each target within its unit by remainder, largest first (ties: first target first)
    order = np.lexsort((np.arange(len(unit)), -(raw - base), unit))
    rank = np.empty(len(unit), dtype=np.intp)
    rank[order] = _positions(unit[order]) - 1
    return (base + (rank < deficit)) / scale


def _positions(unit: np.ndarray) -> np.ndarray:
    """1-based position of each row among the rows of its unit (rows sorted by unit)."""
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]]) if len(unit) else np.zeros(0, dtype=np.intp)
    return np.arange(len(unit)) - np.repeat(starts, np.diff(np.r_[starts, len(unit)])) + 1


def _target_codes(code: str, unit: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """`A19-3` from 序号; a blank 序号 takes the target's position among the unit's targets of the group."""
    label = [f"{int(s)}" if not np.isnan(s) and float(s).is_integer() else (f"{s:g}" if not np.isnan(s) else f"{p}")
             for s, p in zip(seq, _positions(unit).tolist())]
    return np.array([f"{code}-{x}" for x in label], dtype=object)


def _unit_texts(units: np.ndarray) -> list[str]:
    """Each 计量单位 as text, "" where blank (missing values found at once, not one pd.isna per target)."""
    return ["" if missing else str(unit) for unit, missing in zip(units.tolist(), pd.isna(units).tolist())]


def _with_unit(text: str, unit: str) -> str:
    return text if not unit or text.endswith(unit) else text + unit


def _number_texts(x) -> list[str]:
    """Numbers as typed by users: 18.65 → `18.65`, 80.0 → `80`; NaN → ``."""
    return ["" if np.isnan(v) else f"{v:g}" for v in excel_round(np.asarray(x, dtype=float), 4)]


def _typed_texts(texts: np.ndarray) -> list[str]:
    """Each typed text stripped, "" where blank."""
    return ["" if missing else str(text).strip() for text, missing in zip(texts.tolist(), pd.isna(texts).tolist())]


def _target_text(ops, texts, numbers, units, with_op: bool = True) -> np.ndarray:
    """The target as users read it: `≥3%`, `≤5天`, or the 定性 text; `with_op=False` gives `3%` for sentences.
    `units`: _unit_texts."""
    out = []
    for op, text, num, unit, op_missing in zip(ops.tolist(), _typed_texts(texts), numbers, units,
                                               pd.isna(ops).tolist()):
        shown = text or num
        if op == "定性" or shown[:1] in "≥＞＝≤＜><=":
            out.append(shown if with_op or op == "定性" else shown[1:].lstrip("="))
        else:
            out.append(("" if op_missing or not with_op else str(op)) + _with_unit(shown, unit))
    return np.array(out, dtype=object)


def _actual_text(ops, texts, numbers, concls, units) -> np.ndarray:
    """The actual value as users read it (`units`: _unit_texts); 未填写 where there is none."""
    out = []
    for op, text, num, concl, unit, concl_missing in zip(ops.tolist(), _typed_texts(texts), numbers,
                                                         concls.tolist(), units, pd.isna(concls).tolist()):
        if op == "定性":
            out.append("未填写" if concl_missing else str(concl))
        elif text:
            out.append(_with_unit(text, unit))
        else:
            out.append("未填写" if not num else _with_unit(num, unit))
    return np.array(out, dtype=object)


def _target_reasons(rule: _Rule, facts: _TargetFacts, rows: np.ndarray, share, score) -> np.ndarray:
    """扣分说明 of each target: why it scored less than its share (empty when it got the share)."""
    op, missing, cut = facts.op[rows], facts.missing[rows], facts.cut[rows]
    rate, dev, ratio = facts.rate[rows], facts.dev[rows], facts.ratio[rows]
    actual, target, plain = (facts.texts[k][rows] for k in ("actual", "target", "plain"))
    glob = rule.glob

    def deviation(j):
        lost = rule.num(share[j] - score[j])
        return _texts("实际 {}，指标值 {}，完成率 {}，偏离度 {} 达到 {} 档，指标值可能设置过低，扣减该项分值的 {}"
                      "（{} 分），得 {} 分", actual[j], target[j], _pct(rate[j]), _pct(dev[j]),
                      [short_pct(_tier_bound(c, glob)) for c in cut[j]], [short_pct(c) for c in cut[j]],
                      lost, rule.num(score[j]))

    def proportional(j):
        word = np.select([np.isin(op[j], _REVERSE), np.isin(op[j], _EQUAL)], ["高于", "不等于"], default="低于")
        return _texts("实际 {}，{}指标值 {}，完成率 {}，按比例得 {} 分", actual[j], word, plain[j], _pct(rate[j]),
                      rule.num(score[j]))

    reason = np.full(len(rows), "", dtype=object)
    lost = np.flatnonzero(score < share)
    if len(lost):
        reason[lost] = _pick(lost, [
            (missing != "", lambda j: _texts("{}，该项 {} 分不得分", missing[j], rule.num(share[j]))),
            (np.isin(op, _QUALITATIVE), lambda j: _texts("实际完成“{}”，按 {} 得 {} 分", actual[j], _pct(ratio[j]),
                                                         rule.num(score[j]))),
            (cut > 0, deviation)], proportional)
    return reason


def _tier_bound(cut: float, glob: dict) -> float:
    """The 偏离度 threshold whose deduction is `cut` (for the text only)."""
    return next((b for b, p in sorted(glob.get("偏离度档", []), reverse=True) if p == cut), 0.0)


def _empty_groups(rule: _Rule, tables: _Tables, unit: np.ndarray, issues: list[Issue]) -> dict:
    """One row per unit without any target of the group: 0 points and an 错误, or full points with `不适用=满分`."""
    has = np.zeros(tables.n, dtype=bool)
    has[unit] = True
    lacking = np.flatnonzero(~has)
    levels = "、".join(rule.params["一级指标"])
    full = rule.params.get("不适用") == "满分"
    make, text = (info, "按规则得满分") if full else (error, "不得分。请在绩效目标表中填写")
    message = f"未填写{levels}，{_quoted(rule.name)}{rule.points:g} 分{text}。"
    issues += [_unit_issue(make, "targets-group-missing", message, u, y, sheet="绩效目标")
               for u, y in zip(tables.codes[lacking], tables.years[lacking].tolist())]
    return dict(
        pos=lacking, _sub=0, 指标编码=rule.code, 一级指标=rule.level1, 二级指标=rule.level2, 三级指标=rule.name,
        指标值="", 实际完成值="未填写", 完成率=np.nan, 分值=rule.points, 得分=rule.points if full else 0.0,
        扣分说明=f"不适用：未填写{levels}，按规则得满分" if full else f"未填写{levels}，该项 {rule.points:g} 分不得分",
        状态=STATE_NA if full else STATE_MISSING, 计算方法=rule.calc, 评分方法=rule.method, _rule=rule.code)


def _target_issues(tables: _Tables, facts: _TargetFacts, rows: np.ndarray, issues: list[Issue]) -> None:
    """错误 for targets that cannot be scored; 提示 for 偏离度 deductions (the target was probably set too low)."""
    t = facts.table
    missing, cut, dev = facts.missing[rows], facts.cut[rows], facts.dev[rows]
    at = np.flatnonzero((missing != "") | (cut > 0))
    for i, deviation in zip(at, _pct(dev[at])):
        r = rows[i]
        file, sheet, cell, row = (t.values(c)[r] for c in ("_file", "_sheet", "单元格", "_row"))
        where = dict(file="" if pd.isna(file) else str(file), sheet="绩效目标" if pd.isna(sheet) else str(sheet),
                     cell="" if pd.isna(cell) else str(cell))
        row = "" if pd.isna(row) else f"第 {int(row)} 行"
        unit, year, name = t.codes[r], t.years[r], t.values("三级指标")[r]
        if missing[i]:
            issues.append(_unit_issue(error, "target-not-scorable", f"绩效目标{row}“{name}”{missing[i]}，"
                                      "该项不得分。请补填后重新运行。", unit, year, **where))
        else:
            issues.append(_unit_issue(info, "target-deviation", f"绩效目标{row}“{name}”偏离度 "
                                      f"{deviation}，指标值可能设置过低，已扣减该项分值的 {short_pct(cut[i])}。",
                                      unit, year, value=deviation, **where))


# ---------------------------------------------------------------------------------------------------------------
# Totals.

def _totals(details: pd.DataFrame, parts: _Details, framework: Framework) -> pd.DataFrame:
    """One row per unit: 总分 (sum of the rounded item scores), 等级, and the score of each 一级指标. The sums are
    those of `details.groupby(单位编码, 财年)` and of its pivot by 一级指标."""
    tables, pos = parts.tables, parts.pos
    score = details["得分"].to_numpy(dtype=float)
    level_codes, level_names = pd.factorize(details["一级指标"].to_numpy(dtype=object), sort=True)
    n_levels = max(len(level_names), 1)
    by_level = group_sum(score, pos * n_levels + level_codes, tables.n * n_levels).reshape(tables.n, n_levels)
    has_rows = np.bincount(pos, minlength=tables.n) > 0
    total = group_sum(score, pos, tables.n)
    total = excel_round(np.where(np.isnan(total), 0.0, total), framework.digits)
    lows = [low for _, low in framework.grades]
    grade = np.select([total >= low for low in lows], [g for g, _ in framework.grades], default="") \
        if lows else np.full(len(total), "")
    where = {name: i for i, name in enumerate(level_names)}
    levels = {}
    for name in framework.level1_order:
        sums = by_level[:, where[name]] if name in where else np.zeros(tables.n)
        sums = np.where(np.isnan(sums), 0.0, sums)  # pivot_table drops an all-NaN sum; reindex fills 0
        levels[name] = excel_round(np.where(has_rows, sums, np.nan), framework.digits)
    return pd.DataFrame({"单位编码": pd.array(tables.codes, dtype=TEXT_DTYPE), "财年": tables.years, "总分": total,
                         "等级": grade.astype(object), **levels})
