"""The workbook's formulas against LibreOffice: every formula cell, recalculated by LibreOffice (headless), equals the
value the pipeline cached in it; and editing an input cell moves the score as hand arithmetic says.

LibreOffice trusts the cached values of an .xlsx by default (Tools ▸ Options ▸ Calc ▸ Formula ▸ "Recalculation on
file load": never). Each run uses a fresh profile whose registrymodifications.xcu sets OOXMLRecalcMode = 0
(always recalculate), and `test_libreoffice_recalculates_planted_wrong_cache` proves that it does: a formula
cached with a wrong value comes back with the right one.

Without soffice the tests skip, except under CI=true, where they fail: CI installs libreoffice-calc-nogui.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from pipeline.cli import EXAMPLE_INPUT, main

UNIT_BOOK = "430399001_湘潭市市场监督管理局高新分局_绩效评价.xlsx"
FRAMEWORK_B = Path(EXAMPLE_INPUT).parent / "评分标准_B_自评表.xlsx"
EPOCH = "1700000000"
RECALC_ALWAYS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("soffice not found: CI must install libreoffice-calc-nogui to check the workbook formulas")
        pytest.skip("soffice (LibreOffice) not installed: formula recalculation not checked")
    return found


@pytest.fixture(scope="module")
def recalc(tmp_path_factory):
    """recalc(path) → path of a copy of the workbook saved by LibreOffice after a full recalculation."""
    exe = soffice()
    profile = tmp_path_factory.mktemp(f"lo_profile_{os.getpid()}")
    (profile / "user").mkdir()
    (profile / "user" / "registrymodifications.xcu").write_text(RECALC_ALWAYS, encoding="utf-8")

    def run(path: Path) -> Path:
        out = tmp_path_factory.mktemp("recalculated")
        proc = subprocess.run([exe, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
                               "--calc", "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                              capture_output=True, text=True, timeout=180)
        converted = out / Path(path).name
        assert converted.is_file(), f"LibreOffice did not convert {path}: {proc.stdout}\n{proc.stderr}"
        return converted

    return run


def formula_cells(path: Path) -> dict[tuple[str, str], str]:
    """(sheet, cell) → formula text of every formula cell."""
    wb = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row
            if c.data_type == "f"}


def values(path: Path) -> dict[str, openpyxl.worksheet.worksheet.Worksheet]:
    wb = openpyxl.load_workbook(path, data_only=True)
    return {ws.title: ws for ws in wb.worksheets}


def differences(original: Path, recalculated: Path) -> tuple[int, list[str]]:
    """(number of formula cells compared, one line per cell whose recalculated value differs from the cache)."""
    cells = formula_cells(original)
    cached, fresh = values(original), values(recalculated)
    diffs = []
    for (sheet, ref), text in sorted(cells.items()):
        a, b = cached[sheet][ref].value, fresh[sheet][ref].value
        same = (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=0,
                                                                                            abs_tol=1e-9)) or a == b
        if not same:
            diffs.append(f"{sheet}!{ref} {text}: cached {a!r}, recalculated {b!r}")
    return len(cells), diffs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The example scored under framework A and under framework B."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
    try:
        a, b = tmp_path_factory.mktemp("out_a"), tmp_path_factory.mktemp("out_b")
        assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(a)]) == 0
        assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(b), "--rules", str(FRAMEWORK_B)]) == 0
    finally:
        mp.undo()
    return {"A": a / "2023" / UNIT_BOOK, "B": b / "2023" / UNIT_BOOK}


def test_libreoffice_recalculates_planted_wrong_cache(tmp_path, recalc):
    path = tmp_path / "planted.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("S")
    ws.write_number(0, 0, 2)
    ws.write_formula(0, 1, "=A1*3", None, 999)                 # 2 × 3 = 6, cached wrong on purpose
    ws.write_formula(0, 2, '=IF(A1>1,"yes","no")', None, "no")  # 2 > 1 → yes
    wb.close()
    ws = values(recalc(path))["S"]
    assert (ws["B1"].value, ws["C1"].value) == (6, "yes")
    count, diffs = differences(path, recalc(path))
    assert count == 2 and len(diffs) == 2  # the comparison sees both planted errors


@pytest.mark.parametrize("framework", ["A", "B"])
def test_every_formula_recalculates_to_its_cached_value(outputs, recalc, framework):
    book = outputs[framework]
    count, diffs = differences(book, recalc(book))
    print(f"framework {framework}: {count} formula cells compared, {len(diffs)} differences")
    assert diffs == []
    # every scored item of the example is 正常 except A05 (不适用): 得分 and 完成率 of each item are formulas
    assert count >= (2 * 27 if framework == "A" else 2 * 11)


def _rows_by_name(ws) -> tuple[dict[str, int], dict[str, int]]:
    """(column letter index by header, Excel row by 三级指标) of 评分明细."""
    header = {c.value: c.column for c in ws[1]}
    rows = {ws.cell(r, header["三级指标"]).value: r for r in range(2, ws.max_row + 1)
            if ws.cell(r, header["三级指标"]).value}
    return header, rows


def _summary(ws) -> dict[str, object]:
    """评价结果: 总分 and 等级 (column B), and each 一级指标's 得分 (column C of its table)."""
    out = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(1, 12) if ws.cell(r, 1).value in ("总分", "等级")}
    top = next(r for r in range(1, 40) if ws.cell(r, 1).value == "一级指标")
    for r in range(top + 1, top + 10):
        if ws.cell(r, 1).value:
            out[ws.cell(r, 1).value] = ws.cell(r, 3).value
    return out


