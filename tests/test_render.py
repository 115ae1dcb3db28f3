"""render's fast paths change nothing: cells stored directly and `<sheetData>` written by `_Sheet` give exactly the
parts of xlsxwriter's own methods (names in order, entry times, contents; the fast path deflates them with
pipeline.ziparchive, so only the compressed bytes differ); the workbook's totals and group sums are the shared
numbers.group_sum; what the workbook and the Word report share is computed once per unit; a written workbook leaves
no reference cycle and the garbage collector is left as it was."""

from __future__ import annotations

import gc
import hashlib
import io
import math
import random
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import render, ziparchive
from pipeline.framework import default_framework_path, load_framework
from pipeline.issues import Issue, issues_frame
from pipeline.numbers import group_sum
from pipeline.run import evaluate, write_monitoring_outputs, write_outputs

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "input_templates" / "example"
DEFECTS = REPO / "tests" / "fixtures" / "defects"


@pytest.fixture(scope="module")
def framework():
    fw, problems = load_framework(default_framework_path())
    assert fw is not None, problems
    return fw


def parts(data: bytes | Path) -> list[tuple[str, tuple, bytes]]:
    """A workbook's zip entries in order: name, time and uncompressed content. The fast path zips them with ISA-L's
    deflate (pipeline.ziparchive), the stock path with zipfile: the compressed bytes differ, nothing else."""
    with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as z:
        assert z.testzip() is None
        return [(i.filename, i.date_time, z.read(i)) for i in z.infolist()]


def workbooks(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(repr(parts(p)).encode()).hexdigest()
            for p in sorted(folder.rglob("*.xlsx"))}


def test_fast_path_is_on_for_the_pinned_xlsxwriter():
    assert render._FAST, ("xlsxwriter is not a version in render._FAST_XLSXWRITER: workbooks are written the slow "
                          "way. Run this file with the new version added there; if it passes, keep it.")


@pytest.mark.parametrize("source", [EXAMPLE, DEFECTS], ids=["example", "defects"])
def test_fast_and_stock_paths_write_the_same_bytes(tmp_path, monkeypatch, framework, source):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ev = evaluate(source, framework)
    digests = {}
    for fast in (True, False):  # stock: xlsxwriter's methods
        monkeypatch.setattr(render, "_FAST", fast)
        write_outputs(ev, framework, tmp_path / str(fast), force=True)
        digests[fast] = workbooks(tmp_path / str(fast))
    assert len(digests[True]) >= 2  # unit workbook(s) and 汇总.xlsx
    assert digests[True] == digests[False]


def test_fast_and_stock_paths_write_the_same_monitoring_workbooks(tmp_path, monkeypatch, framework):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ev = evaluate(EXAMPLE, framework)
    digests = {}
    for fast in (True, False):
        monkeypatch.setattr(render, "_FAST", fast)
        write_monitoring_outputs(ev, framework, tmp_path / str(fast), 2023, 6)
        digests[fast] = workbooks(tmp_path / str(fast))
    assert digests[True] and digests[True] == digests[False]


ODD_VALUES = [
    None, math.nan, pd.NA, True, False, 0, -3, 7.5, -0.0, 0.0, 1e-7, -123456.789, 1e15, 123456789.125,
    np.int64(4), np.float64(2.5), np.bool_(True), pd.Timestamp("2024-01-01"), 12345678901234567890,
    "", " 前后空格 ", '=HYPERLINK("http://x","点击")', "http://example.com", "=1+1", "_x0041_", "控制\x01字符",
    "a<b & c>\"d\"", "换行\n文本", "长" * 20000, "a" * 40000, "甲&乙", "尾随空格 ", "全角空格\u3000", "非字符\ufffe",
]


