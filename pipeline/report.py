"""The self-evaluation report (绩效自评报告) of one unit as a Word document, drafted from the scored tables.

Two steps:
- `report_context(unit_report)`: pure; every figure already rounded and formatted exactly as the unit workbook shows
  it (amounts `#,##0.00`, rates `0.00%` of the value rounded to 4 decimals, scores `0.00`), taken from the same
  tables the workbook is written from (render's UnitReport), so the report and the workbook never disagree.
- `render_report_docx(context, template_path, out_path)`: fills the editable wording template
  (`input_templates/报告模板/绩效自评报告.md.j2`, Jinja2 in a sandbox) and lays the text out as a .docx:
  `#` title, `##` / `###` headings, `|` table rows become a real Word table, `>` lines are placeholders for the
  unit to complete, other lines are body paragraphs. The package (styles, fonts, page) is python-docx's default
  document with our styles, shipped ready built (`report_skeleton.docx`); per unit only the document body and title
  are written, as the XML python-docx's API would write for them (~1 ms instead of ~100 ms), text escaped and
  characters XML forbids removed, so whatever an input cell holds stays inert text, and zipped after the fixed parts
  (copied compressed as the skeleton stores them) by `ziparchive` (ISA-L's deflate). Written atomically (temp file
  + os.replace) and deterministically (fixed document dates and zip entry times), so reruns are byte-identical. The
  figures the workbook also shows (column lists, sums, score groups) are the ones render computed for it
  (`UnitReport.derived`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .numbers import excel_round, is_blank
from .atomic import write_atomic
from .render import (BUDGET_AMOUNT_COLUMNS, FIXED_CREATED, SANGONG_AMOUNT_COLUMNS, _budget_categories,
                     _columns_of, _indicator_rows, _level1_rows, _table_totals)
from .spec import SEVERITY_ERROR
from .ziparchive import Deflated, ZipReader, deflated, zip_archive

REPORT_TEMPLATE = Path(__file__).resolve().parent.parent / "input_templates" / "报告模板" / "绩效自评报告.md.j2"
REPORT_SUFFIX = "_绩效自评报告.docx"
FIXED_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
BODY_FONT, HEADING_FONT = "宋体", "黑体"
RATE_NAMES = ("预算执行率", "预算调整率", "结转结余率", "公用经费控制率", "项目支出预算控制率", "三公经费控制率",
              "三公经费变动率", "政府采购执行率", "在职人员控制率", "重点支出安排率", "固定资产利用率")


def report_path(workbook_path: Path) -> Path:
    """`…_绩效评价.xlsx` → `…_绩效评价_绩效自评报告.docx` beside it."""
    return workbook_path.with_name(workbook_path.stem + REPORT_SUFFIX)


# --- formatting, as the workbook's number formats show a value ---------------------------------------------------

def fmt_amount(x) -> str:
    """`#,##0.00` of a value rounded to 2 decimals: 541.71 → `541.71`, 1234.5 → `1,234.50`."""
    return "—" if is_blank(x) else f"{excel_round(float(x), 2):,.2f}"


def fmt_score(x) -> str:
    """`0.00`: 4.166 → `4.17`."""
    return "—" if is_blank(x) else f"{excel_round(float(x), 2):.2f}"


def fmt_rate(x) -> str:
    """`0.00%` of a fraction rounded to 4 decimals (as the workbook stores rates): 0.90625 → `90.63%`."""
    return "—" if is_blank(x) else f"{excel_round(float(x), 4) * 100:.2f}%"


def fmt_count(x) -> str:
    if is_blank(x):
        return "—"
    v = float(x)
    return f"{int(v)}" if v.is_integer() else fmt_score(v)


# --- context ------------------------------------------------------------------------------------------------------

def _rows(report, name: str, names: tuple[str, ...]) -> list[dict]:
    """`records` of the report's table `name` with only the columns among `names` it has (the per-unit frames are
    wide, 20+ columns, and the report reads a few of them), from the column lists the workbook was written from."""
    table = _columns_of(report, name)
    cols = [c for c in names if c in table]
    if not cols:
        return [{} for _ in range(len(getattr(report, name)))]
    return [dict(zip(cols, row)) for row in zip(*(table[c] for c in cols))]


def _sums(report, name: str, names: tuple[str, ...]) -> dict[str, float]:
    """The totals of the columns `names` of the report's table `name` as the workbook's 合计 row shows them (blank =
    0, a column the frame lacks 0): the workbook's own sums."""
    return {c: excel_round(total, 2) for c, total in _table_totals(report, name, names).items()}


