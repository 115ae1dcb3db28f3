"""The shortcuts that make reading and staging a workbook cheap give what the plain way gives: the memo of the parsed
workbook.xml / workbook.xml.rels / styles.xml (keyed by the parts' bytes), the grid built as one block, the
normalised-name memos and the staged tables built as blocks. Expectations are written by hand."""

from __future__ import annotations

import io
import math
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from xlsx_factory import write_xlsx

from pipeline.load import (
    RawSheet, SourceFile, _cells, _grid, _meta_key, _percent_styles_of, _sheet_key, _sheet_parts_of,
    _sheet_xml_facts, _values, _zip_precheck, load_file,
)
from pipeline.spec import BUDGET_EXECUTION, WORK_STATISTICS
from pipeline.staging import _kv_locations, stage_file
from pipeline.ziparchive import ZipReader

# --- a hand-made package: two sheets, four cell styles ----------------------------------------------------------

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_R_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_WORKBOOK = (f'<?xml version="1.0"?><workbook {_NS} {_R_NS}><sheets>'
             '<sheet name="数据" sheetId="1" r:id="rId1"/><sheet name="其他" sheetId="2" r:id="rId2"/>'
             '</sheets></workbook>')
_RELS = ('<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/>'
         '<Relationship Id="rId2" Type="worksheet" Target="/xl/worksheets/sheet2.xml"/></Relationships>')
# Cell styles 0..3: General, builtin 9 (0%), custom 164 (0.0%), builtin 2 (0.00).
_STYLES = (f'<?xml version="1.0"?><styleSheet {_NS}><numFmts count="1"><numFmt numFmtId="164" formatCode="0.0%"/>'
           '</numFmts><cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="9"/><xf numFmtId="164"/><xf numFmtId="2"/>'
           '</cellXfs></styleSheet>')
# The same four styles, but only style 3 shows a percentage.
_OTHER_STYLES = (f'<?xml version="1.0"?><styleSheet {_NS}><cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="0"/>'
                 '<xf numFmtId="2"/><xf numFmtId="10"/></cellXfs></styleSheet>')
_SHEET1 = (f'<?xml version="1.0"?><worksheet {_NS}><sheetData>'
           '<row r="1"><c r="A1" s="1"><v>0.5</v></c><c r="B1" s="2"><v>0.25</v></c><c r="C1" s="3"><v>2</v></c>'
           '<c r="D1"><f>A1+B1</f></c></row>'
           '<row r="2"><c r="A2" t="inlineStr"><is><t>项目支出</t></is></c></row>'
           '<row r="5" hidden="1"><c r="A5"><v>7</v></c></row>'
           '</sheetData><mergeCells count="1"><mergeCell ref="A2:A4"/></mergeCells></worksheet>')
_SHEET2 = f'<?xml version="1.0"?><worksheet {_NS}><sheetData><row r="1"><c r="A1" s="3"><v>1</v></c></row></sheetData></worksheet>'


def _package(styles: str = _STYLES, **replace: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(_package_bytes(styles, **replace)))


def _package_bytes(styles: str = _STYLES, **replace: str) -> bytes:
    parts = {"xl/workbook.xml": _WORKBOOK, "xl/_rels/workbook.xml.rels": _RELS, "xl/styles.xml": styles,
             "xl/worksheets/sheet1.xml": _SHEET1, "xl/worksheets/sheet2.xml": _SHEET2, **replace}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text.encode())
    return buf.getvalue()


def _facts(zf: zipfile.ZipFile) -> dict[str, tuple]:
    return {name: (sorted(f.percent), f.uncached, f.merged, f.hidden_rows)
            for name, f in _sheet_xml_facts(zf).items()}


def test_facts_of_a_hand_made_package():
    assert _facts(_package()) == {
        "数据": (["A1", "B1"], ["D1"], ["A2:A4"], [5]),
        "其他": ([], [], [], []),
    }


