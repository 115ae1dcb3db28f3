"""load's scan of the sheet XML (formulas without a saved value, percent cells, merged cells, hidden rows) finds
what walking every cell finds: its substring shortcuts only skip parts where the walk would find nothing. And a
package zipfile refuses to read (an extract version it does not know) is an unreadable file, never a crash."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from pipeline.load import (
    _ATTR_RE, _CELL_RE, _FORMULA_RE, _HIDDEN_ROW_RE, _MERGE_RE, _VALUE_RE, _scan_sheet, _SheetFacts, load_file,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "input_templates" / "example"
DEFECTS = REPO / "tests" / "fixtures" / "defects"
WORKBOOKS = sorted(EXAMPLE.rglob("*.xls*")) + sorted(DEFECTS.rglob("*.xls*"))


def plain_scan(xml: bytes, percent_styles: frozenset[int]) -> _SheetFacts:
    """_scan_sheet walking every cell, without any shortcut."""
    facts = _SheetFacts()
    for m in _CELL_RE.finditer(xml):
        uncached = _FORMULA_RE.search(m[2]) and not _VALUE_RE.search(m[2])
        attrs = dict(_ATTR_RE.findall(m[1]))
        ref = attrs.get(b"r", b"").decode()
        if not ref:
            continue
        if uncached:
            facts.uncached.append(ref)
        if attrs.get(b"s", b"").isdigit() and int(attrs[b"s"]) in percent_styles:
            facts.percent.add(ref)
    facts.merged = [r.decode() for r in _MERGE_RE.findall(xml)]
    facts.hidden_rows = [int(r) for r in _HIDDEN_ROW_RE.findall(xml)]
    return facts


_PIECES = [
    b'<c r="A1" s="1"><v>1</v></c>', b'<c r="B2"><f>A1+1</f></c>', b'<c r="C3"><f>SUM(A1)</f><v>2</v></c>',
    b'<c r="D4" s="2"/>', b'<x:c r="E5"><x:f>1</x:f></x:c>', b'<c r="F6" t="s"><v>3</v></c>',
    b'<row r="7" hidden="1">', b'</row>', b'<c r="G7"><f t="shared" si="0"/></c>', b'<c r="H8"><f/></c>', b'</c>',
    b'<c ', b'>', b'<f>', b'<f ', b':f ', b'<v>', b'</v>', b'ff', b'<mergeCell ref="A1:A3"/>',
    b'<c r="I9" s="01"><f>x</f><v></v></c>', b'"', b'<c r="J1"</c>', b'<formula1>1</formula1>',
    b'<c\tr="K2"><f>\n</f></c>', b'</x:c>', b'<c r="L3">', b'f', b'<', b'<c r="M4" s="1"><is><t>fff</t></is></c>',
    b'></c>', b'<c r="N5"><v>1</v><f>2</f></c>', b'<c r="P1" a="></c>"><f>1</f></c>', b'<c r="Q1" a="x>y"><f>1</f></c>',
    b'<c r="R1"><f>a</c><v>1</v></c>', b'<a:c r="S1"><f>1</f></a:c>', b'<c r="T1" s="5"><f>1</f><v>0.5</v></c>',
]


def _same_facts(xml: bytes, styles: frozenset[int]) -> None:
    got, want = _scan_sheet(xml, styles), plain_scan(xml, styles)
    assert (got.uncached, got.percent, got.merged, got.hidden_rows) == \
           (want.uncached, want.percent, want.merged, want.hidden_rows), xml


def test_the_shortcuts_find_what_the_whole_walk_finds():
    rng = random.Random(7)
    for _ in range(3000):
        xml = b"".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        for styles in (frozenset(), frozenset({1}), frozenset({2, 5})):
            _same_facts(xml, styles)


def test_sheets_of_real_workbooks_give_the_same_facts():
    for path in WORKBOOKS:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            continue
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                xml = zf.read(name)
                for styles in (frozenset(), frozenset({1, 9}), frozenset(range(40))):
                    _same_facts(xml, styles)


def test_an_unknown_zip_version_is_an_unreadable_file(tmp_path):
    data = (EXAMPLE / "预算执行表_2023.xlsx").read_bytes()
    at = data.find(b"PK\x01\x02")  # the first central directory entry: its "version needed to extract" → 9.9
    (tmp_path / "v.xlsx").write_bytes(data[:at + 6] + bytes([99]) + data[at + 7:])
    with pytest.raises(NotImplementedError):
        zipfile.ZipFile(io.BytesIO((tmp_path / "v.xlsx").read_bytes()))
    src, issues = load_file(tmp_path / "v.xlsx", tmp_path)
    assert src is None and [i.code for i in issues] == ["file-unreadable"]