def _rates(report) -> dict[str, str]:
    """计算方法 → its value as shown (`90.63%`), or its state (不适用 / 无法计算): the workbook's indicator rows."""
    out = {name: "—" for name in RATE_NAMES}
    for r in _indicator_rows(report, RATE_NAMES):
        out[r["指标"]] = fmt_rate(r["值"]) if r["值"] is not None else str(r["状态"])
    return out


def _categories(report) -> list[dict]:
    """按支出类别, grouped and summed as the 预算执行分析 sheet does it."""
    lines = _columns_of(report, "budget_lines")
    if not lines or not lines["支出类别"]:
        return []
    return [{"支出类别": cat, "全年预算数": fmt_amount(budget), "实际支出数": fmt_amount(spent),
             "执行率": fmt_rate(spent / budget) if budget else "—"} for cat, (budget, spent) in _budget_categories(report)]


def _targets(report) -> list[dict]:
    """Each target as the 绩效目标完成 sheet shows it."""
    rows = []
    for t in _rows(report, "targets", ("序号", "一级指标", "三级指标", "指标值文本", "实际完成值文本", "完成率", "分值", "得分")):
        rows.append({"序号": fmt_count(t.get("序号")), "一级指标": t.get("一级指标") or "", "三级指标": t.get("三级指标") or "",
                     "指标值": t.get("指标值文本") or "—", "实际完成值": t.get("实际完成值文本") or "—",
                     "完成率": fmt_rate(t.get("完成率")), "分值": fmt_score(t.get("分值")),
                     "得分": fmt_score(t.get("得分"))})
    return rows


def _problems(report) -> list[str]:
    """One sentence per indicator that lost points (with its figures) and per data issue of severity 错误/警告."""
    out = []
    for r in _rows(report, "details", ("一级指标", "三级指标", "指标值", "实际完成值", "分值", "得分", "扣分说明")):
        points, score = excel_round(r["分值"], 2), excel_round(r["得分"], 2)
        if score >= points - 1e-9:
            continue
        reason = str(r.get("扣分说明") or "").strip().rstrip("。")
        if not reason:
            reason = f"实际完成值 {r.get('实际完成值') or '—'}，指标值 {r.get('指标值') or '—'}"
        out.append(f"{r['一级指标']}—{r['三级指标']}：分值 {fmt_score(points)} 分，得 {fmt_score(score)} 分，"
                   f"失分 {fmt_score(points - score)} 分。{reason}。")
    for i in report.issues:
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
    sums = _sums(report, "budget_lines", BUDGET_AMOUNT_COLUMNS)
    budget = {c: fmt_amount(v) for c, v in sums.items()}
    budget["有结余"] = sums["结转结余数"] != 0
    sangong = {c: fmt_amount(v) for c, v in _sums(report, "sangong", SANGONG_AMOUNT_COLUMNS).items()}
    level1 = [{"一级指标": g["一级指标"], "分值": fmt_score(g["分值"]), "得分": fmt_score(g["得分"]),
               "失分": fmt_score(g["失分"]), "得分率": fmt_rate(g["得分率"])} for g in _level1_rows(report)]
    return {
        "单位名称": str(unit.get("单位名称") or ""), "单位编码": str(unit["单位编码"]),
        "主管部门": str(unit.get("主管部门") or "—"), "财年": str(unit["财年"]),
        "单位职能": str(unit.get("单位职能") or "（未填写）"),
        "编制人数": fmt_count(unit.get("编制人数")), "年末在职人数": fmt_count(unit.get("年末在职人数")),
        "评分框架": f"{fw.name}（{fw.version}）",
        "总分": fmt_score(total.get("总分")), "等级": total.get("等级") or "无法评级",
        "预算": budget, "支出类别": _categories(report), "三公": sangong, "指标": _rates(report),
        "一级指标": level1, "绩效目标": _targets(report), "存在的问题": _problems(report),
    }


# --- template → text → docx ---------------------------------------------------------------------------------------