def test_sheet_parts_follow_relative_and_absolute_targets():
    parts = _sheet_parts_of(_WORKBOOK.encode(), _RELS.encode())
    assert dict(parts) == {"数据": "xl/worksheets/sheet1.xml", "其他": "xl/worksheets/sheet2.xml"}


def test_a_remembered_parse_is_the_fresh_parse_and_read_only():
    styles, book, rels = _STYLES.encode(), _WORKBOOK.encode(), _RELS.encode()
    _percent_styles_of(styles), _sheet_parts_of(book, rels)  # remembered from here on
    hits = _percent_styles_of.cache_info().hits, _sheet_parts_of.cache_info().hits
    again_styles, again_parts = _percent_styles_of(styles), _sheet_parts_of(book, rels)
    assert (_percent_styles_of.cache_info().hits, _sheet_parts_of.cache_info().hits) == (hits[0] + 1, hits[1] + 1)
    assert again_styles == _percent_styles_of.__wrapped__(styles) == frozenset({1, 2})
    assert dict(again_parts) == dict(_sheet_parts_of.__wrapped__(book, rels))
    with pytest.raises(TypeError):  # shared by every file with these parts: nobody may change it
        again_parts["数据"] = "xl/worksheets/sheet9.xml"
    assert _facts(_package()) == _facts(_package())


def test_the_memos_are_bounded():
    assert _percent_styles_of.cache_info().maxsize is not None and _sheet_parts_of.cache_info().maxsize is not None


def test_packages_differing_only_in_styles_get_their_own_percent_cells():
    assert _facts(_package())["数据"][0] == ["A1", "B1"]
    assert _facts(_package(_OTHER_STYLES))["数据"][0] == ["C1"]
    assert _facts(_package(_OTHER_STYLES))["其他"][0] == ["A1"]
    assert _facts(_package())["其他"][0] == []


def test_the_facts_are_the_same_through_either_zip_reader():
    """The precheck opens a plain package with ziparchive.ZipReader and anything else (here: bytes before the
    archive, which zipfile allows for) with zipfile; the facts read through either are the hand-made package's."""
    expected = {"数据": (["A1", "B1"], ["D1"], ["A2:A4"], [5]), "其他": ([], [], [], [])}
    problem, fast = _zip_precheck(_package_bytes())
    assert problem is None and isinstance(fast, ZipReader) and _facts(fast) == expected
    problem, slow = _zip_precheck(b"MZ stub before the archive" + _package_bytes())
    assert problem is None and isinstance(slow, zipfile.ZipFile) and _facts(slow) == expected


def test_a_large_part_is_parsed_but_not_kept():
    padded = _STYLES.replace("<cellXfs", "<!--" + "x" * (300 * 1024) + "--><cellXfs")
    before = _percent_styles_of.cache_info()
    assert _facts(_package(padded))["数据"][0] == ["A1", "B1"]
    after = _percent_styles_of.cache_info()
    assert (after.hits, after.misses, after.currsize) == (before.hits, before.misses, before.currsize)


def test_a_refused_part_is_refused_every_time():
    """A part declaring entities raises in the parser; the memo keeps no value for it, so every file carrying it is
    refused again (its facts dropped) rather than served a remembered answer."""
    laughs = _STYLES.replace("<styleSheet", '<!DOCTYPE x [<!ENTITY a "aa">]><styleSheet', 1)
    assert _sheet_xml_facts(_package(laughs)) == {}
    assert _sheet_xml_facts(_package(laughs)) == {}
    assert _sheet_xml_facts(_package()) != {}


