"""Generate the Excel workbooks users fill (and the 评分标准 workbooks) from `spec.py`, with xlsxwriter.

Every workbook gets the spec's sheets, a `填表说明` sheet generated from the same spec and a hidden `_meta` sheet.
Output is deterministic (fixed document date, xlsxwriter's fixed zip timestamps), so the committed blank templates
can be compared byte for byte with freshly generated ones, and every file is written atomically.
"""

from __future__ import annotations

import io
import math
import unicodedata
from datetime import date, datetime
from pathlib import Path

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from .atomic import write_atomic
from .numbers import col_letter, is_blank
from .spec import (
    AMOUNT, CHOICE, DATE, FORMULA, HELP_SHEET, INTEGER, META_SHEET, NUMBER, PERCENT, SCORING_FRAMEWORK, TEXT,
    UNIT_TEMPLATES, VALUE, Field, SheetSpec, TemplateSpec,
)

# No program version here: a release must not change the committed templates; 模板版本 is what readers check.
GENERATOR = "pipeline"
FIXED_DATE = datetime(2000, 1, 1)
TOTAL_LABEL = "合计"
# Sheets that end with a computed 合计 row over their amount columns; the reader drops rows labelled 合计.
TOTAL_ROW_SHEETS = frozenset({"预算执行", "三公经费"})
# Open-ended tables get dropdowns this far down, so rows typed below the prepared ones still have them.
VALIDATION_LAST_ROW = 500
FRAMEWORK_FILES = {"A": "评分标准_A_部门整体支出.xlsx", "B": "评分标准_B_自评表.xlsx"}

WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
# No password: the protection only guards headers and formulas against slips, it is no security boundary.
PROTECT_OPTIONS = {
    "insert_rows": True, "delete_rows": True, "format_cells": True, "format_columns": True,
    "format_rows": True, "sort": True, "autofilter": True,
}

KIND_NAMES = {
    TEXT: "文本", AMOUNT: "金额", NUMBER: "数值", INTEGER: "整数", CHOICE: "下拉选择",
    PERCENT: "百分比（填 75 表示 75%）", DATE: "日期（如 2024-01-15）", VALUE: "数值或定性结论",
    FORMULA: "取数公式",
}
# Percent fields carry （%） in their label, so the user types 75 for 75%: a plain number format, not "0%".
KIND_NUM_FORMATS = {
    TEXT: "@", CHOICE: "@", FORMULA: "@", AMOUNT: "#,##0.00", INTEGER: "0", DATE: "yyyy-mm-dd",
    NUMBER: "General", PERCENT: "General", VALUE: "General",
}

INPUT_FILL = "#FFF2CC"   # light yellow: type here
LOCKED_FILL = "#E7E6E6"  # grey: header, fixed key or computed
HEADER_FILL = "#D9D9D9"

GENERAL_RULES = (
    "黄色单元格为填写区；灰色单元格为表头、固定项目或自动计算的合计，已锁定（工作表保护未设密码）。",
    "表头带 * 的为必填项。程序按表头名称识别各列：可在表头上方插入行、调整列的顺序或增加自己的列，但请勿修改表头文字。",
    "金额单位为万元，保留两位小数；百分比直接填数字，如 75 表示 75%。",
    "“合计”行由公式自动计算，程序读取时不计入，不会重复统计。",
    "同一单位的所有表格，单位编码和财年必须一致，程序据此合并。",
)


