"""load: discovery, reading grids at Excel positions, template recognition, and bad files never raising."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import pytest
from openpyxl import load_workbook
from xlsx_factory import budget_book, targets_book, work_book, write_xlsx

from pipeline.load import discover, discover_paths, load_file


def test_discover_recursive_sorted_and_skips_locks_and_hidden(tmp_path):
    for rel in ["b.xlsx", "a/c.xlsm", "a/z.xls", "~$b.xlsx", ".hidden.xlsx", ".git/x.xlsx", "notes.txt",
                "a/~$c.xlsm", "A.XLSX"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)]
    assert found == ["A.XLSX", "a/c.xlsm", "a/z.xls", "b.xlsx"]


def test_discover_follows_linked_files_not_linked_folders_and_gives_text_paths(tmp_path, monkeypatch):
    """As Path.rglob did: a link to a workbook is a workbook, a link to a folder is not walked (a link back to a
    parent would walk forever); discover_paths gives the same paths as text, as the input folder was written."""
    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.xlsx").write_bytes(b"x")
    (tmp_path / "in" / "a" / "b.xlsx").write_bytes(b"x")
    (tmp_path / "in" / "link.xlsx").symlink_to(tmp_path / "elsewhere" / "x.xlsx")
    (tmp_path / "in" / "folder").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in", target_is_directory=True)
    (tmp_path / "in" / "dangling.xlsx").symlink_to(tmp_path / "gone.xlsx")
    root = tmp_path / "in"
    assert [p.relative_to(root).as_posix() for p in discover(root)] == ["a/b.xlsx", "link.xlsx"]
    assert discover_paths(root) == [os.path.join(str(root), "a", "b.xlsx"), os.path.join(str(root), "link.xlsx")]
    monkeypatch.chdir(tmp_path)
    assert discover_paths("./in/") == [os.path.join("in", "a", "b.xlsx"), os.path.join("in", "link.xlsx")]


def test_discover_skips_unreadable_folders_and_folders_named_like_workbooks(tmp_path, monkeypatch):
    """A folder that cannot be listed is skipped (the rest is still found), a folder named `x.xlsx` is walked as a
    folder, and the relative names iter_workbooks gives are those of the paths, with "/" at every depth. (Listing
    is refused by a patched os.scandir: permissions would not stop root, as CI runs.)"""
    from pipeline.load import iter_workbooks

    for rel in ["ok/deep/er/a.xlsx", "locked/b.xlsx", "x.xlsx/c.xlsx"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    real = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = sorted(iter_workbooks(tmp_path))
    expected = ["ok/deep/er/a.xlsx", "x.xlsx/c.xlsx"]
    assert [rel for rel, _ in found] == expected
    assert [path for _, path in found] == [os.path.join(str(tmp_path), *rel.split("/")) for rel in expected]


def test_discover_missing_folder_is_empty(tmp_path):
    assert discover(tmp_path / "nope") == []


def test_grid_keeps_excel_positions(tmp_path):
    # Nothing in row 1 or column A: calamine must still pad from A1 so that grid.loc[4, 2] is C4.
    path = write_xlsx(tmp_path / "w.xlsx", {"工作统计": [[], [], [], [None, None, "x"], [None, None, None, 5]]},
                      meta={"模板类型": "工作统计表"})
    src, issues = load_file(path, tmp_path)
    grid = src.sheets["工作统计"].grid
    assert issues == []
    assert list(grid.index) == [1, 2, 3, 4, 5] and list(grid.columns) == [0, 1, 2, 3]
    assert grid.loc[4, 2] == "x" and grid.loc[5, 3] == 5
    assert grid.loc[1, 0] is None and grid.dtypes.eq(object).all()


def test_budget_file_recognised_by_meta(tmp_path):
    path = budget_book(tmp_path / "sub" / "b.xlsx")
    src, issues = load_file(path, tmp_path)
    assert issues == []
    assert src.rel == "sub/b.xlsx" and src.path == path
    assert src.template.type == "预算执行表"
    assert src.meta["模板类型"] == "预算执行表" and src.meta["财年"] == 2023
    assert set(src.sheets) == {"单位信息", "预算执行", "三公经费", "其他指标", "管理情况"}
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_meta_recognised_by_sheet_names_with_warning(tmp_path):
    src, issues = load_file(targets_book(tmp_path / "t.xlsx", meta=False), tmp_path)
    assert src.template.type == "绩效目标表" and src.meta == {}
    assert [(i.severity, i.code, i.file) for i in issues] == [("警告", "meta-missing", "t.xlsx")]
    assert "缺少 _meta 工作表" in issues[0].message and "绩效目标表" in issues[0].message


def test_renamed_sheets_mapped_to_canonical_names(tmp_path):
    rename = {"预算执行": "预算执行（2023）", "三公经费": "三公经费 ", "管理情况": "管理情况2023年"}
    src, issues = load_file(budget_book(tmp_path / "b.xlsx", rename=rename, meta=False), tmp_path)
    assert src.template.type == "预算执行表"
    assert [i.code for i in issues] == ["meta-missing"]
    assert src.sheets["预算执行"].name == "预算执行（2023）"
    assert src.sheets["三公经费"].name == "三公经费 " and src.sheets["管理情况"].name == "管理情况2023年"


def test_duplicate_sheet_first_used_with_warning(tmp_path):
    path = write_xlsx(tmp_path / "w.xlsx", {"工作统计": [["统计项"]], "工作统计(2022)": [["统计项"]]},
                      meta={"模板类型": "工作统计表"})
    src, issues = load_file(path, tmp_path)
    assert src.sheets["工作统计"].name == "工作统计"
    assert [(i.code, i.sheet) for i in issues] == [("duplicate-sheet", "工作统计(2022)")]


def test_unrecognised_workbook(tmp_path):
    path = write_xlsx(tmp_path / "x.xlsx", {"Sheet1": [["hello"]]})
    src, issues = load_file(path, tmp_path)
    assert src is not None and src.template is None and src.sheets == {}
    assert [(i.severity, i.code) for i in issues] == [("错误", "template-unrecognised")]
    assert "Sheet1" in issues[0].message


def _truncated(tmp_path):
    data = work_book(tmp_path / "ok.xlsx").read_bytes()
    return data[: len(data) // 2]


def _bomb(_tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", b"0" * (20 * 1024 * 1024))  # 20 MiB → ~20 KiB
    return buf.getvalue()


@pytest.mark.parametrize("name, make, code", [
    ("text.xlsx", lambda _: "这不是工作簿".encode(), "file-unreadable"),
    ("empty.xlsx", lambda _: b"", "file-unreadable"),
    ("truncated.xlsx", _truncated, "file-unreadable"),
    ("encrypted.xlsx", lambda _: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "file-encrypted"),
    ("bomb.xlsx", _bomb, "file-suspicious"),
    ("garbage.xls", lambda _: os.urandom(2048), "file-unreadable"),
    ("zip-not-workbook.xlsx", lambda _: _plain_zip(), "file-unreadable"),
])
def test_bad_files_give_none_and_an_error(tmp_path, name, make, code):
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    before = path.read_bytes()
    src, issues = load_file(path, tmp_path)
    assert src is None
    assert [(i.severity, i.code, i.file) for i in issues] == [("错误", code, name)]
    assert issues[0].message.startswith(f"文件无法打开：{name}")
    assert path.read_bytes() == before  # inputs are never written


def _plain_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "hi")
    return buf.getvalue()


def test_unreadable_path_gives_error(tmp_path):
    src, issues = load_file(tmp_path / "gone.xlsx", tmp_path)
    assert src is None and issues[0].code == "file-unreadable"


# --- cell facts from the sheet XML ----------------------------------------------------------------------------


def test_percent_formats_and_formulas_without_results_found_per_cell(tmp_path):
    path = write_xlsx(tmp_path / "w.xlsx", {"工作统计": [["统计项", "1月", "2月", "全年"], ["检查次数", 0.5, 0.25],
                                                         ["抽检", 3, 4]]}, meta={"模板类型": "工作统计表"})
    wb = load_workbook(path)
    ws = wb["工作统计"]
    ws["B2"].number_format, ws["C2"].number_format, ws["B3"].number_format = "0%", "0.0%", "0.00%"  # 9, custom, 10
    ws["C3"].number_format = "@"
    ws["D2"], ws["D3"] = "=B2+C2", "=B3+C3"  # openpyxl saves no result
    wb.save(path)
    src, issues = load_file(path, tmp_path)
    assert issues == []
    assert src.percent_cells == {"工作统计": frozenset({"B2", "C2", "B3"})}
    assert src.uncached_formulas == {"工作统计": frozenset({"D2", "D3"})}


def test_sheet_without_formulas_or_percent_formats_has_no_cell_facts(tmp_path):
    src, issues = load_file(work_book(tmp_path / "w.xlsx"), tmp_path)
    assert issues == [] and set(src.percent_cells) == set(src.sheets) == {"单位信息", "工作统计"}
    assert not any(src.percent_cells.values()) and not any(src.uncached_formulas.values())


_ENTITIES = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
             '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>')


@pytest.mark.parametrize("part", ["xl/workbook.xml", "xl/styles.xml"])
def test_xml_entities_in_a_part_are_never_expanded(tmp_path, part):
    """An entity declaration (the "billion laughs" expansion) in a part read for the cell facts: those facts are
    dropped, the values are still read."""
    path = write_xlsx(tmp_path / "w.xlsx", {"工作统计": [["统计项", "1月"], ["检查次数", 0.5]]},
                      meta={"模板类型": "工作统计表"})
    wb = load_workbook(path)
    wb["工作统计"]["B2"].number_format = "0%"
    wb.save(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == part:
                text = data.decode()
                root_end = text.index(">", text.index("<", text.index("?>") + 2 if "?>" in text else 0))
                data = (_ENTITIES + text[:root_end + 1] + "<x>&c;</x>" + text[root_end + 1:]).encode()
            zout.writestr(info, data)
    path.write_bytes(buf.getvalue())
    src, issues = load_file(path, tmp_path)
    assert issues == [] and src.percent_cells == {} and src.uncached_formulas == {}
    assert src.sheets["工作统计"].grid.loc[2, 1] == 0.5