def test_a_file_rewritten_in_place_is_read_afresh(tmp_path):
    """The memo is keyed by the parts' bytes, never by path: the same file name with another styles.xml (every
    style now General) has no percent cells any more."""
    path = write_xlsx(tmp_path / "w.xlsx", {"工作统计": [["统计项", "1月"], ["检查次数", 0.5]]},
                      meta={"模板类型": "工作统计表"})
    wb = load_workbook(path)
    wb["工作统计"]["B2"].number_format = "0%"
    wb.save(path)
    src, _ = load_file(path, tmp_path)
    assert src.percent_cells["工作统计"] == frozenset({"B2"})

    buf = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/styles.xml":
                data = re.sub(rb'numFmtId="\d+"', b'numFmtId="0"', data)
            zout.writestr(info, data)
    path.write_bytes(buf.getvalue())
    src, _ = load_file(path, tmp_path)
    assert src.percent_cells["工作统计"] == frozenset()
    assert src.sheets["工作统计"].grid.loc[2, 1] == 0.5


# --- grids --------------------------------------------------------------------------------------------------


def test_values_read_empty_as_none_and_pad_short_rows():
    values = _values([["a", "", 1.0], [""], [True, "b"], [0.0, False, 3]])
    assert values == [["a", None, 1.0], [None, None, None], [True, "b", None], [0.0, False, 3]]
    assert [type(v) for v in values[3]] == [float, bool, int]  # 0.0 and False are values, not empty cells
    cells = _cells(values)
    assert cells.dtype == object and cells.shape == (4, 3) and cells.tolist() == values


def test_grid_is_the_contracts_frame():
    grid = _grid(_cells(_values([["a", ""], ["", 2.5]])))
    assert list(grid.index) == [1, 2] and list(grid.columns) == [0, 1]
    assert grid.dtypes.eq(object).all()
    assert grid.loc[1, 0] == "a" and grid.loc[1, 1] is None and grid.loc[2, 0] is None and grid.loc[2, 1] == 2.5
    grid.at[2, 0] = "filled"  # merged text is filled in place
    assert grid.loc[2, 0] == "filled"


def test_grid_of_an_empty_sheet():
    grid = _grid(_cells([]))
    assert grid.empty and grid.shape == (0, 0) and list(grid.columns) == []


def test_sheet_from_values_reads_like_the_sheet_from_its_grid():
    values = [["统计项", None, "1月"], [None, None, None], ["检查次数", "执法", 7.0]]
    made = RawSheet("工作统计", values=[list(r) for r in values])
    given = RawSheet("工作统计", pd.DataFrame(values, index=pd.RangeIndex(1, 4), dtype=object))
    assert made.rows() == given.rows() == [(1, values[0]), (2, values[1]), (3, values[2])]
    assert made.grid.equals(given.grid) and list(made.grid.index) == [1, 2, 3]


def test_a_sheets_grid_once_built_holds_its_values():
    """The grid of a sheet made from values is built on first use; from then on rows() read the grid, so a value
    set in the grid (as a test or a caller may) is what staging reads."""
    sheet = RawSheet("工作统计", values=[["统计项"], [None]])
    assert sheet.grid is sheet.grid
    sheet.grid.at[2, 0] = "检查次数"
    assert sheet.rows() == [(1, ["统计项"]), (2, ["检查次数"])]


def test_a_sheet_is_made_from_a_grid_or_values():
    with pytest.raises(TypeError):
        RawSheet("工作统计")
    with pytest.raises(TypeError):
        RawSheet("工作统计", pd.DataFrame([[1]]), values=[[1]])


