"""Generate the defect fixtures under tests/fixtures/defects/: one small workbook (or folder) per defect a user can
leave behind, each a variant of the shipped example unit (input_templates/example/) with its 单位编码 changed to
DEFECT_CODE, so that a test can put it beside the untouched example unit and check that unit still scores.

Run:  .venv/bin/python tests/make_fixtures.py      (rewrites every fixture; the output is deterministic)

The base variants fix the two slips the example keeps on purpose (预算调减数 of 人员经费, the typed 12345 rate) and
drop the 取数公式 (a lone 绩效目标表 has no 工作统计表 to draw from), so each fixture shows only its own defect.
The expected issues of every fixture are written by hand in tests/test_defects.py.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from openpyxl import load_workbook

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "input_templates" / "example"
BLANK_BUDGET = REPO / "input_templates" / "2023" / "预算执行表_2023.xlsx"
OUT = REPO / "tests" / "fixtures" / "defects"
DEFECT_CODE = "430399901"
FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_W3C = "2024-01-01T00:00:00Z"


# --- helpers ------------------------------------------------------------------------------------------------


def _freeze(path: Path, patch=None) -> None:
    """Rewrite the package with fixed entry times and document dates (openpyxl stamps 'now'), so that regenerating
    gives identical bytes; `patch(name, bytes) -> bytes` may edit parts on the way."""
    src = path.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + FIXED_W3C.encode(), data)
            if patch is not None:
                data = patch(item.filename, data)
            zout.writestr(zipfile.ZipInfo(item.filename, FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


def _book(kind: str):
    """The example's 预算执行表 or 绩效目标表, re-keyed to DEFECT_CODE and with the base fixes applied."""
    wb = load_workbook(EXAMPLE / f"{kind}_2023.xlsx")
    wb["单位信息"]["B2"] = DEFECT_CODE
    if kind == "预算执行表":
        wb["预算执行"]["G2"] = 6.91  # 0 + 452.3 + 26.32 − 6.91 = 471.71, as typed in H2
        for row in wb["月度支出"].iter_rows(min_row=2):  # optional sheet, emptied: each fixture shows one defect
            for c in row:
                c.value = None
    else:
        ws = wb["绩效目标"]
        for row in range(2, ws.max_row + 1):
            ws.cell(row, 9).value = None  # 取数公式
        ws["H5"] = 3                          # 主题宣传活动次数, typed instead of drawn from 工作统计
    return wb


def _save(wb, name: str, patch=None) -> Path:
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    _freeze(path, patch)
    return path


def _text_cell(ws, ref: str, text: str) -> None:
    """A string cell even when the text starts with `=` (openpyxl would otherwise write a formula)."""
    ws[ref] = text
    ws[ref].data_type = "s"


def _sheet_part(wb_path: Path, sheet: str) -> str:
    """The zip part of a sheet by name (openpyxl numbers parts by workbook order)."""
    names = load_workbook(wb_path, read_only=True).sheetnames
    return f"xl/worksheets/sheet{names.index(sheet) + 1}.xml"


# --- the defects --------------------------------------------------------------------------------------------


def units_in_numbers():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws["E2"], ws["H2"], ws["I3"] = "452.30万元", "471.71 万元", "70万"
    _save(wb, "d01_数字带单位.xlsx")


def full_width_digits():
    wb = _book("预算执行表")
    wb["预算执行"]["E2"] = "４５２．３０"
    wb["预算执行"]["I2"] = "４７１．７１"
    _save(wb, "d02_全角数字.xlsx")


def thousands_separators():
    wb = _book("预算执行表")
    wb["其他指标"]["B3"], wb["其他指标"]["B4"] = "1,320.50", "1,298.60"
    _save(wb, "d03_千分位.xlsx")


def blank_markers():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws["D2"], ws["F3"], ws["G3"], ws["J2"] = "—", "/", "无", "-"
    _save(wb, "d04_空白记号.xlsx")


