"""Every defect fixture (tests/fixtures/defects/, made by tests/make_fixtures.py) gives exactly the issues written
below, and never stops the batch: the example unit scored beside it gets the same total as when scored alone.

Adding a fixture adds a test; a fixture without a row in EXPECTED fails until its issues are written down by hand.
Tuples are (code, sheet, cell) of the issues raised for the fixture's own file(s).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline.framework import default_framework_path, load_framework
from pipeline.load import load_file
from pipeline.run import evaluate
from pipeline.staging import stage_file

REPO = Path(__file__).resolve().parent.parent
DEFECTS = REPO / "tests" / "fixtures" / "defects"
EXAMPLE = REPO / "input_templates" / "example"
EXAMPLE_CODE = "430399001"
DEFECT_CODE = "430399901"

# The example's first target (市场主体增长率, 指标值 3 vs 18.65 achieved) is set too low on purpose: every
# 绩效目标表 variant carries this 提示 from scoring.
TARGET_DEVIATION = ("target-deviation", "绩效目标", "H2")

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    "d01_数字带单位.xlsx": set(),
    "d02_全角数字.xlsx": set(),
    "d03_千分位.xlsx": set(),
    "d04_空白记号.xlsx": set(),
    "d05_括号负数.xlsx": set(),
    "d06_元填入万元列.xlsx": {("amount-in-yuan", "预算执行", "I2"), ("balance-mismatch", "预算执行", "J2")},
    "d07_指标值带比较符.xlsx": {("target-unit-conflict", "绩效目标", "F8"), TARGET_DEVIATION},
    "d08_选项空格同义词.xlsx": set(),
    "d09_表头下移.xlsx": set(),
    "d10_列顺序调换.xlsx": set(),
    "d11_用户自加列.xlsx": set(),
    "d12_合并单元格.xlsx": {("merged-cells-filled", "预算执行", "A4")},
    "d13_小计行.xlsx": {("subtotal-row-dropped", "预算执行", "A4")},
    "d14_隐藏行.xlsx": {("hidden-row", "预算执行", "A4")},
    "d15_工作表改名.xlsx": set(),
    "d16_公式有计算结果.xlsx": set(),
    "d17_公式无计算结果.xlsx": {("formula-no-value", "预算执行", "H3"), ("formula-no-value", "预算执行", "J2")},
    "d18_启用宏.xlsm": set(),
    "d19_旧版格式.xls": set(),
    "d20_不是工作簿.xlsx": {("file-unreadable", "", "")},
    "d21_下载不完整.xlsx": {("file-unreadable", "", "")},
    "d22_设置了密码.xlsx": {("file-encrypted", "", "")},
    "d23_空白模板.xlsx": {
        ("required-blank", "单位信息", "B1"), ("required-blank", "单位信息", "B2"),
        ("unit-key-missing", "单位信息", "B2"), ("management-missing", "管理情况", ""),
        *{("required-blank", "三公经费", f"{col}{row}") for col in "BC" for row in range(2, 6)},
        *{("required-blank", "管理情况", f"B{row}") for row in range(2, 10)},
    },
    "~$d24_锁文件.xlsx": set(),
    "d25_上年模板.xlsx": {("meta-year-mismatch", "单位信息", "B3")},
    "d26_旧版本模板.xlsx": {("template-version-old", "", "")},
    "d27_同一单位两份预算执行表": {("duplicate-file", "", "")},
    "d28_单位名称不一致": {("unit-name-mismatch", "单位信息", "B1"), TARGET_DEVIATION},
    "d29_百分比填小数.xlsx": {("percent-fraction-ambiguous", "绩效目标", "H3"), TARGET_DEVIATION},
    "d30_公式样文本.xlsx": set(),
}
# Severity of the issues that stop a unit from being scored cleanly.
ERRORS = {"d17_公式无计算结果.xlsx", "d20_不是工作簿.xlsx", "d21_下载不完整.xlsx", "d22_设置了密码.xlsx", "d23_空白模板.xlsx",
          "d27_同一单位两份预算执行表"}
UNREADABLE = {"d20_不是工作簿.xlsx", "d21_下载不完整.xlsx", "d22_设置了密码.xlsx"}

FIXTURES = sorted(DEFECTS.iterdir(), key=lambda p: p.name)


@pytest.fixture(scope="module")
def framework():
    fw, problems = load_framework(default_framework_path())
    assert fw is not None, problems
    return fw


@pytest.fixture(scope="module")
def example_total(framework):
    ev = evaluate(EXAMPLE, framework)
    totals = ev.scores.totals.set_index("单位编码")["总分"]
    return float(totals[EXAMPLE_CODE])


def copy_into(fixture: Path, folder: Path) -> None:
    if fixture.is_dir():
        shutil.copytree(fixture, folder / fixture.name)
    else:
        shutil.copyfile(fixture, folder / fixture.name)


def test_every_fixture_has_expectations():
    assert {p.name for p in FIXTURES} == set(EXPECTED)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_defect_issues_and_the_rest_of_the_batch_still_scores(tmp_path, fixture, framework, example_total):
    shutil.copytree(EXAMPLE, tmp_path / "example")
    copy_into(fixture, tmp_path)
    ev = evaluate(tmp_path, framework)
    own = [i for i in ev.issues if i.file == fixture.name or i.file.startswith(fixture.name + "/")]
    assert {(i.code, i.sheet, i.cell) for i in own} == EXPECTED[fixture.name]
    assert any(i.severity == "错误" for i in own) == (fixture.name in ERRORS)
    totals = ev.scores.totals.set_index("单位编码")["总分"]
    assert float(totals[EXAMPLE_CODE]) == example_total
    if fixture.name in UNREADABLE or fixture.name.startswith("~$") or fixture.name == "d23_空白模板.xlsx":
        assert DEFECT_CODE not in totals.index
    else:
        assert DEFECT_CODE in totals.index  # the defective unit itself is still scored


def test_every_message_says_where_and_how_in_chinese(tmp_path, framework):
    for fixture in FIXTURES:
        copy_into(fixture, tmp_path)
    ev = evaluate(tmp_path, framework)
    for i in ev.issues:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in i.message)
        assert i.message.endswith(("。", "）")), i.message


# --- the fixtures are what they claim to be, and the values come out right ---------------------------------


def stage(name: str):
    src, issues = load_file(DEFECTS / name, DEFECTS)
    staged, more = stage_file(src)
    return staged, issues + more


@pytest.mark.parametrize("name", ["d01_数字带单位.xlsx", "d02_全角数字.xlsx", "d04_空白记号.xlsx", "d09_表头下移.xlsx",
                                  "d10_列顺序调换.xlsx", "d11_用户自加列.xlsx", "d15_工作表改名.xlsx",
                                  "d16_公式有计算结果.xlsx", "d18_启用宏.xlsm", "d19_旧版格式.xls"])
def test_cleaned_budget_lines_equal_the_example(name):
    staged, _ = stage(name)
    t = staged.tables["预算执行"]
    # 人员经费 / 公用经费 / 项目支出 from the example, as typed (blanks where d04 typed —, /, 无, -)
    assert list(t["支出类别"]) == ["基本支出-人员经费", "基本支出-公用经费", "项目支出"]
    assert list(t["年初预算数"]) == [452.3, 70, 0]
    assert list(t["全年预算数"]) == [471.71, 70, 0]
    assert list(t["实际支出数"]) == [471.71, 70, 0]


def test_bracket_negative_and_thousands():
    staged, _ = stage("d05_括号负数.xlsx")
    assert list(staged.tables["预算执行"]["结转结余数"])[1] == -1.0
    staged, _ = stage("d03_千分位.xlsx")
    assert staged.kv["其他指标"]["固定资产总额"] == 1320.5 and staged.kv["其他指标"]["在用固定资产总额"] == 1298.6


def test_synonyms_and_spaces_read_as_the_choices():
    staged, _ = stage("d08_选项空格同义词.xlsx")
    assert list(staged.tables["预算执行"]["重点项目"])[2] == "否"
    conclusions = dict(zip(staged.tables["管理情况"]["评价内容"], staged.tables["管理情况"]["自评结论"]))
    assert conclusions["绩效指标明确性"] == "达成"        # 已完成
    assert conclusions["预决算信息公开性"] == "达成"      # "  达成"
    assert conclusions["基础信息完善性"] == "部分达成"    # 部分 达成


def test_merged_category_filled_into_both_project_lines():
    staged, _ = stage("d12_合并单元格.xlsx")
    t = staged.tables["预算执行"]
    assert list(zip(t["支出类别"], t["项目名称"]))[2:] == [("项目支出", "市场监管执法办案"), ("项目支出", "食品安全抽检")]


def test_percent_formatted_target_value_read_as_shown():
    staged, _ = stage("d29_百分比填小数.xlsx")
    actual = list(staged.tables["绩效目标"]["实际完成值"])
    assert actual[1] == 0.976   # General cell: kept, with a 警告
    assert actual[2] == 100     # 1 in a 0.0% cell shows 100.0%


def test_formula_fixtures_hold_what_they_claim():
    with zipfile.ZipFile(DEFECTS / "d16_公式有计算结果.xlsx") as zf:
        assert b'<f>H2-I2</f><v>0</v></c>' in zf.read("xl/worksheets/sheet2.xml")
    with zipfile.ZipFile(DEFECTS / "d17_公式无计算结果.xlsx") as zf:
        # an empty value element, whichever way the writer spells it (<v /> or <v></v>)
        assert re.search(rb"<f>E3\+F3-G3</f><v ?/>(</c>)|<f>E3\+F3-G3</f><v></v></c>", zf.read("xl/worksheets/sheet2.xml"))


def test_lock_file_is_not_read(tmp_path, framework):
    copy_into(DEFECTS / "~$d24_锁文件.xlsx", tmp_path)
    ev = evaluate(tmp_path, framework)
    assert ev.issues == [] and ev.dataset.files.empty


def test_fixtures_are_deterministic(tmp_path, monkeypatch):
    """Regenerating gives the same bytes (the .xls comes from LibreOffice, which stamps its own times)."""
    import make_fixtures

    monkeypatch.setattr(make_fixtures, "OUT", tmp_path)
    for make in make_fixtures.DEFECTS:
        if make is not make_fixtures.legacy_xls:
            make()
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (DEFECTS / p.relative_to(tmp_path)).read_bytes(), p.name


# --- a whole batch: two good units and every defect ---------------------------------------------------------


def test_batch_with_every_defect_runs_to_the_end(tmp_path, framework, example_total):
    """`python -m pipeline run` over two good units and every defect: exits 1, writes a workbook for every unit
    with a 单位编码, and each good unit scores exactly as when run alone."""
    inp, out = tmp_path / "input", tmp_path / "output"
    shutil.copytree(EXAMPLE, inp / "good1")
    second = _second_good_unit(inp / "good2")
    (inp / "defects").mkdir()
    for fixture in FIXTURES:
        copy_into(fixture, inp / "defects")
    alone = evaluate(second, framework).scores.totals.set_index("单位编码")["总分"]
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--input", str(inp), "--output", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    written = sorted(p.name for p in (out / "2023").glob("*.xlsx"))
    assert written == sorted([f"{EXAMPLE_CODE}_湘潭市市场监督管理局高新分局_绩效评价.xlsx",
                              "430399002_第二测试单位_绩效评价.xlsx",
                              f"{DEFECT_CODE}_湘潭市市场监督管理局高新分局_绩效评价.xlsx", "汇总.xlsx"])
    assert f"2023 {EXAMPLE_CODE} 湘潭市市场监督管理局高新分局：总分 {example_total:.2f}" in proc.stdout
    assert f"2023 430399002 第二测试单位：总分 {float(alone['430399002']):.2f}" in proc.stdout


def _second_good_unit(folder: Path) -> Path:
    """The example re-keyed to 430399002 / 第二测试单位, a unit scored only from files that are fine."""
    from openpyxl import load_workbook

    for src in EXAMPLE.rglob("*.xlsx"):
        dst = folder / src.relative_to(EXAMPLE)
        dst.parent.mkdir(parents=True, exist_ok=True)
        wb = load_workbook(src)
        wb["单位信息"]["B1"], wb["单位信息"]["B2"] = "第二测试单位", "430399002"
        wb.save(dst)
    return folder


def test_merged_number_stays_in_the_first_row(tmp_path):
    """Not a fixture of its own (a merged figure is rare): a number merged over two rows counts once, with a 警告."""
    from openpyxl import load_workbook

    wb = load_workbook(DEFECTS / "d12_合并单元格.xlsx")
    ws = wb["预算执行"]
    ws["E4"], ws["E5"] = 10, None
    ws.merge_cells("E4:E5")
    wb.save(tmp_path / "m.xlsx")
    src, issues = load_file(tmp_path / "m.xlsx", tmp_path)
    staged, _ = stage_file(src)
    assert [(i.severity, i.code, i.cell) for i in issues] == [("提示", "merged-cells-filled", "A4"),
                                                              ("警告", "merged-number", "E4")]
    first, second = list(staged.tables["预算执行"]["年初预算数"])[2:]
    assert first == 10 and second != second  # the covered cell is blank (NaN), never a second 10
