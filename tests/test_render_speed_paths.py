"""render's speed paths, with hand-stated expectations: plain shared strings written directly, the column lists of a
frame taken at once, table totals summed in one numbers.group_sum call, the unit workbook built in memory. The
byte-for-byte comparison of whole workbooks with xlsxwriter's own path is in tests/test_render.py."""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xlsxwriter
from xlsxwriter.sharedstrings import SharedStrings, SharedStringTable

from pipeline import render, run
from pipeline.framework import default_framework_path, load_framework
from pipeline.numbers import group_sum

nan = math.nan
EXAMPLE = Path(__file__).resolve().parent.parent / "input_templates" / "example"

# string → its <si> element as Excel wants it (xlsxwriter's escapes)
SHARED_STRINGS = {
    "预算执行": "<si><t>预算执行</t></si>",
    "换行\n中间": "<si><t>换行\n中间</t></si>",
    'quote"s': '<si><t>quote"s</t></si>',
    "_x00 不完整": "<si><t>_x00 不完整</t></si>",
    "a&b<c>": "<si><t>a&amp;b&lt;c&gt;</t></si>",
    " 前导空格": '<si><t xml:space="preserve"> 前导空格</t></si>',
    "全角空格\u3000": '<si><t xml:space="preserve">全角空格\u3000</t></si>',
    "行尾换行\n": '<si><t xml:space="preserve">行尾换行\n</t></si>',
    "_x0041_": "<si><t>_x005F_x0041_</t></si>",
    "控制\x01字符": "<si><t>控制_x0001_字符</t></si>",
    "非字符\uffff": "<si><t>非字符_xFFFF_</t></si>",
    "<r><t>富文本</t></r>": "<si><r><t>富文本</t></r></si>",
}
PLAIN = ["预算执行", "换行\n中间", 'quote"s', "_x00 不完整"]


def _sst_xml(writer_class, strings: list[str]) -> str:
    table = SharedStringTable()
    for s in strings:
        table._get_shared_string_index(s)
    table._get_shared_string_index(strings[0])  # a repeat: counted, not stored again
    table._sort_string_data()
    writer = writer_class()
    writer.string_table = table
    writer._set_xml_writer(io.StringIO())
    writer._assemble_xml_file()
    return writer.fh.getvalue()


def test_plain_text_is_what_no_escape_changes():
    assert [s for s in SHARED_STRINGS if not render._SPECIAL_TEXT.search(s)] == PLAIN


def test_shared_strings_are_written_as_excel_wants_them():
    strings = list(SHARED_STRINGS)
    xml = _sst_xml(render._SharedStrings, strings)
    assert xml == _sst_xml(SharedStrings, strings)
    assert f'count="{len(strings) + 1}" uniqueCount="{len(strings)}">' in xml
    assert xml.endswith("".join(SHARED_STRINGS.values()) + "</sst>")


@pytest.mark.parametrize("constant_memory", [False, True])
@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_classes_only_on_the_fast_path(tmp_path, monkeypatch, fast, constant_memory):
    monkeypatch.setattr(render, "_FAST", fast)
    book = render.Book(tmp_path / "x.xlsx", "x", constant_memory=constant_memory)
    classes = (type(book.wb), type(book.sheet("s")), type(book.wb._get_packager()))
    book.close()
    if fast:
        assert classes == (render._Workbook, render._Sheet, render._Packager)
    else:
        assert classes == (xlsxwriter.Workbook, xlsxwriter.worksheet.Worksheet, xlsxwriter.packager.Packager)


def test_totals_and_group_sums():
    assert render._totals([[1.0, nan, 2.0], [0.5, 0.25, nan], [nan, nan, nan]]) == [3.0, 0.75, 0.0]
    assert render._totals([[], []]) == [0.0, 0.0]
    assert render._totals([]) == []
    assert render._totals([[1, "2", None]]) == [3.0]  # read as pd.to_numeric reads it
    assert render._sums_by(["甲", None, "乙", "甲"], [[1.0, 2.0, 3.0, 4.0], [0.5, nan, 1.0, nan]]) == [
        ("甲", [5.0, 0.5]), ("乙", [3.0, 1.0])]
    assert render._sums_by([], [[], []]) == []
    assert render._sums_by([None], [[1.0]]) == []


