"""绩效自评报告 (issue #6): the .docx beside each unit workbook. Every figure in it equals the workbook's cell as the
workbook shows it; LibreOffice renders it to a PDF with the expected sections; reruns are byte-identical; the
document is laid out exactly as python-docx's own API lays it out; text from input cells is inert."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pandas as pd
import pytest
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt, RGBColor
from docx.table import Table

from pipeline.cli import EXAMPLE_INPUT, main
from pipeline.render import BUDGET_AMOUNT_COLUMNS, FIXED_CREATED, UnitReport
from pipeline.report import (FIXED_ZIP_TIME, REPORT_TEMPLATE, _run, _styles, docx_package, render_report_docx,
                             render_report_text, report_context)

SECTIONS = ("一、部门概况", "二、部门整体支出管理和使用情况", "三、绩效目标完成情况", "四、存在的问题", "五、改进措施")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(root)]) == 0
    return root / "2023"


@pytest.fixture(scope="module")
def docx_path(out):
    found = list(out.glob("*_绩效评价_绩效自评报告.docx"))
    assert len(found) == 1
    return found[0]


@pytest.fixture(scope="module")
def doc(docx_path):
    return Document(docx_path)


@pytest.fixture(scope="module")
def book(out):
    return openpyxl.load_workbook(next(out.glob("*_绩效评价.xlsx")), data_only=True)


def shown(cell) -> str | None:
    """A numeric cell as Excel displays it with its number format."""
    v, fmt = cell.value, cell.number_format
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    if "%" in fmt:
        return f"{v * 100:.2f}%"
    if fmt.startswith("#,##0.00"):
        return f"{v:,.2f}"
    return f"{v:.2f}"


def workbook_figures(book) -> set[str]:
    """Every figure the workbook shows: numeric cells as formatted, and numbers written inside its texts."""
    figures = set()
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if shown(c):
                    figures.add(shown(c))
                elif isinstance(c.value, str):
                    figures.update(DECIMAL.findall(c.value))
                if c.comment is not None:  # e.g. the 失分 note on a 得分 cell of 评分明细
                    figures.update(DECIMAL.findall(c.comment.text))
    return figures


DECIMAL = re.compile(r"-?\d[\d,]*\.\d+%?")


def doc_text(doc) -> str:
    parts = [p.text for p in doc.paragraphs]
    for t in doc.tables:
        parts += [c.text for row in t.rows for c in row.cells]
    return "\n".join(parts)


def records(ws, header_row: int = 1) -> list[dict]:
    header = [c.value for c in ws[header_row]]
    return [dict(zip(header, r)) for r in ws.iter_rows(min_row=header_row + 1, values_only=True) if r[0] is not None]


def test_every_figure_in_the_report_is_the_workbooks(doc, book):
    text = doc_text(doc)
    figures = DECIMAL.findall(text)
    assert len(figures) > 40
    missing = sorted(set(figures) - workbook_figures(book))
    assert not missing, f"figures in the report that the workbook does not show: {missing}"


def test_total_grade_and_key_rates(doc, book):
    text = doc_text(doc)
    ws = book["评价结果"]
    total = next(r for r in ws.iter_rows() if r[0].value == "总分")[1]
    grade = next(r for r in ws.iter_rows() if r[0].value == "等级")[1].value
    assert f"自评总分为{shown(total)}分，等级为“{grade}”" in text
    assert shown(total) == "95.07" and grade == "优"
    rates = {r[0].value: shown(r[1]) for r in ws.iter_rows() if r[0].value in ("预算执行率", "三公经费控制率")}
    assert f"预算执行率{rates['预算执行率']}" in text
    assert f"“三公经费”控制率{rates['三公经费控制率']}" in text and rates["三公经费控制率"] == "90.63%"
    assert "年度预算金额" in text and "541.71（万元）" in text


def test_targets_table_equals_the_targets_sheet(doc, book):
    table = next(t for t in doc.tables if t.rows[0].cells[0].text == "序号")
    rows = [[c.text for c in r.cells] for r in table.rows[1:]]
    sheet = records(book["绩效目标完成"])
    assert len(rows) == len(sheet) == 10
    by_cell = {r[0].value: r for r in book["绩效目标完成"].iter_rows(min_row=2) if r[0].value is not None}
    header = [c.value for c in book["绩效目标完成"][1]]
    for r in rows:
        cells = by_cell[int(r[0])]
        get = lambda name: cells[header.index(name)]  # noqa: E731
        assert r[2] == get("三级指标").value
        assert r[3] == get("指标值").value and r[4] == get("采用的实际完成值").value
        assert r[5] == (shown(get("完成率")) or "—")
        assert r[7] == shown(get("得分"))
        detail = next(d for d in book["评分明细"].iter_rows(min_row=2) if d[3].value == r[2])
        assert r[6] == shown(detail[7])  # 分值 as scored (评分明细 column H)
    growth = next(r for r in rows if r[2] == "市场主体增长率")
    assert growth[5] == "621.67%" and growth[7] == "4.20"


def test_problems_name_each_lost_point_with_figures(doc, book):
    text = doc_text(doc)
    lost = [r for r in records(book["评分明细"]) if r.get("指标编码") not in (None, "合计") and r["得分"] is not None
            and isinstance(r["分值"], (int, float)) and r["得分"] < r["分值"] - 1e-9]
    assert lost
    for r in lost:
        assert f"{r['三级指标']}：分值 {r['分值']:.2f} 分，得 {r['得分']:.2f} 分" in text
    assert "数据问题（警告）" in text and "473.52" in text   # the example's 全年预算数 slip, with its figures
    assert "改进措施" in text and "请单位填写" in text


def test_wording_lives_in_the_template():
    assert REPORT_TEMPLATE.is_file() and REPORT_TEMPLATE.suffix == ".j2"
    assert "部门概况" in REPORT_TEMPLATE.read_text(encoding="utf-8")


def test_template_edit_changes_the_report(tmp_path, book):
    edited = tmp_path / "t.md.j2"
    edited.write_text("# {{ 单位名称 }}\n改过的措辞：总分{{ 总分 }}分。\n", encoding="utf-8")
    from pipeline.report import report_context  # noqa: F401  (the context is tested through the run above)
    text = render_report_text({"单位名称": "甲", "总分": "95.07"}, edited)
    assert "改过的措辞：总分95.07分。" in text


def test_rerun_is_byte_identical(tmp_path):
    for name in ("a", "b"):
        assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(tmp_path / name)]) == 0
    a, b = (next((tmp_path / n / "2023").glob("*.docx")).read_bytes() for n in ("a", "b"))
    assert a == b


def _tool(name: str) -> str | None:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} not installed")
    return path


def pdf_text(docx_path: Path, tmp_path: Path) -> str:
    """The document converted to PDF by LibreOffice, its text without white space."""
    soffice, pdftotext = _tool("soffice"), _tool("pdftotext")
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(tmp_path), str(docx_path)], check=True, capture_output=True, timeout=240)
    pdf = tmp_path / (docx_path.stem + ".pdf")
    assert pdf.is_file(), "LibreOffice wrote no PDF (is libreoffice-writer installed?)"
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], check=True, capture_output=True,
                          timeout=60).stdout.decode("utf-8")
    return re.sub(r"\s+", "", text)


def test_pdf_has_the_sections(docx_path, tmp_path):
    squeezed = pdf_text(docx_path, tmp_path)
    for title in SECTIONS:
        assert title in squeezed, title
    assert "95.07" in squeezed and "90.63%" in squeezed


# --- the document as python-docx lays it out ----------------------------------------------------------------------

def python_docx_layout(text: str, title: str) -> bytes:
    """Reference: the marked-up text laid out with python-docx's API (add_heading / add_paragraph / add_table), as
    the report was written before it wrote the XML itself. Zip entries in python-docx's order."""
    doc = Document()
    _styles(doc)
    table: list[list[str]] = []
    for raw in text.splitlines() + [""]:
        line = raw.strip()
        if line.startswith("|"):
            if not re.fullmatch(r"[|\-:\s]+", line):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            width = max(len(r) for r in table)
            t = doc.add_table(rows=len(table), cols=width)
            t.style = "Table Grid"
            for i, row in enumerate(table):
                for j in range(width):
                    cell = t.cell(i, j)
                    cell.text = row[j] if j < len(row) else ""
                    for run in cell.paragraphs[0].runs if i == 0 else []:
                        run.bold = True
            table = []
        if not line:
            continue
        if line.startswith("### "):
            doc.add_heading(line[4:].strip(), level=2)
        elif line.startswith("## "):
            doc.add_heading(line[3:].strip(), level=1)
        elif line.startswith("# "):
            doc.add_heading(line[2:].strip(), level=0).alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif line.startswith(">"):
            run = doc.add_paragraph().add_run(line[1:].strip())
            run.italic, run.font.color.rgb = True, RGBColor(0x80, 0x80, 0x80)
        else:
            doc.add_paragraph(line).paragraph_format.first_line_indent = Pt(24)
    props = doc.core_properties
    props.title, props.author, props.last_modified_by = title, "pipeline", "pipeline"
    props.created = props.modified = props.last_printed = FIXED_CREATED
    props.revision = 1
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def zip_parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


