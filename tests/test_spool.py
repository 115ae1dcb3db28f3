"""The run's issues spooled to disk per batch (pipeline/spool.py): the 数据问题 order is kept chunk by chunk, counts
and units with errors are kept without reading the files back, chunks are read lazily, and the log's folder goes
with the log."""

import gc
import math
from pathlib import Path

import pandas as pd
from hypothesis import given, settings, strategies as st

from pipeline import spool
from pipeline.issues import Issue, issues_frame
from pipeline.spool import IssueLog, SpooledPaths, remove_stale, sheet_chunks, spool_batch, spool_outputs

SEVERITIES = ("错误", "警告", "提示")


def issue(sev, unit, file="a.xlsx", sheet="表", msg="", year=2023):
    return Issue(sev, "code", msg or f"{sev}{unit}{file}{sheet}", file=file, sheet=sheet, unit=unit, year=year)


def log_of(tmp_path, batches, loose=()):
    log = IssueLog.create(tmp_path, loose)
    for b, issues in enumerate(batches):
        log.add(spool_batch(log.folder, b, issues))
    return log


def rows(frame: pd.DataFrame) -> list[tuple]:
    """A frame's rows, any missing value as None (chunks differ in dtype: pandas infers it per chunk)."""
    return [tuple(None if pd.isna(v) else v for v in r) for r in frame.itertuples(index=False)]


def in_order(chunks) -> list[tuple]:
    return [r for c in chunks for r in rows(issues_frame(c))]


def test_chunks_keep_the_sheet_order(tmp_path):
    batches = [
        [issue("提示", "A1", "z.xlsx"), issue("错误", "A1", "a.xlsx", msg="first of a tie"), issue("错误", "A2"),
         issue("错误", "A1", "b.xlsx"), issue("警告", "", "x.xlsx"), issue("错误", "A1", "a.xlsx", msg="second of a tie")],
        [issue("警告", "B1"), issue("错误", math.nan, "n.xlsx"), issue("错误", "B2"), issue("错误", "B1")],
        [],
        [issue("错误", "C1"), issue("提示", None, "m.xlsx")],
    ]
    loose = [issue("错误", "", "broken.xlsx", year=None)]
    log = log_of(tmp_path, batches, loose)
    everything = loose + [i for b in batches for i in b]
    expected = issues_frame(everything)
    chunks = list(log.chunks())
    assert all(len({i.severity for i in c}) == 1 for c in chunks)  # no chunk mixes severities
    assert in_order(chunks) == rows(expected)
    # blank 单位编码 first and missing last within 错误, by hand: broken.xlsx, A1 a.xlsx ×2, A1 b.xlsx, A2, B1, B2, C1, NaN
    errors = expected[expected["严重程度"] == "错误"]
    assert errors["单位编码"].tolist()[:8] == ["", "A1", "A1", "A1", "A2", "B1", "B2", "C1"]
    assert len(errors) == 9 and pd.isna(errors["单位编码"].iloc[-1])
    assert errors["问题"].tolist()[1:3] == ["first of a tie", "second of a tie"]


def test_counts_units_with_errors_and_iteration(tmp_path):
    batches = [[issue("错误", "A1"), issue("警告", "A1"), issue("错误", "", year=None)], [issue("提示", "B1")]]
    log = log_of(tmp_path, batches, [issue("警告", "", "bad.xlsx", year=None)])
    assert dict(log.counts) == {"错误": 2, "警告": 2, "提示": 1} and len(log) == 5 and log
    assert log.error_units == 1  # A1 of 2023 (the error of no unit names none)
    assert sorted(map(repr, log)) == sorted(map(repr, [i for b in batches for i in b] + log.loose))
    assert spool.severity_counts(list(log)) == log.counts
    assert spool.error_unit_count(list(log)) == spool.error_unit_count(log) == 1
    # units with errors add up over batches (each batch holds its own units) and the issues found before them
    more = log_of(tmp_path, [[issue("错误", "A1"), issue("错误", "A1", "b.xlsx")], [issue("错误", "B1", year=2024)]],
                  [issue("错误", "C1", "c.xlsx")])
    assert more.error_units == 3 and spool.error_unit_count(list(more)) == 3


def test_chunks_keep_filters_and_fall_back_when_batches_overlap(tmp_path):
    batches = [[issue("错误", "B1"), issue("错误", "A9", year=2024)], [issue("错误", "A1"), issue("警告", "A2")]]
    log = log_of(tmp_path, batches)
    keep = lambda i: i.year == 2023  # noqa: E731
    chunks = list(log.chunks(keep))
    assert len(chunks) == 1  # B1 before A1: the batches are not unit ranges, so one sorted chunk
    assert in_order(chunks) == rows(issues_frame([i for b in batches for i in b if keep(i)]))


