"""Staging: value parsers (table-driven, hand-written expectations) and stage_file on small real workbooks."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xlsx_factory import (
    BUDGET_LINES, UNIT, WORK, budget_book, kv_rows, meta_for, targets_book, work_book, write_xlsx,
)

from pipeline.load import RawSheet, SourceFile, load_file
from pipeline.numbers import col_letter, is_blank
from pipeline.spec import (
    AGGREGATIONS, BUDGET_EXECUTION, COMPARATORS, CONCLUSIONS, SANGONG_ITEMS, SPENDING_CATEGORIES, YES_NO,
)
from pipeline.staging import (
    blank_value, parse_amount, parse_choice, parse_date, parse_field, parse_int, parse_number, parse_percent,
    parse_text, parse_value, stage_file,
)


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b if not isinstance(b, float) else a == pytest.approx(b)


# --- parse_number ---------------------------------------------------------------------------------------------

NUMBERS = [
    (12, 12.0), (12.5, 12.5), (0, 0.0), (-3.25, -3.25), (None, math.nan), (math.nan, math.nan),
    ("12.5", 12.5), (" 12.5 ", 12.5), ("１２．５", 12.5), ("1,234.5", 1234.5), ("1,234,567", 1234567.0),
    ("１，２３４", 1234.0), ("541.71万元", 541.71), ("81次", 81.0), ("97.6%", 97.6), ("97.6％", 97.6),
    ("(12.5)", -12.5), ("（12.5）", -12.5), ("-12.5", -12.5), ("−12.5", -12.5), ("+3", 3.0),
    ("—", math.nan), ("——", math.nan), ("/", math.nan), ("无", math.nan), ("-", math.nan), ("", math.nan),
    ("   ", math.nan), ("1e3", 1000.0), (".5", 0.5), ("28 人", 28.0),
]
BAD_NUMBERS = [True, False, "abc", "约80", "12.5.3", "1,5", "80左右多", ">=80", dt.date(2024, 1, 1), "1e999",
               float("inf")]


@pytest.mark.parametrize("raw, expected", NUMBERS)
def test_parse_number(raw, expected):
    value, problem = parse_number(raw)
    assert problem is None
    assert same(value, expected)


@pytest.mark.parametrize("raw", BAD_NUMBERS)
def test_parse_number_problems(raw):
    value, problem = parse_number(raw)
    assert math.isnan(value) and problem


@pytest.mark.parametrize("raw, expected, ok", [
    ("541.71万元", 541.71, True), ("541.71万", 541.71, True), (12.3, 12.3, True), ("12345元", math.nan, False),
    ("50%", math.nan, False),
])
def test_parse_amount(raw, expected, ok):
    value, problem = parse_amount(raw)
    assert same(value, expected) and (problem is None) == ok


@pytest.mark.parametrize("raw, expected, ok", [
    (30, 30.0, True), (2023.0, 2023.0, True), ("2023年", 2023.0, True), ("28人", 28.0, True), (None, math.nan, True),
    (28.5, math.nan, False), ("两人", math.nan, False),
])
def test_parse_int(raw, expected, ok):
    value, problem = parse_int(raw)
    assert same(value, expected) and (problem is None) == ok


PERCENTS = [
    (75, 0.75), ("75", 0.75), ("75%", 0.75), ("７５％", 0.75), (0.75, 0.75), ("0.75", 0.75), (100, 1.0),
    (1, 1.0), ("0.5%", 0.005), ("97.6", 0.976), (0, 0.0), (None, math.nan), ("—", math.nan), ("5‰", 0.005),
]


@pytest.mark.parametrize("raw, expected", PERCENTS)
def test_parse_percent(raw, expected):
    value, problem = parse_percent(raw)
    assert problem is None
    assert same(value, expected)


@pytest.mark.parametrize("raw", ["75次", "很好", True])
def test_parse_percent_problems(raw):
    value, problem = parse_percent(raw)
    assert math.isnan(value) and problem


CHOICES = [
    ("是", YES_NO, "是"), ("Y", YES_NO, "是"), ("y", YES_NO, "是"), ("√", YES_NO, "是"), (True, YES_NO, "是"),
    ("否", YES_NO, "否"), ("N", YES_NO, "否"), ("×", YES_NO, "否"), (" 否 ", YES_NO, "否"),
    ("达成", CONCLUSIONS, "达成"), ("完成", CONCLUSIONS, "达成"), ("已达成", CONCLUSIONS, "达成"),
    ("部分完成", CONCLUSIONS, "部分达成"), ("部分达成", CONCLUSIONS, "部分达成"), ("未完成", CONCLUSIONS, "未达成"),
    (">=", COMPARATORS, "≥"), ("≥", COMPARATORS, "≥"), ("大于等于", COMPARATORS, "≥"), ("不低于", COMPARATORS, "≥"),
    ("<=", COMPARATORS, "≤"), ("不高于", COMPARATORS, "≤"), ("不超过", COMPARATORS, "≤"),
    ("=", COMPARATORS, "＝"), ("＝", COMPARATORS, "＝"), ("等于", COMPARATORS, "＝"),
    (">", COMPARATORS, "＞"), ("＞", COMPARATORS, "＞"), ("<", COMPARATORS, "＜"), ("＜", COMPARATORS, "＜"),
    ("定性", COMPARATORS, "定性"),
    ("基本支出—人员经费", SPENDING_CATEGORIES, "基本支出-人员经费"), ("基本支出 - 公用经费", SPENDING_CATEGORIES,
                                                         "基本支出-公用经费"),
    ("人员经费", SPENDING_CATEGORIES, "基本支出-人员经费"), ("项目支出", SPENDING_CATEGORIES, "项目支出"),
    ("因公出国(境)费", SANGONG_ITEMS, "因公出国（境）费"), ("期末", AGGREGATIONS, "期末"),
    (None, YES_NO, None), ("", YES_NO, None), ("  ", COMPARATORS, None),
]


@pytest.mark.parametrize("raw, choices, expected", CHOICES)
def test_parse_choice(raw, choices, expected):
    assert parse_choice(raw, choices) == (expected, None)


@pytest.mark.parametrize("raw, choices", [("也许", YES_NO), ("基本达成", CONCLUSIONS), ("≥80", COMPARATORS),
                                          ("差不多", SPENDING_CATEGORIES), ("Y", CONCLUSIONS)])
def test_parse_choice_problem_lists_allowed_values(raw, choices):
    value, problem = parse_choice(raw, choices)
    assert value is None
    assert all(c in problem for c in choices)


@pytest.mark.parametrize("raw, expected", [
    (None, None), ("  ", None), (" 张三 ", "张三"), (430399001.0, "430399001"), (430399001, "430399001"),
    (12.5, "12.5"), (dt.datetime(2024, 1, 15), "2024-01-15"),
])
def test_parse_text(raw, expected):
    assert parse_text(raw) == (expected, None)


@pytest.mark.parametrize("raw, expected", [
    (None, None), (80, 80.0), (" ≥80次 ", "≥80次"), ("达成", "达成"), (0.95, 0.95),
])
def test_parse_value(raw, expected):
    assert parse_value(raw) == (expected, None)


@pytest.mark.parametrize("raw, expected", [
    (dt.datetime(2024, 1, 15, 0, 0), dt.date(2024, 1, 15)), ("2024-01-15", dt.date(2024, 1, 15)),
    ("2024/1/5", dt.date(2024, 1, 5)), ("2024年1月15日", dt.date(2024, 1, 15)), (45306, dt.date(2024, 1, 15)),
    (None, None),
])
def test_parse_date(raw, expected):
    assert parse_date(raw) == (expected, None)


raw_values = st.one_of(st.none(), st.text(), st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                       st.booleans(), st.dates(), st.datetimes(), st.decimals(), st.complex_numbers())


@settings(max_examples=400, deadline=None)
@given(raw_values)
def test_parsers_never_raise(raw):
    for parse in (parse_number, parse_amount, parse_int, parse_percent, parse_text, parse_value, parse_date):
        value, problem = parse(raw)
        assert problem is None or isinstance(problem, str)
    for choices in (YES_NO, COMPARATORS, CONCLUSIONS, SPENDING_CATEGORIES):
        value, problem = parse_choice(raw, choices)
        assert value is None or value in choices


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_parse_number_roundtrips_formatted_text(x):
    assert parse_number(f"{x:,.2f}")[0] == pytest.approx(round(x, 2))


# --- stage_file -----------------------------------------------------------------------------------------------


def stage(path):
    src, load_issues = load_file(path, path.parent)
    staged, issues = stage_file(src)
    return staged, load_issues + issues


def flat(issues):
    return [(i.sheet, i.cell, i.code) for i in issues]


def test_budget_file_stages_cleanly(tmp_path):
    staged, issues = stage(budget_book(tmp_path / "b.xlsx"))
    assert issues == []
    lines = staged.tables["预算执行"]
    assert list(lines["支出类别"]) == ["基本支出-人员经费", "基本支出-公用经费", "项目支出"]
    assert list(lines["_row"]) == [3, 4, 5]
    assert list(lines["实际支出数"]) == [298.5, 49.0, 100.0]
    assert lines["项目名称"].iloc[0] is None and math.isnan(lines["上年结转数"].iloc[0])
    assert staged.tables["管理情况"]["得分比例"].tolist() == [0.9]
    assert staged.kv["其他指标"]["政府采购实际金额"] == 24.5
    assert staged.kv_cells["单位信息"]["单位编码"] == "B3"
    assert staged.colmaps["预算执行"]["实际支出数"] == "I"
    assert staged.template_type == "预算执行表" and staged.template_version == "2023.1"
    assert staged.tables["月度支出"].empty and "1月" in staged.tables["月度支出"].columns


def test_header_moved_down_and_columns_reordered(tmp_path):
    order = ["实际支出数", "支出类别", "全年预算数", "年初预算数", "项目名称"]
    staged, issues = stage(budget_book(tmp_path / "b.xlsx", offset=4, order=order,
                                       extra={"我的备注": ["a", "b", "c"]}))
    assert issues == []
    lines = staged.tables["预算执行"]
    assert list(lines["_row"]) == [6, 7, 8]  # title row 1, three inserted rows, header on row 5
    assert list(lines["实际支出数"]) == [298.5, 49.0, 100.0]
    assert list(lines["项目名称"])[2] == "执法专项"
    assert staged.colmaps["预算执行"] == {"实际支出数": "A", "支出类别": "B", "全年预算数": "C", "年初预算数": "D",
                                        "项目名称": "E"}
    assert "我的备注" not in lines.columns and lines["预算调增数"].isna().all()


def test_unparseable_amount_names_the_cell(tmp_path):
    lines = [dict(line) for line in BUDGET_LINES]
    lines[2]["预算调增数"] = "十万"
    staged, issues = stage(budget_book(tmp_path / "b.xlsx", lines=lines))
    assert flat(issues) == [("预算执行", "F5", "bad-number")]
    assert issues[0].value == "十万" and issues[0].severity == "错误" and "F5" in issues[0].message
    assert math.isnan(staged.tables["预算执行"]["预算调增数"].iloc[2])


def test_required_blank_bad_choice_and_project_name(tmp_path):
    lines = [
        {"支出类别": "基本支出-人员经费", "年初预算数": 1, "全年预算数": 1},                    # row 3: 实际支出数 blank
        {"支出类别": "办公", "年初预算数": 1, "全年预算数": 1, "实际支出数": 1},               # row 4: bad choice
        {"支出类别": "项目支出", "年初预算数": 1, "全年预算数": 1, "实际支出数": 1},           # row 5: 项目名称
        {"支出类别": "项目支出", "项目名称": "x", "重点项目": "也许", "年初预算数": 1, "全年预算数": 1,
         "实际支出数": 1},                                                                 # row 6: 重点项目
    ]
    _staged, issues = stage(budget_book(tmp_path / "b.xlsx", lines=lines))
    assert flat(issues) == [
        ("预算执行", "I3", "required-blank"), ("预算执行", "A4", "bad-choice"),
        ("预算执行", "B5", "project-name-missing"), ("预算执行", "C6", "bad-choice"),
    ]
    assert "基本支出-人员经费、基本支出-公用经费、项目支出" in issues[1].message


def test_subtotal_rows_dropped(tmp_path):
    stats = WORK + [{"统计项": "小计", "1月": 7, "2月": 6}, {"统计项": "投诉举报合计", "1月": 3}]
    lines = BUDGET_LINES + [["合计", None, None, None, 470.3, None, None, 470.3, 447.5]]
    w_staged, w_issues = stage(work_book(tmp_path / "w.xlsx", stats=stats))
    b_staged, b_issues = stage(budget_book(tmp_path / "b.xlsx", lines=lines))
    assert list(w_staged.tables["工作统计"]["统计项"]) == ["检查次数", "投诉举报合计"]
    assert [(i.severity, i.cell, i.code) for i in w_issues] == [("提示", "A4", "subtotal-row-dropped")]
    assert len(b_staged.tables["预算执行"]) == 3 and b_issues == []  # the template's own 合计 row: silent


def test_category_subtotal_in_budget_is_reported(tmp_path):
    lines = BUDGET_LINES + [["项目支出小计", None, None, None, 120.3, None, None, 120.3, 100]]
    staged, issues = stage(budget_book(tmp_path / "b.xlsx", lines=lines))
    assert len(staged.tables["预算执行"]) == 3
    assert flat(issues) == [("预算执行", "A6", "subtotal-row-dropped")]


def test_aggregation_choice_合计_is_not_a_subtotal(tmp_path):
    stats = [{"业务条线": None, "汇总方式": "合计", "统计项": "检查次数", "1月": 1}]
    staged, issues = stage(work_book(tmp_path / "w.xlsx", stats=stats, order=["汇总方式", "统计项", "1月"]))
    assert issues == [] and staged.tables["工作统计"]["汇总方式"].tolist() == ["合计"]


def test_blank_and_zero_only_rows_are_dropped(tmp_path):
    lines = BUDGET_LINES + [[None] * 11, [None, None, None, 0, None, None, None, 0, 0, 0]]
    staged, issues = stage(budget_book(tmp_path / "b.xlsx", lines=lines))
    assert len(staged.tables["预算执行"]) == 3 and issues == []


def test_missing_required_column(tmp_path):
    order = ["支出类别", "项目名称", "年初预算数", "全年预算数"]
    staged, issues = stage(budget_book(tmp_path / "b.xlsx", order=order))
    assert flat(issues) == [("预算执行", "", "missing-column")]
    assert "第 2 行" in issues[0].message and "实际支出数" in issues[0].message
    assert staged.tables["预算执行"]["实际支出数"].isna().all() and len(staged.tables["预算执行"]) == 3


def test_missing_sheet_and_unit_info_values(tmp_path):
    unit = {"单位名称": "甲", "单位编码": 430399001, "财年": "2023年"}
    path = write_xlsx(tmp_path / "b.xlsx", {"单位信息": kv_rows(BUDGET_EXECUTION, "单位信息", unit)},
                      meta_for(BUDGET_EXECUTION))
    staged, issues = stage(path)
    missing = sorted(i.sheet for i in issues if i.code == "missing-sheet")
    assert missing == ["三公经费", "其他指标", "管理情况", "预算执行"]  # 月度支出 is optional
    assert staged.unit_info["单位编码"] == "430399001" and staged.unit_info["财年"] == 2023
    assert staged.tables["预算执行"].empty


def test_unit_code_float_becomes_text(tmp_path):
    staged, _ = stage(targets_book(tmp_path / "t.xlsx", unit=dict(UNIT, 单位编码=430399001)))
    assert staged.unit_info["单位编码"] == "430399001"
    assert staged.unit_info["财年"] == 2023 and isinstance(staged.unit_info["财年"], int)


def test_targets_values_kept_raw(tmp_path):
    targets = [{"序号": 1, "一级指标": "产出", "二级指标": "数量指标", "三级指标": "检查", "比较符": ">=",
                "指标值": "≥80次", "实际完成值": 81}]
    staged, issues = stage(targets_book(tmp_path / "t.xlsx", targets=targets))
    row = staged.tables["绩效目标"].iloc[0]
    assert issues == []
    assert (row["一级指标"], row["比较符"], row["指标值"], row["实际完成值"]) == ("产出指标", "≥", "≥80次", 81.0)


# --- every cell by its field's parser -------------------------------------------------------------------------

TABLE_CELL = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans(),
    st.dates(), st.datetimes(), st.text(max_size=6),
    st.sampled_from(["", "  ", "—", "无", "12.5", "1,234", "(3)", "75%", "十万", "12345元", "81次", "项目支出",
                     "人员经费", "是", "Y", "也许", "≥80次", "达成", "2024-01-15", "合计", "注：略"]),
)
BUDGET_FIELDS = BUDGET_EXECUTION.sheet("预算执行").fields


def identical(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=100, deadline=None)
@given(body=st.lists(st.lists(TABLE_CELL, min_size=len(BUDGET_FIELDS), max_size=len(BUDGET_FIELDS)), max_size=6),
       formulas=st.sets(st.sampled_from([f"{col_letter(c)}{r}" for c in range(len(BUDGET_FIELDS)) for r in (2, 3, 4)]),
                        max_size=4))
def test_each_staged_value_is_its_fields_parse(body, formulas):
    """Whatever path a cell takes inside staging, its value is parse_field's (blank where that finds a problem, or
    where a formula left no saved result), and every such problem is reported at that cell."""
    grid = pd.DataFrame([[f.label for f in BUDGET_FIELDS], *body], dtype=object)
    grid.index = pd.RangeIndex(1, len(grid) + 1)
    src = SourceFile(path=Path("r.xlsx"), rel="r.xlsx", sha256="0", template=BUDGET_EXECUTION, meta={},
                     sheets={"预算执行": RawSheet("预算执行", grid)}, uncached_formulas={"预算执行": frozenset(formulas)})
    staged, issues = stage_file(src)
    table = staged.tables["预算执行"]
    at = {(i.sheet, i.cell, i.code) for i in issues}
    columns = {f.name: table[f.name].tolist() for f in BUDGET_FIELDS}
    assert table["_file"].tolist() == ["r.xlsx"] * len(table) and table["_sheet"].tolist() == ["预算执行"] * len(table)
    for k, row in enumerate(table["_row"].tolist()):
        for c, f in enumerate(BUDGET_FIELDS):
            raw, cell = body[row - 2][c], f"{col_letter(c)}{row}"
            value, problem = parse_field(f, raw)
            if is_blank(raw) and cell in formulas:
                value, problem = blank_value(f), "formula"
                assert ("预算执行", cell, "formula-no-value") in at
            elif problem is not None:
                value = blank_value(f)
                assert any(i.cell == cell and i.code.startswith("bad-") for i in issues)
            assert identical(columns[f.name][k], value), (f.name, raw, columns[f.name][k], value)


def test_tables_are_the_frames_of_their_columns():
    """Staged tables are built as pandas blocks (fast); each equals the frame the public constructor makes of its
    columns, one object or float Series each, with the same dtypes and blanks (None stays None in text columns)."""
    import pickle

    from pipeline.cli import EXAMPLE_INPUT
    from pipeline.load import discover
    from pipeline.run import load_and_stage

    for path in discover(EXAMPLE_INPUT):
        staged, _ = load_and_stage((str(path), str(EXAMPLE_INPUT)))
        for sheet, x in staged.tables.items():
            y = pd.DataFrame({c: pd.Series(x[c].tolist(), dtype=x[c].dtype) for c in x.columns})
            assert x.equals(y) and list(x.dtypes) == list(y.dtypes), sheet
            assert pickle.dumps(x.to_dict("list")) == pickle.dumps(y.to_dict("list")), sheet  # None vs NaN too
