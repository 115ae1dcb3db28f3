"""Render: the annotated unit workbook and 评分明细.csv. The only module that writes output files (with templates).

Every string that came from an input cell is written with `write_string`, and the workbook is opened with
`strings_to_formulas` / `strings_to_urls` off, so `=HYPERLINK(…)` typed by a user stays inert text.

Speed (a workbook per unit, thousands of units): tables are written from column lists (`Book.grid`), never through
pandas row access; on the pinned xlsxwriter version (`_FAST_XLSXWRITER`) the table cells go straight into the
worksheet's cell table, `<sheetData>` is written by `_Sheet` and plain shared strings by `_SharedStrings`, all
producing exactly the bytes xlsxwriter's own methods produce (tests/test_render.py compares the two paths). A text
cell is always a shared string: nothing is parsed as a formula, a number or a URL on either path. A unit's workbook
is built in memory and written to its file at once, its parts zipped by `ziparchive` (ISA-L's deflate) instead of
zipfile (`_Workbook`): the same parts, in the same order, only compressed faster. What the workbook and the Word
report (report.py) both derive from a unit's tables is computed once per unit (`UnitReport.derived`). A large 汇总
(summary.py) is streamed (`constant_memory`): its table cells go into the cell table of the row being written, which
`_Sheet._write_single_row` writes out, texts inline, when the next row starts (tests/test_summary_speed.py); a small
one is built in memory like a unit's workbook.
"""

from __future__ import annotations

import functools
import gc
import io
import math
import operator
import re
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter import packager as _xp
from xlsxwriter import sharedstrings as _xs
from xlsxwriter import worksheet as _xw
from xlsxwriter.utility import xl_col_to_name

from . import __version__
from . import formulas_xl as fx
from .atomic import write_atomic
from .issues import SEVERITY_ORDER, issues_frame
from .numbers import excel_round, group_sum, records
from .ziparchive import ZipLimitError, zip_archive

SAFE_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
FIXED_CREATED = datetime(2000, 1, 1)
KEY_RATES = ("预算执行率", "三公经费控制率", "项目支出预算控制率", "公用经费控制率", "预算调整率", "政府采购执行率",
             "在职人员控制率", "固定资产利用率")


@dataclass
class UnitReport:
    """Everything one unit's workbook shows. Tables are the unit's slices of the stage outputs."""

    unit: dict                      # the unit's row of Dataset.units
    total: dict                     # the unit's row of Scores.totals
    details: pd.DataFrame           # Scores.details of the unit
    indicators: pd.DataFrame        # indicators of the unit
    budget_lines: pd.DataFrame
    sangong: pd.DataFrame
    targets: pd.DataFrame           # resolved targets joined with their scores
    work_stats: pd.DataFrame        # aggregated 统计项
    issues: list                    # Issue objects of the unit
    files: pd.DataFrame             # the unit's input files with sha256
    framework: object               # framework.Framework
    run_time: datetime = field(default_factory=lambda: FIXED_CREATED)
    # input file (`rel`, as issues name it) → its path relative to this workbook's folder, for the 数据问题 links
    source_links: dict = field(default_factory=dict)
    # 年度对比 (summary.year_on_year): one row per figure with 上年/本年/增减/增减率; None without a previous year
    year_on_year: pd.DataFrame | None = None
    # 绩效运行监控 rows of the unit (monitoring.monitor), only in a run with --as-of: adds the 监控预警 sheet
    monitoring: pd.DataFrame | None = None
    # What the workbook and the Word report both derive from the tables above (their column lists, sums, score
    # groups), computed once (`_once`); the tables are not changed once the report is made, the values are read only.
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)


def display_width(text: object) -> int:
    """Width of a text in Excel character units, East-Asian wide characters counting double."""
    return _text_width(str(text))


MAX_COLUMN_WIDTH = 50  # a column grows to fit its text up to this width (2 more than the text's)
_FILLS_COLUMN = MAX_COLUMN_WIDTH - 2  # a text of this many characters or more is at least that wide


def _column_width(text: str) -> int:
    """The width a column needs for `text`: its display width + 2, at most MAX_COLUMN_WIDTH. A long text (an issue's
    message) is not measured character by character, nor remembered: it fills the column whatever its width."""
    if len(text) >= _FILLS_COLUMN:
        return MAX_COLUMN_WIDTH
    return min(_text_width(text) + 2, MAX_COLUMN_WIDTH)


# The same labels and figures recur in every unit's workbook (a unit's workbook has ≈ 800 texts shared with the others
# and ≈ 30 of its own): a few thousand entries keep them. Not more: the 汇总 of a province measures a code and a name
# per unit, which a larger cache would keep (≈ 0.2 KB each) for nothing.
@functools.lru_cache(maxsize=4096)
def _text_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# On these xlsxwriter versions (requirements.txt pins one) table cells are stored directly, <sheetData> is written
# by `_Sheet` and sharedStrings.xml by `_SharedStrings`; all rely on xlsxwriter internals checked against the stock
# methods by tests/test_render.py. On any other version everything goes through xlsxwriter's public methods: the
# same bytes, only slower.
_FAST_XLSXWRITER = ("3.3.1",)
_FAST = xlsxwriter.__version__ in _FAST_XLSXWRITER
_FORMULA_ERRORS = ("#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!")


class _Letters(dict):
    """Column index → its letters (`xl_col_to_name`), computed on first use."""

    def __missing__(self, col: int) -> str:
        letters = self[col] = xl_col_to_name(col)
        return letters


_LETTERS = _Letters()
# The cell kinds `_Sheet._write_row_elements` writes itself (with a format): xlsxwriter's String, Number, Blank and
# Formula.
_PLAIN_CELLS = frozenset((_xw.CellStringTuple, _xw.CellNumberTuple, _xw.CellBlankTuple, _xw.CellFormulaTuple))


