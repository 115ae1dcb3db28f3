"""Generated templates and the shipped example: committed == generated, structure, and the example's figures.

Expected figures are the reference report's, typed here by hand, never read from the generator's own data.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
import python_calamine
from hypothesis import given
from hypothesis import strategies as st

from pipeline.example import split_by_month, write_example
from pipeline.spec import (
    BUDGET_EXECUTION, CHOICE, HELP_SHEET, META_SHEET, MONTHS, PERFORMANCE_TARGETS, TEMPLATES_BY_TYPE, UNIT_TEMPLATES,
    WORK_STATISTICS,
)
from pipeline.templates import generate_templates, template_filename, write_workbook

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "input_templates"
EXAMPLE_DIR = TEMPLATES_DIR / "example"
YEARS = (2023, 2024)
BLANK_FILES = [TEMPLATES_DIR / str(y) / template_filename(s, y) for y in YEARS for s in UNIT_TEMPLATES]
EXAMPLE_FILES = sorted(EXAMPLE_DIR.rglob("*.xlsx"))
ALL_FILES = BLANK_FILES + EXAMPLE_FILES


def _ids(paths):
    return [str(p.relative_to(TEMPLATES_DIR)) for p in paths]


def _meta(wb) -> dict:
    return {r[0]: r[1] for r in wb[META_SHEET].iter_rows(values_only=True) if r[0] is not None}


def _spec(wb):
    return TEMPLATES_BY_TYPE[_meta(wb)["模板类型"]]


def _records(ws, spec_sheet) -> list[dict]:
    """Data rows of a table sheet as {field name: value}, by header label; blank rows and 合计 rows left out."""
    header = [c.value for c in ws[1]]
    cols = {f.name: header.index(f.label) for f in spec_sheet.fields}
    rows = []
    for values in ws.iter_rows(min_row=2, values_only=True):
        record = {name: values[i] for name, i in cols.items()}
        if record[spec_sheet.fields[0].name] not in (None, "合计"):
            rows.append(record)
    return rows


def _kv(ws) -> dict:
    return {r[0].rstrip("*"): r[1] for r in ws.iter_rows(max_col=2, values_only=True) if r[0]}


def _total(records, field) -> float:
    return sum(r[field] or 0 for r in records)


# --- committed == generated -------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", YEARS)
def test_committed_blank_templates_equal_generated(year, tmp_path):
    written = generate_templates(year, tmp_path)
    committed = sorted(p.name for p in (TEMPLATES_DIR / str(year)).glob("*.xlsx"))
    assert sorted(p.name for p in written) == committed
    for path in written:
        assert path.read_bytes() == (TEMPLATES_DIR / str(year) / path.name).read_bytes(), path.name


def test_committed_frameworks_equal_generated(tmp_path):
    from pipeline.templates import write_framework_workbooks

    for path in write_framework_workbooks(tmp_path):
        assert path.read_bytes() == (TEMPLATES_DIR / path.name).read_bytes(), path.name


def test_committed_example_equals_generated(tmp_path):
    written = write_example(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in written) == sorted(p.relative_to(EXAMPLE_DIR) for p in EXAMPLE_FILES)
    for path in written:
        assert path.read_bytes() == (EXAMPLE_DIR / path.relative_to(tmp_path)).read_bytes(), path.name


def test_generation_is_deterministic_and_leaves_no_temp_files(tmp_path):
    first = [p.read_bytes() for p in generate_templates(2031, tmp_path / "a")]
    second = [p.read_bytes() for p in generate_templates(2031, tmp_path / "b")]
    assert first == second
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(template_filename(s, 2031) for s in UNIT_TEMPLATES)


# --- structure of every workbook --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=_ids(ALL_FILES))
def test_meta_sheet_is_hidden_and_complete(path):
    wb = openpyxl.load_workbook(path)
    assert wb[META_SHEET].sheet_state == "hidden"
    meta = _meta(wb)
    spec = TEMPLATES_BY_TYPE[meta["模板类型"]]
    assert meta["模板版本"] == spec.version
    assert meta["财年"] == (2023 if path.is_relative_to(EXAMPLE_DIR) else int(path.parent.name))
    assert meta["生成工具"] == "pipeline"
    assert _kv(wb["单位信息"])["财年"] == meta["财年"]
    assert [ws.title for ws in wb if ws.sheet_state == "visible"] == [s.name for s in spec.sheets] + [HELP_SHEET]


@pytest.mark.parametrize("path", ALL_FILES, ids=_ids(ALL_FILES))
def test_every_field_label_is_in_its_header(path):
    wb = openpyxl.load_workbook(path)
    for sheet in _spec(wb).sheets:
        ws = wb[sheet.name]
        if sheet.kind == "table":
            assert [c.value for c in ws[1]] == [f.label for f in sheet.fields]
        else:
            assert [ws.cell(i + 1, 1).value for i in range(len(sheet.fields))] == [f.label for f in sheet.fields]


@pytest.mark.parametrize("path", ALL_FILES, ids=_ids(ALL_FILES))
def test_choice_fields_have_dropdowns(path):
    wb = openpyxl.load_workbook(path)
    for sheet in _spec(wb).sheets:
        ws = wb[sheet.name]
        lists = [dv for dv in ws.data_validations.dataValidation if dv.type == "list"]
        for col, f in enumerate(sheet.fields, start=1):
            if f.kind != CHOICE:
                continue
            cell = ws.cell(2, col).coordinate if sheet.kind == "table" else f"B{col}"
            found = [dv for dv in lists if cell in dv.sqref]
            assert found, f"{sheet.name}!{cell} ({f.name}) has no dropdown"
            assert found[0].formula1.strip('"').split(",") == list(f.choices)


@pytest.mark.parametrize("path", BLANK_FILES, ids=_ids(BLANK_FILES))
def test_protection_locks_headers_and_opens_input_cells(path):
    wb = openpyxl.load_workbook(path)
    for sheet in _spec(wb).sheets:
        ws = wb[sheet.name]
        assert ws.protection.sheet and not ws.protection.password
        assert ws.protection.insertRows is False  # OOXML: False = inserting rows is allowed
        if sheet.kind == "table":
            assert ws["A1"].protection.locked
            free = next(i for i, f in enumerate(sheet.fields, 1) if f.name != sheet.fixed_key)
            assert not ws.cell(2, free).protection.locked
            assert ws.cell(2, free).fill.fgColor.rgb.endswith("FFF2CC")
        else:
            assert ws["A1"].protection.locked and not ws["B1"].protection.locked


@pytest.mark.parametrize("path", BLANK_FILES, ids=_ids(BLANK_FILES))
def test_help_sheet_explains_every_field(path):
    wb = openpyxl.load_workbook(path)
    labels = {ws_row[0] for ws_row in wb[HELP_SHEET].iter_rows(values_only=True)}
    for sheet in _spec(wb).sheets:
        assert {f.label for f in sheet.fields} <= labels


def test_blank_budget_template_prefills_fixed_rows_and_totals():
    wb = openpyxl.load_workbook(TEMPLATES_DIR / "2024" / "预算执行表_2024.xlsx")
    assert [ws_row[0] for ws_row in wb["三公经费"].iter_rows(min_row=2, max_row=6, values_only=True)] == [
        "因公出国（境）费", "公务用车购置费", "公务用车运行维护费", "公务接待费", "合计"]
    assert wb["三公经费"]["B6"].value == "=SUM(B2:B5)"
    assert wb["预算执行"]["E22"].value == "=SUM(E2:E21)"  # 20 blank input rows, then 合计


# --- safety -----------------------------------------------------------------------------------------------------


def test_user_text_is_never_a_formula(tmp_path):
    path = tmp_path / "t.xlsx"
    evil = '=HYPERLINK("http://example.com","点我")'
    write_workbook(WORK_STATISTICS, path, 2023, {"工作统计": [{"统计项": evil, "备注": "http://example.com"}]})
    ws = openpyxl.load_workbook(path)["工作统计"]
    assert ws["A2"].value == evil and ws["A2"].data_type == "s"
    assert not ws._hyperlinks


def test_unknown_field_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="年初预算"):
        write_workbook(BUDGET_EXECUTION, tmp_path / "t.xlsx", 2023, {"预算执行": [{"年初预算": 1}]})
    assert list(tmp_path.iterdir()) == []


# --- the example's figures, by hand from the reference report ---------------------------------------------------


@pytest.fixture(scope="module")
def budget_wb():
    return openpyxl.load_workbook(EXAMPLE_DIR / "预算执行表_2023.xlsx")


def test_example_budget_lines(budget_wb):
    rows = _records(budget_wb["预算执行"], BUDGET_EXECUTION.sheet("预算执行"))
    assert _total(rows, "年初预算数") == pytest.approx(522.30, abs=0.005)
    assert _total(rows, "预算调增数") == pytest.approx(26.32, abs=0.005)
    assert _total(rows, "预算调减数") == pytest.approx(5.10, abs=0.005)
    assert _total(rows, "全年预算数") == pytest.approx(541.71, abs=0.005)
    assert _total(rows, "实际支出数") == pytest.approx(541.71, abs=0.005)
    assert _total(rows, "上年结转数") == 0 and _total(rows, "结转结余数") == 0
    # The report's slip is kept: 522.30 + 26.32 − 5.10 = 543.52, not 541.71.
    assert 522.30 + 26.32 - 5.10 == pytest.approx(543.52)
    project = [r for r in rows if r["支出类别"] == "项目支出"]
    assert len(project) == 1 and project[0]["全年预算数"] == 0 and project[0]["重点项目"] == "否"


def test_example_sangong_and_cached_totals(budget_wb):
    rows = _records(budget_wb["三公经费"], BUDGET_EXECUTION.sheet("三公经费"))
    assert _total(rows, "预算数") == pytest.approx(9.6) and _total(rows, "实际支出数") == pytest.approx(8.7)
    # A reader without a calculation engine sees the cached value of the 合计 formulas.
    calamine = python_calamine.CalamineWorkbook.from_path(str(EXAMPLE_DIR / "预算执行表_2023.xlsx"))
    total = calamine.get_sheet_by_name("三公经费").to_python()[5]
    assert total[:3] == ["合计", pytest.approx(9.6), pytest.approx(8.7)]
    budget_total = calamine.get_sheet_by_name("预算执行").to_python()[21]
    assert budget_total[0] == "合计" and budget_total[4] == pytest.approx(522.30)


def test_example_unit_info_and_other_figures(budget_wb):
    info = _kv(budget_wb["单位信息"])
    assert (info["单位名称"], info["单位编码"], info["财年"]) == ("湘潭市市场监督管理局高新分局", "430399001", 2023)
    assert (info["编制人数"], info["年末在职人数"]) == (30, 28)
    other = {k.split("（")[0]: v for k, v in _kv(budget_wb["其他指标"]).items()}
    assert other == {"政府采购预算数": 25.0, "政府采购实际金额": 24.5, "固定资产总额": 320.5, "在用固定资产总额": 298.6}
    management = {r["评价内容"]: r for r in _records(budget_wb["管理情况"], BUDGET_EXECUTION.sheet("管理情况"))}
    assert management["资产管理制度健全性"]["自评结论"] == "部分达成"
    assert management["资产管理制度健全性"]["得分比例"] == 75
    assert [r["自评结论"] for r in management.values()].count("部分达成") == 3


def _work_stats() -> dict[str, list[dict]]:
    """填报科室 → raw rows (合计 rows kept, so that the test can see them)."""
    out = {}
    for path in sorted(EXAMPLE_DIR.rglob("工作统计表*.xlsx")):
        wb = openpyxl.load_workbook(path)
        ws = wb["工作统计"]
        header = [c.value for c in ws[1]]
        rows = [dict(zip(header, r)) for r in ws.iter_rows(min_row=2, values_only=True) if r[0] is not None]
        out[_kv(wb["单位信息"])["填报科室"]] = rows
    return out


def _month_sum(row) -> int:
    return sum(row[m] or 0 for m in MONTHS)


def test_example_work_statistics_sum_to_report_figures():
    stats = _work_stats()
    assert len(stats) >= 2
    by_name = {r["统计项*"]: r for rows in stats.values() for r in rows if r["统计项*"] != "合计"}
    expected = {"12345转办件数": 2753, "12345办结件数": 2532, "新登记经营主体户数": 1853, "新登记企业户数": 1235,
                "注销市场主体户数": 613, "特种设备监督检查次数": 81, "检查特种设备使用单位家次": 170,
                "主题宣传活动次数": 2, "检查餐饮服务经营者家次": 155, "食品经营许可新办户数": 134}
    assert {name: _month_sum(by_name[name]) for name in expected} == expected
    assert by_name["12345转办件数"]["12月"] is None  # the report covers 1-11月
    for month in MONTHS[:11]:  # a month cannot close more cases than it received, in this example
        assert by_name["12345办结件数"][month] <= by_name["12345转办件数"][month]
    for row in by_name.values():
        if row["全年"] is not None and row["汇总方式"] is None and any(row[m] is not None for m in MONTHS):
            assert row["全年"] == _month_sum(row), row["统计项*"]


def test_example_work_statistics_have_a_subtotal_row_and_a_stock_item():
    rows = [r for rows in _work_stats().values() for r in rows]
    assert any(r["统计项*"] == "合计" for r in rows)
    assert any(r["汇总方式"] == "期末" for r in rows)


def test_example_targets():
    wb = openpyxl.load_workbook(EXAMPLE_DIR / "绩效目标表_2023.xlsx")
    rows = {r["三级指标"]: r for r in _records(wb["绩效目标"], PERFORMANCE_TARGETS.sheet("绩效目标"))}
    hotline = rows["12345热线办结率"]
    assert (hotline["取数公式"], hotline["实际完成值"]) == ("[12345办结件数]/[12345转办件数]*100", 93)
    assert rows["特种设备监督检查次数"]["实际完成值"] == 81
    assert rows["市场主体增长率"]["实际完成值"] == 18.65
    assert rows["食品药品主题宣传活动次数"]["取数公式"] == "[主题宣传活动次数]"
    assert len(rows) == 10


@given(total=st.integers(0, 100_000), months=st.integers(1, 12))
def test_split_by_month_is_exact(total, months):
    parts = split_by_month(total, months)
    assert list(parts) == list(MONTHS[:months])
    assert sum(parts.values()) == total and min(parts.values()) >= 0
    assert parts == split_by_month(total, months)