def test_changing_inputs_moves_scores_as_hand_arithmetic_predicts(outputs, recalc, tmp_path):
    before = values(outputs["A"])
    old_total = _summary(before["评价结果"])["总分"]
    old_levels = {k: v for k, v in _summary(before["评价结果"]).items() if k in ("投入", "过程", "产出", "效果")}

    wb = openpyxl.load_workbook(outputs["A"])
    ws = wb["评分明细"]
    col, row = _rows_by_name(ws)
    ws.cell(row["政府采购执行率"], col["计算值"]).value = 0.90   # was 98%: 比例 3 × 0.90 = 2.70 (was 2.94)
    ws.cell(row["在职人员控制率"], col["计算值"]).value = 1.05   # was 93.33%: 5 points over × 0.5 = 2.5 off → 2.50
    ws.cell(row["市场主体增长率"], col["计算值"]).value = 6      # was 18.65 (−30% for 偏离度): 6 / 3 = 200%,
    edited = tmp_path / "edited.xlsx"                           # 偏离度 100% < 200% → full share 6.00 (was 4.20)
    wb.save(edited)

    after = values(recalc(edited))
    ws = after["评分明细"]
    cell = lambda name, field: ws.cell(row[name], col[field]).value  # noqa: E731
    assert cell("政府采购执行率", "完成率") == pytest.approx(0.90, abs=1e-12)
    assert cell("政府采购执行率", "得分") == pytest.approx(2.70, abs=1e-9)
    assert cell("在职人员控制率", "完成率") == pytest.approx(1.05, abs=1e-12)
    assert cell("在职人员控制率", "得分") == pytest.approx(2.50, abs=1e-9)
    assert cell("市场主体增长率", "完成率") == pytest.approx(2.0, abs=1e-12)
    assert cell("市场主体增长率", "偏离度") == pytest.approx(1.0, abs=1e-12)
    assert cell("市场主体增长率", "偏离度扣减") == 0
    assert cell("市场主体增长率", "得分") == pytest.approx(6.00, abs=1e-9)
    summary = _summary(after["评价结果"])
    # 2.70 − 2.94 = −0.24; 2.50 − 5.00 = −2.50; 6.00 − 4.20 = +1.80; together −0.94
    assert summary["总分"] == pytest.approx(old_total - 0.94, abs=1e-9)
    assert summary["投入"] == pytest.approx(old_levels["投入"] - 2.50, abs=1e-9)
    assert summary["过程"] == pytest.approx(old_levels["过程"] - 0.24, abs=1e-9)
    assert summary["效果"] == pytest.approx(old_levels["效果"] + 1.80, abs=1e-9)
    assert summary["产出"] == pytest.approx(old_levels["产出"], abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Edge cases beyond the example: every comparator, tier boundaries, zero and negative figures, half-way rounding.

RATES = [-0.05, 0.0, 0.5, 0.59995, 0.6, 0.69994, 0.8, 0.90625, 0.99165, 1.0, 1.00005, 1.0125, 1.05, 1.2, 12.0]
TARGETS = [  # (比较符, 指标值, 实际完成值, 结论)
    ("≥", 3, 18.65, None), ("≥", 3, 9, None), ("≥", 3, 8.99985, None), ("≥", 80, 40, None), ("≥", 0, 5, None),
    ("≥", 0, -1, None), ("≥", -2, -3, None), ("＞", 10, 10, None), ("＞", 0, 0, None), ("＞", 2, 20, None),
    ("≤", 5, 0, None), ("≤", 5, 7, None), ("≤", 5, 4, None), ("≤", 0, 0, None), ("≤", 0, 1, None),
    ("＜", 5, 5, None), ("＜", 5, 6, None), ("＜", 2, 1, None), ("＝", 100, 100, None), ("＝", 100, 90, None),
    ("＝", 3, 4, None), ("＝", 0, 1, None), ("定性", float("nan"), float("nan"), "部分达成"),
    ("定性", float("nan"), float("nan"), "未达成"), ("≥", 7, 7.00035, None), ("≤", 5, -1, None), ("＜", 0, -2, None),
]


def _edge_details():
    import pandas as pd

    from pipeline.framework import framework_path, load_framework
    from pipeline.scoring import score_units

    fw, problems = load_framework(framework_path("A"))
    assert fw is not None, problems
    calcs = [r["计算方法"] for r in fw.rows.to_dict("records") if r["评分方法"] not in ("定性", "绩效目标")]
    items = [r["_params"]["项目"] for r in fw.rows.to_dict("records") if r["评分方法"] == "定性"]
    ind, man, tg = [], [], []
    for k, v in enumerate(RATES):
        unit = f"U{k:02d}"
        for calc in calcs:  # 结余控制 reads 分子 (结转结余) and 参照 (上年结转): both sides of the 次档 test
            ind.append(dict(单位编码=unit, 财年=2023, 计算方法=calc, 值=v, 分子=v * 10 - 2, 分母=10.0, 参照=3.005,
                            状态="正常", 说明="x"))
        for j, it in enumerate(items):
            concl = ("达成", "部分达成", "未达成")[(k + j) % 3]
            man.append(dict(单位编码=unit, 财年=2023, 评价内容=it, 自评结论=concl, 得分比例=(0.55, 0.755, float("nan"))[j % 3],
                            单元格="管理情况!C3", _file="f.xlsx"))
        for j, (op, t, a, concl) in enumerate(TARGETS[k::len(RATES)] + TARGETS[(k + 7) % len(TARGETS):][:2]):
            tg.append(dict(单位编码=unit, 财年=2023, 序号=j + 1, 一级指标=("产出指标", "效益指标")[j % 2], 二级指标="数量指标",
                           三级指标=f"指标{j}", 比较符=op, 计量单位="次", 分值=float(j + 1), 指标值=t, 实际完成值=a, 结论=concl,
                           指标值文本=None, 实际完成值文本=None, _file="t.xlsx", _sheet="绩效目标", _row=j + 2))
    scores = score_units(fw, pd.DataFrame(ind), pd.DataFrame(man), pd.DataFrame(tg))
    return fw, scores.details


def test_edge_cases_recalculate_to_the_python_scores(recalc, tmp_path):
    from pipeline.render import Book, UnitReport, _details_sheet

    fw, details = _edge_details()
    report = UnitReport(unit={}, total={}, details=details, indicators=None, budget_lines=None, sangong=None,
                        targets=None, work_stats=None, issues=[], files=None, framework=fw)
    path = tmp_path / "edges.xlsx"
    book = Book(path, "edges")
    _details_sheet(book, report)
    book.close()
    count, diffs = differences(path, recalc(path))
    print(f"edge cases: {count} formula cells compared, {len(diffs)} differences")
    assert diffs == []
    assert count > 2 * len(details) * 0.9
