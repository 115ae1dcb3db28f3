"""The self-evaluation report (绩效自评报告) of one unit as a Word document, drafted from the scored tables.

Two steps:
- `report_context(unit_report)`: pure; every figure already rounded and formatted exactly as the unit workbook shows
  it (amounts `#,##0.00`, rates `0.00%` of the value rounded to 4 decimals, scores `0.00`), taken from the same
  tables the workbook is written from (render's UnitReport), so the report and the workbook never disagree.
- `render_report_docx(context, template_path, out_path)`: fills the editable wording template
  (`input_templates/报告模板/绩效自评报告.md.j2`, Jinja2 in a sandbox) and lays the text out as a .docx with
  python-docx: `#` title, `##` / `###` headings, `|` table rows become a real Word table, `>` lines are
  placeholders for the unit to complete, other lines are body paragraphs. Written atomically (temp file +
  os.replace) and deterministically (fixed document dates and zip entry times), so reruns are byte-identical.
"""

from __future__ import annotations

import functools
import io
import math
import re
import zipfile
from pathlib import Path

import pandas as pd
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .numbers import excel_round, records
from .atomic import write_atomic
from .render import FIXED_CREATED, _level1_rows
from .spec import SEVERITY_ERROR

REPORT_TEMPLATE = Path(__file__).resolve().parent.parent / "input_templates" / "报告模板" / "绩效自评报告.md.j2"
REPORT_SUFFIX = "_绩效自评报告.docx"
FIXED_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
BODY_FONT, HEADING_FONT = "宋体", "黑体"
RATE_NAMES = ("预算执行率", "预算调整率", "结转结余率", "公用经费控制率", "项目支出预算控制率", "三公经费控制率",
              "三公经费变动率", "政府采购执行率", "在职人员控制率", "重点支出安排率", "固定资产利用率")
AMOUNT_FIELDS = ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数", "结转结余数")


def report_path(workbook_path: Path) -> Path:
    """`…_绩效评价.xlsx` → `…_绩效评价_绩效自评报告.docx` beside it."""
    return workbook_path.with_name(workbook_path.stem + REPORT_SUFFIX)


# --- formatting, as the workbook's number formats show a value ---------------------------------------------------