LAYOUT_EDGES = """# 标题 <甲> & "乙"
## 一级\t标题
### 二级标题\u3000
#不是标题
> 提示 <请填写> & '说明'
>
正文 a<b>&amp;"c" 'd'\t 制表符后有空格 \u3000
| 表头一 | 表头二 | 表头三 |
| --- | :---: | --- |
| 只有一格 |
| a\tb | 前后\u3000 | |
|  |  |  |  |
段落 99.50%
| 紧接的另一张表 |
"""


@pytest.mark.parametrize("text", [LAYOUT_EDGES, "", "只有正文"], ids=["edges", "empty", "plain"])
def test_layout_equals_python_docx(text):
    """The report writes document.xml itself (python-docx's object layer costs ~100 ms a unit); every part of the
    package equals what python-docx's API writes, byte for byte: same styles, paragraphs, runs, tables."""
    title = "单位<甲>&2023年度部门整体支出绩效自评报告"
    assert zip_parts(docx_package(text, title)) == zip_parts(python_docx_layout(text, title))


def test_shipped_skeleton_is_current():
    """The report's package (pipeline/report_skeleton.docx, shipped so that no run builds it) is what python-docx
    builds today with our styles, part by part; and the style ids and page width the report writes into every
    document are the ones python-docx reads from it."""
    from pipeline.report import _BLOCK_WIDTH, _STYLE_IDS, SKELETON, skeleton_package

    assert zip_parts(SKELETON.read_bytes()) == zip_parts(skeleton_package()), \
        "报告底稿已过期：运行 make generated 重新生成 pipeline/report_skeleton.docx"
    shipped = Document(io.BytesIO(SKELETON.read_bytes()))
    assert _STYLE_IDS == tuple(shipped.styles[n].style_id for n in ("Title", "Heading 1", "Heading 2", "Table Grid"))
    section = shipped.sections[-1]
    assert _BLOCK_WIDTH == section.page_width - section.left_margin - section.right_margin


