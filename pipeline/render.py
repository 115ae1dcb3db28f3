"""Render: the annotated unit workbook and 评分明细.csv. The only module that writes output files (with templates).

Every string that came from an input cell is written with `write_string`, and the workbook is opened with
`strings_to_formulas` / `strings_to_urls` off, so `=HYPERLINK(…)` typed by a user stays inert text.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import xlsxwriter

from . import __version__
from . import formulas_xl as fx
from .atomic import atomic_output
from .issues import issues_frame
from .numbers import excel_round, records

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


def display_width(text: object) -> int:
    """Width of a text in Excel character units, East-Asian wide characters counting double."""
    return _text_width(str(text))


@functools.lru_cache(maxsize=1 << 16)
def _text_width(text: str) -> int:  # the same labels and figures recur in every unit's workbook
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class Book:
    """A thin wrapper over an xlsxwriter Workbook with this project's formats and safe writes."""

    def __init__(self, path: Path, header_text: str):
        self.path = path
        self.header_text = header_text
        self.wb = xlsxwriter.Workbook(str(path), {**SAFE_OPTIONS, "in_memory": True})  # no temp file per sheet
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
        ws = self.wb.add_worksheet(name)
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

    def _grow(self, ws, col: int, text: str) -> None:
        widths = self.widths[ws.name]
        widths[col] = max(widths.get(col, 6), min(display_width(text) + 2, 50))

    def table(self, ws, top: int, columns: list[tuple[str, str]], rows: list[dict], left: int = 0,
              span_last: int = 0) -> int:
        """A header row and one row per dict; `columns` are (field, format). With `span_last`, the last column is
        merged over that many more columns (long text under narrow number columns). Returns the next free row."""
        last = len(columns) - 1
        for j, (name, _) in enumerate(columns):
            ws.write_string(top, left + j, name, self.fmt["header"])
            self._grow(ws, left + j, name)
        for i, record in enumerate(rows, start=1):
            for j, (name, fmt) in enumerate(columns):
                if span_last and j == last:
                    value = record.get(name)
                    ws.merge_range(top + i, left + j, top + i, left + j + span_last,
                                   "" if value is None else str(value), self.fmt[fmt])
                else:
                    self.write(ws, top + i, left + j, record.get(name), fmt)
        if span_last:
            ws.merge_range(top, left + last, top, left + last + span_last, columns[-1][0], self.fmt["header"])
        return top + len(rows) + 1

    def close(self) -> None:
        for ws in self.wb.worksheets():
            for col, width in self.widths.get(ws.name, {}).items():
                ws.set_column(col, col, width)
        self.wb.close()


def render_unit_workbook(report: UnitReport, path: Path) -> Path:
    """Write one unit's evaluation workbook atomically; returns the final path."""
    with atomic_output(path) as tmp:
        unit = report.unit
        book = Book(tmp, f"{unit.get('单位名称') or ''} {unit['财年']}年度部门整体支出绩效评价")
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
    return path


def _indicator_rows(report: UnitReport, names) -> list[dict]:
    by_name = {r["计算方法"]: r for r in records(report.indicators)}
    rows = []
    for name in names:
        r = by_name.get(name)
        if r is None:
            continue
        value = excel_round(r["值"], 4) if r["状态"] == "正常" and not pd.isna(r["值"]) else None
        rows.append({"指标": name, "值": value, "状态": r["状态"], "计算过程": r["说明"]})
    return rows


def _level1_rows(report: UnitReport) -> list[dict]:
    d = report.details
    groups = d.groupby("一级指标", sort=False).agg(分值=("分值", "sum"), 得分=("得分", "sum")).reset_index()
    rows = []
    for g in records(groups):
        points, score = excel_round(g["分值"], 2), excel_round(g["得分"], 2)
        rows.append({"一级指标": g["一级指标"], "分值": points, "得分": score, "失分": excel_round(points - score, 2),
                     "得分率": excel_round(score / points, 4) if points else None})
    return rows


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
    counts = pd.Series([i.severity for i in report.issues]).value_counts()
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
    ws.write_formula(r, 1, fx.sum_range(_details_range("得分", n), fw.digits), book.fmt["total"], total["总分"])
    ws.write_formula(r + 1, 1, fx.grade(f"B{r + 1}", fw.grades), book.fmt["total"], total.get("等级") or "无法评级")