def test_only_the_sheets_staging_reads_are_converted(tmp_path, monkeypatch):
    """`_meta` and the first sheet of each spec sheet are read; the user's own sheet, 填表说明 and a second copy of
    a spec sheet are known by name only (and a duplicate is still reported)."""
    from pipeline import load

    path = write_xlsx(tmp_path / "w.xlsx", {
        "工作统计": [["统计项", "1月"], ["检查次数", 7]], "单位信息": [["单位名称", "某局"]],
        "我的草稿": [["随便写写", 1]], "填表说明": [["说明"]],
        "工作统计（2023）": [["统计项", "1月"], ["抽检", 3]],
    }, meta={"模板类型": "工作统计表"})
    read = []
    real = load._sheet_values
    monkeypatch.setattr(load, "_sheet_values", lambda book, name: read.append(name) or real(book, name))
    src, issues = load_file(path, tmp_path)
    assert read == ["_meta", "工作统计", "单位信息"]  # `_meta` first, then by workbook order
    assert [(i.code, i.sheet) for i in issues] == [("duplicate-sheet", "工作统计（2023）")]
    assert src.sheets["工作统计"].rows() == [(1, ["统计项", "1月"]), (2, ["检查次数", 7.0])]


def test_name_memos_normalise_like_the_spec():
    assert _sheet_key("预算执行（2023）") == _sheet_key("预算执行（2023）") == "预算执行"
    long_name = "预算执行" + " " * 40  # beyond Excel's 31 characters: normalised without the memo
    assert _sheet_key(long_name) == "预算执行"
    assert _meta_key(" 模板 类型 ") == "模板类型"
    assert _meta_key(2023) == "2023"  # not text: normalised without the memo
    assert _meta_key("模板类型" + "x" * 100) == "模板类型" + "x" * 100


# --- staging ------------------------------------------------------------------------------------------------


def _work_source(rows: list[list]) -> SourceFile:
    width = max(map(len, rows))
    grid = pd.DataFrame([row + [None] * (width - len(row)) for row in rows], dtype=object)
    grid.index = pd.RangeIndex(1, len(grid) + 1)
    return SourceFile(path=None, rel="w.xlsx", sha256="0", template=WORK_STATISTICS, meta={},
                      sheets={"工作统计": RawSheet("工作统计", grid)})


def test_complete_header_stops_the_search_and_ties_keep_the_first():
    labels = [f.name for f in WORK_STATISTICS.sheet("工作统计").fields]
    staged, _ = stage_file(_work_source([labels, list(reversed(labels))]))
    assert staged.colmaps["工作统计"]["统计项"] == "A"  # row 1, not the reversed copy on row 2


def test_a_partial_header_gives_way_to_a_complete_one_below():
    labels = [f.name for f in WORK_STATISTICS.sheet("工作统计").fields]
    staged, _ = stage_file(_work_source([["统计项"], labels, ["检查次数", "执法", "次", "合计", 7.0]]))
    assert staged.colmaps["工作统计"]["统计项"] == "A" and staged.colmaps["工作统计"]["1月"] == "E"
    assert staged.tables["工作统计"]["_row"].tolist() == [3]
    assert staged.tables["工作统计"]["1月"].tolist() == [7.0]


def test_kv_keys_are_found_by_column_label():
    grid = pd.DataFrame({1: ["430399001", None], 0: ["单位编码", "单位名称"]}, dtype=object)
    grid.index = pd.RangeIndex(3, 5)
    assert _kv_locations(RawSheet("单位信息", grid).rows()) == {"单位编码": (3, "430399001"), "单位名称": (4, None)}