class _Sheet(_xw.Worksheet):
    """xlsxwriter's Worksheet with faster writers of `<sheetData>`: of the whole sheet (`_write_rows`) and, in
    constant_memory mode, of each row as a later row is written (`_write_single_row`). The same XML byte for byte
    (rows and cells in the same order, format indices assigned in the same order), without a method call and an
    attribute list per cell. Cell kinds other than number, string, blank and plain formula, cells without a format
    and, in constant_memory mode, strings that xlsxwriter's escapes change are handed to xlsxwriter's own
    `_write_cell`."""

    def __init__(self) -> None:
        super().__init__()
        self._xf: dict = {}  # format → its xf index (as text), as `_get_xf_index` gives it: an index never changes

    def _calculate_spans(self) -> None:
        # The `spans` of a block of 16 rows: first:last column (1-based) with a cell or a comment in the block.
        rmin, rmax, cmin, cmax = self.dim_rowmin, self.dim_rowmax, self.dim_colmin, self.dim_colmax
        low: dict[int, int] = {}
        high: dict[int, int] = {}
        for rows in (self.table, self.comments):
            for row, cells in rows.items():
                if not cells or row < rmin or row > rmax:
                    continue
                first, last = min(cells), max(cells)
                if first < cmin or last > cmax:
                    inside = [c for c in cells if cmin <= c <= cmax]
                    if not inside:
                        continue
                    first, last = min(inside), max(inside)
                block = row // 16
                if block not in low or first < low[block]:
                    low[block] = first
                if block not in high or last > high[block]:
                    high[block] = last
        self.row_spans = {block: f"{low[block] + 1}:{high[block] + 1}" for block in low}

    def _write_rows(self) -> None:
        self._calculate_spans()
        table, comments, row_info, spans = self.table, self.comments, self.row_info, self.row_spans
        rmin, rmax = self.dim_rowmin, self.dim_rowmax
        rows = sorted({r for r, cells in table.items() if cells} | set(comments) | set(row_info))
        self._write_row_elements((row, spans.get(row // 16), row_info.get(row), table.get(row))
                                 for row in rows if rmin <= row <= rmax)

    def _write_single_row(self, current_row_num: int = 0) -> None:
        """constant_memory mode: the row written so far (`previous_row`) goes to the sheet's temporary file, as
        xlsxwriter's own method writes it (no spans in this mode), and `current_row_num` becomes the row written.
        A row without cells (only row_info or a comment) is left to xlsxwriter's method."""
        row = self.previous_row
        cells = self.table.get(row)
        if not cells:
            super()._write_single_row(current_row_num)
            return
        self.previous_row = current_row_num
        self._write_row_elements([(row, None, self.row_info.get(row), cells)])
        self.table.clear()

    def _write_row_elements(self, rows) -> None:
        """A `<row>` element for each (row, span, row_info, cells): xlsxwriter's empty row without cells, else the
        `<c>` elements of the cells within the used columns, left to right. A string is a shared string's index, or
        in constant_memory mode the text itself, written inline (a row's texts checked at once, each text only when
        some text of the row is not plain)."""
        plain_rows = self.default_row_height == self.original_row_height and self.excel_version != 2010
        cmin, cmax, xf, inline, write = self.dim_colmin, self.dim_colmax, self._xf, self.constant_memory, self.fh.write
        letters, plain_cells, plain_text = _LETTERS, _PLAIN_CELLS, _is_plain
        number_cell, string_cell, blank_cell = _xw.CellNumberTuple, _xw.CellStringTuple, _xw.CellBlankTuple
        for row, span, info, cells in rows:
            if not cells:
                self._write_empty_row(row, span, info)
                continue
            n = str(row + 1)
            if info is None and plain_rows:  # written with the cells
                out = [f'<row r="{n}" spans="{span}">' if span else f'<row r="{n}">']
            else:
                self._write_row(row, span, info)
                out = []
            all_plain = not inline or _all_plain([c.string for c in cells.values() if c.__class__ is string_cell])
            for col in sorted(cells):
                if col < cmin or col > cmax:
                    continue
                cell = cells[col]
                kind, fmt = cell.__class__, cell.format
                if fmt is None or kind not in plain_cells or (kind is string_cell and not all_plain
                                                              and not plain_text(cell.string)):
                    write("".join(out))
                    out = []
                    self._write_cell(row, col, cell)
                    continue
                s = xf.get(fmt)
                if s is None:
                    s = xf[fmt] = str(fmt._get_xf_index())
                if kind is string_cell:
                    if inline:
                        out.append(f'<c r="{letters[col]}{n}" s="{s}" t="inlineStr"><is><t>{cell.string}</t></is></c>')
                    else:
                        out.append(f'<c r="{letters[col]}{n}" s="{s}" t="s"><v>{cell.string}</v></c>')
                elif kind is number_cell:
                    out.append(f'<c r="{letters[col]}{n}" s="{s}"><v>{cell.number:.16G}</v></c>')
                elif kind is blank_cell:
                    out.append(f'<c r="{letters[col]}{n}" s="{s}"/>')
                else:
                    value, t = cell.value, ""
                    if isinstance(value, bool):
                        value, t = (1 if value else 0), ' t="b"'
                    elif isinstance(value, str) and value != "":
                        t = ' t="e"' if value in _FORMULA_ERRORS else ' t="str"'
                    out.append(f'<c r="{letters[col]}{n}" s="{s}"{t}><f>{self._escape_data(cell.formula)}</f>'
                               f'<v>{self._escape_data(value)}</v></c>')
            out.append("</row>")
            write("".join(out))


# A shared string none of xlsxwriter's escapes change: no `_xHHHH_` or control character to encode, no XML special
# character, no leading or trailing whitespace to preserve (and, with no `<`, not a rich string).
_SPECIAL_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f&<>\ufffe\uffff]|_x[0-9a-fA-F]{4}_|^\s|\s$")


def _is_plain(text: str) -> bool:
    """True only for a text `_SPECIAL_TEXT` finds nothing in, checked without the regular expression (≈ 2× faster
    on the 汇总's texts): a printable text has no control character, no non-character and no whitespace but the
    space. A text with `_x` is never plain, also when no `_xHHHH_` follows."""
    return text.isprintable() and not ("&" in text or "<" in text or ">" in text or "_x" in text
                                       or text.startswith(" ") or text.endswith(" "))


def _all_plain(texts: list[str]) -> bool:
    """True only when every text is plain (`_is_plain`), checked on the texts joined by `|`: a text that starts or
    ends with a space shows as `| ` or ` |` inside (a `|` within a text at most makes this answer False)."""
    joined = "|".join(texts)
    return _is_plain(joined) and "| " not in joined and " |" not in joined


class _SharedStrings(_xs.SharedStrings):
    """xlsxwriter's writer of sharedStrings.xml with plain text written as it is: its `_write_si` runs five regular
    expressions per string, and a workbook holds ~460 distinct strings, nearly all plain. Any other string is
    handed to `_write_si`."""

    def _write_sst_strings(self) -> None:
        write, special = self.fh.write, _SPECIAL_TEXT.search
        for string in self.string_table.string_array:
            if special(string):
                self._write_si(string)
            else:
                write(f"<si><t>{string}</t></si>")


_XLSX_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # xlsxwriter's time of an entry written from memory (Excel's own)


class _Packager(_xp.Packager):
    """xlsxwriter's Packager writing sharedStrings.xml with `_SharedStrings`. In memory, it hands the parts it made
    to the workbook (`_Workbook.package_parts`), which zips them, and none to xlsxwriter's zipping."""

    def _write_shared_strings_file(self) -> None:  # xlsxwriter's own, but for the class
        sst = _SharedStrings()
        sst.string_table = self.workbook.str_table
        if not self.workbook.str_table.count:
            return
        sst._set_xml_writer(self._filename("xl/sharedStrings.xml"))
        sst._assemble_xml_file()

    def _create_package(self):
        parts = super()._create_package()
        if not self.in_memory:
            return parts
        self.workbook.package_parts = parts
        return []


class _Workbook(xlsxwriter.Workbook):
    """xlsxwriter's Workbook packaged by `_Packager` (`_get_packager` is xlsxwriter's hook for that). In memory
    (`in_memory`, as Book opens unit workbooks), xlsxwriter zips no part (it writes an empty zip into a buffer that
    is thrown away) and the parts are zipped by `ziparchive` (ISA-L's deflate, ≈ 4 ms less per workbook), in the
    same order, with the same names and contents and the same entry time as xlsxwriter's `_store_workbook`."""

    package_parts: list | None = None  # xlsxwriter's (StringIO or BytesIO, name, is_binary) of each part, in order

    def _get_packager(self):
        return _Packager()

    def _store_workbook(self) -> None:
        if not self.in_memory:
            super()._store_workbook()
            return
        target, self.filename = self.filename, io.BytesIO()
        try:
            super()._store_workbook()
        finally:
            self.filename = target
        kept, self.package_parts = self.package_parts, None
        parts = [(name, data.getvalue() if binary else data.getvalue().encode("utf-8"))
                 for data, name, binary in kept]
        try:
            archive = zip_archive(parts, _XLSX_ZIP_TIME)
        except ZipLimitError:  # needs ZIP64: zipfile, as xlsxwriter writes it
            with ZipFile(target, "w", compression=ZIP_DEFLATED, allowZip64=self.allow_zip64) as z:
                for name, data in parts:
                    info = ZipInfo(name, _XLSX_ZIP_TIME)
                    info.compress_type = ZIP_DEFLATED
                    z.writestr(info, data)
            return
        if hasattr(target, "write"):
            target.write(archive)
        else:
            with open(target, "wb") as f:
                f.write(archive)


# Formula text → xlsxwriter's prepared form (None: a dynamic-array or array formula, left to write_formula). The
# same formulas recur in every unit's workbook (same framework, same rows), and preparing one runs ~30 regexes.
_PREPARED: dict[str, str | None] = {}


def _prepared_formula(ws, text: str) -> str | None:
    try:
        return _PREPARED[text]
    except KeyError:
        pass
    if not isinstance(text, str) or not text or (text.startswith("{") and text.endswith("}")) \
            or _xw.re_dynamic_function.search(text):
        prepared = None
    else:
        prepared = ws._prepare_formula(text)
    if len(_PREPARED) > 50_000:
        _PREPARED.clear()
    _PREPARED[text] = prepared
    return prepared


def _widest(values: list, short: int) -> int:
    """The widest display (as `Book._grow` measures it: a text that fills the column counts as _FILLS_COLUMN) of
    the floats and short texts of a column; -1 if none.
    A float is shown as `f"{v:,.2f}"`, whose length only grows with |v| (plus one for a sign), so the extremes
    decide: no formatting of every figure."""
    widest = -1
    floats = [v for v in values if v.__class__ is float and v - v == 0]  # finite: NaN is blank, ±inf refused
    if floats:
        low, high = min(floats), max(floats)
        widest = max(len(f"{low:,.2f}"), len(f"{high:,.2f}"))
        if low == 0 and widest < 5 and any(math.copysign(1.0, v) < 0 for v in floats if v == 0):
            widest = 5  # -0.0 shows as "-0.00"
    texts = {v for v in values if v.__class__ is str and len(v) <= short}  # each distinct text measured once
    if texts:
        fills = max(map(len, texts)) >= _FILLS_COLUMN  # then as wide as a column grows: no need to measure the rest
        widest = max(widest, (MAX_COLUMN_WIDTH if fills else max(map(_column_width, texts))) - 2)
    return widest


def _touch(ws, first_row: int, first_col: int, last_row: int, last_col: int) -> None:
    """Extend the worksheet's used range as xlsxwriter's `_check_dimensions` does for every cell written."""
    if ws.dim_rowmin is None or first_row < ws.dim_rowmin:
        ws.dim_rowmin = first_row
    if ws.dim_rowmax is None or last_row > ws.dim_rowmax:
        ws.dim_rowmax = last_row
    if ws.dim_colmin is None or first_col < ws.dim_colmin:
        ws.dim_colmin = first_col
    if ws.dim_colmax is None or last_col > ws.dim_colmax:
        ws.dim_colmax = last_col


class Book:
    """A thin wrapper over an xlsxwriter Workbook with this project's formats and safe writes."""

    def __init__(self, path: Path | BinaryIO, header_text: str, constant_memory: bool = False):
        """`path`: the file to write, or a binary stream the zip is written into. With `constant_memory` (a file
        path only) each row goes to a temporary file as soon as a later row is written, so memory stays flat
        however many rows a sheet has; the cells of each sheet must then be written row after row."""
        self.path = path
        self.header_text = header_text
        self.fast = _FAST  # cells stored directly and `_Sheet`'s writers of <sheetData>
        workbook = _Workbook if self.fast else xlsxwriter.Workbook
        target = path if hasattr(path, "write") else str(path)
        memory = {"constant_memory": True} if constant_memory else {"in_memory": True}  # else no temp file per sheet
        self.wb = workbook(target, {**SAFE_OPTIONS, **memory})
        self.wb.set_properties({"created": FIXED_CREATED, "author": "pipeline", "title": header_text})
        f = self.wb.add_format
        base = {"font_name": "宋体", "font_size": 10, "valign": "vcenter", "border": 1}
        self.fmt = {
            "title": f({"font_name": "黑体", "font_size": 16, "bold": True}),
            "subtitle": f({"font_name": "黑体", "font_size": 12, "bold": True}),
            "label": f({**base, "bold": True, "bg_color": "#F2F2F2"}),
            "header": f({**base, "bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "align": "center"}),
            "text": f({**base, "text_wrap": True}),
            "amount": f({**base, "num_format": "#,##0.00"}),
            "number": f({**base, "num_format": "0.00"}),
            "int": f({**base, "num_format": "0"}),
            "general": f({**base, "num_format": "General"}),
            "percent": f({**base, "num_format": "0.00%"}),
            "total": f({**base, "bold": True, "num_format": "0.00", "font_size": 14, "bg_color": "#FFF2CC"}),
            "lost": f({"bg_color": "#FCE4D6", "font_color": "#9C0006"}),
            "error": f({**base, "font_color": "#C00000", "bold": True}),
            "warning": f({**base, "font_color": "#B45F06"}),
            "link": f({**base, "font_color": "blue", "underline": 1}),
        }
        self.widths: dict[str, dict[int, int]] = {}

    def sheet(self, name: str, landscape: bool = True, header_rows: int | None = None):
        ws = self.wb.add_worksheet(name, worksheet_class=_Sheet if self.fast else None)
        ws.set_paper(9)  # A4
        ws.set_landscape() if landscape else ws.set_portrait()
        ws.fit_to_pages(1, 0)
        ws.set_margins(left=0.5, right=0.5, top=0.75, bottom=0.75)
        ws.set_header(f"&L&\"宋体\"{self.header_text.replace('&', '&&')}&R{name}")
        ws.set_footer("&C第 &P 页，共 &N 页")
        if header_rows is not None:
            ws.repeat_rows(header_rows)
        self.widths[name] = {}
        return ws

    def write(self, ws, row: int, col: int, value, fmt: str = "text") -> None:
        """Write one value by its Python type: str always as text, NaN/None as an empty formatted cell."""
        f = self.fmt[fmt]
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            ws.write_blank(row, col, None, f)
        elif isinstance(value, str):
            ws.write_string(row, col, value, f)
            self._grow(ws, col, value)
        elif isinstance(value, bool):
            ws.write_string(row, col, "是" if value else "否", f)
        elif isinstance(value, (int, float)):
            ws.write_number(row, col, float(value), f)
            self._grow(ws, col, f"{value:,.2f}")
        else:
            ws.write_string(row, col, str(value), f)
            self._grow(ws, col, str(value))

    def formula(self, ws, row: int, col: int, text: str, fmt: str, value) -> None:
        """`write_formula` with its cached value (xlsxwriter's preparation of the text is cached across workbooks)."""
        f = self.fmt[fmt]
        if self.fast and not ws.constant_memory and not ws.use_future_functions:
            prepared = _prepared_formula(ws, text)
            if prepared is not None:
                if not ws._check_dimensions(row, col):
                    ws.table[row][col] = _xw.CellFormulaTuple(prepared, f, value)
                return
        ws.write_formula(row, col, text, f, value)

    def _grow(self, ws, col: int, text: str) -> None:
        widths = self.widths[ws.name]
        widths[col] = max(widths.get(col, 6), _column_width(text))

    def table(self, ws, top: int, columns: list[tuple[str, str]], rows: list[dict], left: int = 0,
              span_last: int = 0) -> int:
        """A header row and one row per dict; `columns` are (field, format). With `span_last`, the last column is
        merged over that many more columns (long text under narrow number columns). Returns the next free row."""
        data = [[record.get(name) for record in rows] for name, _ in columns]
        return self.grid(ws, top, columns, data, len(rows), left, span_last)

    def grid(self, ws, top: int, columns: list[tuple[str, str]], data: list[list], n: int, left: int = 0,
             span_last: int = 0) -> int:
        """`table` from column lists: data[j] holds the n values of columns[j]. Returns the next free row."""
        header = self.fmt["header"]
        for j, (name, _) in enumerate(columns):
            ws.write_string(top, left + j, name, header)
            self._grow(ws, left + j, name)
        if span_last:
            last = len(columns) - 1
            for i, values in enumerate(zip(*data), start=top + 1):
                for j in range(last):
                    self.write(ws, i, left + j, values[j], columns[j][1])
                value = values[last]
                ws.merge_range(i, left + last, i, left + last + span_last, "" if value is None else str(value),
                               self.fmt[columns[last][1]])
            ws.merge_range(top, left + last, top, left + last + span_last, columns[-1][0], header)
        else:
            self.rows(ws, top + 1, columns, data, n, left)
        return top + n + 1

    def rows(self, ws, top: int, columns: list[tuple[str, str]], data: list[list], n: int, left: int = 0) -> int:
        """The body of a table without its header from row `top`: data[j] holds the n values of columns[j] (field,
        format). Row by row and left to right as `write` goes (shared strings are numbered in the order of first
        use, so the order is part of the output). Values of the common types (str, float, None) are stored as cells
        directly, in constant_memory mode each row written out when the next one starts, as xlsxwriter does it; any
        other value goes through `write`. Returns the next free row."""
        if not n:
            return top
        names = [fmt for _, fmt in columns]
        last_row, last_col = top + n - 1, left + len(columns) - 1
        stream = ws.constant_memory
        if not self.fast or last_row >= ws.xls_rowmax or last_col >= ws.xls_colmax or \
                (stream and top < ws.previous_row):  # rows already written out: xlsxwriter ignores the cells
            for i, values in enumerate(zip(*data), start=top):
                for j, value in enumerate(values):
                    self.write(ws, i, left + j, value, names[j])
            return top + n
        _touch(ws, top, left, last_row, last_col)  # before any row is written out: it is written within these columns
        fmts = [self.fmt[name] for name in names]
        blanks = [_xw.CellBlankTuple(f) for f in fmts]
        number_cell, string_cell, new = _xw.CellNumberTuple, _xw.CellStringTuple, tuple.__new__
        shared = ws.str_table._get_shared_string_index
        short = ws.xls_strmax // 2  # longer text may need truncating: left to write_string
        table = ws.table
        for i, values in enumerate(zip(*data), start=top):
            if stream and i > ws.previous_row:
                ws._write_single_row(i)
            cells = table[i]
            for j, value in enumerate(values):
                kind = value.__class__
                if kind is float:
                    if value - value:  # NaN or ±inf
                        if math.isnan(value):
                            cells[left + j] = blanks[j]
                        else:
                            self.write(ws, i, left + j, value, names[j])  # xlsxwriter refuses it, as before
                    else:
                        cells[left + j] = new(number_cell, (value, fmts[j]))
                elif kind is str and len(value) <= short:
                    cells[left + j] = new(string_cell, (value if stream else shared(value), fmts[j]))
                elif value is None:
                    cells[left + j] = blanks[j]
                else:
                    self.write(ws, i, left + j, value, names[j])  # grows the width itself
        widths = self.widths[ws.name]
        for j, values in enumerate(data):
            w = _widest(values, short)
            if w >= 0:
                widths[left + j] = max(widths.get(left + j, 6), min(w + 2, MAX_COLUMN_WIDTH))
        return top + n

    def close(self) -> None:
        for ws in self.wb.worksheets():
            for col, width in self.widths.get(ws.name, {}).items():
                ws.set_column(col, col, width)
        self.wb.close()
        # Each worksheet holds the workbook's add_format (a bound method): a reference cycle that would leave the
        # whole written workbook, thousands of cell objects, to the cyclic garbage collector (its collections took
        # ~15% of the render time). Without the cycle reference counting frees it all when the Book goes.
        for ws in self.wb.worksheets():
            ws.workbook_add_format = None


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a workbook is built. Building one allocates thousands of cell objects
    that live until it is written; each collection meanwhile would traverse every object of the process (in a run:
    the whole evaluation) and free nothing, since a written workbook leaves no reference cycle (`Book.close`).
    Left as it was when it was already off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def render_unit_workbook(report: UnitReport, path: Path) -> Path:
    """Write one unit's evaluation workbook atomically; returns the final path. The zip is built in memory and
    written at once (written into a file by zipfile, seeking back to the header of each of the ~28 parts cost
    ~1.5 ms per workbook)."""
    buffer = io.BytesIO()
    with collector_paused():
        _write_unit_workbook(report, buffer)  # its Book is gone on return, before the collector is back
    write_atomic(path, buffer.getvalue())
    return path


def _write_unit_workbook(report: UnitReport, path: Path | BinaryIO) -> None:
    unit = report.unit
    book = Book(path, f"{unit.get('单位名称') or ''} {unit['财年']}年度部门整体支出绩效评价")
    _summary_sheet(book, report)
    if report.monitoring is not None:
        _monitoring_sheet(book, report)
    _details_sheet(book, report)
    _budget_sheet(book, report)
    _targets_sheet(book, report)
    _work_stats_sheet(book, report)
    _year_on_year_sheet(book, report)
    _issues_sheet(book, report)
    _about_sheet(book, report)
    book.close()


def column_lists(df: pd.DataFrame) -> dict[str, list]:
    """Each column of a frame as a list of Python scalars (what `records` gives per row), by name; of a repeated
    name the last column, as in `records`. The whole frame is converted to objects at once, the same scalars as each
    column's `tolist` (the tests compare them), without building a Series per column (~8 µs each, 110 a workbook)."""
    return dict(zip(df.columns, df.to_numpy(dtype=object).T.tolist()))


def _once(report: UnitReport, key, make):
    """`make()`, computed once per unit report (see `UnitReport.derived`)."""
    try:
        return report.derived[key]
    except KeyError:
        value = report.derived[key] = make()
        return value


def _columns_of(report: UnitReport, name: str) -> dict[str, list]:
    """`column_lists` of the report's table `name` (an attribute), computed once (or given: set_columns); read
    only."""
    return _once(report, ("columns", name), lambda: column_lists(getattr(report, name)))


# The report tables the workbook and the Word report read as column lists (`_columns_of`).
LISTED_TABLES = ("details", "budget_lines", "sangong", "targets", "work_stats", "files")


def set_columns(report: UnitReport, name: str, columns: dict[str, list]) -> None:
    """Give `_columns_of(report, name)` ready made: `column_lists` of the report's table `name`, taken by the
    caller from lists it made for many units at once (run._UnitParts.columns: a frame costs about as much to convert
    for a batch of units as for one unit). Read only, like the table."""
    report.derived[("columns", name)] = columns


def _table_totals(report: UnitReport, name: str, columns: tuple[str, ...]) -> dict[str, float]:
    """The sum of each of `columns` of the report's table `name` (`_totals`; a column the table lacks sums to 0), as
    the 合计 rows show them before rounding; computed once."""
    def make():
        cols = _columns_of(report, name)
        present = [c for c in columns if c in cols]
        totals = dict(zip(present, _totals([cols[c] for c in present])))
        return {c: totals.get(c, 0.0) for c in columns}
    return _once(report, ("totals", name, columns), make)


def _budget_categories(report: UnitReport) -> list[tuple]:
    """按支出类别: (支出类别, [全年预算数, 实际支出数] summed) per category of the budget lines, in order of first
    appearance (`_sums_by`); computed once."""
    def make():
        lines = _columns_of(report, "budget_lines")
        n = len(report.budget_lines)
        return _sums_by(lines["支出类别"], [lines[c] if c in lines else [None] * n for c in ("全年预算数", "实际支出数")])
    return _once(report, "categories", make)


def _table_data(cols: dict[str, list], columns: list[tuple[str, str]], n: int) -> list[list]:
    """The column lists of a table; a field the frame lacks is empty (as `record.get` in `Book.table`)."""
    return [cols[name] if name in cols else [None] * n for name, _ in columns]


def _numbers(values: list) -> np.ndarray:
    """A column's values (as `column_lists` gives them) as float64, as `pd.to_numeric` reads them; blanks are NaN."""
    if all(v.__class__ is float for v in values):
        return np.array(values, dtype=np.float64)
    return pd.to_numeric(pd.Series(values, dtype=object)).to_numpy(dtype=np.float64, na_value=np.nan)


def _grouped_sums(ids: np.ndarray, n: int, columns: list[list]) -> list[list[float]]:
    """numbers.group_sum of each column over the same n groups (`ids`, -1 left out), in one call: a group's sum
    depends only on its own values in row order, so every column's groups can be numbered apart and summed
    together. group_sum takes a round of numpy calls per row of its largest group, whatever the number of groups,
    so one call per table instead of one per column (a dozen per workbook at ~0.2 ms each)."""
    if not columns:
        return []
    values = np.concatenate([_numbers(column) for column in columns])
    shifted = np.concatenate([np.where(ids < 0, -1, ids + j * n) for j in range(len(columns))])
    sums = group_sum(values, shifted, n * len(columns)).tolist()
    return [sums[j * n:(j + 1) * n] for j in range(len(columns))]


def _totals(columns: list[list]) -> list[float]:
    """Sum of each column (columns of one table, all of a length), NaN skipped: numbers.group_sum with one group,
    the arithmetic of every per-unit sum."""
    if not columns:
        return []
    return [sums[0] for sums in _grouped_sums(np.zeros(len(columns[0]), dtype=np.intp), 1, columns)]


def _total(values: list) -> float:
    """Sum of a column, NaN skipped (`_totals` of one column)."""
    return _totals([values])[0]


def _sums_by(keys: list, columns: list[list]) -> list[tuple]:
    """`groupby(keys, sort=False)` sums of the columns with numbers.group_sum: (key, [sum per column]) per group in
    order of first appearance, a missing key left out."""
    ids, uniques = pd.factorize(np.array(keys, dtype=object), sort=False, use_na_sentinel=True)
    sums = _grouped_sums(ids, len(uniques), columns)
    return [(key, [s[g] for s in sums]) for g, key in enumerate(uniques.tolist())]


def _indicator_rows(report: UnitReport, names) -> list[dict]:
    """The indicator rows of `names` (in that order, a name without a row left out), the value rounded as shown."""
    def make():  # 计算方法 → its row, the last row of a name (as a dict of records keeps it)
        ind = report.indicators
        if not len(ind):
            return {}
        columns = [ind[c].tolist() for c in ("计算方法", "值", "状态", "说明")]
        return {row[0]: row for row in zip(*columns)}
    by_name = _once(report, "indicators by name", make)
    rows = []
    for name in names:
        row = by_name.get(name)
        if row is None:
            continue
        _, v, state, note = row
        value = excel_round(v, 4) if state == "正常" and not pd.isna(v) else None
        rows.append({"指标": name, "值": value, "状态": state, "计算过程": note})
    return rows


def _level1_rows(report: UnitReport) -> list[dict]:
    """各一级指标得分: 分值, 得分, 失分 and 得分率 per 一级指标 of the details, rounded as shown; computed once."""
    def make():
        d = _columns_of(report, "details")
        rows = []
        for name, (p, s) in _sums_by(d["一级指标"], [d["分值"], d["得分"]]):
            points, score = excel_round(p, 2), excel_round(s, 2)
            rows.append({"一级指标": name, "分值": points, "得分": score, "失分": excel_round(points - score, 2),
                         "得分率": excel_round(score / points, 4) if points else None})
        return rows
    return _once(report, "level1", make)


def _summary_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("评价结果", landscape=False)
    unit, total = report.unit, report.total
    ws.write_string(0, 0, f"{unit.get('单位名称') or ''}{unit['财年']}年度部门整体支出绩效评价结果", book.fmt["title"])
    facts = [("单位名称", unit.get("单位名称")), ("单位编码", unit["单位编码"]), ("主管部门", unit.get("主管部门")),
             ("财年", str(unit["财年"])), ("评分框架", f"{report.framework.name}（{report.framework.version}）")]
    for i, (k, v) in enumerate(facts, start=2):
        book.write(ws, i, 0, k, "label")
        book.write(ws, i, 1, v, "text")
    r = 2 + len(facts)
    book.write(ws, r, 0, "总分", "label")
    book.write(ws, r, 1, total.get("总分"), "total")
    book.write(ws, r + 1, 0, "等级", "label")
    book.write(ws, r + 1, 1, total.get("等级") or "无法评级", "total")
    _total_formulas(book, ws, report, r)
    r += 3
    ws.write_string(r, 0, "各一级指标得分", book.fmt["subtitle"])
    level1 = _level1_rows(report)
    cols = [("一级指标", "text"), ("分值", "number"), ("得分", "number"), ("失分", "number"), ("得分率", "percent")]
    table_top = r + 1
    r = book.table(ws, table_top, cols, level1) + 1
    _level1_formulas(book, ws, report, table_top, level1)
    _score_chart(book, ws, table_top, len(level1), f"A{r + 1}")
    r += 18
    ws.write_string(r, 0, "关键指标", book.fmt["subtitle"])
    r = book.table(ws, r + 1, [("指标", "text"), ("值", "percent"), ("状态", "text"), ("计算过程", "text")],
                   _indicator_rows(report, KEY_RATES)) + 1
    counts = Counter(i.severity for i in report.issues)
    ws.write_string(r, 0, "数据问题", book.fmt["subtitle"])
    for j, sev in enumerate(("错误", "警告", "提示"), start=1):
        book.write(ws, r + j, 0, sev, "label")
        book.write(ws, r + j, 1, int(counts.get(sev, 0)), "int")
    ws.print_area(0, 0, r + 3, 3)


def _total_formulas(book: Book, ws, report: UnitReport, r: int) -> None:
    """总分 (row r) and 等级 (row r + 1) as formulas over 评分明细, cached with the scored total and grade."""
    n, total = len(report.details), report.total
    if not n or total.get("总分") is None or pd.isna(total.get("总分")):
        return
    fw = report.framework
    book.formula(ws, r, 1, fx.sum_range(_details_range("得分", n), fw.digits), "total", total["总分"])
    book.formula(ws, r + 1, 1, fx.grade(f"B{r + 1}", fw.grades), "total", total.get("等级") or "无法评级")


def _level1_formulas(book: Book, ws, report: UnitReport, top: int, level1: list[dict]) -> None:
    """各一级指标得分: SUMIF over 评分明细 (rounded as _level1_rows rounds), cached with the computed figures."""
    n = len(report.details)
    if not n:
        return
    names, points, scores = (_details_range(c, n) for c in ("一级指标", "分值", "得分"))
    for k, g in enumerate(level1, start=1):
        row, x = top + k, top + k + 1  # 0-based row, Excel row
        book.formula(ws, row, 1, fx.sum_if(names, f"A{x}", points, 2), "number", g["分值"])
        book.formula(ws, row, 2, fx.sum_if(names, f"A{x}", scores, 2), "number", g["得分"])
        book.formula(ws, row, 3, fx.difference(f"B{x}", f"C{x}", 2), "number", g["失分"])
        if g["得分率"] is not None:
            book.formula(ws, row, 4, fx.share(f"C{x}", f"B{x}"), "percent", g["得分率"])


def _score_chart(book: Book, ws, header_row: int, n: int, anchor: str) -> None:
    if not n:
        return
    chart = book.wb.add_chart({"type": "column"})
    name = ws.name
    cats = [name, header_row + 1, 0, header_row + n, 0]
    chart.add_series({"name": "分值", "categories": cats, "values": [name, header_row + 1, 1, header_row + n, 1],
                      "fill": {"color": "#BDD7EE"}})
    chart.add_series({"name": "得分", "categories": cats, "values": [name, header_row + 1, 2, header_row + n, 2],
                      "fill": {"color": "#2E75B6"}, "data_labels": {"value": True}})
    chart.set_title({"name": "各一级指标得分与分值"})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 560, "height": 320})
    ws.insert_chart(anchor, chart)


DETAIL_COLUMNS = [("指标编码", "text"), ("一级指标", "text"), ("二级指标", "text"), ("三级指标", "text"),
                  ("指标值", "text"), ("实际完成值", "text"), ("完成率", "percent"), ("分值", "number"),
                  ("得分", "number"), ("扣分说明", "text"), ("状态", "text"), ("评分方法", "text")]


# Visible inputs of the live formulas (after the columns of 评分明细.csv), with the header comment explaining them.
DETAIL_INPUT_COLUMNS = [("计算值", "general"), ("目标值", "general"), ("每点扣", "general"), ("偏离度", "percent"),
                        ("偏离度扣减", "percent")]
DETAIL_SHEET_COLUMNS = DETAIL_COLUMNS + DETAIL_INPUT_COLUMNS
DETAIL_INPUT_NOTES = {
    "计算值": "得分公式读取的数值：共性指标的计算值（完成率 = 四舍五入到 0.01%）；结转结余数（万元）；定性项目的得分比例；"
             "绩效目标的实际完成值。修改后得分随之重算。",
    "目标值": "超出/低于扣分的阈值；上年结转数（万元，结余控制）；绩效目标的指标值。",
    "每点扣": "超出/低于扣分：每个百分点扣的分数。",
    "偏离度": "正向绩效目标：(实际完成值 − 指标值) ÷ 指标值。",
    "偏离度扣减": "偏离度达到参数表“偏离度档”时扣减该项分值的比例。",
}
DETAILS_SHEET = "评分明细"
_DETAIL_INDEX = {name: j for j, (name, _) in enumerate(DETAIL_SHEET_COLUMNS)}
_DETAIL_LETTER = {name: xl_col_to_name(j) for name, j in _DETAIL_INDEX.items()}
_COMMENT_SIZE = {"x_scale": 2, "y_scale": 1.5}


def _sheet_col(name: str) -> str:
    """Column letter of a 评分明细 column."""
    return _DETAIL_LETTER[name]


def _details_range(name: str, n: int) -> str:
    """`'评分明细'!$I$2:$I$29`: a column over the n item rows, for formulas on other sheets."""
    c = _sheet_col(name)
    return f"'{DETAILS_SHEET}'!${c}$2:${c}${n + 1}"


@functools.lru_cache(maxsize=4096)
def _row_refs(excel_row: int) -> fx.RowRefs:
    ref = lambda name: f"{_sheet_col(name)}{excel_row}"  # noqa: E731
    return fx.RowRefs(points=ref("分值"), rate=ref("完成率"), value=ref("计算值"), target=ref("目标值"),
                      per_point=ref("每点扣"), deviation=ref("偏离度"), cut=ref("偏离度扣减"))


def _num(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _detail_formulas(book: Book, ws, i: int, r: dict, rule: dict | None, fw) -> None:
    """Turn row i of 评分明细 into live formulas: visible inputs, 完成率 and 得分 as formulas with their cached
    values. Rows that are not 正常 (不适用, 无法计算, 数据缺失) keep their constants."""
    if r["状态"] != "正常" or rule is None or r["评分方法"] not in fx.SCORE_BUILDERS:
        return
    col = _DETAIL_INDEX
    method, params, refs = r["评分方法"], rule["_params"], _row_refs(i + 1)
    value, target = _num(r.get("_value")), _num(r.get("_target"))
    if value is None:
        return

    def put(name, v, fmt):
        book.write(ws, i, col[name], v, fmt)

    def formula(name, text, cached, fmt):
        book.formula(ws, i, col[name], text, fmt, cached)

    extra = {}
    if method == "绩效目标":
        op = r.get("_op")
        if not fx.has_target_rate(op) or (op != "定性" and target is None):
            return
        put("计算值", value, "percent" if op == "定性" else "general")
        if op != "定性":
            put("目标值", target, "general")
        formula("完成率", fx.target_rate(refs, op), r["完成率"], "percent")
        tiers = fw.params.get("偏离度档") or []
        if op in ("≥", "＞") and target > 0 and fw.params.get("偏离度扣分", True) and tiers:
            formula("偏离度", fx.deviation(refs), r["_deviation"], "percent")
            formula("偏离度扣减", fx.deviation_cut(refs, tiers), r["_cut"], "percent")
            extra["deviation"] = True
    elif method == "结余控制":
        put("计算值", value, "amount")
        put("目标值", 0.0 if target is None else target, "amount")
    else:
        put("计算值", value, "percent")
        formula("完成率", fx.rate_of_value(refs), r["完成率"], "percent")
        if method in ("超出扣分", "低于扣分"):
            put("目标值", float(params["阈值"]), "percent")
            put("每点扣", float(params["每点扣"]), "general")
    formula("得分", fx.score_formula(method, refs, params, fw.digits, **extra), r["得分"], "number")


@dataclass
class _FrameworkParts:
    """What the workbook takes from the framework alone, built once per framework in a process."""

    rows: pd.DataFrame
    rules: dict          # 指标编码 → the framework row (as a record)
    rule_table: list     # column lists of the 评分规则 table of 说明


_RULE_COLUMNS = [("指标编码", "text"), ("一级指标", "text"), ("二级指标", "text"), ("三级指标", "text"),
                 ("分值", "number"), ("评分方法", "text"), ("评分标准说明", "text")]
_FRAMEWORKS: dict = {}


def _framework_parts(fw) -> _FrameworkParts:
    """Cached per framework: by its file's SHA-256 (a framework is not changed after loading; also a worker process
    receiving a pickled copy per unit hits the cache), else by the identity of its rows."""
    key = fw.sha256 or id(fw.rows)
    parts = _FRAMEWORKS.get(key)
    if parts is None or (not fw.sha256 and parts.rows is not fw.rows):
        recs = records(fw.rows)
        cols = column_lists(fw.rows)
        parts = _FrameworkParts(fw.rows, {r["指标编码"]: r for r in recs},
                                _table_data(cols, _RULE_COLUMNS, len(fw.rows)))
        if len(_FRAMEWORKS) >= 8:
            _FRAMEWORKS.clear()
        _FRAMEWORKS[key] = parts
    return parts


def _details_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet(DETAILS_SHEET, header_rows=0)
    cols = _columns_of(report, "details")
    n = len(report.details)
    book.grid(ws, 0, DETAIL_SHEET_COLUMNS, _table_data(cols, DETAIL_SHEET_COLUMNS, n), n)
    rows = [dict(zip(cols, values)) for values in zip(*cols.values())] if n else []
    rules = _framework_parts(report.framework).rules
    for i, r in enumerate(rows, start=1):
        _detail_formulas(book, ws, i, r, rules.get(r.get("_rule")), report.framework)
    for name, _ in DETAIL_INPUT_COLUMNS:
        ws.write_comment(0, _DETAIL_INDEX[name], DETAIL_INPUT_NOTES[name], dict(_COMMENT_SIZE))
    points, score, reason = _DETAIL_INDEX["分值"], _DETAIL_INDEX["得分"], _DETAIL_INDEX["扣分说明"]
    for i, r in enumerate(rows, start=1):
        if r["得分"] < r["分值"] - 1e-9:
            ws.write_comment(i, score, f"失分 {excel_round(r['分值'] - r['得分'], 2):.2f}：{r['扣分说明']}",
                             dict(_COMMENT_SIZE))
    last = len(DETAIL_SHEET_COLUMNS) - 1
    if n:
        col_p, col_s = _DETAIL_LETTER["分值"], _DETAIL_LETTER["得分"]
        ws.conditional_format(1, 0, n, last, {
            "type": "formula", "criteria": f"=${col_s}2<${col_p}2-0.000001", "format": book.fmt["lost"]})
        total_row = n + 1
        digits = report.framework.digits
        total_points, total_score = _totals([cols["分值"], cols["得分"]])
        book.write(ws, total_row, 0, "合计", "label")
        book.formula(ws, total_row, points, fx.sum_range(f"{col_p}2:{col_p}{n + 1}", digits), "number",
                     excel_round(total_points, digits))
        book.formula(ws, total_row, score, fx.sum_range(f"{col_s}2:{col_s}{n + 1}", digits), "number",
                     excel_round(total_score, digits))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(n, 1), last)
    book.widths[ws.name][reason] = 60


BUDGET_AMOUNT_COLUMNS = ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数")
SANGONG_AMOUNT_COLUMNS = ("预算数", "实际支出数", "上年预算数", "上年实际支出数")


def _budget_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("预算执行分析")
    ws.write_string(0, 0, "预算执行明细（万元）", book.fmt["subtitle"])
    n = len(report.budget_lines)
    lines = _columns_of(report, "budget_lines")
    budget, spent = (lines[c] if c in lines else [None] * n for c in ("全年预算数", "实际支出数"))
    rates = [excel_round(e / b, 4) if b and not pd.isna(b) and not pd.isna(e) else None
             for b, e in zip(budget, spent)]
    cols = [("支出类别", "text"), ("项目名称", "text")] + [(c, "amount") for c in BUDGET_AMOUNT_COLUMNS] + \
        [("执行率", "percent")]
    r = book.grid(ws, 1, cols, _table_data({**lines, "执行率": rates}, cols, n), n)
    book.write(ws, r, 0, "合计", "label")
    for j, total in enumerate(_table_totals(report, "budget_lines", BUDGET_AMOUNT_COLUMNS).values(), start=2):
        book.write(ws, r, j, excel_round(total, 2), "amount")
    r += 2
    ws.write_string(r, 0, "按支出类别", book.fmt["subtitle"])
    by_cat = _budget_categories(report)
    cat_rows = [{"支出类别": cat, "全年预算数": excel_round(b, 2), "实际支出数": excel_round(e, 2),
                 "执行率": excel_round(e / b, 4) if b else None} for cat, (b, e) in by_cat]
    cat_top = r + 1
    r = book.table(ws, cat_top, [("支出类别", "text"), ("全年预算数", "amount"), ("实际支出数", "amount"),
                                 ("执行率", "percent")], cat_rows) + 1
    if cat_rows:
        chart = book.wb.add_chart({"type": "bar"})
        cats = [ws.name, cat_top + 1, 0, cat_top + len(cat_rows), 0]
        chart.add_series({"name": "全年预算数", "categories": cats,
                          "values": [ws.name, cat_top + 1, 1, cat_top + len(cat_rows), 1]})
        chart.add_series({"name": "实际支出数", "categories": cats,
                          "values": [ws.name, cat_top + 1, 2, cat_top + len(cat_rows), 2]})
        chart.set_title({"name": "预算执行（按支出类别，万元）"})
        chart.set_legend({"position": "bottom"})
        ws.insert_chart(cat_top, 6, chart)
        r = max(r, cat_top + 16)
    ws.write_string(r, 0, "“三公经费”（万元）", book.fmt["subtitle"])
    sg_cols = [("项目", "text")] + [(c, "amount") for c in SANGONG_AMOUNT_COLUMNS]
    m = len(report.sangong)
    r = book.grid(ws, r + 1, sg_cols, _table_data(_columns_of(report, "sangong"), sg_cols, m), m)
    book.write(ws, r, 0, "合计", "label")
    for j, total in enumerate(_table_totals(report, "sangong", SANGONG_AMOUNT_COLUMNS).values(), start=1):
        book.write(ws, r, j, excel_round(total, 2), "amount")
    r += 2
    ws.write_string(r, 0, "共性指标计算", book.fmt["subtitle"])
    names = report.indicators["计算方法"].tolist()
    book.table(ws, r + 1, [("指标", "text"), ("值", "percent"), ("状态", "text"), ("计算过程", "text")],
               _indicator_rows(report, names), span_last=6)


TARGET_SHEET_COLUMNS = [
    ("序号", "general"), ("一级指标", "text"), ("二级指标", "text"), ("三级指标", "text"), ("指标值文本", "text"),
    ("填报实际值", "general"), ("取数公式", "text"), ("公式计算值", "number"), ("实际完成值文本", "text"),
    ("完成率", "percent"), ("分值", "number"), ("得分", "number"), ("扣分说明", "text"), ("_file", "text"),
]
TARGET_SHEET_HEADERS = {"指标值文本": "指标值", "实际完成值文本": "采用的实际完成值", "_file": "来源文件", "分值": "分值（折算）"}


def _targets_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("绩效目标完成", header_rows=0)
    cols = [(TARGET_SHEET_HEADERS.get(c, c), fmt) for c, fmt in TARGET_SHEET_COLUMNS]
    # Renamed as the headers say; where a renamed column meets one of that name, the later one in the frame wins.
    data = {TARGET_SHEET_HEADERS.get(k, k): v for k, v in _columns_of(report, "targets").items()}
    if "公式计算值" in data:
        data["公式计算值"] = [excel_round(v, 2) if isinstance(v, float) and not math.isnan(v) else v
                         for v in data["公式计算值"]]
    n = len(report.targets)
    book.grid(ws, 0, cols, _table_data(data, cols, n), n)
    ws.freeze_panes(1, 4)


MONITOR_SHEET_COLUMNS = [("类别", "text"), ("项目", "text"), ("全年目标", "number"), ("应完成", "number"),
                         ("累计完成", "number"), ("时间进度", "percent"), ("实际进度", "percent"), ("进度比", "percent"),
                         ("进度差", "percent"), ("预警等级", "text"), ("说明", "text")]


def _monitoring_sheet(book: Book, report: UnitReport) -> None:
    """监控预警: every monitoring check of the unit with its figures, warnings (红/黄) coloured, counts on top."""
    ws = book.sheet("监控预警", header_rows=3)
    mon = report.monitoring
    n = len(mon)
    data = column_lists(mon)
    as_of = data["截至月份"][0] if n else ""
    counts = Counter(data["预警等级"])
    ws.write_string(0, 0, f"绩效运行监控（截至 {as_of}）", book.fmt["title"])
    ws.write_string(1, 0, f"红色预警 {int(counts.get('红', 0))} 项，黄色预警 {int(counts.get('黄', 0))} 项，"
                          f"共检查 {n} 项。时间进度 = 月份 ÷ 12；进度比 = 实际进度 ÷ 时间进度；"
                          "阈值见评分标准“参数”表（监控红线、监控黄线、超前预警）。", book.fmt["text"])
    book.grid(ws, 3, MONITOR_SHEET_COLUMNS, _table_data(data, MONITOR_SHEET_COLUMNS, n), n)
    colour = {"红": book.wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006", "border": 1, "bold": True}),
              "黄": book.wb.add_format({"bg_color": "#FFEB9C", "font_color": "#9C5700", "border": 1, "bold": True}),
              "绿": book.wb.add_format({"bg_color": "#C6EFCE", "font_color": "#006100", "border": 1})}
    level_col = [c for c, _ in MONITOR_SHEET_COLUMNS].index("预警等级")
    for i, level in enumerate(data["预警等级"], start=4):
        if level in colour:
            ws.write_string(i, level_col, level, colour[level])
    ws.freeze_panes(4, 2)
    book.widths[ws.name][len(MONITOR_SHEET_COLUMNS) - 1] = 80


WORK_STATS_COLUMNS = [("统计项", "text"), ("业务条线", "text"), ("计量单位", "text"), ("汇总方式", "text")] + \
    [(f"{m}月", "general") for m in range(1, 13)] + [("全年", "general"), ("年度值", "general"), ("来源", "text")]


def _work_stats_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("工作统计汇总", header_rows=0)
    n = len(report.work_stats)
    book.grid(ws, 0, WORK_STATS_COLUMNS, _table_data(_columns_of(report, "work_stats"), WORK_STATS_COLUMNS, n), n)
    ws.freeze_panes(1, 1)


YOY_FORMATS = {"score": "number", "amount": "amount", "rate": "percent", "text": "text"}


def _year_on_year_sheet(book: Book, report: UnitReport) -> None:
    """年度对比: score, 预算执行率 and 三公经费 against the previous fiscal year; only when that year's figures exist.
    增减 of a rate is in percentage points (a fraction shown as %); 增减率 = 增减 ÷ 上年."""
    yoy = report.year_on_year
    if yoy is None or yoy.empty:
        return
    year = int(report.unit["财年"])
    ws = book.sheet("年度对比", landscape=False)
    ws.write_string(0, 0, f"{report.unit.get('单位名称') or ''}{year}年与{year - 1}年对比", book.fmt["subtitle"])
    heads = ["指标", f"{year - 1}年", f"{year}年", "增减", "增减率"]
    for j, h in enumerate(heads):
        book.write(ws, 1, j, h, "header")
    for i, r in enumerate(records(yoy), start=2):
        fmt = YOY_FORMATS.get(r["_fmt"], "general")
        book.write(ws, i, 0, r["指标"], "label")
        for j, name in enumerate(("上年", "本年", "增减"), start=1):
            book.write(ws, i, j, r[name], fmt)
        book.write(ws, i, 4, r["增减率"], "percent")
    ws.print_area(0, 0, len(yoy) + 1, 4)


ISSUE_SHEET_COLUMNS = [("严重程度", "text"), ("文件", "text"), ("工作表", "text"), ("单元格", "text"),
                       ("问题", "text"), ("原值", "text"), ("代码", "text")]


_SHEET_ISSUE_NAMES = tuple(name for name, _ in ISSUE_SHEET_COLUMNS)
# The Issue field of each text column of issues_frame.
_ISSUE_FIELDS = {"严重程度": "severity", "代码": "code", "单位编码": "unit", "文件": "file", "工作表": "sheet",
                 "单元格": "cell", "问题": "message", "原值": "value"}


def _issue_columns(issues: list, names: tuple[str, ...] = _SHEET_ISSUE_NAMES) -> dict[str, list]:
    """The columns `names` of `issues_frame(issues)` (by default those the 数据问题 sheet shows), in its order
    (errors first, then by 单位编码, 文件, 工作表, stable). Plain text fields (the rule) are sorted here; anything
    else goes through the frame. The 汇总 takes its issues' columns from here too (summary.issues_tables)."""
    fields = operator.attrgetter("severity", "unit", "file", "sheet", *(_ISSUE_FIELDS[name] for name in names))
    rows = [fields(i) for i in issues]
    if not all(v.__class__ is str for row in rows for v in row):
        frame = issues_frame(issues)
        return {name: frame[name].tolist() for name in names}
    rows.sort(key=lambda r: (SEVERITY_ORDER[r[0]], r[1], r[2], r[3]))
    columns = list(zip(*rows))[4:] if rows else [() for _ in names]
    return {name: list(values) for name, values in zip(names, columns)}


def _issues_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("数据问题", header_rows=0)
    data = _issue_columns(report.issues)
    n = len(data["严重程度"])
    columns = ISSUE_SHEET_COLUMNS + [("定位", "text")]
    book.grid(ws, 0, columns, _table_data(data, columns, n), n)
    link_col = len(ISSUE_SHEET_COLUMNS)
    for i, (sev, file, sheet, cell) in enumerate(zip(data["严重程度"], data["文件"], data["工作表"], data["单元格"]),
                                                start=1):
        style = {"错误": "error", "警告": "warning"}.get(sev)
        if style:
            ws.write_string(i, 0, sev, book.fmt[style])
        url = source_link(report.source_links.get(file), sheet, cell)
        if url:
            ws.write_url(i, link_col, url, book.fmt["link"], string="打开", tip="打开源文件并定位到该单元格")
    if not n:
        ws.write_string(1, 0, "未发现数据问题", book.fmt["text"])
    ws.freeze_panes(1, 0)
    book.widths[ws.name][4] = 70


@functools.lru_cache(maxsize=4096)
def _quoted_path(rel_path: str) -> str:
    """A relative path percent-quoted for a link; cached, as every issue of a file links to the same file (quoting
    walks the path byte by byte in Python)."""
    return urllib.parse.quote(rel_path.replace("\\", "/"), safe="/")


_CELL_REF = re.compile(r"[A-Z]{1,3}[1-9][0-9]{0,6}")


def source_link(rel_path: str | None, sheet: str, cell: str) -> str | None:
    """`external:` link to an input file (path relative to the output workbook) at a cell. The path and sheet name
    come from the user's files: the path is percent-quoted (xlsxwriter leaves an already quoted URL alone, so a `#`
    or `"` in a file name cannot end the path or the attribute), a `'` in the sheet name is doubled as Excel's
    quoting wants, and only a plain A1 reference is used as cell. None when there is nothing to link."""
    if not rel_path:
        return None
    url = "external:" + _quoted_path(rel_path)
    if sheet:
        ref = cell if isinstance(cell, str) and _CELL_REF.fullmatch(cell) else "A1"
        url += "#" + "'" + sheet.replace("'", "''") + "'!" + ref
    return url if len(url) <= 2000 else None  # Excel's limit for a link is 2079 characters


def _about_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("说明", landscape=False)
    fw = report.framework
    facts = [
        ("评分框架", fw.name), ("框架版本", fw.version), ("框架文件", Path(str(fw.path)).name),
        ("框架 SHA-256", fw.sha256), ("程序版本", f"pipeline {__version__}"),
        ("运行时间", report.run_time.strftime("%Y-%m-%d %H:%M:%S")),
        ("取整规则", "四舍五入（与 Excel ROUND 相同），金额与得分保留 2 位小数，比率以百分数保留 2 位小数"),
        ("金额单位", "万元"),
    ]
    ws.write_string(0, 0, "评价说明", book.fmt["title"])
    for i, (k, v) in enumerate(facts, start=2):
        book.write(ws, i, 0, k, "label")
        book.write(ws, i, 1, v, "text")
    r = len(facts) + 3
    ws.write_string(r, 0, "输入文件", book.fmt["subtitle"])
    file_cols = [("文件", "text"), ("模板类型", "text"), ("填报科室", "text"), ("sha256", "text")]
    n = len(report.files)
    r = book.grid(ws, r + 1, file_cols, _table_data(_columns_of(report, "files"), file_cols, n), n) + 1
    ws.write_string(r, 0, "评分规则", book.fmt["subtitle"])
    book.grid(ws, r + 1, _RULE_COLUMNS, _framework_parts(fw).rule_table, len(fw.rows))
    book.widths[ws.name][1] = 40
