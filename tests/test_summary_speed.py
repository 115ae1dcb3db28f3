"""The 汇总's speed paths (constant_memory): rows written out by `render._Sheet._write_single_row` are the XML
xlsxwriter's own method writes, texts found plain need none of xlsxwriter's escapes, whole 汇总 workbooks are the
same bytes on the fast and the stock (xlsxwriter's public methods) path, and the column lists the 汇总 is written
from hold the values of its rows."""

from __future__ import annotations

import io
import math
import random
import zipfile
from datetime import datetime
from itertools import pairwise

import numpy as np
import openpyxl
import pandas as pd
import pytest
import python_calamine
import xlsxwriter
from xlsxwriter.utility import _preserve_whitespace
from xlsxwriter.worksheet import Worksheet

from pipeline import render, summary
from pipeline.issues import error, info, issues_frame, warning
from pipeline.run import RunResult
from pipeline.unitstore import UnitStore


def _sheet_xml(path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml")


# (text, whether the fast path hands it to xlsxwriter's `_write_cell`): only texts that xlsxwriter's inline-string
# escapes could change, plus `_x` and line breaks, which the plain test does not look into.
TEXTS = [
    ("预算执行", False), ('quote"s', False), ("", False), ("a|b", False), ("a| b", False), ("x |y", False),
    ("长" * 20000, False), ("a" * 40000, False),  # truncated to 32,767 characters by write_string
    ("换行\n中间", True), ("_x00 不完整", True), ("a&b<c>", True), (" 前导空格", True), ("全角空格\u3000", True),
    ("行尾换行\n", True), ("_x0041_", True), ("控制\x01字符", True), ("非字符\uffff", True),
    ("<r><t>富文本</t></r>", True), ("尾随空格 ", True), ("\t制表", True),
]


def _streamed_sheet(path, worksheet_class) -> None:
    """A constant_memory sheet with every kind of cell, written row after row through xlsxwriter's methods."""
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                         "strings_to_formulas": False, "strings_to_urls": False})
    ws = wb.add_worksheet("表", worksheet_class=worksheet_class)
    bold, wrap = wb.add_format({"bold": True}), wb.add_format({"text_wrap": True, "border": 1})
    ws.set_row(0, 25)  # a row with a height and no cell: written out empty
    ws.set_row(3, 30)  # a row with cells and its own height
    for k, (text, _) in enumerate(TEXTS):
        ws.write_string(1 + k // 4, (k % 4) * 3, text, wrap if k % 2 else bold)  # 4 texts a row, columns apart
    row = 1 + len(TEXTS) // 4 + 1
    for j, number in enumerate([1.5, -0.0, 1e308, 123456789.125, 1 / 3, 0.1 + 0.2, -7]):
        ws.write_number(row, j, number, bold)
    ws.write_blank(row, 8, None, wrap)
    ws.write_blank(row, 9, None)  # no format: not stored
    ws.write_number(row + 1, 0, 2.5)  # no format
    ws.write_string(row + 1, 1, "无格式")  # no format
    ws.write_boolean(row + 1, 2, True, bold)
    ws.write_datetime(row + 1, 3, datetime(2024, 5, 1, 12, 30), bold)
    ws.write_rich_string(row + 1, 4, "普通", bold, "加粗", wrap)
    ws.write_url(row + 1, 5, "https://example.com/?a=1&b=2", wrap, string="打开")
    ws.write_string(row + 1, 30, "AE 列", bold)
    ws.write_string(row + 1, 16383, "最后一列", bold)
    for j, (text, cached) in enumerate([("=1+1", 2), ('=IF(A1>0,"优","差")', "优"), ("=A1>0", True),
                                        ("=1/0", "#DIV/0!"), ("=A1", ""), ('=A1&"<x>"', "a&<x>")]):
        ws.write_formula(row + 2, j, text, bold, cached)
    ws.write_comment(row + 3, 2, "批注")
    ws.write_string(row + 3, 0, "有批注的一行", wrap)
    wb.close()


def test_streamed_rows_are_xlsxwriters_own(tmp_path, monkeypatch):
    handed = []
    stock = Worksheet._write_cell
    monkeypatch.setattr(render._Sheet, "_write_cell",
                        lambda self, row, col, cell: handed.append(cell) or stock(self, row, col, cell))
    _streamed_sheet(tmp_path / "fast.xlsx", render._Sheet)
    _streamed_sheet(tmp_path / "stock.xlsx", None)
    assert _sheet_xml(tmp_path / "fast.xlsx") == _sheet_xml(tmp_path / "stock.xlsx")
    special = [text for text, hand in TEXTS if hand]
    assert [c.string for c in handed if c.__class__.__name__ == "String" and c.format is not None] == special
    # and the number, string without a format, boolean, datetime and rich string
    assert sorted(c.__class__.__name__ for c in handed if c.format is None or c.__class__.__name__ != "String") == [
        "Boolean", "Datetime", "Number", "RichString", "String"]


def test_streamed_rows_hold_the_written_values(tmp_path):
    _streamed_sheet(tmp_path / "fast.xlsx", render._Sheet)
    ws = openpyxl.load_workbook(tmp_path / "fast.xlsx")["表"]
    assert ws.cell(2, 1).value == "预算执行" and ws.cell(2, 4).value == 'quote"s'
    assert ws.cell(3, 10).value == "a" * 32767
    assert [ws.cell(4, 1 + 3 * j).value for j in range(4)] == ["换行\n中间", "_x00 不完整", "a&b<c>", " 前导空格"]
    assert ws.row_dimensions[4].height == 30


ALPHABET = ["a", "中", "x", "_", "0", "4", "F", "|", "r", "/", '"', "&", "<", ">", " ", "\t", "\n", "\r", "\x0b",
            "\x0c", "\x1c", "\x1f", "\x00", "\x01", "\x85", "\xa0", "\u2028", "\u3000", "\ufffe", "\uffff"]


def _needs_no_escape(text: str) -> bool:
    """xlsxwriter's inline string writing changes nothing and adds no xml:space (its own functions)."""
    escaped = Worksheet()._escape_data(Worksheet._escape_control_characters(text))
    return escaped == text and not _preserve_whitespace(text) and not render._SPECIAL_TEXT.search(text)


def test_plain_texts_need_no_escape():
    rng = random.Random(11)
    common = ALPHABET[:10]  # mostly plain characters: both answers occur often
    texts = ["".join(rng.choice(common if rng.random() < 0.8 else ALPHABET) for _ in range(rng.randint(0, 8)))
             for _ in range(20000)]
    plain = [t for t in texts if render._is_plain(t)]
    assert len(plain) > 3000 and len(texts) - len(plain) > 3000
    assert all(_needs_no_escape(t) for t in plain)
    for k in range(0, len(texts) - 4, 4):
        row = texts[k:k + 4]
        if render._all_plain(row):
            assert all(render._is_plain(t) for t in row)
        else:  # a row found not plain has a text that is not, or a `|` in some text
            assert not all(render._is_plain(t) for t in row) or any("|" in t for t in row)
    assert render._is_plain("预算执行 说明") and render._is_plain("")
    assert not any(render._is_plain(t) for t in [" 前", "后 ", "_x00", "a&b", "换行\n", "全角\u3000"])
    assert render._all_plain(["甲", "乙", ""]) and not render._all_plain(["甲", " 乙"])
    assert not render._all_plain(["甲 ", "乙"]) and render._all_plain([])


# --- whole 汇总 workbooks ----------------------------------------------------------------------------------------

ODD_TEXTS = ["普通问题", "a&b<c>", "_x0041_", "控制\x01字符", " 前导", "尾随 ", "换行\n文本", "长" * 300, "|", "", "甲| 乙"]


def _evaluation(n_units: int, n_issues: int, seed: int) -> RunResult:
    rng = random.Random(seed)
    codes = [f"U{k:03d}" for k in range(n_units)]
    units = pd.DataFrame({"单位编码": codes, "财年": 2023,
                          "单位名称": [rng.choice(["一局", "二局&<三>", " 空格局", "局" * 30]) for _ in codes]})
    totals = pd.DataFrame({"单位编码": codes, "财年": 2023,
                           "总分": [rng.choice([95.5, 80.0, 61.25, math.nan]) for _ in codes],
                           "等级": [rng.choice(["优", "良", "中", None]) for _ in codes],
                           "过程": [rng.uniform(0, 40) for _ in codes]})
    indicators = pd.DataFrame([(c, 2023, m, rng.choice([90.0, 1e9, math.nan]), rng.choice([100.0, 0.0]))
                               for c in codes for m in summary.BUDGET_METHODS],
                              columns=["单位编码", "财年", "计算方法", "分子", "分母"])
    makers = [error, warning, info]
    issues = [makers[k % 3](f"code-{k % 5}", rng.choice(ODD_TEXTS), file=f"{rng.choice(ODD_TEXTS)}.xlsx",
                                 sheet=rng.choice(["预算执行", "表&1"]), cell=rng.choice(["A1", "", "C7"]),
                                 value=rng.choice(ODD_TEXTS), unit=rng.choice([*codes, ""]),
                                 year=2023 if rng.random() < 0.9 else None) for k in range(n_issues)]
    losses = pd.DataFrame(columns=summary.LOSS_TOTAL_COLUMNS)
    return RunResult(store=UnitStore.of(summary.unit_rows(units, totals, indicators)), losses=losses, issues=issues)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _font_rgb(cell) -> str | None:
    color = cell.font.color
    return color.rgb if color is not None and color.type == "rgb" else None


def _chunks(columns: dict[str, list], sizes: list[int]) -> list[dict[str, list]]:
    """The issues cut in chunks of `sizes` rows (so that runs of one severity cross chunk borders)."""
    edges = np.cumsum([0, *sizes]).tolist()
    return [{name: values[a:b] for name, values in columns.items()} for a, b in pairwise(edges) if b > a]


def _joined(chunks) -> dict[str, list]:
    chunks = list(chunks)
    return {name: [v for chunk in chunks for v in chunk[name]] for name in summary.ISSUE_COLUMNS}


def _write(tmp_path, monkeypatch, fast: bool, tables: dict, chunks: list[dict[str, list]],
           in_memory: bool = False):
    monkeypatch.setattr(render, "_FAST", fast)
    path = tmp_path / f"{fast}-{in_memory}" / "汇总.xlsx"
    return summary.write_summary({**tables, "数据问题": iter(chunks)}, path, 2023, in_memory)


def _parts(path) -> list[tuple[str, bytes]]:
    """A workbook's zip entries in order, uncompressed (in memory the fast path zips with ISA-L, the stock path
    with zipfile: the compressed bytes differ, nothing else)."""
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


@pytest.mark.parametrize("in_memory", [False, True], ids=["streamed", "in-memory"])
@pytest.mark.parametrize(("n_units", "n_issues", "sizes"), [(40, 300, [7, 60, 1, 232]), (3, 0, []), (0, 5, [5])])
def test_summary_is_the_same_on_the_fast_and_the_stock_path(tmp_path, monkeypatch, n_units, n_issues, sizes,
                                                            in_memory):
    tables = summary.summary_tables(_evaluation(n_units, n_issues, seed=n_units + n_issues), 2023)
    issues = _joined(tables["数据问题"])
    chunks = _chunks(issues, sizes)
    fast, stock = (_write(tmp_path, monkeypatch, f, tables, chunks, in_memory) for f in (True, False))
    if in_memory:
        assert _parts(fast) == _parts(stock)
    else:
        assert fast.read_bytes() == stock.read_bytes()
    sheet = openpyxl.load_workbook(fast)["数据问题"]
    rows = list(sheet.iter_rows(min_row=2))
    if not n_issues:
        assert [c.value for c in rows[0]][:1] == ["未发现数据问题"]
        return
    # Texts as xlsxwriter stores them (control characters as _xHHHH_, a literal _xHHHH_ as _x005F_xHHHH_), read back
    # by openpyxl as stored, but for its one step on shared strings: `x005F_` removed.
    stored = Worksheet._escape_control_characters
    escaped = (lambda v: stored(v).replace("x005F_", "")) if in_memory else stored
    assert [[c.value for c in r] for r in rows] == [[None if _missing(v) else escaped(v) for v in r]
                                                    for r in zip(*issues.values())]
    colours = {"错误": "FFC00000", "警告": "FFB45F06", "提示": None}  # Book's error / warning / text formats
    severity = summary.ISSUE_COLUMNS.index("严重程度")
    assert [_font_rgb(r[severity]) for r in rows] == [colours[r[severity].value] for r in rows]
    assert {r[severity].value for r in rows} == set(colours)


def _look(path) -> dict:
    """What a reader sees of a workbook: per sheet its values (as calamine decodes them, as Excel does: openpyxl
    reads escaped texts back differently from inline and shared strings), its cells' number format, font, fill,
    border and alignment, merged ranges, column widths, frozen panes, filter, print titles and charts (kind, data
    ranges)."""
    book, values = openpyxl.load_workbook(path), python_calamine.CalamineWorkbook.from_path(str(path))
    seen = {}
    for ws in book.worksheets:
        cells = [(c.coordinate, c.number_format, repr(c.font), repr(c.fill), repr(c.border), repr(c.alignment))
                 for row in ws.iter_rows() for c in row]
        cells.append(values.get_sheet_by_name(ws.title).to_python())
        charts = [(type(ch).__name__, [(s.val.numRef.f, s.cat.numRef.f if s.cat.numRef else s.cat.strRef.f)
                                        for s in ch.series]) for ch in ws._charts]
        seen[ws.title] = (cells, sorted(map(str, ws.merged_cells.ranges)),
                          {k: d.width for k, d in ws.column_dimensions.items()}, ws.freeze_panes, ws.auto_filter.ref,
                          ws.print_title_rows, charts)
    return seen


def test_a_summary_in_memory_shows_what_the_streamed_one_shows(tmp_path, monkeypatch):
    """The two ways of writing a 汇总 differ in how texts are stored (inline or shared) and in the order of the
    style records, never in what Excel shows."""
    tables = summary.summary_tables(_evaluation(40, 300, seed=1), 2023)
    chunks = _chunks(_joined(tables["数据问题"]), [7, 60, 1, 232])
    streamed, in_memory = (_write(tmp_path, monkeypatch, True, tables, chunks, m) for m in (False, True))
    with zipfile.ZipFile(streamed) as z:
        assert "xl/sharedStrings.xml" not in z.namelist()
    with zipfile.ZipFile(in_memory) as z:
        assert "xl/sharedStrings.xml" in z.namelist()
    seen = _look(streamed)
    assert len(seen) == 5 and sum(len(charts) for *_, charts in seen.values()) == 2
    assert _look(in_memory) == seen


def test_a_summary_fits_in_memory_up_to_2000_rows():
    """Its units count twice (排名 and 预算执行), every issue of the run once."""
    assert summary.IN_MEMORY_ROWS == 2000
    for units, issues, fits in [(40, 300, True), (900, 200, True), (900, 201, False), (1000, 0, True),
                                (1001, 0, False), (0, 2000, True), (0, 2001, False)]:
        result = _evaluation(units, issues, seed=3)
        assert summary.fits_in_memory(result, 2023) is fits, (units, issues)
        assert summary.fits_in_memory(result, 2022) is (issues <= 2000)  # no unit in 2022; the issues still count


def test_summary_values_are_the_rows_values():
    """The column lists the 汇总 is written from hold what `to_dict("records")` gives row by row, of the types the
    tables have (nullable integers with a gap, floats with NaN, texts with a gap, objects)."""
    frames = [
        pd.DataFrame({"排名": pd.array([1, None, 3], dtype="Int64"), "总分": [95.5, math.nan, 80.0],
                      "等级": pd.array(["优", None, "良"], dtype="str"), "o": ["x", None, 2.5],
                      "单位数": np.array([1, 2, 3], dtype=np.int64), "b": [True, False, True]}),
        pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}),
    ]
    for frame in frames:
        records = frame.to_dict("records")
        expected = [[r[name] for r in records] for name in frame.columns]
        got = summary._values(frame)
        assert len(got) == len(expected)
        for values, wanted in zip(got, expected):
            assert [type(v) for v in values] == [type(v) for v in wanted]
            assert all(a is b or a == b or (_missing(a) and _missing(b)) for a, b in zip(values, wanted, strict=True))


