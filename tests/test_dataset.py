"""assemble: files joined into units by (单位编码, 财年), tables concatenated, cross-file issues."""

from __future__ import annotations

from xlsx_factory import UNIT, WORK, budget_book, targets_book, work_book

from pipeline.dataset import assemble
from pipeline.load import discover, load_file
from pipeline.staging import stage_file

OTHER_UNIT = {"单位名称": "乙单位", "单位编码": "430399002", "财年": 2023}


def run(root):
    staged, issues = [], []
    for path in discover(root):
        src, found = load_file(path, root)
        issues += found
        if src is not None:
            sf, found = stage_file(src)
            staged.append(sf)
            issues += found
    return assemble(staged, issues)


def flat(issues):
    return sorted((i.severity, i.code, i.file, i.unit) for i in issues)


def test_three_files_of_one_unit_joined_and_two_units_kept_apart(tmp_path):
    budget_book(tmp_path / "甲/预算.xlsx")
    targets_book(tmp_path / "甲/目标.xlsx")
    work_book(tmp_path / "甲/统计.xlsx")
    budget_book(tmp_path / "乙/预算.xlsx", unit=OTHER_UNIT, lines=[
        {"支出类别": "基本支出-人员经费", "年初预算数": 10, "全年预算数": 10, "实际支出数": 9}])
    targets_book(tmp_path / "乙/目标.xlsx", unit=OTHER_UNIT)
    ds = run(tmp_path)
    assert ds.issues == []
    assert ds.units[["单位编码", "财年", "单位名称"]].values.tolist() == [
        ["430399001", 2023, "测试市场监督管理局"], ["430399002", 2023, "乙单位"]]
    first = ds.units.iloc[0]
    assert first["政府采购预算数"] == 25.0 and first["_budget_file"] == "甲/预算.xlsx"
    assert first["_targets_file"] == "甲/目标.xlsx" and first["_work_stat_files"] == 1
    assert ds.units.iloc[1]["_work_stat_files"] == 0
    per_unit = ds.budget_lines.groupby("单位编码")["实际支出数"].sum().to_dict()
    assert per_unit == {"430399001": 298.5 + 49 + 100, "430399002": 9.0}
    assert list(ds.budget_lines.columns[:2]) == ["单位编码", "财年"]
    assert list(ds.budget_lines.columns[-3:]) == ["_file", "_sheet", "_row"]
    assert len(ds.sangong) == 8 and len(ds.targets) == 2 and len(ds.work_stats) == 1
    assert ds.monthly.empty and "12月" in ds.monthly.columns
    assert sorted(ds.files["文件"]) == ["乙/目标.xlsx", "乙/预算.xlsx", "甲/目标.xlsx", "甲/统计.xlsx", "甲/预算.xlsx"]
    assert ds.files.set_index("文件").loc["甲/统计.xlsx", "填报科室"] == "执法股"


def test_cell_and_where(tmp_path):
    budget_book(tmp_path / "b.xlsx", offset=3, order=["支出类别", "年初预算数", "全年预算数", "实际支出数", "项目名称"])
    targets_book(tmp_path / "t.xlsx")
    ds = run(tmp_path)
    row = ds.budget_lines.iloc[2]
    assert ds.cell(row, "实际支出数") == "D7"  # header on row 4, third line on row 7
    assert ds.where(row, "实际支出数") == {"file": "b.xlsx", "sheet": "预算执行", "cell": "D7"}
    assert ds.cell(row, "备注") == ""  # column absent from this file
    assert ds.where(ds.units.iloc[0], "政府采购预算数") == {"file": "b.xlsx", "sheet": "其他指标", "cell": "B2"}


def test_unit_code_typed_as_number_joins_with_text_code(tmp_path):
    budget_book(tmp_path / "b.xlsx", unit=dict(UNIT, 单位编码=430399001))
    targets_book(tmp_path / "t.xlsx")
    ds = run(tmp_path)
    assert ds.units["单位编码"].tolist() == ["430399001"] and ds.issues == []


