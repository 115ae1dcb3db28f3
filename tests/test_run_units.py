"""run.py's per-unit helpers: a unit's parts of every table (split once per batch) are exactly its rows, as a
boolean mask per unit gives them, and its total row is `.iloc[0].to_dict()` of its totals; the batch-wide helpers
give what the straightforward pandas formulation gives; a batch runs with the cyclic garbage collector paused."""

import gc
from datetime import datetime

import pandas as pd
import pytest

from pipeline import render, run
from pipeline.bench import generate
from pipeline.framework import default_framework_path, load_framework
from pipeline.incremental import load_and_stage
from pipeline.load import discover
from pipeline.render import column_lists
from pipeline.run import _UnitParts, evaluate, management_for_scoring
from pipeline.spool import IssueLog, SpooledPaths


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    generate(5, d, 11, workers=1)
    return d


@pytest.fixture(scope="module")
def ev(generated):
    fw, _ = load_framework(default_framework_path())
    return evaluate(generated, fw)


def test_unit_parts_are_the_units_rows(ev):
    parts = _UnitParts(ev)
    keys = list(zip(ev.units["单位编码"], ev.units["财年"])) + [("no-such-unit", 2023)]
    assert len(keys) > 2
    for name, frame in parts.frames.items():
        for key in keys:
            mine = (frame["单位编码"] == key[0]) & (frame["财年"] == key[1])
            want = frame[mine.to_numpy(dtype=bool)].reset_index(drop=True)
            got = parts.get(name, key)
            pd.testing.assert_frame_equal(got, want)
            assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0
            # its column lists, sliced from the table's: those of its own rows (the same values of the same types)
            assert repr(parts.columns(name, key)) == repr(column_lists(want))
            if name == "files":
                assert parts.texts(name, "文件", key) == want["文件"].astype(str).tolist()
            if name == "totals":  # the same values of the same types (repr shows np.float64 apart from float)
                assert repr(parts.total(key)) == repr(want.iloc[0].to_dict() if len(want) else {})


def test_a_unit_report_reads_the_column_lists_of_its_own_tables(ev):
    """The workbook and the Word report read a unit's tables as column lists given by _UnitParts (one conversion
    per batch): the same as converting the unit's own frames."""
    fw, _ = load_framework(default_framework_path())
    parts = _UnitParts(ev)
    for unit in ev.units.to_dict("records"):
        report = run._unit_report(ev, fw, unit, datetime(2024, 1, 1), parts)
        for name in render.LISTED_TABLES:
            given = render._columns_of(report, name)
            assert repr(given) == repr(column_lists(getattr(report, name))), name
            assert len(next(iter(given.values()))) == len(getattr(report, name))


def test_management_cells_are_those_of_each_row(ev):
    ds = ev.dataset
    m = ds.management
    assert len(m) > 8
    want = [f"{r['_sheet']}!{ds.cell(r, '得分比例')}" for r in m.to_dict("records")]  # dataset's own cell()
    got = management_for_scoring(ds)
    assert got["单元格"].tolist() == want and all(w.split("!")[1] for w in want)
    pd.testing.assert_frame_equal(got.drop(columns="单元格"), m)
    assert "单元格" not in m.columns  # the dataset's table is left as it was
    assert management_for_scoring(ds.__class__(**{**ds.__dict__, "management": m.iloc[0:0]}))["单元格"].tolist() == []


def test_a_batch_runs_with_the_collector_paused(generated, tmp_path, monkeypatch):
    fw, _ = load_framework(default_framework_path())
    files = [(str(p), None, load_and_stage((str(p), str(generated)))) for p in discover(generated)]
    job = run.BatchJob(files, str(tmp_path / "cache"), str(generated), str(tmp_path / "out"), fw, {},
                       datetime(2024, 1, 1), spool=str(tmp_path / "spool"))
    seen = []
    stage = run.evaluate_staged
    monkeypatch.setattr(run, "evaluate_staged", lambda *a: (seen.append(gc.isenabled()), stage(*a))[1])
    assert gc.isenabled()
    result = run.run_batch(job)
    assert seen == [False] and gc.isenabled()
    # workbook, report and sidecar per unit, their paths spooled beside the batch's issues
    assert len(result["units"]) == 5 and result["outputs"] == (3 * 5, 0)
    log = IssueLog(folder=tmp_path / "spool")
    assert len(set(SpooledPaths(log, 0, 15))) == 15