def test_staged_table_equals_the_public_constructors_frame():
    """The table built from blocks is the frame the public constructor gives for the same columns: float64 for
    numeric fields (NaN blank), object elsewhere (None blank, never NaN), int64 `_row`, string column labels."""
    fields = BUDGET_EXECUTION.sheet("预算执行").fields
    header = [f.name for f in fields]
    body = {"支出类别": "项目支出", "项目名称": "执法专项", "年初预算数": 120.3, "全年预算数": 120.3, "实际支出数": 100}
    grid = pd.DataFrame([header, [body.get(h) for h in header]], dtype=object)
    grid.index = pd.RangeIndex(1, 3)
    src = SourceFile(path=None, rel="b.xlsx", sha256="0", template=BUDGET_EXECUTION, meta={},
                     sheets={"预算执行": RawSheet("预算执行（2023）", grid)})
    staged, _ = stage_file(src)
    table = staged.tables["预算执行"]
    numeric = {"年初预算数", "预算调增数", "预算调减数", "全年预算数", "上年结转数", "实际支出数", "结转结余数"}
    assert numeric == {f.name for f in fields if table[f.name].dtype == np.float64}
    expected = pd.DataFrame({
        **{h: pd.Series([float(body[h]) if h in body else math.nan], dtype=np.float64) if h in numeric
           else pd.Series([body.get(h)], dtype=object) for h in header},
        "_file": pd.Series(["b.xlsx"], dtype=object), "_sheet": pd.Series(["预算执行（2023）"], dtype=object),
        "_row": pd.Series([2], dtype=np.int64),
    })
    assert table.equals(expected) and list(table.dtypes) == list(expected.dtypes)
    assert table.columns.equals(expected.columns) and table.columns.dtype == expected.columns.dtype
    assert table["备注"].iloc[0] is None and math.isnan(table["上年结转数"].iloc[0])
    empty = staged.tables["月度支出"]
    assert empty.empty and empty["_row"].dtype == np.int64 and empty["1月"].dtype == np.float64


def test_staged_tables_do_not_share_their_column_labels():
    labels = [f.name for f in WORK_STATISTICS.sheet("工作统计").fields]
    a = stage_file(_work_source([labels, ["检查次数", "执法", "次", "合计", 7.0]]))[0].tables["工作统计"]
    b = stage_file(_work_source([labels, ["抽检", "执法", "次", "合计", 3.0]]))[0].tables["工作统计"]
    a.columns.name = "renamed"
    assert b.columns.name is None


def _with_damaged_sheet(path, member: str):
    """A copy of the workbook at `path` whose `member` (a worksheet's XML) is cut off mid-element."""
    with zipfile.ZipFile(path) as zin:
        entries = [(info, zin.read(info.filename)) for info in zin.infolist()]
    damaged = path.with_name("damaged_" + path.name)
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in entries:
            zout.writestr(info, data[:len(data) // 2] if info.filename == member else data)
    return damaged


def _three_sheet_workbook(tmp_path):
    # openpyxl numbers worksheets in workbook order: 工作统计 sheet1, 单位信息 sheet2, 我的草稿 sheet3, _meta sheet4
    return write_xlsx(tmp_path / "w.xlsx", {
        "工作统计": [["统计项", "1月"], ["检查次数", 7]], "单位信息": [["单位名称", "某局"]],
        "我的草稿": [["随便写写", 1]]}, meta={"模板类型": "工作统计表"})


def test_a_damaged_sheet_of_the_users_own_does_not_make_the_file_unreadable(tmp_path):
    """Only the sheets the template uses are parsed: a sheet the user added for their own notes that cannot be
    parsed is skipped, and the template's sheets are read as if it were sound."""
    path = _with_damaged_sheet(_three_sheet_workbook(tmp_path), "xl/worksheets/sheet3.xml")
    with pytest.raises(Exception):  # the damage is real: a reader that parses every sheet fails on it
        load_workbook(path)
    src, issues = load_file(path, tmp_path)
    assert src is not None and [i.code for i in issues] == []
    assert src.sheets["工作统计"].rows() == [(1, ["统计项", "1月"]), (2, ["检查次数", 7.0])]
    assert "我的草稿" not in src.sheets


def test_a_damaged_template_sheet_still_makes_the_file_unreadable(tmp_path):
    """…with the sheet named, so the user knows where to look."""
    path = _with_damaged_sheet(_three_sheet_workbook(tmp_path), "xl/worksheets/sheet1.xml")
    src, issues = load_file(path, tmp_path)
    assert src is None and [(i.code, i.sheet) for i in issues] == [("file-unreadable", "工作统计")]
    assert "damaged_w.xlsx 的工作表「工作统计」无法读取" in issues[0].message