@pytest.mark.parametrize("content", [None, b"PK not a zip", b""], ids=["missing", "garbage", "empty"])
def test_a_missing_or_damaged_skeleton_is_said_in_chinese(content, tmp_path, monkeypatch):
    from pipeline import report

    skeleton = tmp_path / "report_skeleton.docx"
    if content is not None:
        skeleton.write_bytes(content)
    monkeypatch.setattr(report, "SKELETON", skeleton)
    report._skeleton.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="报告底稿.*缺失或已损坏"):
            docx_package("正文", "标题")
    finally:
        report._skeleton.cache_clear()


def markup(doc) -> str:
    """A document back as the template's marked-up text."""
    marks = {"Title": "# ", "Heading 1": "## ", "Heading 2": "### "}
    lines = []
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            lines += ["| " + " | ".join(c.text for c in row.cells) + " |" for row in block.rows]
        elif block.runs and block.runs[0].italic:
            lines.append("> " + block.text)
        else:
            lines.append(marks.get(block.style.name, "") + block.text)
    return "\n".join(lines)


def test_example_layout_equals_python_docx(doc, docx_path):
    """The shipped example's report equals, part by part, python-docx's layout of the same text; and looks as meant:
    centred title, bold table headers, body indented 2 characters, grey italic hints."""
    assert zip_parts(docx_path.read_bytes()) == zip_parts(python_docx_layout(markup(doc), doc.core_properties.title))
    assert doc.paragraphs[0].style.name == "Title" and doc.paragraphs[0].alignment == WD_ALIGN_PARAGRAPH.CENTER
    assert len(doc.tables) == 4 and all(t.style.name == "Table Grid" for t in doc.tables)
    assert all(r.bold for t in doc.tables for c in t.rows[0].cells for r in c.paragraphs[0].runs)
    body = [p for p in doc.paragraphs if p.style.name == "Normal" and not p.runs[0].italic]
    assert len(body) > 10 and all(p.paragraph_format.first_line_indent == Pt(24) for p in body)
    hints = [p for p in doc.paragraphs if p.runs[0].italic]
    assert len(hints) == 5 and all(p.runs[0].font.color.rgb == RGBColor(0x80, 0x80, 0x80) for p in hints)
    with zipfile.ZipFile(docx_path) as z:
        assert z.namelist()[0] == "[Content_Types].xml" and z.testzip() is None