def render_report_text(context: dict, template_path: Path | None = None) -> str:
    """The template filled in (default REPORT_TEMPLATE): the report as marked-up text (see the module doc).
    Undefined names are errors."""
    return _compiled(Path(template_path or REPORT_TEMPLATE).read_text(encoding="utf-8")).render(context)


def template_digest(template_path: Path | None = None) -> str:
    """SHA-256 of the report template's bytes (default REPORT_TEMPLATE): a unit's outputs depend on its wording, so
    an edited template rewrites every report on the next run (run._unit_hash). Remembered per file and its size and
    time of change, so that it is read once a run, not once a unit."""
    path = Path(template_path or REPORT_TEMPLATE)
    st = path.stat()
    return _digest_of(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=8)
def _digest_of(path: str, _size: int, _mtime_ns: int, _inode: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _ReportEnvironment(SandboxedEnvironment):
    """The sandbox, with `行.分值` read from a dict as its item straight away. Jinja looks for an attribute first
    and takes the item when there is none: on the context's dicts (keyed by Chinese field names, never the name of
    a dict method) that lookup always fails, and its exception cost half the rendering (≈ 150 per report). Anything
    else, and a name a dict does not hold, takes the sandbox's own way."""

    def getattr(self, obj, attribute):
        if obj.__class__ is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=8)
def _compiled(source: str):
    """The template compiled once per text (compiling costs more than rendering one unit's report)."""
    env = _ReportEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return env.from_string(source)


def _east_asian(font_holder_element, name: str) -> None:
    from docx.oxml.ns import qn

    rpr = font_holder_element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), name)


def _styles(doc) -> None:
    """Our fonts on a python-docx Document's styles (for SKELETON; tests lay out the reference documents with it)."""
    from docx.shared import Pt, RGBColor

    normal = doc.styles["Normal"]
    normal.font.name, normal.font.size = BODY_FONT, Pt(12)
    _east_asian(normal.element, BODY_FONT)
    for name, size in (("Title", 20), ("Heading 1", 16), ("Heading 2", 14)):
        st = doc.styles[name]
        st.font.name, st.font.size, st.font.bold = HEADING_FONT, Pt(size), True
        st.font.color.rgb = RGBColor(0, 0, 0)
        _east_asian(st.element, HEADING_FONT)


# The package is python-docx's default document with our styles and fixed properties, shipped ready built (SKELETON:
# building it costs ≈ 35 ms and python-docx's import ≈ 45 ms more, in every worker of every run); per unit only the
# body of word/document.xml and docProps/core.xml are written, as XML text equal to what python-docx's add_heading /
# add_paragraph / add_table would serialise (tests/test_report.py compares the two), and the other parts are copied
# as SKELETON stores them, compressed.
SKELETON = Path(__file__).resolve().parent / "report_skeleton.docx"
DOCUMENT_PART, CORE_PART = "word/document.xml", "docProps/core.xml"
FIRST_LINE_INDENT_TWIPS = 480  # 24 pt: two characters of the 12 pt body text
PLACEHOLDER_COLOR = "808080"
_TITLE_SLOT = "\ue000"  # stands for the title in the skeleton's core.xml
_TITLE_LIMIT = 255  # python-docx refuses longer core properties
# Of SKELETON, as python-docx reads them (tests/test_report.py checks them): the style ids of the styles named Title,
# Heading 1, Heading 2 and Table Grid, and the width between the page margins in EMU (8.5 in less two 1.25 in).
_STYLE_IDS = ("Title", "Heading1", "Heading2", "TableGrid")
_BLOCK_WIDTH = 5486400
_EMU_PER_TWIP = 635
# Characters XML 1.0 forbids (text comes from user-filled cells): C0 controls but tab/newline/CR, lone surrogates,
# U+FFFE/U+FFFF. Removed; the rest is escaped, so any cell text ends up as inert text.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_RUN_SPLIT = re.compile(r"([\t\r\n])")
_RUN_MARK = {"\t": "<w:tab/>", "\r": "<w:br/>", "\n": "<w:br/>"}
_RUN_SPECIAL = re.compile(r"[\x00-\x1f\ud800-\udfff\ufffe\uffff]")  # what _NOT_XML removes or _RUN_SPLIT splits on
_BOLD, _PLACEHOLDER = "<w:rPr><w:b/></w:rPr>", f'<w:rPr><w:i/><w:color w:val="{PLACEHOLDER_COLOR}"/></w:rPr>'
_TBL_LOOK = ('<w:tblLook w:firstColumn="1" w:firstRow="1" w:lastColumn="0" w:lastRow="0" w:noHBand="0" '
             'w:noVBand="1" w:val="04A0"/>')


