"""checks.py: a unit's issues never depend on which other units are checked with it (run.py checks units in
batches); the sums in the messages go through numbers.group_sum. Figures worked out by hand beside each assertion."""

from __future__ import annotations

import pandas as pd

from pipeline.checks import check_budget_lines

NAN = float("nan")


def _lines(unit: str, rows: list[tuple[float, float]]) -> pd.DataFrame:
    """One 项目支出 line per (年初预算数, 全年预算数), no carry-over nor adjustment."""
    return pd.DataFrame([{"单位编码": unit, "财年": 2023, "支出类别": "项目支出", "项目名称": f"项目{i}", "上年结转数": 0.0,
                          "年初预算数": plan, "预算调增数": 0.0, "预算调减数": 0.0, "全年预算数": full,
                          "实际支出数": NAN, "结转结余数": NAN, "_file": f"{unit}.xlsx", "_sheet": "预算执行",
                          "_row": i + 1} for i, (plan, full) in enumerate(rows, start=1)])


def _cell(row, field):
    return f"I{row['_row']}"


def _messages(lines: pd.DataFrame, unit: str) -> list[str]:
    return [i.message for i in check_budget_lines(lines, _cell) if i.unit == unit]


def test_budget_total_message_does_not_depend_on_the_other_units():
    # A: 全年预算数 0.4 + 0.075 + 0.7 = 1.175 万元, shown 1.18 (half up); 项目3 has 年初预算数 0.685 ≠ 0.70 (off by
    # 0.015 > 0.01), so by the formula the sheet totals 0.4 + 0.075 + 0.685 = 1.16. In floats 1.175 sits on a
    # rounding boundary: an uncompensated sum (pandas' path when no amount in the whole batch is blank) lands one bit
    # below it, 1.1749999999999998, shown 1.17, while the compensated sum is the float nearest 1.175, shown 1.18.
    a = _lines("A", [(0.4, 0.4), (0.075, 0.075), (0.685, 0.7)])
    # B: a blank 全年预算数 (NaN) and 0.1 + 0.2 (0.30000000000000004 in floats)
    b = _lines("B", [(0.1, 0.1), (0.2, 0.2), (0.3, NAN)])
    alone = _messages(a, "A")
    assert alone == [
        "项目支出“项目3”：全年预算数 0.70 ≠ 上年结转数 0.00 + 年初预算数 0.69 + 预算调增数 0.00 − 预算调减数 0.00 = 0.69"
        "（本表合计：全年预算数 1.18，按公式应为 1.16）。已按填报的全年预算数评分；请核对预算调整或全年预算数。"]
    for batch in ([a, b], [b, a]):
        assert _messages(pd.concat(batch, ignore_index=True), "A") == alone


def test_budget_totals_per_unit_skip_blanks():
    # B (checked with C): 项目1 全年预算数 0.5 ≠ 年初预算数 0.1 + 0 → flagged; the sheet's 全年预算数 0.5 + 0.2 (blank skipped) = 0.70,
    # by the formula 0.1 + 0.2 + 0.3 = 0.60 (the blank line still counts 0.3 there)
    b = _lines("B", [(0.1, 0.5), (0.2, 0.2), (0.3, NAN)])
    c = _lines("C", [(1.0, 1.0)])
    msgs = _messages(pd.concat([c, b], ignore_index=True), "B")
    assert len(msgs) == 1 and "（本表合计：全年预算数 0.70，按公式应为 0.60）" in msgs[0]