def _level1_formulas(book: Book, ws, report: UnitReport, top: int, level1: list[dict]) -> None:
    """各一级指标得分: SUMIF over 评分明细 (rounded as _level1_rows rounds), cached with the computed figures."""
    n = len(report.details)
    if not n:
        return
    names, points, scores = (_details_range(c, n) for c in ("一级指标", "分值", "得分"))
    for k, g in enumerate(level1, start=1):
        row, x = top + k, top + k + 1  # 0-based row, Excel row
        ws.write_formula(row, 1, fx.sum_if(names, f"A{x}", points, 2), book.fmt["number"], g["分值"])
        ws.write_formula(row, 2, fx.sum_if(names, f"A{x}", scores, 2), book.fmt["number"], g["得分"])
        ws.write_formula(row, 3, fx.difference(f"B{x}", f"C{x}", 2), book.fmt["number"], g["失分"])
        if g["得分率"] is not None:
            ws.write_formula(row, 4, fx.share(f"C{x}", f"B{x}"), book.fmt["percent"], g["得分率"])


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


def _sheet_col(name: str) -> str:
    """Column letter of a 评分明细 column."""
    return xlsxwriter.utility.xl_col_to_name([c for c, _ in DETAIL_SHEET_COLUMNS].index(name))


def _details_range(name: str, n: int) -> str:
    """`'评分明细'!$I$2:$I$29`: a column over the n item rows, for formulas on other sheets."""
    c = _sheet_col(name)
    return f"'{DETAILS_SHEET}'!${c}$2:${c}${n + 1}"


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
    col = {name: j for j, (name, _) in enumerate(DETAIL_SHEET_COLUMNS)}
    method, params, refs = r["评分方法"], rule["_params"], _row_refs(i + 1)
    value, target = _num(r.get("_value")), _num(r.get("_target"))
    if value is None:
        return

    def put(name, v, fmt):
        book.write(ws, i, col[name], v, fmt)

    def formula(name, text, cached, fmt):
        ws.write_formula(i, col[name], text, book.fmt[fmt], cached)

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