# --- text from input cells is inert -------------------------------------------------------------------------------

# Characters XML 1.0 forbids and str.splitlines does not split on (\x0b, \x0c, \x1c-\x1e would start new lines)
ILLEGAL = "\x00\x01\x08\x0e\x1b\x1f\ud800\udfff\ufffe\uffff"


def test_markup_and_illegal_characters_are_inert_text(tmp_path):
    text = (f"# 标题{ILLEGAL}<b>\n## 一{ILLEGAL}级\n正文 <w:p>&amp;\"'{ILLEGAL}</w:t>]]>\n> 提示{ILLEGAL}<i>\n"
            f"| 表头<&> | 二{ILLEGAL} |\n| --- | --- |\n| <x/>&\"' | {ILLEGAL}值 |\n")
    title = f"单位<&>\"'{ILLEGAL}报告"
    data = docx_package(text, title)
    assert docx_package(text, title) == data  # deterministic
    path = tmp_path / "报告.docx"
    path.write_bytes(data)
    doc = Document(path)
    assert [p.text for p in doc.paragraphs] == ["标题<b>", "一级", "正文 <w:p>&amp;\"'</w:t>]]>", "提示<i>"]
    assert [[c.text for c in r.cells] for r in doc.tables[0].rows] == [["表头<&>", "二"], ["<x/>&\"'", "值"]]
    assert doc.core_properties.title == "单位<&>\"'报告"


def with_cell_texts(src: Path, dst: Path, replace: dict[str, str]) -> None:
    """Copy an .xlsx replacing shared strings (`<t>old</t>` → new, XML as Excel writes it: a control character
    as `_xHHHH_`)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/sharedStrings.xml":
                xml = data.decode("utf-8")
                for old, new in replace.items():
                    assert f"<t>{old}</t>" in xml, old
                    xml = xml.replace(f"<t>{old}</t>", f"<t>{new}</t>")
                data = xml.encode("utf-8")
            zout.writestr(item, data)


def test_cell_text_with_markup_and_control_characters(tmp_path):
    """单位职能 and 主管部门 typed with XML markup and control characters: the report shows the markup as text, drops
    the control characters, stays a valid document (python-docx and LibreOffice open it) and reruns identically."""
    shutil.copytree(EXAMPLE_INPUT, tmp_path / "input")
    budget = next((tmp_path / "input").glob("预算执行表_*.xlsx"))
    functions = next(r[1].value for r in openpyxl.load_workbook(budget)["单位信息"].iter_rows()
                     if str(r[0].value).startswith("单位职能"))
    original = budget.with_suffix(".orig")
    budget.rename(original)
    with_cell_texts(original, budget, {
        functions: "职能&lt;b&gt;&amp;\"'&lt;/b&gt;_x0001_甲_x0008_乙_x001F_丙&amp;amp;]]&gt;",
        "湘潭市市场监督管理局": "主管&lt;部门&gt;&amp;\"'_x0002_局"})
    original.unlink()
    docs = []
    for name in ("a", "b"):
        assert main(["run", "--input", str(tmp_path / "input"), "--output", str(tmp_path / name)]) == 0
        docs.append(next((tmp_path / name / "2023").glob("*.docx")))
    assert docs[0].read_bytes() == docs[1].read_bytes()
    doc = Document(docs[0])
    text = doc_text(doc)
    assert "职能<b>&\"'</b>甲乙丙&amp;]]>" in [p.text for p in doc.paragraphs]
    assert ["主管部门", "主管<部门>&\"'局"] in [[c.text for c in r.cells] for r in doc.tables[0].rows]
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text)
    squeezed = pdf_text(docs[0], tmp_path)
    assert "职能<b>&" in squeezed and "</b>甲乙丙&amp;]]>" in squeezed and "主管<部门>&" in squeezed


def test_two_renders_are_byte_identical(tmp_path):
    context = {"单位名称": "甲<&>", "财年": "2023"}
    template = tmp_path / "t.md.j2"
    template.write_text("# {{ 单位名称 }}\n| a | b |\n| 1 | {{ 单位名称 }} |\n> 提示\n正文\n", encoding="utf-8")
    a = render_report_docx(context, template, tmp_path / "a.docx").read_bytes()
    b = render_report_docx(context, template, tmp_path / "b.docx").read_bytes()
    assert a == b and Document(tmp_path / "a.docx").paragraphs[0].text == "甲<&>"


# --- runs, the zip container and the sums, as written per unit --------------------------------------------------

@pytest.mark.parametrize(("text", "rpr", "xml"), [
    ("", "", "<w:r/>"),
    ("", "<w:rPr><w:b/></w:rPr>", "<w:r><w:rPr><w:b/></w:rPr></w:r>"),
    ("a<b>&c", "", "<w:r><w:t>a&lt;b&gt;&amp;c</w:t></w:r>"),
    (" 前\u3000", "", '<w:r><w:t xml:space="preserve"> 前\u3000</w:t></w:r>'),
    ("a\tb\nc", "", "<w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t></w:r>"),
    ("\x01甲\x1f \ufffe", "", '<w:r><w:t xml:space="preserve">甲 </w:t></w:r>'),
    ("\x00\x08", "", "<w:r/>"),
])
def test_run_xml(text, rpr, xml):
    """A run as python-docx's run.text writes it, with and without the characters that need more than escaping."""
    assert _run(text, rpr) == xml
    assert _run(text, rpr) == xml  # the cached answer is the same