class _Skeleton(NamedTuple):
    parts: tuple[Deflated, ...]  # every part but DOCUMENT_PART and CORE_PART, in order, compressed
    document_head: str    # word/document.xml up to and including <w:body>
    document_tail: str    # the section properties (page size, margins) and the closing tags
    core_head: str        # docProps/core.xml around the title
    core_tail: str
    title: str            # style ids
    heading1: str
    heading2: str
    table: str
    block_width: int      # EMU between the page margins, shared out evenly among a table's columns


def skeleton_package() -> bytes:
    """SKELETON built afresh with python-docx: its default document with our styles (_styles) and fixed properties,
    the title a slot (_TITLE_SLOT), every part compressed by the stdlib zlib at its default level (as zipfile does;
    ≈ 28 % smaller than ISA-L's fast level, and worth it for parts written once and copied into every report).
    `make generated` writes it into SKELETON (`python -m pipeline.report`): after an upgrade of python-docx or a
    change of _styles, when tests/test_report.py says the shipped one is out of date."""
    from docx import Document

    doc = Document()
    _styles(doc)
    props = doc.core_properties
    props.title, props.author, props.last_modified_by = _TITLE_SLOT, "pipeline", "pipeline"
    props.created = props.modified = props.last_printed = FIXED_CREATED
    props.revision = 1
    saved = io.BytesIO()
    doc.save(saved)
    with zipfile.ZipFile(saved) as z:
        return zip_archive([deflated(name, z.read(name), zlib.Z_DEFAULT_COMPRESSION) for name in z.namelist()],
                           FIXED_ZIP_TIME)


@functools.lru_cache(maxsize=1)
def _skeleton() -> _Skeleton:
    """SKELETON taken apart, once per process: its parts copied compressed as they are stored."""
    broken = (f"程序自带的报告底稿 {SKELETON} 缺失或已损坏，无法生成绩效自评报告。"
              "请重新获取本程序（或运行 make generated）")
    try:
        package = ZipReader(SKELETON.read_bytes())
        document, core = package.read(DOCUMENT_PART).decode("utf-8"), package.read(CORE_PART).decode("utf-8")
        parts = tuple(package.deflated(name) for name in package.namelist() if name not in (DOCUMENT_PART, CORE_PART))
    except (OSError, ValueError, KeyError) as exc:  # UnsupportedZip and UnicodeDecodeError are ValueErrors
        raise RuntimeError(broken) from exc
    head, _, rest = document.partition("<w:body>")
    empty, _, tail = rest.partition("<w:sectPr")
    core_head, _, core_tail = core.partition(_TITLE_SLOT)
    if empty or not tail or not core_tail:
        raise RuntimeError(broken)
    return _Skeleton(parts, head + "<w:body>", "<w:sectPr" + tail, core_head, core_tail, *_STYLE_IDS, _BLOCK_WIDTH)


@functools.lru_cache(maxsize=4096)
def _run(text: str, rpr: str = "") -> str:
    """A `w:r` holding `text` as python-docx's run.text writes it: tab → `w:tab`, CR/LF → `w:br`, a `w:t` with
    leading or trailing white space keeps it (xml:space). Text without control characters (nearly every run) is
    one `w:t`, found with one regular-expression search. Cached: most runs recur in every report (the template's
    own words, table headers, `—`, common figures)."""
    if _RUN_SPECIAL.search(text):
        content = "".join(_RUN_MARK.get(piece) or _text(piece)
                          for piece in _RUN_SPLIT.split(_NOT_XML.sub("", text)) if piece)
    else:
        content = _text(text) if text else ""
    return f"<w:r>{rpr}{content}</w:r>" if rpr or content else "<w:r/>"


def _text(piece: str) -> str:
    """A `w:t` of non-empty text holding no control character (str.strip would remove white space at either end:
    kept with xml:space)."""
    space = ' xml:space="preserve"' if piece[0].isspace() or piece[-1].isspace() else ""
    return f"<w:t{space}>{escape(piece)}</w:t>"