def _blank(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def fmt_amount(x) -> str:
    """`#,##0.00` of a value rounded to 2 decimals: 541.71 → `541.71`, 1234.5 → `1,234.50`."""
    return "—" if _blank(x) else f"{excel_round(float(x), 2):,.2f}"


def fmt_score(x) -> str:
    """`0.00`: 4.166 → `4.17`."""
    return "—" if _blank(x) else f"{excel_round(float(x), 2):.2f}"


def fmt_rate(x) -> str:
    """`0.00%` of a fraction rounded to 4 decimals (as the workbook stores rates): 0.90625 → `90.63%`."""
    return "—" if _blank(x) else f"{excel_round(float(x), 4) * 100:.2f}%"


def fmt_count(x) -> str:
    if _blank(x):
        return "—"
    v = float(x)
    return f"{int(v)}" if v.is_integer() else fmt_score(v)


# --- context ------------------------------------------------------------------------------------------------------

def _sum(df: pd.DataFrame, col: str) -> float:
    """A column total as the workbook's 合计 row shows it (blank = 0)."""
    return excel_round(pd.to_numeric(df[col], errors="coerce").sum(), 2) if col in df and len(df) else 0.0


def _rates(indicators: pd.DataFrame) -> dict[str, str]:
    """计算方法 → its value as shown (`90.63%`), or its state (不适用 / 无法计算)."""
    out = {name: "—" for name in RATE_NAMES}
    for r in records(indicators):
        ok = r["状态"] == "正常" and not _blank(r["值"])
        out[r["计算方法"]] = fmt_rate(r["值"]) if ok else str(r["状态"])
    return out


def _categories(lines: pd.DataFrame) -> list[dict]:
    """按支出类别, as the 预算执行分析 sheet groups it."""
    if lines.empty:
        return []
    by_cat = lines.assign(**{c: pd.to_numeric(lines[c], errors="coerce") for c in ("全年预算数", "实际支出数")}) \
        .groupby("支出类别", sort=False)[["全年预算数", "实际支出数"]].sum().reset_index()
    return [{"支出类别": c["支出类别"], "全年预算数": fmt_amount(c["全年预算数"]), "实际支出数": fmt_amount(c["实际支出数"]),
             "执行率": fmt_rate(c["实际支出数"] / c["全年预算数"]) if c["全年预算数"] else "—"}
            for c in records(by_cat)]


def _targets(targets: pd.DataFrame) -> list[dict]:
    """Each target as the 绩效目标完成 sheet shows it."""
    rows = []
    for t in records(targets):
        rows.append({"序号": fmt_count(t.get("序号")), "一级指标": t.get("一级指标") or "", "三级指标": t.get("三级指标") or "",
                     "指标值": t.get("指标值文本") or "—", "实际完成值": t.get("实际完成值文本") or "—",
                     "完成率": fmt_rate(t.get("完成率")), "分值": fmt_score(t.get("分值")),
                     "得分": fmt_score(t.get("得分"))})
    return rows


def _problems(details: pd.DataFrame, issues: list) -> list[str]:
    """One sentence per indicator that lost points (with its figures) and per data issue of severity 错误/警告."""
    out = []
    for r in records(details):
        points, score = excel_round(r["分值"], 2), excel_round(r["得分"], 2)
        if score >= points - 1e-9:
            continue
        reason = str(r.get("扣分说明") or "").strip().rstrip("。")
        if not reason:
            reason = f"实际完成值 {r.get('实际完成值') or '—'}，指标值 {r.get('指标值') or '—'}"
        out.append(f"{r['一级指标']}—{r['三级指标']}：分值 {fmt_score(points)} 分，得 {fmt_score(score)} 分，"
                   f"失分 {fmt_score(points - score)} 分。{reason}。")
    for i in issues:
        if i.severity not in (SEVERITY_ERROR, "警告"):
            continue
        where = "!".join(x for x in (i.sheet, i.cell) if x)
        place = f"（{i.file}{' ' + where if where else ''}）" if i.file else ""
        out.append(f"数据问题（{i.severity}）{place}：{i.message}")
    return out


def report_context(report) -> dict:
    """All names the report template can use, every figure a formatted string equal to the workbook's display.

    Keys: 单位名称, 单位编码, 主管部门, 财年, 单位职能, 编制人数, 年末在职人数, 评分框架, 总分, 等级;
    预算 {上年结转数, 年初预算数, 预算调增数, 预算调减数, 全年预算数, 实际支出数, 结转结余数, 有结余};
    支出类别 [{支出类别, 全年预算数, 实际支出数, 执行率}]; 三公 {预算数, 实际支出数, 上年预算数, 上年实际支出数};
    指标 {计算方法: rate}; 一级指标 [{一级指标, 分值, 得分, 失分, 得分率}];
    绩效目标 [{序号, 一级指标, 三级指标, 指标值, 实际完成值, 完成率, 分值, 得分}]; 存在的问题 [sentence].
    """
    unit, total, fw = report.unit, report.total, report.framework
    lines = report.budget_lines
    budget = {c: fmt_amount(_sum(lines, c)) for c in AMOUNT_FIELDS}
    budget["有结余"] = _sum(lines, "结转结余数") != 0
    sangong = {c: fmt_amount(_sum(report.sangong, c)) for c in ("预算数", "实际支出数", "上年预算数", "上年实际支出数")}
    level1 = [{"一级指标": g["一级指标"], "分值": fmt_score(g["分值"]), "得分": fmt_score(g["得分"]),
               "失分": fmt_score(g["失分"]), "得分率": fmt_rate(g["得分率"])} for g in _level1_rows(report)]
    return {
        "单位名称": str(unit.get("单位名称") or ""), "单位编码": str(unit["单位编码"]),
        "主管部门": str(unit.get("主管部门") or "—"), "财年": str(unit["财年"]),
        "单位职能": str(unit.get("单位职能") or "（未填写）"),
        "编制人数": fmt_count(unit.get("编制人数")), "年末在职人数": fmt_count(unit.get("年末在职人数")),
        "评分框架": f"{fw.name}（{fw.version}）",
        "总分": fmt_score(total.get("总分")), "等级": total.get("等级") or "无法评级",
        "预算": budget, "支出类别": _categories(lines), "三公": sangong, "指标": _rates(report.indicators),
        "一级指标": level1, "绩效目标": _targets(report.targets),
        "存在的问题": _problems(report.details, report.issues),
    }


# --- template → text → docx ---------------------------------------------------------------------------------------

def render_report_text(context: dict, template_path: Path = REPORT_TEMPLATE) -> str:
    """The template filled in: the report as marked-up text (see the module doc). Undefined names are errors."""
    return _compiled(Path(template_path).read_text(encoding="utf-8")).render(context)


@functools.lru_cache(maxsize=8)
def _compiled(source: str):
    """The template compiled once per text (compiling costs more than rendering one unit's report)."""
    env = SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return env.from_string(source)


def _east_asian(font_holder_element, name: str) -> None:
    rpr = font_holder_element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), name)