def test_rows_already_written_out_are_left_as_xlsxwriter_leaves_them(tmp_path, monkeypatch):
    """In constant_memory mode a cell of a row written out is ignored (xlsxwriter's rule); the columns still grow."""
    data = {}
    for fast in (True, False):
        monkeypatch.setattr(render, "_FAST", fast)
        target = tmp_path / f"{fast}.xlsx"
        book = render.Book(target, "测试", constant_memory=True)
        ws = book.sheet("表")
        columns = [("名称", "text"), ("金额", "amount"), ("个数", "int")]
        book.grid(ws, 0, columns, [["甲", "乙&丙", None], [1.5, math.nan, -2.0], [3, None, True]], 3)
        book.rows(ws, 3, columns, [["迟到的很长很长的名称"], [1e9], [7]], 1)  # row 3 is being written: replaced
        book.rows(ws, 1, columns, [["已写出"], [2.0], [8]], 1)  # row 1 is written out: ignored
        widths = dict(book.widths["表"])
        book.close()
        data[fast] = (target.read_bytes(), widths)
    assert data[True] == data[False]
    ws = openpyxl.load_workbook(io.BytesIO(data[True][0]))["表"]
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == [
        ["甲", 1.5, 3], ["乙&丙", None, None], ["迟到的很长很长的名称", 1e9, 7]]
    assert data[True][1][0] == 2 * 10 + 2  # ten wide characters, 2 more