def _odd_book(path: Path, fast: bool, monkeypatch) -> None:
    """Every kind of value and cell the workbooks hold, plus what the fast path hands back to xlsxwriter."""
    monkeypatch.setattr(render, "_FAST", fast)
    book = render.Book(path, "测试 & <标题>")
    rng = random.Random(7)
    ws = book.sheet("表一", header_rows=0)
    columns = [(f"列{j}", fmt) for j, fmt in enumerate(["text", "number", "general", "percent", "amount", "int"])]
    rows = [{name: rng.choice(ODD_VALUES) for name, _ in columns} for _ in range(80)]
    book.table(ws, 2, columns, rows, left=1)
    book.table(ws, 90, columns[:3], rows[:6], span_last=2)
    book.table(ws, 100, columns, [])
    ws.write_comment(110, 3, "只有批注的一行")
    ws.write_comment(4, 9, "数据行上的批注，列在表外")
    ws.set_row(5, 30)  # a data row with its own height
    ws.set_row(112, 20)  # a row with a height only
    ws.write_datetime(113, 0, pd.Timestamp("2024-05-01").to_pydatetime(), book.fmt["text"])
    ws.write_boolean(113, 1, True, book.fmt["text"])
    ws.write_number(113, 2, 1.0)  # no format: xlsxwriter's own writer
    ws.write_rich_string(113, 3, "普通", book.fmt["title"], "加粗")
    for k, (text, cached) in enumerate([("=ROUND(B4*2,2)", 1.5), ('=IF(B4>0,"优","差")', "优"), ("=B4>0", True),
                                        ("=1/0", "#DIV/0!"), ("=B4", ""), ("=SORT(B4:B9)", 0),
                                        ("{=SUM(B4:B9*C4:C9)}", 2), ("=ROUND(B4*2,2)", 1.5)]):
        book.formula(ws, 120 + k, 1, text, "number", cached)
    book.formula(ws, 2_000_000, 1, "=1", "number", 1)  # outside the sheet: ignored by both
    book.table(book.sheet("空表"), 0, columns, [])
    book.close()


def test_fast_and_stock_paths_agree_on_odd_values(tmp_path, monkeypatch):
    _odd_book(tmp_path / "fast.xlsx", True, monkeypatch)
    _odd_book(tmp_path / "stock.xlsx", False, monkeypatch)
    assert parts(tmp_path / "fast.xlsx") == parts(tmp_path / "stock.xlsx")


def test_a_workbook_too_large_for_ziparchive_is_zipped_by_zipfile(tmp_path, monkeypatch):
    _odd_book(tmp_path / "fast.xlsx", True, monkeypatch)
    monkeypatch.setattr(ziparchive, "LIMIT", 1000)  # any part over 1,000 bytes: ZIP64 would be needed
    _odd_book(tmp_path / "zipfile.xlsx", True, monkeypatch)
    assert parts(tmp_path / "zipfile.xlsx") == parts(tmp_path / "fast.xlsx")
    stock = io.BytesIO()
    with zipfile.ZipFile(stock, "w", zipfile.ZIP_DEFLATED) as z:  # as xlsxwriter zips parts from memory
        for name, date_time, content in parts(tmp_path / "fast.xlsx"):
            z.writestr(zipfile.ZipInfo(name, date_time), content, zipfile.ZIP_DEFLATED)
    assert (tmp_path / "zipfile.xlsx").read_bytes() == stock.getvalue()


def test_infinity_is_refused_on_both_paths(tmp_path):
    for fast in (True, False):
        book = render.Book(tmp_path / f"{fast}.xlsx", "x")
        book.fast = fast
        ws = book.sheet("s")
        with pytest.raises(TypeError):
            book.table(ws, 0, [("a", "number")], [{"a": 1.0}, {"a": math.inf}])