def test_package_reads_back_with_zipfile():
    """The package (pipeline.ziparchive) reads back with zipfile, CRCs checked, every entry at the fixed time: the
    parts in python-docx's order, the unit's two last; the fixed parts compressed once with zlib as zipfile does,
    the unit's two with ISA-L."""
    data = docx_package(LAYOUT_EDGES, "标题")
    parts = zip_parts(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None and {i.date_time for i in z.infolist()} == {FIXED_ZIP_TIME}
    with zipfile.ZipFile(io.BytesIO(python_docx_layout(LAYOUT_EDGES, "标题"))) as z:
        unit = ["word/document.xml", "docProps/core.xml"]
        assert list(parts) == [name for name in z.namelist() if name not in unit] + unit
    for name in list(parts)[:-2]:
        assert zlib.compress(parts[name], zlib.Z_DEFAULT_COMPRESSION, -15) in data, name
    assert docx_package(LAYOUT_EDGES, "标题") == data


def test_context_sums_from_column_lists():
    """Totals, 按支出类别 and 三公 from the frames' column lists: blanks add nothing, a column a frame lacks is 0, an
    empty frame gives zeros and no rows; amounts rounded half away from zero as Excel does."""
    amounts = {c: [0.0, 0.0, 0.0] for c in BUDGET_AMOUNT_COLUMNS}
    lines = pd.DataFrame({**amounts, "支出类别": ["基本支出", "项目支出", "基本支出"], "全年预算数": [100.0, 50.0, 20.005],
                          "实际支出数": [90.0, float("nan"), 10.0], "结转结余数": [1.0, None, 2.0]})
    sangong = pd.DataFrame({"预算数": [3.0, 4.5], "实际支出数": [2.0, None]})  # no 上年 columns
    context = report_context(unit_report(lines, sangong))
    assert context["预算"] == {"上年结转数": "0.00", "年初预算数": "0.00", "预算调增数": "0.00", "预算调减数": "0.00",
                             "全年预算数": "170.01", "实际支出数": "100.00", "结转结余数": "3.00", "有结余": True}
    assert context["支出类别"] == [
        {"支出类别": "基本支出", "全年预算数": "120.01", "实际支出数": "100.00", "执行率": "83.33%"},
        {"支出类别": "项目支出", "全年预算数": "50.00", "实际支出数": "0.00", "执行率": "0.00%"}]
    assert context["三公"] == {"预算数": "7.50", "实际支出数": "2.00", "上年预算数": "0.00", "上年实际支出数": "0.00"}
    empty = report_context(unit_report(lines.iloc[:0], sangong.iloc[:0]))
    assert set(empty["预算"].values()) == {"0.00", False} and empty["支出类别"] == []
    assert set(empty["三公"].values()) == {"0.00"}
    assert report_context(unit_report(pd.DataFrame(), pd.DataFrame()))["支出类别"] == []


def unit_report(lines: pd.DataFrame, sangong: pd.DataFrame) -> UnitReport:
    """A unit with these budget lines and 三公 rows and nothing scored."""
    details = pd.DataFrame(columns=["一级指标", "三级指标", "指标值", "实际完成值", "分值", "得分", "扣分说明"])
    return UnitReport(unit={"单位名称": "甲", "单位编码": "001", "财年": 2023}, total={}, details=details,
                      indicators=pd.DataFrame(columns=["计算方法", "值", "状态", "说明"]), budget_lines=lines,
                      sangong=sangong, targets=pd.DataFrame(), work_stats=pd.DataFrame(), issues=[],
                      files=pd.DataFrame(), framework=SimpleNamespace(name="框架", version="1"))