def test_unit_name_mismatch_warns_naming_both_files(tmp_path):
    budget_book(tmp_path / "b.xlsx")
    targets_book(tmp_path / "t.xlsx", unit=dict(UNIT, 单位名称="测试市监局"))
    ds = run(tmp_path)
    assert flat(ds.issues) == [("警告", "unit-name-mismatch", "t.xlsx", "430399001")]
    msg = ds.issues[0].message
    assert "b.xlsx" in msg and "t.xlsx" in msg and "测试市监局" in msg and ds.issues[0].cell == "B2"
    assert ds.units["单位名称"].tolist() == ["测试市场监督管理局"]


def test_two_budget_files_first_used_with_error(tmp_path):
    budget_book(tmp_path / "a.xlsx")
    budget_book(tmp_path / "b.xlsx", lines=[{"支出类别": "项目支出", "项目名称": "x", "年初预算数": 1,
                                             "全年预算数": 1, "实际支出数": 1}])
    targets_book(tmp_path / "t.xlsx")
    ds = run(tmp_path)
    assert flat(ds.issues) == [("错误", "duplicate-file", "b.xlsx", "430399001")]
    assert "a.xlsx" in ds.issues[0].message and "b.xlsx" in ds.issues[0].message
    assert set(ds.budget_lines["_file"]) == {"a.xlsx"} and set(ds.sangong["_file"]) == {"a.xlsx"}
    assert ds.files.set_index("文件")["_used"].to_dict() == {"a.xlsx": True, "b.xlsx": False, "t.xlsx": True}


def test_same_stat_item_in_two_work_files_warns_and_keeps_both(tmp_path):
    budget_book(tmp_path / "b.xlsx")
    targets_book(tmp_path / "t.xlsx")
    work_book(tmp_path / "w1.xlsx", section="甲股")
    work_book(tmp_path / "w2.xlsx", section="乙股", stats=[{"统计项": "其他"}, *WORK])
    ds = run(tmp_path)
    assert [(i.code, i.file, i.sheet, i.cell) for i in ds.issues] == [("duplicate-stat-item", "w2.xlsx", "工作统计", "A4")]
    assert ds.work_stats["统计项"].tolist() == ["检查次数", "其他", "检查次数"]


def test_unit_missing_templates_still_gets_a_row(tmp_path):
    work_book(tmp_path / "w.xlsx")
    ds = run(tmp_path)
    assert flat(ds.issues) == [("错误", "missing-template", "", "430399001")] * 2
    assert ds.units[["单位编码", "单位名称", "_budget_file"]].values.tolist() == [
        ["430399001", "测试市场监督管理局", None]]


def test_file_without_unit_key_left_out(tmp_path):
    budget_book(tmp_path / "b.xlsx")
    targets_book(tmp_path / "t.xlsx")
    work_book(tmp_path / "w.xlsx", unit={"单位名称": "测试市场监督管理局", "单位编码": None, "财年": 2023})
    ds = run(tmp_path)
    codes = [(i.code, i.file, i.cell) for i in ds.issues]
    assert ("required-blank", "w.xlsx", "B3") in codes and ("unit-key-missing", "w.xlsx", "B3") in codes
    assert ds.work_stats.empty and ds.files.set_index("文件").loc["w.xlsx", "_used"] == False  # noqa: E712


def test_earlier_issues_tagged_with_unit(tmp_path):
    budget_book(tmp_path / "b.xlsx", lines=[{"支出类别": "项目支出", "项目名称": "x", "年初预算数": "abc",
                                             "全年预算数": 1, "实际支出数": 1}])
    targets_book(tmp_path / "t.xlsx")
    ds = run(tmp_path)
    assert [(i.code, i.unit, i.year) for i in ds.issues] == [("bad-number", "430399001", 2023)]


def test_empty_input(tmp_path):
    ds = run(tmp_path)
    assert ds.units.empty and ds.files.empty and ds.budget_lines.empty and ds.issues == []
    assert list(ds.units.columns[:3]) == ["单位编码", "财年", "单位名称"]
