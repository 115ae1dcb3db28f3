"""End to end on the shipped example: run the CLI, read the workbook back, check the figures by hand arithmetic.

Figures from the reference report (shared/reference): 三公经费 8.7 / 9.6 = 90.625% → 90.63% (the report printed
90.62%); 541.71 / 541.71 = 100%; 市场主体增长率 18.65 / 3 = 621.67% (the report printed 1000%); 12345 closing rate
2532 / 2753 = 91.97% (the report printed 93%); 522.30 + 26.32 − 5.10 = 543.52 ≠ 全年预算 541.71.
"""

import csv
from pathlib import Path

import openpyxl
import pytest

from pipeline.cli import EXAMPLE_INPUT, main

UNIT_BOOK = "430399001_湘潭市市场监督管理局高新分局_绩效评价.xlsx"


def sheet_records(ws, header_row: int = 1) -> list[dict]:
    """Rows of a sheet as dicts keyed by the header row's labels (robust to column order)."""
    rows = list(ws.iter_rows(min_row=header_row, values_only=True))
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[1:] if any(v is not None for v in r)]


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    code = main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(out)])
    return code, out


@pytest.fixture(scope="module")
def book(run_output):
    _, out = run_output
    return openpyxl.load_workbook(out / "2023" / UNIT_BOOK, data_only=True)  # cached values of formulas


def by_name(book) -> dict:
    return {r["三级指标"]: r for r in sheet_records(book["评分明细"]) if r.get("三级指标")}


def test_exit_code_and_files(run_output):
    code, out = run_output
    assert code == 0  # the example has warnings, no errors
    assert (out / "2023" / UNIT_BOOK).is_file()
    assert (out / "2023" / "评分明细.csv").is_file()


def test_required_sheets(book):
    for name in ("评价结果", "评分明细", "预算执行分析", "绩效目标完成", "工作统计汇总", "数据问题", "说明"):
        assert name in book.sheetnames


def test_sangong_control_rate_rounds_like_excel(book):
    row = by_name(book)["“三公经费”控制率"]
    assert row["实际完成值"] == "90.63%"          # 8.7 / 9.6 = 0.90625 → ROUND(…, 4) = 0.9063
    assert row["完成率"] == pytest.approx(0.9063)
    assert row["得分"] == pytest.approx(3.0)      # ≤ 100%: full 3 points


def test_budget_execution_rate(book):
    row = by_name(book)["预算执行率"]
    assert row["实际完成值"] == "100.00%"          # 541.71 / 541.71
    assert row["得分"] == pytest.approx(5.0)


def test_project_spending_zero_over_zero_is_100_percent(book):
    ws = book["预算执行分析"]
    cells = {ws.cell(r, 1).value: (ws.cell(r, 2).value, ws.cell(r, 3).value) for r in range(1, ws.max_row + 1)}
    value, state = cells["项目支出预算控制率"]
    assert value == pytest.approx(1.0) and state == "正常"  # 0 / 0 → 100%, as the report does, no #DIV/0!


def test_market_growth_completion(book):
    row = by_name(book)["市场主体增长率"]
    assert row["完成率"] == pytest.approx(6.2167)  # 18.65 / 3 = 6.21666… → 621.67%
    # 偏离度 (18.65 − 3) / 3 = 521.67% ≥ 500% → 30% of its points deducted
    assert "30%" in row["扣分说明"]


def test_12345_rate_from_statistics(book):
    targets = {r["三级指标"]: r for r in sheet_records(book["绩效目标完成"])}
    row = targets["12345热线办结率"]
    assert row["公式计算值"] == pytest.approx(91.97)   # 2532 / 2753 × 100 = 91.9724 → 91.97
    assert row["采用的实际完成值"] == "91.97%"
    assert row["填报实际值"] == 93


def test_budget_total_mismatch_points_at_its_cell(book):
    issues = sheet_records(book["数据问题"])
    hit = [i for i in issues if i["代码"] == "budget-total-mismatch"]
    assert len(hit) == 1
    assert (hit[0]["工作表"], hit[0]["单元格"], hit[0]["严重程度"]) == ("预算执行", "H2", "警告")
    assert "543.52" in hit[0]["问题"] and "541.71" in hit[0]["问题"]   # sheet totals: computed vs typed
    assert hit[0]["文件"] == "预算执行表_2023.xlsx"
    typed = [i for i in issues if i["代码"] == "actual-formula-mismatch"]
    assert typed and "91.97" in typed[0]["问题"] and typed[0]["单元格"] == "H10"


def test_total_is_sum_of_item_scores(book):
    rows = [r for r in sheet_records(book["评分明细"]) if r.get("指标编码") and r["指标编码"] != "合计"]
    assert sum(r["分值"] for r in rows) == pytest.approx(100.0)
    total = sum(r["得分"] for r in rows)
    ws = book["评价结果"]
    found = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(1, 20)}
    assert found["总分"] == pytest.approx(total, abs=1e-9)
    assert found["等级"] == ("优" if total >= 90 else "良" if total >= 80 else "中" if total >= 60 else "差")


def test_csv_is_utf8_bom_one_row_per_indicator(run_output, book):
    _, out = run_output
    raw = (out / "2023" / "评分明细.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    items = [r for r in sheet_records(book["评分明细"]) if r.get("指标编码") and r["指标编码"] != "合计"]
    assert len(rows) == len(items)
    assert {r["单位名称"] for r in rows} == {"湘潭市市场监督管理局高新分局"}


def test_framework_b_budget_execution_scores_ten(tmp_path):
    rules = Path(EXAMPLE_INPUT).parents[0] / "评分标准_B_自评表.xlsx"
    assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(tmp_path), "--rules", str(rules)]) == 0
    wb = openpyxl.load_workbook(tmp_path / "2023" / UNIT_BOOK, data_only=True)
    rows = [r for r in sheet_records(wb["评分明细"]) if r.get("三级指标") and "执行率" in r["三级指标"]]
    assert len(rows) == 1 and rows[0]["得分"] == pytest.approx(10.0)   # 541.71 / 541.71 × 10


def test_run_falls_back_to_example_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)          # no input/ here
    assert main(["run", "--output", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "使用内置示例" in said and "已写入" in said


def test_templates_command_writes_blank_templates(tmp_path, capsys):
    assert main(["templates", "--year", "2024", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["工作统计表_2024.xlsx", "绩效目标表_2024.xlsx", "预算执行表_2024.xlsx"]
    wb = openpyxl.load_workbook(tmp_path / "预算执行表_2024.xlsx")
    meta = {r[0]: r[1] for r in wb["_meta"].iter_rows(values_only=True)}
    assert str(meta["财年"]) == "2024"


def test_usage_errors_exit_2(tmp_path):
    assert main(["run", "--input", str(tmp_path / "nope")]) == 2
    assert main(["templates", "--year", "24"]) == 2
    assert main([]) == 2
