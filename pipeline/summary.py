"""The summary workbook `output/<财年>/汇总.xlsx`: every unit of one fiscal year side by side, and year-on-year
figures of one unit.

Each unit's figures are taken where it is scored (`unit_rows`, in the batch) and kept in a unitstore.UnitStore on
disk; the table builders read them back (the tables with a row per unit as `Table`s, a chunk at a time, so a
province's units are never all in memory; the small ones as DataFrames; 数据问题 as column lists a chunk at a time),
with the Chinese column names shown to users. Only `write_summary` touches a file, through render.Book (streamed:
constant_memory, unless small enough to build in memory), written to a temporary name and renamed. Several fiscal
years in one input are kept apart: the caller writes one 汇总.xlsx per 财年.

Tables of `summary_tables(ev, year)`:

| key | grain | columns |
| --- | --- | --- |
| 排名 | one row per unit | 排名, 单位编码, 单位名称, 总分, 等级, one column per 一级指标 |
| 等级分布 | one row per grade (framework order) + 无法评级 when any | 等级, 最低分, 单位数, 占比 |
| 分数分布 | one row per score band | 分数段, 单位数, 占比 |
| 失分指标 | one row per framework indicator (绩效目标 rows summed per 一级指标), only where points were lost | 指标编码, 一级指标, 三级指标, 单位数, 失分单位数, 失分合计, 平均失分 |
| 预算执行 | one row per unit + a 合计 row | 单位编码, 单位名称, 全年预算数, 实际支出数, 预算执行率, 三公经费预算数, 三公经费实际支出数, 三公经费控制率 |
| 数据问题 | one row per issue of the year (and issues of files with no unit) | 单位编码, 单位名称, 严重程度, 文件, 工作表, 单元格, 问题, 原值, 代码 |

Rounding: scores 2 decimals, amounts 2 decimals, rates 4 decimals (a fraction shown as 0.00%), all with excel_round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_output
from .numbers import excel_round
from .spool import sheet_chunks

SUMMARY_FILE = "汇总.xlsx"
TARGET_METHOD = "绩效目标"
# Score bands of the distribution: (label, lower bound inclusive, upper bound exclusive).
SCORE_BANDS = (("60分以下", -math.inf, 60.0), ("60–70分", 60.0, 70.0), ("70–80分", 70.0, 80.0),
               ("80–90分", 80.0, 90.0), ("90分及以上", 90.0, math.inf))
NO_GRADE = "无法评级"
TOTAL_LABEL = "合计"
KEY = ["单位编码", "财年"]
TOTALS_FIXED = ("单位编码", "财年", "总分", "等级")


def _round(x, digits: int):
    return None if x is None or pd.isna(x) else excel_round(float(x), digits)


def _rate(num, den):
    """num / den rounded to 4 decimals; None when either is missing or den is 0."""
    if num is None or den is None or pd.isna(num) or pd.isna(den) or den == 0:
        return None
    return excel_round(float(num) / float(den), 4)


def level1_columns(totals: pd.DataFrame) -> list[str]:
    """The per-一级指标 columns of Scores.totals, in their order."""
    return [c for c in totals.columns if c not in TOTALS_FIXED and not str(c).startswith("_")]


# --- tables --------------------------------------------------------------------------------------------------------


def unit_rows(units: pd.DataFrame, totals: pd.DataFrame, indicators: pd.DataFrame) -> pd.DataFrame:
    """What the 汇总 needs of each unit, one row per unit in the order of `units` (computed where the units are
    scored; a run stores these rows, unitstore.UnitStore, and the tables read them back): 单位编码, 财年, 单位名称,
    总分 (rounded), 等级 (无法评级 when none), the 一级指标 scores (rounded), then the amounts of its 预算执行率 and
    三公经费控制率 indicators (分母 and 分子, as computed: the rates are taken of them, the amounts shown rounded).
    Joined by unit key in plain Python (as left merges would: a unit without totals or without the indicator gets
    none): a batch holds a few dozen units, and three merges cost several times more than the rows themselves."""
    level1 = level1_columns(totals)
    keys = list(zip(units["单位编码"].tolist(), units["财年"].tolist()))
    df = units[[*KEY, "单位名称"]].reset_index(drop=True)
    at = _places(totals, keys)
    for c in ("总分", "等级", *level1):
        values = totals[c].tolist()
        if c == "等级":
            df[c] = [g if isinstance(g, str) and g else NO_GRADE for g in (values[i] if i >= 0 else None for i in at)]
        else:
            df[c] = [None if i < 0 else _round(values[i], 2) for i in at]
    method = indicators["计算方法"].tolist()
    for name, (den, num) in zip(BUDGET_METHODS, BUDGET_AMOUNTS):
        rows = [r for r, m in enumerate(method) if m == name]
        if not rows:
            df[den], df[num] = None, None
            continue
        at = _places(indicators.take(rows), keys)
        for target, source in ((den, "分母"), (num, "分子")):
            values = indicators[source].take(rows).to_numpy(dtype=float, na_value=np.nan)
            df[target] = np.where(at >= 0, values[at], np.nan)
    return df


def _places(table: pd.DataFrame, keys: list[tuple]) -> np.ndarray:
    """For each unit key, the position of its first row in `table` (-1 where it has none)."""
    first: dict[tuple, int] = {}
    for r, key in enumerate(zip(table["单位编码"].tolist(), table["财年"].tolist())):
        first.setdefault(key, r)
    return np.array([first.get(key, -1) for key in keys], dtype=np.intp)


@dataclass
class Table:
    """A table of the 汇总 that has a row per unit, read a chunk at a time (a province's units are never all in
    memory): its columns, its number of rows and its chunks (DataFrames), made anew each time it is iterated."""

    columns: list[str]
    n: int
    make: Callable[[], Iterator[pd.DataFrame]]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.make()

    def __len__(self) -> int:
        return self.n

    @classmethod
    def of(cls, df: pd.DataFrame) -> "Table":
        """A frame as a Table of one chunk."""
        return cls(list(df.columns), len(df), lambda: iter([df]))

    def frame(self) -> pd.DataFrame:
        """All rows at once (small tables: tests)."""
        return pd.concat([*self, pd.DataFrame(columns=self.columns)], ignore_index=True)


def ranking(store, year: int) -> Table:
    """One row per unit, best first. Ties share a rank and the next rank skips (95, 95, 90 → 1, 1, 3): a unit's rank
    is 1 + the number of units with a better total; a unit without a total comes last without a rank. Ties are
    listed by 单位编码."""
    level1 = [c for c in store.columns if c not in UNIT_ROW_FIXED]
    cols = ["排名", "单位编码", "单位名称", "总分", "等级", *level1]

    def chunks():
        place, rank, last = 0, None, None
        for chunk in store.rows(year, by_score=True):
            ranks = []
            for score in chunk["总分"]:
                place += 1
                missing = pd.isna(score)
                if not missing and score != last:
                    rank, last = place, score
                ranks.append(None if missing else rank)
            yield chunk.assign(排名=pd.array(ranks, dtype="Int64"))[cols]
    return Table(cols, store.count(year), chunks)


def grade_distribution(tally: pd.DataFrame, n: int, grades: list[tuple[str, float]] | None = None) -> pd.DataFrame:
    """Units per grade, in the framework's order (every grade listed, also with 0 units); 无法评级 last when any.
    `tally`: units per 等级 with their lowest 总分 (UnitStore.tally), of `n` units."""
    counts = dict(zip(tally["等级"], tally["单位数"]))
    if grades is None:  # no framework at hand: the grades that occur, best first by their lowest total
        lowest = tally[tally["等级"] != NO_GRADE].sort_values(["最低分", "等级"], ascending=[False, True],
                                                             na_position="last", kind="stable")
        grades = [(g, None) for g in lowest["等级"]]
    rows = [{"等级": g, "最低分": low, "单位数": int(counts.get(g, 0))} for g, low in grades]
    if counts.get(NO_GRADE, 0):
        rows.append({"等级": NO_GRADE, "最低分": None, "单位数": int(counts[NO_GRADE])})
    out = pd.DataFrame(rows, columns=["等级", "最低分", "单位数"])
    out["占比"] = [excel_round(c / n, 4) if n else None for c in out["单位数"]]
    return out


def score_distribution(tally: pd.DataFrame, n: int) -> pd.DataFrame:
    """Units per score band of SCORE_BANDS (lower bound included, upper excluded); units without a total are not
    counted. `tally`: units per 总分 (UnitStore.tally: at most one row per score of two decimals), of `n` units."""
    scores = tally[tally["总分"].notna()]
    values, counts = scores["总分"].astype(float), scores["单位数"]
    rows = []
    for label, low, high in SCORE_BANDS:
        c = int(counts[(values >= low) & (values < high)].sum())
        rows.append({"分数段": label, "单位数": c, "占比": excel_round(c / n, 4) if n else None})
    return pd.DataFrame(rows, columns=["分数段", "单位数", "占比"])


LOSS_LINE = ["财年", "_code", "一级指标", "_name", "_target"]  # a 汇总 line of one year (see unit_losses)
LOSS_TOTAL_COLUMNS = [*LOSS_LINE, "_units", "_losing", "_cents"]


def unit_losses(details: pd.DataFrame) -> dict[tuple, float]:
    """Points lost per 汇总 line and unit: {(财年, _code, 一级指标, _name, _target, 单位编码): 失分}, in order of first
    appearance. Common indicators per 指标编码; 绩效目标 rows (one per target, 指标编码 `A19-3`) summed within their
    framework rule and 一级指标, so that a target group is one line (named at aggregation, by the framework's name of
    its rule: "" meanwhile). 失分 = 分值 − 得分 of the (rounded) item scores, summed exactly (math.fsum; a missing
    score counts as nothing) and rounded to 2 decimals. A row with a blank part of its key is left out, as a group-by
    leaves it. In plain Python: a batch's few hundred rows cost less than a group-by's setup."""
    if details.empty:
        return {}
    column = lambda name: details[name].tolist()  # noqa: E731
    codes = column("指标编码")
    rules = column("_rule") if "_rule" in details else [c.split("-")[0] if isinstance(c, str) else c for c in codes]
    full, got = pd.to_numeric(details["分值"]).tolist(), pd.to_numeric(details["得分"]).tolist()
    lost: dict[tuple, list[float]] = {}
    names = column("一级指标"), column("三级指标"), column("计算方法"), column("单位编码")
    for year, code, rule, level1, name, method, unit, f, g in zip(column("财年"), codes, rules, *names, full, got):
        target = method == TARGET_METHOD
        line = (year, rule, level1, "", True, unit) if target else (year, code, level1, name, False, unit)
        if not any(map(_blank_key, line[1:4])) and not _blank_key(unit):
            lost.setdefault(line, []).append(f - g)
    return {line: excel_round(math.fsum(v for v in values if v == v), 2) for line, values in lost.items()}


def _blank_key(value) -> bool:
    return value is None or value is pd.NA or (value.__class__ is float and value != value)


def loss_totals(details: pd.DataFrame) -> pd.DataFrame:
    """Per year and 汇总 line, over the units of `details`: units scored on it (_units), units that lost points on
    it (_losing) and the points lost in hundredths (_cents, an integer). Computed where the details are (in the
    batch that scored the units); the rows of several batches add up to those of all their units at once, exactly
    and in any order (whole hundredths), so the main process keeps a few rows per line, never a row per unit."""
    lines: dict[tuple, list[int]] = {}
    for (*line, _unit), lost in unit_losses(details).items():
        tally = lines.setdefault(tuple(line), [0, 0, 0])
        tally[0] += 1
        tally[1] += lost > 0.005
        tally[2] += int(round(lost * 100))
    return _loss_frame(lines)


def _loss_frame(lines: dict[tuple, list[int]]) -> pd.DataFrame:
    """loss_totals' rows from {line: [_units, _losing, _cents]}, in the dict's order."""
    if not lines:
        return pd.DataFrame(columns=LOSS_TOTAL_COLUMNS)
    return pd.DataFrame([(*line, *tally) for line, tally in lines.items()], columns=LOSS_TOTAL_COLUMNS)


def add_loss_totals(a: pd.DataFrame | None, b: pd.DataFrame) -> pd.DataFrame:
    """The loss_totals rows of two sets of units as one set's: summed per line, lines in order of first appearance
    (a's, then b's new ones), as loss_totals over a's units followed by b's gives them. In plain Python (the main
    process folds every batch's rows in as it returns, while the workers are busy: a concatenation and a group-by
    cost 3–14 ms a batch); the lines come from loss_totals, whose keys are never blank."""
    if a is None:
        return b
    lines: dict[tuple, list[int]] = {}
    for frame in (a, b):
        for *line, units, losing, cents in zip(*(frame[c].tolist() for c in LOSS_TOTAL_COLUMNS)):
            tally = lines.setdefault(tuple(line), [0, 0, 0])
            tally[0] += units
            tally[1] += losing
            tally[2] += cents
    return _loss_frame(lines)


def lost_points(totals: pd.DataFrame, rule_names: dict[str, str] | None = None) -> pd.DataFrame:
    """Where points were lost across units (the loss_totals rows of one year, from any number of batches), most
    first: per line 单位数 (units scored on it), 失分单位数, 失分合计 and 平均失分 = 失分合计 ÷ 单位数. Lines
    without any loss are left out."""
    cols = ["指标编码", "一级指标", "三级指标", "单位数", "失分单位数", "失分合计", "平均失分"]
    if totals.empty:
        return pd.DataFrame(columns=cols)
    out = totals.groupby(LOSS_LINE[1:], sort=False)[["_units", "_losing", "_cents"]].sum().reset_index()
    names = rule_names or {}
    out["_name"] = [n if not t else names.get(c) or f"{l1}（绩效目标）"
                    for n, t, c, l1 in zip(out["_name"], out["_target"], out["_code"], out["一级指标"])]
    out["单位数"] = out["_units"].astype(int)
    out["失分单位数"] = out["_losing"].astype(int)
    out["失分合计"] = [c / 100 for c in out["_cents"]]
    out["平均失分"] = [excel_round(s / n, 2) for s, n in zip(out["失分合计"], out["单位数"])]
    out = out.rename(columns={"_code": "指标编码", "_name": "三级指标"})
    out = out[out["失分合计"] > 0].sort_values(["失分合计", "指标编码"], ascending=[False, True], kind="stable")
    return out[cols].reset_index(drop=True)


BUDGET_METHODS = ("预算执行率", "三公经费控制率")  # the indicators whose amounts unit_rows takes (also the rate columns)
BUDGET_AMOUNTS = (("全年预算数", "实际支出数"), ("三公经费预算数", "三公经费实际支出数"))  # (分母, 分子) of each
UNIT_ROW_FIXED = ("单位编码", "财年", "单位名称", "总分", "等级", *(c for pair in BUDGET_AMOUNTS for c in pair))
BUDGET_COLUMNS = ["单位编码", "单位名称", "全年预算数", "实际支出数", "预算执行率", "三公经费预算数",
                  "三公经费实际支出数", "三公经费控制率"]


def _budget_rows(chunk: pd.DataFrame) -> pd.DataFrame:
    """预算执行 rows of some units: the amounts rounded, 预算执行率 = 实际支出数 ÷ 全年预算数 and 三公经费控制率 =
    三公实际 ÷ 三公预算 of the amounts as computed."""
    out = {"单位编码": chunk["单位编码"].tolist(), "单位名称": chunk["单位名称"].tolist()}
    for (den, num), rate in zip(BUDGET_AMOUNTS, BUDGET_METHODS):
        out[den] = [_round(x, 2) for x in chunk[den]]
        out[num] = [_round(x, 2) for x in chunk[num]]
        out[rate] = list(map(_rate, chunk[num], chunk[den]))
    return pd.DataFrame(out, columns=BUDGET_COLUMNS)


def budget_totals(store, year: int) -> Table:
    """预算执行 and 三公经费 per unit (in input order), then a 合计 row: the sums of the rounded amounts and the
    overall rates Σ实际 ÷ Σ预算."""
    def chunks():
        cents: dict[str, int | None] = {c: None for pair in BUDGET_AMOUNTS for c in pair}  # None: no unit has one
        n = 0
        for chunk in store.rows(year):
            rows = _budget_rows(chunk)
            n += len(rows)
            for c in cents:  # the rounded amounts summed exactly, in hundredths
                for v in rows[c]:
                    if v is not None and not math.isnan(v):
                        cents[c] = (cents[c] or 0) + round(v * 100)
            yield rows
        total = {"单位编码": TOTAL_LABEL, "单位名称": f"{n} 个单位"}
        total.update({c: None if v is None else excel_round(v / 100, 2) for c, v in cents.items()})
        for (den, num), rate in zip(BUDGET_AMOUNTS, BUDGET_METHODS):
            total[rate] = _rate(total[num], total[den])
        yield pd.DataFrame([total], columns=BUDGET_COLUMNS)
    return Table(BUDGET_COLUMNS, store.count(year) + 1, chunks)


ISSUE_COLUMNS = ["单位编码", "单位名称", "严重程度", "文件", "工作表", "单元格", "问题", "原值", "代码"]


def issues_tables(issues, names: Callable[[list[str]], dict[str, str]], year: int) -> Iterator[dict[str, list]]:
    """All issues of the year's units (errors first), plus those of files that belong to no unit (unreadable or
    without 单位编码/财年): they are shown in every year's summary, since their year is unknown. `issues`: a list or
    a run's spool.IssueLog; the rows come a chunk at a time, in order (a province's issues are never all in
    memory), each chunk as its columns: ISSUE_COLUMNS → the values of issues_frame's rows (render._issue_columns,
    without a frame per chunk), a blank 单位编码 as None. `names`: 单位编码 → 单位名称 of the year's units among
    the codes given (UnitStore.names), asked once per chunk."""
    from .render import _issue_columns  # render imports xlsxwriter; keep the builders light

    fields = tuple(c for c in ISSUE_COLUMNS if c != "单位名称")
    for chunk in sheet_chunks(issues, lambda i: i.year == year or (not i.unit and i.year is None)):
        columns = _issue_columns(chunk, fields)
        codes = columns["单位编码"]
        known = names([c for c in codes if c])
        columns["单位名称"] = [known.get(c) if c else None for c in codes]
        columns["单位编码"] = [c or None for c in codes]
        yield {name: columns[name] for name in ISSUE_COLUMNS}


def summary_tables(results, year: int, framework=None) -> dict:
    """The tables of one fiscal year's 汇总.xlsx (see the module doc) from `results`: an Evaluation or a RunResult
    (attributes store: the units' unit_rows in a UnitStore; losses; issues). `framework` (optional) gives the grade
    order and the names of the 绩效目标 rules. 等级分布, 分数分布 and 失分指标 are DataFrames; 排名 and 预算执行
    Tables (a chunk at a time, read again each time they are iterated); 数据问题 an iterator of column lists, the
    rows in order a chunk at a time (issues_tables), read once."""
    year = int(year)
    store = results.store
    n = store.count(year)
    grades = list(framework.grades) if framework is not None else None
    rule_names = None
    if framework is not None:
        rule_names = dict(zip(framework.rows["指标编码"], framework.rows["三级指标"]))
    losses = results.losses
    return {
        "排名": ranking(store, year),
        "等级分布": grade_distribution(store.tally(year, "等级"), n, grades),
        "分数分布": score_distribution(store.tally(year, "总分"), n),
        "失分指标": lost_points(losses[losses["财年"] == year].reset_index(drop=True), rule_names),
        "预算执行": budget_totals(store, year),
        "数据问题": issues_tables(results.issues, lambda codes: store.names(year, codes), year),
    }


# --- year on year --------------------------------------------------------------------------------------------------

SANGONG_ITEMS = ("因公出国（境）费", "公务用车购置费", "公务用车运行维护费", "公务接待费")
YOY_COLUMNS = ["指标", "上年", "本年", "增减", "增减率", "_fmt"]


def unit_figures(record: dict) -> dict[str, tuple[object, str]]:
    """The figures compared year on year, from a unit record (rollover.unit_record / the .data sidecar):
    name → (value, kind) with kind score / text / rate / amount."""
    totals = record.get("totals") or {}
    ind = {r["计算方法"]: r for r in record.get("indicators") or []}
    out: dict[str, tuple[object, str]] = {}
    if totals:
        out["总分"] = (_round(totals.get("总分"), 2), "score")
        out["等级"] = (totals.get("等级"), "text")
        for name in totals.get("_level1") or []:
            out[f"{name}得分"] = (_round(totals.get(name), 2), "score")
    exe = ind.get("预算执行率") or {}
    out["全年预算数"] = (_round(exe.get("分母"), 2), "amount")
    out["实际支出数"] = (_round(exe.get("分子"), 2), "amount")
    out["预算执行率"] = (_rate(exe.get("分子"), exe.get("分母")), "rate")
    sg = ind.get("三公经费控制率") or {}
    out["“三公经费”预算数"] = (_round(sg.get("分母"), 2), "amount")
    out["“三公经费”实际支出数"] = (_round(sg.get("分子"), 2), "amount")
    out["“三公经费”控制率"] = (_rate(sg.get("分子"), sg.get("分母")), "rate")
    items = {r.get("项目"): r for r in record.get("sangong") or []}
    for item in SANGONG_ITEMS:
        if item in items:
            out[f"{item}实际支出数"] = (_round(items[item].get("实际支出数"), 2), "amount")
    return out


def year_on_year(current: dict, previous: dict | None) -> pd.DataFrame | None:
    """One row per figure of unit_figures present in either year: 上年, 本年, 增减 (本年 − 上年; for rates in
    percentage points as a fraction) and 增减率 ((本年 − 上年) ÷ 上年, scores and amounts only, when 上年 ≠ 0).
    None without a previous year."""
    if not previous:
        return None
    cur, prev = unit_figures(current), unit_figures(previous)
    rows = []
    for name in list(prev) + [n for n in cur if n not in prev]:
        (a, kind), (b, _) = prev.get(name, (None, cur[name][1])), cur.get(name, (None, prev[name][1]))
        if a is None and b is None:
            continue
        change = rate = None
        if kind != "text" and a is not None and b is not None:
            change = excel_round(b - a, 4 if kind == "rate" else 2)
            if kind != "rate" and a != 0:
                rate = excel_round((b - a) / a, 4)
        rows.append({"指标": name, "上年": a, "本年": b, "增减": change, "增减率": rate, "_fmt": kind})
    return pd.DataFrame(rows, columns=YOY_COLUMNS)


# --- the workbook --------------------------------------------------------------------------------------------------

FORMATS = {"排名": "int", "单位编码": "text", "单位名称": "text", "总分": "number", "等级": "text",
           "最低分": "number", "单位数": "int", "占比": "percent", "分数段": "text", "指标编码": "text",
           "一级指标": "text", "三级指标": "text", "失分单位数": "int", "失分合计": "number", "平均失分": "number",
           "全年预算数": "amount", "实际支出数": "amount", "预算执行率": "percent", "三公经费预算数": "amount",
           "三公经费实际支出数": "amount", "三公经费控制率": "percent"}


def _columns(names, default: str = "text") -> list[tuple[str, str]]:
    """(name, format) of each column name."""
    return [(c, FORMATS.get(c, default)) for c in names]


def _values(df: pd.DataFrame) -> list[list]:
    """The columns of a table as lists of the values its rows hold (as `to_dict("records")` gives them: a gap in a
    nullable column is None), without a dict per row (a 汇总 has a row per unit and per data issue)."""
    return [[None if v is pd.NA else v for v in values] for values in df.to_numpy(dtype=object).T.tolist()]


def _table(book, ws, top: int, df: pd.DataFrame, default: str = "text") -> int:
    """A header row and the rows of `df` (render.Book.grid); returns the next free row."""
    return book.grid(ws, top, _columns(df.columns, default), _values(df), len(df))


# A 汇总 of at most this many rows (see fits_in_memory) is built in memory and zipped at once, as a unit's workbook
# is: no temporary file per sheet and per part, ≈ 40 % less time (a 90-unit year: ≈ 45 → 28 ms). A larger one is
# streamed (constant_memory), so that a province's 汇总 never holds its rows: 2,000 rows in memory are a few MB.
IN_MEMORY_ROWS = 2000


def fits_in_memory(results, year: int) -> bool:
    """Whether the 汇总 of `year` has at most IN_MEMORY_ROWS rows, counted from above before it is written: its
    units twice (排名 and 预算执行) and every issue of the run (those of the year and of other years)."""
    return 2 * results.store.count(int(year)) + len(results.issues) <= IN_MEMORY_ROWS


def write_summary(tables: dict[str, pd.DataFrame], path: Path, year: int, in_memory: bool = False) -> Path:
    """Write 汇总.xlsx from summary_tables atomically (temporary file beside it, then renamed); returns the path.
    Streamed (render.Book's constant_memory) unless `in_memory` (a small 汇总: fits_in_memory): the same cells,
    formats and charts either way; texts are stored inline when streamed, as shared strings in memory."""
    from .render import Book  # render imports pandas/xlsxwriter; keep the builders light

    path = Path(path)
    with atomic_output(path) as tmp:
        book = Book(tmp, f"{year}年度部门整体支出绩效评价汇总", constant_memory=not in_memory)
        _ranking_sheet(book, tables, year)
        _distribution_sheet(book, tables)
        _plain_sheet(book, "失分指标", f"{year}年度失分最多的指标（分）", tables["失分指标"], "number")
        _plain_sheet(book, "预算执行汇总", f"{year}年度预算执行与“三公经费”（万元）", tables["预算执行"], "amount",
                     bold_last=True)
        _issues_sheet(book, tables["数据问题"])
        book.close()
    return path


def _ranking_sheet(book, tables, year: int) -> None:
    rank = tables["排名"]
    ws = book.sheet("汇总排名", header_rows=1)
    ws.write_string(0, 0, f"{year}年度部门整体支出绩效评价结果汇总（共 {len(rank)} 个单位）", book.fmt["title"])
    _chunked(book, ws, 1, rank, "number")
    ws.freeze_panes(2, 3)
    if len(rank):
        ws.autofilter(1, 0, len(rank) + 1, len(rank.columns) - 1)


def _chunked(book, ws, top: int, table: Table, default: str, bold_last: bool = False) -> None:
    """A header row and the rows of a Table, chunk after chunk; with bold_last the label of its last row (a 合计
    row) in bold."""
    columns = _columns(table.columns, default)
    book.grid(ws, top, columns, [[] for _ in columns], 0)
    row, last = top + 1, top + len(table)
    for chunk in table:
        data, n = _values(chunk), len(chunk)
        if bold_last and row + n - 1 == last and n:
            book.rows(ws, row, columns, [values[:-1] for values in data], n - 1)
            _row(book, ws, last, columns, [values[-1] for values in data], {0: "label"})
        else:
            book.rows(ws, row, columns, data, n)
        row += n


def _distribution_sheet(book, tables) -> None:
    ws = book.sheet("分布", landscape=False)
    grades, bands = tables["等级分布"], tables["分数分布"]
    ws.write_string(0, 0, "等级分布", book.fmt["subtitle"])
    _table(book, ws, 1, grades)
    _count_chart(book, ws, 1, len(grades), 2, "各等级单位数", "F2", int(grades["单位数"].max() if len(grades) else 0))
    top = max(len(grades) + 3, 18)
    ws.write_string(top, 0, "分数分布", book.fmt["subtitle"])
    _table(book, ws, top + 1, bands)
    _count_chart(book, ws, top + 1, len(bands), 1, "各分数段单位数", f"F{top + 2}", int(bands["单位数"].max()))


def _count_chart(book, ws, header_row: int, n: int, col: int, title: str, anchor: str, top: int) -> None:
    """A column chart of the 单位数 column `col` of the table under header_row, categories in column A; whole-number
    axis steps (a count of units has no 0.2)."""
    if not n:
        return
    chart = book.wb.add_chart({"type": "column"})
    chart.add_series({"name": "单位数", "categories": [ws.name, header_row + 1, 0, header_row + n, 0],
                      "values": [ws.name, header_row + 1, col, header_row + n, col],
                      "fill": {"color": "#2E75B6"}, "data_labels": {"value": True}})
    chart.set_title({"name": title})
    chart.set_legend({"none": True})
    chart.set_y_axis({"min": 0, "major_unit": max(1, math.ceil(top / 5)), "num_format": "0"})
    chart.set_size({"width": 480, "height": 288})
    ws.insert_chart(anchor, chart)


# Every cell of the 汇总 is written once, row after row: the workbook can then be streamed to disk as it is written
# (a province's 汇总 has a row per unit and per data issue).


def _plain_sheet(book, name: str, title: str, table: pd.DataFrame | Table, default: str,
                 bold_last: bool = False) -> None:
    ws = book.sheet(name, header_rows=1)
    ws.write_string(0, 0, title, book.fmt["subtitle"])
    if isinstance(table, pd.DataFrame):
        table = Table.of(table)
    _chunked(book, ws, 1, table, default, bold_last)
    if not len(table):
        ws.write_string(2, 0, "无", book.fmt["text"])
    ws.freeze_panes(2, 0)


def _row(book, ws, row: int, columns: list[tuple[str, str]], values: list, formats: dict[int, str]) -> None:
    """One table row (a value per column); `formats` overrides the column format of some cells (by position)."""
    for j, ((_, fmt), value) in enumerate(zip(columns, values)):
        book.write(ws, row, j, value, formats.get(j, fmt))


SEVERITY_FORMATS = {"错误": "error", "警告": "warning"}


def _issues_sheet(book, chunks: Iterable[dict[str, list]]) -> None:
    """The 数据问题 sheet from issues_tables' chunks, written as they come."""
    ws = book.sheet("数据问题", header_rows=0)
    columns = _columns(ISSUE_COLUMNS)
    book.table(ws, 0, columns, [])  # the header
    n = 0
    for chunk in chunks:
        n = _issue_rows(book, ws, n + 1, columns, [chunk[c] for c in ISSUE_COLUMNS]) - 1
    if not n:
        ws.write_string(1, 0, "未发现数据问题", book.fmt["text"])
    ws.freeze_panes(1, 0)
    if n:
        ws.autofilter(0, 0, n, len(columns) - 1)
    book.widths[ws.name][6] = 70


def _issue_rows(book, ws, top: int, columns: list[tuple[str, str]], data: list[list]) -> int:
    """Issues (column lists in ISSUE_COLUMNS order) from row `top`, the 严重程度 cell in the format of its
    severity (SEVERITY_FORMATS): a run of rows of one severity (they come sorted by it) is written at once
    (render.Book.rows). Returns the next free row."""
    severity = ISSUE_COLUMNS.index("严重程度")
    name, default = columns[severity]
    start = 0
    for level, run in groupby(data[severity]):
        end = start + sum(1 for _ in run)
        formats = [*columns[:severity], (name, SEVERITY_FORMATS.get(level, default)), *columns[severity + 1:]]
        book.rows(ws, top + start, formats, [values[start:end] for values in data], end - start)
        start = end
    return top + start