def _details_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet(DETAILS_SHEET, header_rows=0)
    rows = records(report.details)
    book.table(ws, 0, DETAIL_SHEET_COLUMNS, [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    rules = {r["指标编码"]: r for r in records(report.framework.rows)}
    for i, r in enumerate(rows, start=1):
        _detail_formulas(book, ws, i, r, rules.get(r.get("_rule")), report.framework)
    for name, _ in DETAIL_INPUT_COLUMNS:
        ws.write_comment(0, [c for c, _ in DETAIL_SHEET_COLUMNS].index(name), DETAIL_INPUT_NOTES[name],
                         {"x_scale": 2, "y_scale": 1.5})
    names = [c for c, _ in DETAIL_SHEET_COLUMNS]
    points, score, reason = names.index("分值"), names.index("得分"), names.index("扣分说明")
    for i, r in enumerate(rows, start=1):
        if r["得分"] < r["分值"] - 1e-9:
            ws.write_comment(i, score, f"失分 {excel_round(r['分值'] - r['得分'], 2):.2f}：{r['扣分说明']}",
                             {"x_scale": 2, "y_scale": 1.5})
    n = len(rows)
    if n:
        col_p, col_s = xlsxwriter.utility.xl_col_to_name(points), xlsxwriter.utility.xl_col_to_name(score)
        ws.conditional_format(1, 0, n, len(names) - 1, {
            "type": "formula", "criteria": f"=${col_s}2<${col_p}2-0.000001", "format": book.fmt["lost"]})
        total_row = n + 1
        digits = report.framework.digits
        book.write(ws, total_row, 0, "合计", "label")
        ws.write_formula(total_row, points, fx.sum_range(f"{col_p}2:{col_p}{n + 1}", digits), book.fmt["number"],
                         excel_round(sum(r["分值"] for r in rows), digits))
        ws.write_formula(total_row, score, fx.sum_range(f"{col_s}2:{col_s}{n + 1}", digits), book.fmt["number"],
                         excel_round(sum(r["得分"] for r in rows), digits))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(n, 1), len(names) - 1)
    book.widths[ws.name][reason] = 60


def _budget_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("预算执行分析")
    ws.write_string(0, 0, "预算执行明细（万元）", book.fmt["subtitle"])
    amount_cols = ["上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数"]
    lines = records(report.budget_lines)
    for r in lines:
        b, e = r.get("全年预算数"), r.get("实际支出数")
        r["执行率"] = excel_round(e / b, 4) if b and not pd.isna(b) and not pd.isna(e) else None
    cols = [("支出类别", "text"), ("项目名称", "text")] + [(c, "amount") for c in amount_cols] + [("执行率", "percent")]
    r = book.table(ws, 1, cols, lines)
    book.write(ws, r, 0, "合计", "label")
    for j, c in enumerate(amount_cols, start=2):
        book.write(ws, r, j, excel_round(pd.to_numeric(report.budget_lines[c]).sum(), 2), "amount")
    r += 2
    ws.write_string(r, 0, "按支出类别", book.fmt["subtitle"])
    by_cat = report.budget_lines.groupby("支出类别", sort=False)[["全年预算数", "实际支出数"]].sum().reset_index()
    cat_rows = [{"支出类别": c["支出类别"], "全年预算数": excel_round(c["全年预算数"], 2),
                 "实际支出数": excel_round(c["实际支出数"], 2),
                 "执行率": excel_round(c["实际支出数"] / c["全年预算数"], 4) if c["全年预算数"] else None}
                for c in records(by_cat)]
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
    sg_cols = [("项目", "text"), ("预算数", "amount"), ("实际支出数", "amount"), ("上年预算数", "amount"),
               ("上年实际支出数", "amount")]
    r = book.table(ws, r + 1, sg_cols, records(report.sangong))
    book.write(ws, r, 0, "合计", "label")
    for j, (c, _) in enumerate(sg_cols[1:], start=1):
        book.write(ws, r, j, excel_round(pd.to_numeric(report.sangong[c]).sum(), 2), "amount")
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
    rows = [{TARGET_SHEET_HEADERS.get(k, k): v for k, v in r.items()} for r in records(report.targets)]
    for r in rows:
        if isinstance(r.get("公式计算值"), float) and not math.isnan(r["公式计算值"]):
            r["公式计算值"] = excel_round(r["公式计算值"], 2)
    book.table(ws, 0, cols, rows)
    ws.freeze_panes(1, 4)


MONITOR_SHEET_COLUMNS = [("类别", "text"), ("项目", "text"), ("全年目标", "number"), ("应完成", "number"),
                         ("累计完成", "number"), ("时间进度", "percent"), ("实际进度", "percent"), ("进度比", "percent"),
                         ("进度差", "percent"), ("预警等级", "text"), ("说明", "text")]


def _monitoring_sheet(book: Book, report: UnitReport) -> None:
    """监控预警: every monitoring check of the unit with its figures, warnings (红/黄) coloured, counts on top."""
    ws = book.sheet("监控预警", header_rows=3)
    mon = report.monitoring
    as_of = mon["截至月份"].iloc[0] if len(mon) else ""
    ws.write_string(0, 0, f"绩效运行监控（截至 {as_of}）", book.fmt["title"])
    counts = mon["预警等级"].value_counts()
    ws.write_string(1, 0, f"红色预警 {int(counts.get('红', 0))} 项，黄色预警 {int(counts.get('黄', 0))} 项，"
                          f"共检查 {len(mon)} 项。时间进度 = 月份 ÷ 12；进度比 = 实际进度 ÷ 时间进度；"
                          "阈值见评分标准“参数”表（监控红线、监控黄线、超前预警）。", book.fmt["text"])
    rows = records(mon)
    book.table(ws, 3, MONITOR_SHEET_COLUMNS, rows)
    colour = {"红": book.wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006", "border": 1, "bold": True}),
              "黄": book.wb.add_format({"bg_color": "#FFEB9C", "font_color": "#9C5700", "border": 1, "bold": True}),
              "绿": book.wb.add_format({"bg_color": "#C6EFCE", "font_color": "#006100", "border": 1})}
    level_col = [c for c, _ in MONITOR_SHEET_COLUMNS].index("预警等级")
    for i, r in enumerate(rows, start=4):
        if r["预警等级"] in colour:
            ws.write_string(i, level_col, r["预警等级"], colour[r["预警等级"]])
    ws.freeze_panes(4, 2)
    book.widths[ws.name][len(MONITOR_SHEET_COLUMNS) - 1] = 80


def _work_stats_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("工作统计汇总", header_rows=0)
    months = [f"{m}月" for m in range(1, 13)]
    cols = [("统计项", "text"), ("业务条线", "text"), ("计量单位", "text"), ("汇总方式", "text")] + \
        [(m, "general") for m in months] + [("全年", "general"), ("年度值", "general"), ("来源", "text")]
    rows = records(report.work_stats.rename(columns={"全年": "全年"}))
    book.table(ws, 0, cols, rows)
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


def _issues_sheet(book: Book, report: UnitReport) -> None:
    ws = book.sheet("数据问题", header_rows=0)
    frame = issues_frame(report.issues)
    rows = records(frame)
    book.table(ws, 0, ISSUE_SHEET_COLUMNS + [("定位", "text")], rows)
    link_col = len(ISSUE_SHEET_COLUMNS)
    for i, r in enumerate(rows, start=1):
        sev = {"错误": "error", "警告": "warning"}.get(r["严重程度"])
        if sev:
            ws.write_string(i, 0, r["严重程度"], book.fmt[sev])
        url = source_link(report.source_links.get(r["文件"]), r["工作表"], r["单元格"])
        if url:
            ws.write_url(i, link_col, url, book.fmt["link"], string="打开", tip="打开源文件并定位到该单元格")
    if not rows:
        ws.write_string(1, 0, "未发现数据问题", book.fmt["text"])
    ws.freeze_panes(1, 0)
    book.widths[ws.name][4] = 70


_CELL_REF = re.compile(r"[A-Z]{1,3}[1-9][0-9]{0,6}")


def source_link(rel_path: str | None, sheet: str, cell: str) -> str | None:
    """`external:` link to an input file (path relative to the output workbook) at a cell. The path and sheet name
    come from the user's files: the path is percent-quoted (xlsxwriter leaves an already quoted URL alone, so a `#`
    or `"` in a file name cannot end the path or the attribute), a `'` in the sheet name is doubled as Excel's
    quoting wants, and only a plain A1 reference is used as cell. None when there is nothing to link."""
    if not rel_path:
        return None
    url = "external:" + urllib.parse.quote(rel_path.replace("\\", "/"), safe="/")
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
    r = book.table(ws, r + 1, [("文件", "text"), ("模板类型", "text"), ("填报科室", "text"), ("sha256", "text")],
                   records(report.files)) + 1
    ws.write_string(r, 0, "评分规则", book.fmt["subtitle"])
    rule_cols = [("指标编码", "text"), ("一级指标", "text"), ("二级指标", "text"), ("三级指标", "text"),
                 ("分值", "number"), ("评分方法", "text"), ("评分标准说明", "text")]
    book.table(ws, r + 1, rule_cols, records(fw.rows))
    book.widths[ws.name][1] = 40


def write_details_csv(details: pd.DataFrame, path: Path) -> Path:
    """评分明细.csv: one row per unit × indicator, UTF-8 with BOM so that Excel opens it; written atomically."""
    cols = ["单位编码", "财年", "单位名称", *[c for c, _ in DETAIL_COLUMNS]]
    with atomic_output(path) as tmp:
        details.reindex(columns=cols).to_csv(tmp, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    return path
