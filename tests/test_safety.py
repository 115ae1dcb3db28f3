"""Untrusted input: formula-looking text stays text, inputs are never written, an interrupted write keeps the old
result, a zip bomb is refused before parsing, random cells never crash staging, and the 数据问题 links cannot be
bent by a file name."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pipeline import render
from pipeline.framework import default_framework_path, load_framework
from pipeline.issues import Issue
from pipeline.load import RawSheet, SourceFile, load_file
from pipeline.run import evaluate, write_outputs
from pipeline.spec import BUDGET_EXECUTION
from pipeline.staging import stage_file

REPO = Path(__file__).resolve().parent.parent
DEFECTS = REPO / "tests" / "fixtures" / "defects"
EXAMPLE = REPO / "input_templates" / "example"
HYPERLINK_TEXT = '=HYPERLINK("http://x","点击")'
DDE_TEXT = "=cmd|' /C calc'!A0"


@pytest.fixture(scope="module")
def framework():
    fw, problems = load_framework(default_framework_path())
    assert fw is not None, problems
    return fw


def run(input_dir: Path, output_dir: Path, framework) -> list[Path]:
    return write_outputs(evaluate(input_dir, framework), framework, output_dir, force=True)  # render every time


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_formula_text_from_input_stays_a_plain_string(tmp_path, framework):
    inp = tmp_path / "input"
    inp.mkdir()
    shutil.copyfile(DEFECTS / "d30_公式样文本.xlsx", inp / "d30_公式样文本.xlsx")
    written = run(inp, tmp_path / "out", framework)
    book = next(p for p in written if p.suffix == ".xlsx")
    wb = load_workbook(book)
    found = [c for ws in wb for row in ws.iter_rows() for c in row if c.value == HYPERLINK_TEXT]
    assert found, "the 项目名称 is shown in 预算执行分析"
    assert all(c.data_type == "s" for c in found)
    # The pipeline's own live formulas are fine; nothing that came from the input may be one.
    assert not any(isinstance(c.value, str) and ("http://x" in c.value or "cmd|" in c.value) and c.data_type != "s"
                   for ws in wb for row in ws.iter_rows() for c in row)
    with zipfile.ZipFile(book) as zf:
        rels = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".rels"))
    assert b"http://x" not in rels


def test_inputs_are_never_modified(tmp_path, framework):
    inp = tmp_path / "input"
    shutil.copytree(EXAMPLE, inp / "example")
    shutil.copytree(DEFECTS, inp / "defects")
    before = digest(inp)
    run(inp, tmp_path / "out", framework)
    assert digest(inp) == before


def test_interrupted_write_keeps_the_previous_output(tmp_path, framework, monkeypatch):
    out = tmp_path / "out"
    written = run(EXAMPLE, out, framework)
    book = next(p for p in written if p.suffix == ".xlsx")
    before = book.read_bytes()
    listing = sorted(p.name for p in book.parent.iterdir())

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "_issues_sheet", boom)  # halfway through the workbook
    with pytest.raises(RuntimeError):
        run(EXAMPLE, out, framework)
    assert book.read_bytes() == before
    assert sorted(p.name for p in book.parent.iterdir()) == listing  # no temporary file left behind


def test_zip_bomb_is_refused_before_parsing(tmp_path):
    path = tmp_path / "bomb.xlsx"
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            for _ in range(200):  # 200 MiB of zeros, a few hundred KiB on disk
                fh.write(chunk)
    assert path.stat().st_size < 2 * 1024 * 1024
    src, issues = load_file(path, tmp_path)
    assert src is None and [i.code for i in issues] == ["file-suspicious"]


# --- the 数据问题 links -----------------------------------------------------------------------------------------


def test_issue_links_open_the_source_file_at_the_cell(tmp_path, framework):
    inp, out = tmp_path / "input", tmp_path / "out"
    name = "预算#执行\"表'.xlsx"  # characters that would end a URL path or an XML attribute if left as they are
    (inp / "sub").mkdir(parents=True)
    shutil.copyfile(DEFECTS / "d17_公式无计算结果.xlsx", inp / "sub" / name)
    written = run(inp, out, framework)
    book = next(p for p in written if p.suffix == ".xlsx")
    ws = load_workbook(book)["数据问题"]
    header = [c.value for c in ws[1]]
    col = header.index("定位") + 1
    rows = {(ws.cell(r, 3).value, ws.cell(r, 4).value): ws.cell(r, col) for r in range(2, ws.max_row + 1)}
    link = rows[("预算执行", "H3")]
    assert link.value == "打开"
    target = "../../input/sub/%E9%A2%84%E7%AE%97%23%E6%89%A7%E8%A1%8C%22%E8%A1%A8%27.xlsx"
    assert link.hyperlink.target.replace("\\", "/") == target
    assert link.hyperlink.location == "'预算执行'!H3"
    assert (book.parent / "../../input/sub" / name).resolve() == (inp / "sub" / name).resolve()


@pytest.mark.parametrize("rel, sheet, cell, expected", [
    ("a.xlsx", "预算执行", "F7", "external:a.xlsx#'预算执行'!F7"),
    ("../in/a b.xlsx", "It's", "", "external:../in/a%20b.xlsx#'It''s'!A1"),
    ("x.xlsx", "s", "F7\" onclick=\"", "external:x.xlsx#'s'!A1"),
    ("x.xlsx", "", "", "external:x.xlsx"),
    (None, "s", "A1", None),
])
def test_source_link(rel, sheet, cell, expected):
    assert render.source_link(rel, sheet, cell) == expected


# --- staging never raises on random cells --------------------------------------------------------------------

CELL = st.one_of(st.none(), st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                 st.booleans(), st.dates(), st.datetimes(), st.sampled_from(["合计", "小计", "—", "(12.5)", "项目支出",
                                                                              "1,234", "≥80次", "=SUM(A1:A2)"]))
LABELS = [f.label for f in BUDGET_EXECUTION.sheet("预算执行").fields]


def grid_of(rows: list[list]) -> pd.DataFrame:
    width = max((len(r) for r in rows), default=0)
    grid = pd.DataFrame([r + [None] * (width - len(r)) for r in rows], columns=range(width), dtype=object)
    grid.index = pd.RangeIndex(1, len(rows) + 1)
    return grid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(above=st.lists(st.lists(CELL, max_size=4), max_size=3),
       header=st.permutations(LABELS),
       body=st.lists(st.lists(CELL, min_size=0, max_size=13), max_size=8),
       kv=st.lists(st.tuples(st.sampled_from(["单位名称*", "单位编码*", "财年*", "编制人数", "x"]), CELL), max_size=5))
def test_stage_file_never_raises_on_random_budget_grids(above, header, body, kv):
    grids = {"预算执行": grid_of([*above, list(header), *body]), "单位信息": grid_of([list(p) for p in kv] or [[]])}
    src = SourceFile(path=Path("r.xlsx"), rel="r.xlsx", sha256="0", template=BUDGET_EXECUTION,
                     meta={"财年": 2022, "模板版本": "2022.1"},
                     sheets={n: RawSheet(n, g) for n, g in grids.items()},
                     uncached_formulas={"预算执行": frozenset({"A3", "H4"})}, percent_cells={"预算执行": frozenset({"B4"})})
    staged, issues = stage_file(src)
    assert all(isinstance(i, Issue) for i in issues)
    assert list(staged.tables["预算执行"].columns[-3:]) == ["_file", "_sheet", "_row"]