@pytest.mark.parametrize("seed", range(100))
def test_sums_in_one_call_are_each_columns_group_sum(seed):
    """Summed together, every column still gets exactly its own numbers.group_sum (Kahan steps, inf, NaN)."""
    rng = np.random.default_rng(seed)
    n, groups, k = int(rng.integers(0, 25)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    ids = rng.integers(-1, groups, size=n).astype(np.intp)
    pool = np.array([1e16, -1e16, 1.0, 0.1, 0.7, 3.3, 1e-8, nan, -0.0, 2.5e15, math.inf, -math.inf, 95.07, 1e308])
    columns = [rng.choice(pool, size=n).tolist() for _ in range(k)]
    got = render._grouped_sums(ids, groups, columns)
    for column, sums in zip(columns, got):
        assert np.array_equal(sums, group_sum(np.array(column, dtype=float), ids, groups), equal_nan=True)


def _same(a, b) -> bool:
    """Equal scalars; NaN equal to NaN (pd.NA and NaT are singletons)."""
    return a is b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)) or a == b


def test_columns_are_each_columns_tolist():
    frame = pd.DataFrame({
        "f": [1.5, nan, -0.0], "i": [1, 2, 3], "I": pd.array([1, None, 3], dtype="Int64"),
        "F": pd.array([1.5, None, 2], dtype="Float64"), "b": [True, False, True],
        "B": pd.array([True, None, False], dtype="boolean"), "s": pd.array(["a", None, "c"], dtype="str"),
        "S": pd.array(["a", None, "c"], dtype="string"), "o": ["x", None, 3.5],
        "d": pd.to_datetime(["2024-01-01", None, "2024-02-01"]), "c": pd.Categorical(["a", None, "a"]),
        "u8": np.array([1, 2, 3], dtype=np.uint8), "f32": np.array([1.1, 2, 3], dtype=np.float32)})
    expected = {name: s.tolist() for name, s in frame.items()}
    got = render.column_lists(frame)
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert [type(v) for v in got[name]] == [type(v) for v in values], name
        assert all(_same(a, b) for a, b in zip(got[name], values, strict=True)), name
    small = pd.DataFrame({"a": [1.5, 2.0], "b": pd.Series(["x", None], dtype=object), "c": [1, 2]})
    assert render.column_lists(small) == {"a": [1.5, 2.0], "b": ["x", None], "c": [1, 2]}
    assert type(render.column_lists(small)["c"][0]) is int
    repeated = pd.DataFrame([[1, "x"], [2, "y"]], columns=["a", "a"])
    assert render.column_lists(repeated) == {"a": ["x", "y"]}  # the last of a repeated name, as records keeps it
    assert render.column_lists(small.iloc[:0]) == {"a": [], "b": [], "c": []}
    assert render.column_lists(pd.DataFrame(index=range(2))) == {}


def test_a_book_written_into_memory_is_the_book_written_to_a_file(tmp_path):
    data = []
    for target in (tmp_path / "file.xlsx", io.BytesIO()):
        book = render.Book(target, "测试")
        book.table(book.sheet("表"), 0, [("名称", "text"), ("金额", "amount")], [{"名称": "甲", "金额": 1.5}])
        book.close()
        data.append(target.read_bytes() if isinstance(target, os.PathLike) else target.getvalue())
    assert data[0].startswith(b"PK") and data[0] == data[1]


def test_unit_workbook_is_written_at_once_beside_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    framework, problems = load_framework(default_framework_path())
    assert framework is not None, problems
    reports = []
    monkeypatch.setattr(run, "render_unit_workbook",
                        lambda report, path: reports.append(report) or render.render_unit_workbook(report, path))
    run.write_outputs(run.evaluate(EXAMPLE, framework), framework, tmp_path / "run", force=True)
    assert reports
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o077)  # a strict umask: the workbook is still readable by colleagues
    try:
        assert render.render_unit_workbook(reports[0], out / "unit.xlsx") == out / "unit.xlsx"
    finally:
        os.umask(old)
    assert [p.name for p in out.iterdir()] == ["unit.xlsx"]  # no temporary left beside it
    assert stat.S_IMODE((out / "unit.xlsx").stat().st_mode) == 0o644
    render._write_unit_workbook(reports[0], tmp_path / "direct.xlsx")  # xlsxwriter writing the file itself
    assert (out / "unit.xlsx").read_bytes() == (tmp_path / "direct.xlsx").read_bytes()