def test_issue_chunks_are_the_issues_frame_rows():
    """issues_tables' columns are issues_frame's rows (pandas' sort: severity, 单位编码, 文件, 工作表, stable), with
    the unit's name and a blank 单位编码 as None; texts sorted without the frame, other values through it."""
    rng = random.Random(5)
    names = {"u1": "一局", "u2": "二局"}
    for _ in range(200):
        issues = [rng.choice([error, warning, info])(
            rng.choice(["a", "b"]), f"问题{k}", file=rng.choice(["f1.xlsx", "F2.xlsx", "", "甲.xlsx"]),
            sheet=rng.choice(["表", "sheet", ""]), cell=rng.choice(["A1", ""]), value=rng.choice(["", "x"]),
            unit=rng.choice(["u1", "u2", "u3", ""]), year=rng.choice([2023, 2023, 2022, None]))
            for k in range(rng.randint(0, 12))]
        if issues and rng.random() < 0.2:
            issues[0] = warning("odd", "原值不是文本", value=3.5, unit=rng.choice(["u1", None]), year=2023)
        kept = [i for i in issues if i.year == 2023 or (not i.unit and i.year is None)]
        chunks = list(summary.issues_tables(issues, lambda codes: {c: names[c] for c in codes if c in names}, 2023))
        if not kept:
            assert chunks == []
            continue
        frame = issues_frame(kept)
        codes = frame["单位编码"].tolist()
        expected = {**{name: frame[name].tolist() for name in summary.ISSUE_COLUMNS if name != "单位名称"},
                    "单位编码": [c or None for c in codes], "单位名称": [names.get(c) if c else None for c in codes]}
        (got,) = chunks
        assert list(got) == summary.ISSUE_COLUMNS
        for name in summary.ISSUE_COLUMNS:
            assert all(a is b or a == b or (_missing(a) and _missing(b))
                       for a, b in zip(got[name], expected[name], strict=True)), name