def _paragraph(text: str, ppr: str = "") -> str:
    """A paragraph as doc.add_paragraph(text) writes it (no run when the text is empty)."""
    return f"<w:p>{f'<w:pPr>{ppr}</w:pPr>' if ppr else ''}{_run(text) if text else ''}</w:p>"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(rows: list[list[str]], sk: _Skeleton) -> str:
    """As doc.add_table + style "Table Grid" + cell.text row by row, the header row bold."""
    width = max(len(r) for r in rows)
    twips = int(round(sk.block_width // width / float(_EMU_PER_TWIP)))  # as python-docx's Length.twips
    cell, column = f'<w:tc><w:tcPr><w:tcW w:type="dxa" w:w="{twips}"/></w:tcPr><w:p>', f'<w:gridCol w:w="{twips}"/>'
    out = [f'<w:tbl><w:tblPr><w:tblStyle w:val="{sk.table}"/><w:tblW w:type="auto" w:w="0"/>{_TBL_LOOK}</w:tblPr>',
           f"<w:tblGrid>{column * width}</w:tblGrid>"]
    for i, row in enumerate(rows):
        out.append("<w:tr>")
        for j in range(width):
            out += (cell, _run(row[j] if j < len(row) else "", _BOLD if i == 0 else ""), "</w:p></w:tc>")
        out.append("</w:tr>")
    out.append("</w:tbl>")
    return "".join(out)


def _body(text: str, sk: _Skeleton) -> str:
    """The marked-up text (see the module doc) as the content of `w:body`."""
    indent = f'<w:ind w:firstLine="{FIRST_LINE_INDENT_TWIPS}"/>'
    out: list[str] = []
    table: list[list[str]] = []
    for raw in text.splitlines() + [""]:
        line = raw.strip()
        if line.startswith("|"):
            if not re.fullmatch(r"[|\-:\s]+", line):
                table.append(_cells(line))
            continue
        if table:
            out.append(_table(table, sk))
            table = []
        if not line:
            continue
        if line.startswith("### "):
            out.append(_paragraph(line[4:].strip(), f'<w:pStyle w:val="{sk.heading2}"/>'))
        elif line.startswith("## "):
            out.append(_paragraph(line[3:].strip(), f'<w:pStyle w:val="{sk.heading1}"/>'))
        elif line.startswith("# "):
            out.append(_paragraph(line[2:].strip(), f'<w:pStyle w:val="{sk.title}"/><w:jc w:val="center"/>'))
        elif line.startswith(">"):
            out.append(f"<w:p>{_run(line[1:].strip(), _PLACEHOLDER)}</w:p>")
        else:
            out.append(_paragraph(line, indent))
    return "".join(out)


def docx_package(text: str, title: str) -> bytes:
    """The marked-up text as the bytes of a .docx whose document title (core properties) is `title`.
    Deterministic: the same text and title give the same bytes."""
    sk = _skeleton()
    document = sk.document_head + _body(text, sk) + sk.document_tail
    core = sk.core_head + escape(_NOT_XML.sub("", title)[:_TITLE_LIMIT]) + sk.core_tail
    return zip_archive(sk.parts + ((DOCUMENT_PART, document.encode("utf-8")), (CORE_PART, core.encode("utf-8"))),
                       FIXED_ZIP_TIME)


def render_report_docx(context: dict, template_path: Path | None, out_path: Path) -> Path:
    """Fill the template with `context` and write the .docx at out_path atomically; returns out_path."""
    title = f"{context.get('单位名称', '')}{context.get('财年', '')}年度部门整体支出绩效自评报告"
    return write_atomic(Path(out_path), docx_package(render_report_text(context, template_path), title))


def write_unit_report(report, workbook_path: Path, template_path: Path | None = None) -> Path:
    """The unit's report beside its workbook: `<workbook stem>_绩效自评报告.docx`."""
    return render_report_docx(report_context(report), template_path, report_path(workbook_path))


__all__ = ["REPORT_TEMPLATE", "report_context", "render_report_text", "render_report_docx", "write_unit_report",
           "template_digest",
           "report_path", "fmt_amount", "fmt_rate", "fmt_score"]


if __name__ == "__main__":  # `make generated`: the shipped skeleton built again
    SKELETON.write_bytes(skeleton_package())
    print(f"已写入 {SKELETON}")