def test_chunks_read_one_batch_at_a_time(tmp_path, monkeypatch):
    log = log_of(tmp_path, [[issue("错误", f"U{b}")] for b in range(5)])
    reads = []
    real = spool._read
    monkeypatch.setattr(spool, "_read", lambda file: reads.append(file) or real(file))
    chunks = log.chunks()
    assert [i.unit for i in next(chunks)] == ["U0"] and len(reads) == 1
    assert [c[0].unit for c in chunks] == ["U1", "U2", "U3", "U4"]


def test_a_list_is_one_chunk():
    issues = [issue("警告", "A"), issue("错误", "B")]
    assert list(sheet_chunks(issues, lambda i: i.unit == "B")) == [[issues[1]]]
    assert list(sheet_chunks([])) == []


def test_the_folder_goes_with_the_log_and_stale_folders_are_removed(tmp_path):
    stale = tmp_path / f"{spool.PREFIX}old"
    stale.mkdir()
    (stale / "000000.pickle").write_bytes(b"left by an interrupted run")
    log = log_of(tmp_path, [[issue("错误", "A1")]])
    folder = Path(log.folder)
    remove_stale(tmp_path)
    assert not stale.exists() and folder.is_dir() and list(folder.glob("*.pickle"))  # the live one is kept
    del log
    gc.collect()
    assert not folder.exists()


units = st.sampled_from(["", "U1", "U2", "U3", "U4", "U5", None, math.nan])
issues_st = st.lists(st.builds(issue, st.sampled_from(SEVERITIES), units, st.sampled_from(["a.xlsx", "b.xlsx", ""]),
                               st.sampled_from(["表", "", "汇"]), st.text(max_size=3),
                               st.sampled_from([2023, 2024, None])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(issues_st, st.lists(st.integers(1, 5), max_size=4), st.sampled_from([None, 2023]))
def test_chunks_equal_one_global_sort(tmp_path_factory, issues, cuts, year):
    """Issues of units dealt to batches of consecutive 单位编码 (as a run does) give, chunk by chunk, exactly
    issues_frame of them all."""
    bounds = sorted(set(cuts))
    batches = [[] for _ in range(len(bounds) + 1)]
    for i in issues:
        code = int(i.unit[1:]) if isinstance(i.unit, str) and i.unit else 0
        batches[sum(code > b for b in bounds)].append(i)
    log = log_of(tmp_path_factory.mktemp("spool"), batches)
    keep = (lambda i: True) if year is None else (lambda i: i.year == year or (not i.unit and i.year is None))
    expected = issues_frame([i for b in batches for i in b if keep(i)])
    assert in_order(log.chunks(keep)) == rows(expected)


def test_paths_written_are_spooled_per_batch_and_read_back_in_order(tmp_path):
    """A province's run writes tens of thousands of files: each batch's paths go to its spool file, the main process
    keeps their numbers; listing them reads the files back in batch order, then the few it wrote itself."""
    log = IssueLog.create(tmp_path)
    counts = [spool_outputs(log.folder, 10, ["out/2023/C_丙.xlsx"], []),  # batch 10 after batch 2: by number
              spool_outputs(log.folder, 0, ["out/2023/A_甲.xlsx", "out/2023/A_甲.docx"], ["out/2023/B_乙.xlsx"]),
              spool_outputs(log.folder, 2, [], [])]  # nothing: no file
    assert counts == [(1, 0), (2, 1), (0, 0)] and len(list(log.folder.glob("*-outputs.pickle"))) == 2
    log.add(spool_batch(log.folder, 0, [issue("错误", "A1")]))  # issues spooled beside them are not paths
    written = SpooledPaths(log, 0, 3, ["out/2023/汇总.xlsx"])
    unchanged = SpooledPaths(log, 1, 1)
    assert len(written) == 4 and len(unchanged) == 1
    assert list(written) == ["out/2023/A_甲.xlsx", "out/2023/A_甲.docx", "out/2023/C_丙.xlsx", "out/2023/汇总.xlsx"]
    assert written[-1] == "out/2023/汇总.xlsx" and unchanged == ["out/2023/B_乙.xlsx"]
    assert SpooledPaths(None, 0) == [] and len(SpooledPaths(None, 1, 0, ["x"])) == 1
    folder = log.folder
    del log
    gc.collect()
    assert folder.exists()  # the lists hold the log, whose folder has their files
    assert list(written)[0] == "out/2023/A_甲.xlsx"
    del written, unchanged
    gc.collect()
    assert not folder.exists()