def _styles(doc) -> None:
    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = BODY_FONT, Pt(12)
    _east_asian(normal.element, BODY_FONT)
    for name, size in (("Title", 20), ("Heading 1", 16), ("Heading 2", 14)):
        st = doc.styles[name]
        st.font.name, st.font.size, st.font.bold = HEADING_FONT, Pt(size), True
        st.font.color.rgb = RGBColor(0, 0, 0)
        _east_asian(st.element, HEADING_FONT)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _add_table(doc, rows: list[list[str]]) -> None:
    width = max(len(r) for r in rows)
    table = doc.add_table(rows=len(rows), cols=width)
    table.style = "Table Grid"
    cells = table._cells  # all cells row by row, built once: table.cell(i, j) rebuilds this list on every call
    for i, row in enumerate(rows):
        for j in range(width):
            cell = cells[i * width + j]
            cell.text = row[j] if j < len(row) else ""
            if i == 0:
                for run in cell.paragraphs[0].runs:
                    run.bold = True


def build_docx(text: str, title: str):
    """The marked-up text as a python-docx Document."""
    doc = Document()
    _styles(doc)
    table: list[list[str]] = []
    for raw in text.splitlines() + [""]:
        line = raw.strip()
        if line.startswith("|"):
            if not re.fullmatch(r"[|\-:\s]+", line):
                table.append(_cells(line))
            continue
        if table:
            _add_table(doc, table)
            table = []
        if not line:
            continue
        if line.startswith("### "):
            doc.add_heading(line[4:].strip(), level=2)
        elif line.startswith("## "):
            doc.add_heading(line[3:].strip(), level=1)
        elif line.startswith("# "):
            p = doc.add_heading(line[2:].strip(), level=0)
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif line.startswith(">"):
            run = doc.add_paragraph().add_run(line[1:].strip())
            run.italic, run.font.color.rgb = True, RGBColor(0x80, 0x80, 0x80)
        else:
            p = doc.add_paragraph(line)
            p.paragraph_format.first_line_indent = Pt(24)
    props = doc.core_properties
    props.title, props.author, props.last_modified_by = title, "pipeline", "pipeline"
    props.created = props.modified = props.last_printed = FIXED_CREATED
    props.revision = 1
    return doc


def _frozen_zip(data: bytes) -> bytes:
    """The package with fixed entry times (python-docx stamps 'now'), entries in their original order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(zipfile.ZipInfo(item.filename, FIXED_ZIP_TIME), zin.read(item.filename),
                          zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def render_report_docx(context: dict, template_path: Path, out_path: Path) -> Path:
    """Fill the template with `context` and write the .docx at out_path atomically; returns out_path."""
    out_path = Path(out_path)
    doc = build_docx(render_report_text(context, template_path),
                     f"{context.get('单位名称', '')}{context.get('财年', '')}年度部门整体支出绩效自评报告")
    buf = io.BytesIO()
    doc.save(buf)
    return write_atomic(out_path, _frozen_zip(buf.getvalue()))


def write_unit_report(report, workbook_path: Path, template_path: Path = REPORT_TEMPLATE) -> Path:
    """The unit's report beside its workbook: `<workbook stem>_绩效自评报告.docx`."""
    return render_report_docx(report_context(report), template_path, report_path(workbook_path))


__all__ = ["REPORT_TEMPLATE", "report_context", "render_report_text", "render_report_docx", "write_unit_report",
           "report_path", "fmt_amount", "fmt_rate", "fmt_score"]