@pytest.mark.parametrize("seed", range(200))
def test_workbook_sums_are_the_shared_group_sums(seed):
    """Totals and per-category / per-一级指标 sums are numbers.group_sum: groups in order of first appearance as
    `groupby(sort=False)`, a missing key left out, NaN skipped; a group's sum depends on its own rows only."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 30))
    keys = [[None, "甲", "乙", "丙", math.nan][k] for k in rng.integers(0, 5, size=n)]
    pool = np.array([1e16, -1e16, 1.0, 0.1, 0.7, 3.3, 1e-8, np.nan, -0.0, 2.5e15, 8.7, 9.6, 95.07])
    a, b = rng.choice(pool, size=n), rng.choice(pool, size=n)
    got = render._sums_by(keys, [a.tolist(), b.tolist()])
    expected_keys = pd.Series(keys, dtype=object).groupby(pd.Series(keys, dtype=object), sort=False).size().index
    assert [key for key, _ in got] == list(expected_keys)
    for key, sums in got:
        rows = [i for i, k in enumerate(keys) if k == key]
        alone = [render._total(a[rows].tolist()), render._total(b[rows].tolist())]
        assert np.array_equal(sums, alone)
        one = np.zeros(len(rows), dtype=np.intp)
        assert np.array_equal(sums, [group_sum(a[rows], one, 1)[0], group_sum(b[rows], one, 1)[0]])
    assert render._total([]) == 0.0 and render._total([math.nan]) == 0.0
    assert render._total([1, "2", None]) == 3.0  # a column that is not float64 is read as pd.to_numeric reads it


def test_widest_is_the_widest_value_as_grow_measures_it():
    rng = random.Random(13)
    pool = [0.0, -0.0, -1e-9, 0.004, 0.005, -0.005, 999.995, -999.995, 1e6, -1e6, 123456789.125, math.nan, math.inf,
            None, "", "文本", "text", "混合 text", 3, True]
    for _ in range(3000):
        values = [rng.choice(pool) if rng.random() < 0.7 else rng.uniform(-1, 1) * 10 ** rng.randint(-3, 9)
                  for _ in range(rng.randint(0, 8))]
        widths = [len(f"{v:,.2f}") for v in values if type(v) is float and math.isfinite(v)]
        widths += [render.display_width(v) for v in values if type(v) is str]
        assert render._widest(values, 16383) == max(widths, default=-1), values


def test_issue_columns_are_the_issues_frame_in_order():
    rng = random.Random(14)
    for _ in range(200):
        issues = [Issue(rng.choice(["错误", "警告", "提示"]), rng.choice(["a", "b"]), f"问题{k}",
                        file=rng.choice(["f1.xlsx", "f2.xlsx", ""]), sheet=rng.choice(["表", "sheet", ""]),
                        cell=rng.choice(["A1", "B2", ""]), value=rng.choice(["", "x"]), unit=rng.choice(["u1", "u2"]),
                        year=2023) for k in range(rng.randint(0, 12))]
        if issues and rng.random() < 0.2:
            issues[0] = Issue("警告", "odd", "原值不是文本", value=3.5)  # the frame decides: no fast sort
        frame = issues_frame(issues)
        expected = {name: frame[name].tolist() for name, _ in render.ISSUE_SHEET_COLUMNS}
        assert render._issue_columns(issues) == expected


@pytest.mark.parametrize("source", [EXAMPLE, DEFECTS], ids=["example", "defects"])
def test_the_report_takes_what_the_workbook_computed(tmp_path, monkeypatch, framework, source):
    """The Word report's figures shared with the workbook (column lists, sums, score groups) are the ones computed
    for the workbook, read only: the same context as computed afresh, and nothing recomputed."""
    from pipeline import report as word, run

    reports = []
    monkeypatch.setattr(run, "render_unit_workbook",
                        lambda report, path: reports.append(report) or render.render_unit_workbook(report, path))
    write_outputs(evaluate(source, framework), framework, tmp_path / "run", force=True)
    for report in reports:
        fresh = word.report_context(report)  # after the workbook: from what it computed
        assert {("columns", "details"), ("columns", "budget_lines"), ("columns", "sangong"), ("columns", "targets"),
                "level1", "indicators by name", "categories"} <= set(report.derived)
        assert "执行率" not in report.derived["columns", "budget_lines"]  # the sheet's added column is its own
        derived = dict(report.derived)
        report.derived.clear()
        assert word.report_context(report) == fresh  # computed afresh: the same
        report.derived.update(derived)
        monkeypatch.setattr(render, "column_lists", None)  # nothing is converted or summed again
        monkeypatch.setattr(render, "_sums_by", None)
        monkeypatch.setattr(render, "_totals", None)
        assert word.report_context(report) == fresh
        monkeypatch.undo()


def test_a_written_workbook_leaves_no_reference_cycle(tmp_path):
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        book = render.Book(tmp_path / "x.xlsx", "x")
        ws = book.sheet("s")
        book.table(ws, 0, [("a", "text"), ("b", "number")], [{"a": "x", "b": 1.0}] * 50)
        book.close()
        del book, ws
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_collector_is_left_as_it_was():
    assert gc.isenabled()
    with render.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), render.collector_paused():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with render.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