def write_workbook(spec: TemplateSpec, path, year: int | None, data: dict | None = None,
                   meta: dict | None = None) -> None:
    """Write one workbook for `spec`: its sheets, a 填表说明 sheet and a hidden `_meta` sheet.

    Args:
        spec: the template to write.
        path: target file; written atomically (temporary file in the same folder, then renamed).
        year: the fiscal year, pre-filled into 单位信息 and `_meta`; None for year-less workbooks (评分标准).
        data: sheet name → {field name: value} for "kv" sheets or a list of such dicts for "table" sheets.
            Without it the workbook is a blank template.
        meta: extra `_meta` keys, e.g. {"框架名称": "…"}.

    Raises:
        ValueError: `data` names a sheet or field the spec does not have (a programming error).
    """
    data = data or {}
    _check_data(spec, data)
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, **WORKBOOK_OPTIONS})
    workbook.set_properties({
        "title": spec.type, "author": GENERATOR, "created": FIXED_DATE,
        "comments": "由 pipeline 根据 spec.py 生成；请勿修改表头文字。",
    })
    formats = _Formats(workbook)
    for sheet in spec.sheets:
        worksheet = workbook.add_worksheet(sheet.name)
        if sheet.kind == "kv":
            _write_kv_sheet(worksheet, sheet, _kv_values(sheet, data.get(sheet.name), year), formats)
        else:
            _write_table_sheet(worksheet, sheet, data.get(sheet.name), formats)
        worksheet.protect("", PROTECT_OPTIONS)
    _write_help_sheet(workbook.add_worksheet(HELP_SHEET), spec, year, formats)
    _write_meta_sheet(workbook.add_worksheet(META_SHEET), spec, year, meta or {}, formats)
    workbook.close()
    write_atomic(Path(path), buffer.getvalue())


def template_filename(spec: TemplateSpec, year: int) -> str:
    """File name of a blank template, e.g. `预算执行表_2023.xlsx`."""
    return f"{spec.type}_{year}.xlsx"


def generate_templates(year: int, out_dir: Path) -> list[Path]:
    """Write the blank unit templates (预算执行表, 绩效目标表, 工作统计表) of one fiscal year.

    Args:
        year: the fiscal year, e.g. 2024.
        out_dir: target folder, created if missing (the CLI's default is `input_templates/<year>/`).

    Returns:
        The paths written, in the order of `spec.UNIT_TEMPLATES`.
    """
    out_dir = Path(out_dir)
    paths = []
    for spec in UNIT_TEMPLATES:
        path = out_dir / template_filename(spec, year)
        write_workbook(spec, path, year)
        paths.append(path)
    return paths


def write_framework_workbooks(out_dir: Path) -> list[Path]:
    """Write the shipped scoring frameworks A and B as 评分标准 workbooks.

    The definitions live in `framework.framework_workbook_data(key) -> (data, meta)`.

    Args:
        out_dir: target folder, normally `input_templates/`.

    Returns:
        The paths written: `评分标准_A_部门整体支出.xlsx`, `评分标准_B_自评表.xlsx`.
    """
    from .framework import framework_workbook_data  # imported late: framework imports heavier modules

    paths = []
    for key, filename in FRAMEWORK_FILES.items():
        data, meta = framework_workbook_data(key)
        path = Path(out_dir) / filename
        write_workbook(SCORING_FRAMEWORK, path, None, data, meta)
        paths.append(path)
    return paths


# --- formats -----------------------------------------------------------------------------------------------------