def bracket_negative():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws["I3"], ws["J3"] = 71, "(1.00)"  # overspent by 1: 70 − 71 = −1, typed the accountant's way
    _save(wb, "d05_括号负数.xlsx")


def yuan_in_wan_column():
    wb = _book("预算执行表")
    wb["预算执行"]["I2"] = 4717100  # 471.71 万元 typed in 元
    _save(wb, "d06_元填入万元列.xlsx")


def comparator_in_target_value():
    wb = _book("绩效目标表")
    ws = wb["绩效目标"]
    ws["F7"] = "≥80次"   # agrees with 比较符 ≥ and 计量单位 次
    ws["F8"] = "≥80次"   # 计量单位 of this row is 户
    _save(wb, "d07_指标值带比较符.xlsx")


def choice_spaces_synonyms():
    wb = _book("预算执行表")
    wb["预算执行"]["C4"] = " 否 "
    ws = wb["管理情况"]
    ws["B3"], ws["B6"], ws["B7"] = "已完成 ", "  达成", "部分 达成"
    _save(wb, "d08_选项空格同义词.xlsx")


def header_moved_down():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws.insert_rows(1, 3)
    ws["A1"] = "2023年度预算执行情况表"
    ws["A2"] = "填报单位：湘潭市市场监督管理局高新分局                单位：万元"
    _save(wb, "d09_表头下移.xlsx")


def columns_reordered():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=11)]
    order = [10, 1, 0, 2, 8, 7, 3, 4, 5, 6, 9]  # 备注 first, 实际支出数 before 全年预算数 …
    for r, values in enumerate(rows, start=1):
        for c, src in enumerate(order, start=1):
            ws.cell(r, c).value = values[src]
    _save(wb, "d10_列顺序调换.xlsx")


def extra_user_column():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws.insert_cols(4)
    ws["D1"], ws["D2"], ws["D3"] = "经办人", "刘敏", "刘敏"
    _save(wb, "d11_用户自加列.xlsx")


def merged_cells():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws["B4"], ws["B5"], ws["C5"] = "市场监管执法办案", "食品安全抽检", "否"
    for col in "DEFGHIJ":
        ws[f"{col}5"] = 0
    ws["A5"] = None
    ws.merge_cells("A4:A5")  # 项目支出 once for both project lines
    _save(wb, "d12_合并单元格.xlsx")


def subtotal_rows():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws.insert_rows(4)
    ws["A4"] = "基本支出小计"
    ws["E4"], ws["H4"], ws["I4"] = 522.3, 541.71, 541.71
    _save(wb, "d13_小计行.xlsx")


def hidden_rows():
    wb = _book("预算执行表")
    wb["预算执行"].row_dimensions[4].hidden = True
    _save(wb, "d14_隐藏行.xlsx")


def renamed_sheet():
    wb = _book("预算执行表")
    wb["预算执行"].title = "预算执行（2023）"
    _save(wb, "d15_工作表改名.xlsx")


def formula_with_cached_value():
    wb = _book("预算执行表")
    path = _save(wb, "d16_公式有计算结果.xlsx")
    part = _sheet_part(path, "预算执行")

    def patch(name, data):  # what Excel saves: the formula and its result
        if name != part:
            return data
        return re.sub(rb'(<c r="J2"[^>]*?)(?:/>|><v>[^<]*</v></c>)', rb"\1><f>H2-I2</f><v>0</v></c>", data)
    _freeze(path, patch)


def formula_without_cached_value():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    ws["H3"] = "=E3+F3-G3"  # required 全年预算数: an 错误
    ws["J2"] = "=H2-I2"     # optional 结转结余数: a 警告
    _save(wb, "d17_公式无计算结果.xlsx")


def macro_workbook():
    wb = _book("预算执行表")

    def patch(name, data):  # the content type Excel gives an .xlsm (no macros inside: values only are read)
        if name == "[Content_Types].xml":
            return data.replace(b"spreadsheetml.sheet.main+xml", b"ms-excel.sheet.macroEnabled.main+xml")
        return data
    _save(wb, "d18_启用宏.xlsm", patch)