class _Formats:
    """The workbook's cell formats, created once per workbook and per field kind."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        base = {"font_name": "宋体", "font_size": 11, "valign": "vcenter"}
        boxed = {**base, "border": 1, "border_color": "#A6A6A6"}
        self.header = workbook.add_format({**boxed, "bold": True, "bg_color": HEADER_FILL, "text_wrap": True,
                                           "align": "center", "locked": True})
        self.label = workbook.add_format({**boxed, "bold": True, "bg_color": LOCKED_FILL, "locked": True})
        self.fixed = workbook.add_format({**boxed, "bg_color": LOCKED_FILL, "locked": True})
        self.total_label = workbook.add_format({**boxed, "bold": True, "bg_color": HEADER_FILL, "locked": True})
        self.total = workbook.add_format({**boxed, "bold": True, "bg_color": HEADER_FILL, "locked": True,
                                          "num_format": KIND_NUM_FORMATS[AMOUNT]})
        self.note = workbook.add_format({**base, "font_color": "#595959", "text_wrap": True, "locked": True})
        self.text = workbook.add_format({**base, "text_wrap": True, "locked": True})
        self.title = workbook.add_format({**base, "bold": True, "font_size": 14, "locked": True})
        self.section = workbook.add_format({**base, "bold": True, "bg_color": LOCKED_FILL, "locked": True})
        self.help_cell = workbook.add_format({**boxed, "text_wrap": True, "valign": "top", "locked": True})
        self.input = {kind: workbook.add_format({**boxed, "bg_color": INPUT_FILL, "locked": False,
                                                 "num_format": num_format})
                      for kind, num_format in KIND_NUM_FORMATS.items()}
        # Column default for rows below the prepared ones: still editable, without the fill.
        self.column = {kind: workbook.add_format({**base, "locked": False, "num_format": num_format})
                       for kind, num_format in KIND_NUM_FORMATS.items()}


# --- kv sheets ---------------------------------------------------------------------------------------------------


def _kv_values(sheet: SheetSpec, values: dict | None, year: int | None) -> dict:
    """The values of a key-value sheet, with 财年 pre-filled from `year` unless given."""
    values = dict(values or {})
    if year is not None and "财年" in {f.name for f in sheet.fields}:
        values.setdefault("财年", year)
    return values


def _write_kv_sheet(ws: Worksheet, sheet: SheetSpec, values: dict, formats: _Formats) -> None:
    """Key in column A (label with required mark), value in B (input cell), help in C (for the reader's eye)."""
    value_width = max([f.width for f in sheet.fields] + [24])
    ws.set_column(0, 0, max(_header_width(f.label) for f in sheet.fields) + 2)
    ws.set_column(1, 1, value_width, formats.column[TEXT])
    ws.set_column(2, 2, 60)
    for row, f in enumerate(sheet.fields):
        ws.write_string(row, 0, f.label, formats.label)
        _write_value(ws, row, 1, values.get(f.name), formats.input[f.kind])
        _write_field_validation(ws, (row, 1, row, 1), f)
        ws.write_string(row, 2, _field_note(f), formats.note)


def _field_note(f: Field) -> str:
    """The help shown beside a key-value field: its help text, allowed values and required mark."""
    parts = ["必填" if f.required else "选填"]
    if f.choices:
        parts.append("可选：" + "、".join(f.choices))
    if f.help:
        parts.append(f.help)
    return "；".join(parts)


# --- table sheets ------------------------------------------------------------------------------------------------


def _write_table_sheet(ws: Worksheet, sheet: SheetSpec, records: list | None, formats: _Formats) -> None:
    """Header in row 1, prepared input rows below it and, on 预算执行 / 三公经费, a computed 合计 row."""
    rows = _table_rows(sheet, records)
    for col, f in enumerate(sheet.fields):
        ws.set_column(col, col, max(f.width, _header_width(f.label) // 2 + 2), formats.column[f.kind])
        ws.write_string(0, col, f.label, formats.header)
    ws.set_row(0, 36)
    for i, record in enumerate(rows):
        _write_record(ws, sheet, i + 1, record, formats)
    last_row = len(rows)  # 0-based index of the last prepared row
    if sheet.name in TOTAL_ROW_SHEETS:
        _write_total_row(ws, sheet, rows, formats)
    _write_table_validations(ws, sheet, last_row)
    ws.freeze_panes(1, 1 if len(sheet.fields) > 10 else 0)


def _table_rows(sheet: SheetSpec, records: list | None) -> list[dict]:
    """The rows to write: the fixed rows merged with their data, or the data padded with blank rows."""
    records = [dict(r) for r in records or []]
    if sheet.fixed_rows:
        by_key = {r.get(sheet.fixed_key): r for r in records}
        rows = [by_key.pop(key, {sheet.fixed_key: key}) for key in sheet.fixed_rows]
        return rows + list(by_key.values())
    blanks = max(sheet.blank_rows - len(records), 0) if records else max(sheet.blank_rows, 1)
    return records + [{} for _ in range(blanks)]


def _write_record(ws: Worksheet, sheet: SheetSpec, row: int, record: dict, formats: _Formats) -> None:
    """One input row; the key of a fixed-row table is locked so the closed list stays intact."""
    for col, f in enumerate(sheet.fields):
        fixed = sheet.fixed_rows and f.name == sheet.fixed_key and record.get(f.name) in sheet.fixed_rows
        _write_value(ws, row, col, record.get(f.name), formats.fixed if fixed else formats.input[f.kind])


def _write_total_row(ws: Worksheet, sheet: SheetSpec, rows: list[dict], formats: _Formats) -> None:
    """A 合计 row under the prepared rows: SUM formulas over the amount columns, each with its cached value so
    that readers without a calculation engine (calamine) see the right figure."""
    total_row = len(rows) + 1
    ws.write_string(total_row, 0, TOTAL_LABEL, formats.total_label)
    for col, f in enumerate(sheet.fields[1:], start=1):
        if f.kind != AMOUNT:
            ws.write_blank(total_row, col, None, formats.total_label)
            continue
        letter = col_letter(col)
        formula = f"=SUM({letter}2:{letter}{len(rows) + 1})"
        ws.write_formula(total_row, col, formula, formats.total, _column_sum(rows, f.name))


def _column_sum(rows: list[dict], name: str) -> float:
    """What Excel's SUM gives for a column: numbers only, text and blanks ignored."""
    numbers = [r.get(name) for r in rows]
    total = math.fsum(v for v in numbers if isinstance(v, (int, float)) and not isinstance(v, bool)
                      and not math.isnan(v))
    return round(total, 9) + 0.0


def _write_table_validations(ws: Worksheet, sheet: SheetSpec, last_row: int) -> None:
    """Dropdowns on CHOICE columns and help pop-ups on the others, over the prepared rows (and, for open tables
    without a 合计 row, further down so that rows typed below still get them)."""
    open_table = not sheet.fixed_rows and sheet.name not in TOTAL_ROW_SHEETS
    end = max(last_row, VALIDATION_LAST_ROW - 1) if open_table else last_row
    for col, f in enumerate(sheet.fields):
        _write_field_validation(ws, (1, col, end, col), f)


def _write_field_validation(ws: Worksheet, cells: tuple[int, int, int, int], f: Field) -> None:
    """A list validation for a CHOICE field, an input message for a field with help text, else nothing."""
    options = {}
    if f.help:
        options.update(input_title=f.name[:32], input_message=f.help[:255])
    if f.kind == CHOICE:
        options.update(validate="list", source=list(f.choices), error_title="输入有误",
                       error_message=("请从下拉列表中选择：" + "、".join(f.choices))[:255])
    elif options:
        options["validate"] = "any"
    if options:
        ws.data_validation(*cells, options)


# --- 填表说明 and _meta -------------------------------------------------------------------------------------------

HELP_COLUMNS = (("字段", 24), ("必填", 6), ("类型/单位", 18), ("可选值", 30), ("说明", 50), ("示例", 26))


def _write_help_sheet(ws: Worksheet, spec: TemplateSpec, year: int | None, formats: _Formats) -> None:
    """The 填表说明 sheet: general rules, then per sheet one row per field, all generated from the spec."""
    for col, (_, width) in enumerate(HELP_COLUMNS):
        ws.set_column(col, col, width)
    title = f"{spec.type}填表说明" + (f"（{year}年度）" if year else "")
    _write_banner(ws, 0, title, formats.title)
    _write_banner(ws, 1, f"模板版本：{spec.version}　{spec.help}", formats.text)
    row = 3
    for i, rule in enumerate(GENERAL_RULES, start=1):
        _write_banner(ws, row, f"{i}. {rule}", formats.text)
        row += 1
    for sheet in spec.sheets:
        row = _write_help_section(ws, sheet, row + 1, formats)
    ws.protect("", PROTECT_OPTIONS)


def _write_banner(ws: Worksheet, row: int, text: str, fmt) -> None:
    """A line of text across the whole 填表说明 width; merged, because one narrow cell would wrap it into a tower."""
    ws.merge_range(row, 0, row, len(HELP_COLUMNS) - 1, "", fmt)
    ws.write_string(row, 0, text, fmt)
    width = sum(w for _, w in HELP_COLUMNS)
    lines = -(-_header_width(text) // width)  # ceil: merged cells never grow by themselves
    if lines > 1:
        ws.set_row(row, 16 * lines)


def _write_help_section(ws: Worksheet, sheet: SheetSpec, row: int, formats: _Formats) -> int:
    """One sheet's block of the 填表说明; returns the next free row."""
    need = "必填" if sheet.required else "选填"
    kind = "表格，每行一条记录" if sheet.kind == "table" else "A 列为项目，B 列填写内容"
    _write_banner(ws, row, f"工作表“{sheet.name}”（{need}；{kind}）{sheet.help}", formats.section)
    row += 1
    for col, (name, _) in enumerate(HELP_COLUMNS):
        ws.write_string(row, col, name, formats.header)
    for f in sheet.fields:
        row += 1
        for col, text in enumerate(_help_row(sheet, f)):
            ws.write_string(row, col, text, formats.help_cell)
    return row + 1


def _help_row(sheet: SheetSpec, f: Field) -> tuple[str, ...]:
    """The six 填表说明 cells of a field: label, required, kind/unit, choices, help, example."""
    kind = KIND_NAMES[f.kind] + (f"，单位：{f.unit}" if f.unit and f.kind != PERCENT else "")
    choices = "、".join(f.choices)
    if sheet.fixed_rows and f.name == sheet.fixed_key:
        choices = "固定行，已预填：" + choices
    return (f.label, "是" if f.required else "", kind, choices, f.help, _display(f.example))


def _write_meta_sheet(ws: Worksheet, spec: TemplateSpec, year: int | None, extra: dict, formats: _Formats) -> None:
    """The hidden `_meta` sheet the reader uses to recognise the template: key in A, value in B."""
    entries = {"模板类型": spec.type, "模板代码": spec.code, "模板版本": spec.version}
    if year is not None:
        entries["财年"] = year
    entries["生成工具"] = GENERATOR
    entries.update(extra)
    ws.set_column(0, 0, 14)
    ws.set_column(1, 1, 40)
    for row, (key, value) in enumerate(entries.items()):
        ws.write_string(row, 0, str(key))
        _write_value(ws, row, 1, value, None)
    ws.protect("", PROTECT_OPTIONS)
    ws.hide()


# --- cells and files ---------------------------------------------------------------------------------------------


def _write_value(ws: Worksheet, row: int, col: int, value, fmt) -> None:
    """Write a Python value with the cell type it deserves; strings always as text, never as formulas."""
    if is_blank(value):
        if fmt is not None:
            ws.write_blank(row, col, None, fmt)
    elif isinstance(value, bool):
        raise TypeError(f"booleans are not a template value (row {row + 1}, column {col_letter(col)})")
    elif isinstance(value, (int, float)):
        ws.write_number(row, col, value, fmt)
    elif isinstance(value, (date, datetime)):
        ws.write_datetime(row, col, value, fmt)
    elif isinstance(value, str):
        ws.write_string(row, col, value, fmt)
    else:
        raise TypeError(f"unsupported value {value!r} (row {row + 1}, column {col_letter(col)})")


def _display(value) -> str:
    """An example value as text for 填表说明: 470.3, 30, 2024-01-15."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _header_width(text: str) -> int:
    """Display width in Excel character units: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _check_data(spec: TemplateSpec, data: dict) -> None:
    """Fail loudly on a sheet or field name the spec does not know: a typo would otherwise vanish silently."""
    for sheet_name, values in data.items():
        sheet = spec.sheet(sheet_name)  # KeyError names the sheet
        records = [values] if sheet.kind == "kv" else list(values or [])
        known = {f.name for f in sheet.fields}
        for record in records:
            unknown = set(record) - known
            if unknown:
                raise ValueError(f"{spec.type}/{sheet_name}: unknown fields {sorted(unknown)}")