def legacy_xls():
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        print("soffice not found: d19_旧版格式.xls skipped", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "d19_旧版格式.xlsx"
        _book("预算执行表").save(src)
        subprocess.run([soffice, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to", "xls",
                        "--outdir", tmp, str(src)], check=True, capture_output=True, timeout=120)
        shutil.copyfile(Path(tmp) / "d19_旧版格式.xls", OUT / "d19_旧版格式.xls")


def not_a_workbook():
    (OUT / "d20_不是工作簿.xlsx").write_bytes("这是一个文本文件，被改成了 .xlsx 扩展名。\n".encode())


def truncated_archive():
    wb = _book("预算执行表")
    path = _save(wb, "d21_下载不完整.xlsx")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def password_protected():
    # An encrypted .xlsx is an OLE compound file (EncryptionInfo + EncryptedPackage streams); the header is
    # what load looks at, so a 512-byte CFB header with padding stands in for one.
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    (OUT / "d22_设置了密码.xlsx").write_bytes(header + b"\0" * (1536 - len(header)))


def empty_template():
    shutil.copyfile(BLANK_BUDGET, OUT / "d23_空白模板.xlsx")


def lock_file():
    (OUT / "~$d24_锁文件.xlsx").write_bytes(b"\x05" + "刘敏".encode("utf-16-le") + b"\0" * 40)


def meta_year_differs():
    wb = _book("预算执行表")
    wb["_meta"]["B4"] = 2022  # last year's template, 单位信息 says 2023
    _save(wb, "d25_上年模板.xlsx")


def old_template_version():
    wb = _book("预算执行表")
    wb["_meta"]["B3"] = "2022.3"
    _save(wb, "d26_旧版本模板.xlsx")


def duplicate_unit_files():
    for name, spent in (("预算执行表_财务股.xlsx", 471.71), ("预算执行表_旧稿.xlsx", 460)):
        wb = _book("预算执行表")
        wb["预算执行"]["I2"] = spent
        wb["预算执行"]["J2"] = round(471.71 - spent, 2)
        _save(wb, f"d27_同一单位两份预算执行表/{name}")


def unit_name_differs():
    _save(_book("预算执行表"), "d28_单位名称不一致/预算执行表.xlsx")
    wb = _book("绩效目标表")
    wb["单位信息"]["B1"] = "湘潭高新区市场监管分局"
    _save(wb, "d28_单位名称不一致/绩效目标表.xlsx")


def percent_as_fraction():
    wb = _book("绩效目标表")
    ws = wb["绩效目标"]
    ws["H3"] = 0.976              # 企业年报率 97.6 typed as 0.976 in a General cell: ambiguous, a 警告
    ws["H4"] = 1                  # 政府采购事项按规定办理率 100% in a percent-formatted cell: read as 100
    ws["H4"].number_format = "0.0%"
    _save(wb, "d29_百分比填小数.xlsx")


def formula_like_text():
    wb = _book("预算执行表")
    ws = wb["预算执行"]
    _text_cell(ws, "B4", '=HYPERLINK("http://x","点击")')
    _text_cell(ws, "K3", "=cmd|' /C calc'!A0")
    _save(wb, "d30_公式样文本.xlsx")


DEFECTS = [
    units_in_numbers, full_width_digits, thousands_separators, blank_markers, bracket_negative, yuan_in_wan_column,
    comparator_in_target_value, choice_spaces_synonyms, header_moved_down, columns_reordered, extra_user_column,
    merged_cells, subtotal_rows, hidden_rows, renamed_sheet, formula_with_cached_value, formula_without_cached_value,
    macro_workbook, legacy_xls, not_a_workbook, truncated_archive, password_protected, empty_template, lock_file,
    meta_year_differs, old_template_version, duplicate_unit_files, unit_name_differs, percent_as_fraction,
    formula_like_text,
]


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for make in DEFECTS:
        make()
    for p in sorted(OUT.iterdir()):
        print(p.relative_to(REPO))


if __name__ == "__main__":
    main()
