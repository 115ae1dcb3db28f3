"""The store of each unit's 汇总 figures (unitstore.UnitStore) and the 汇总 tables read from it a chunk at a time:
rows in batch order whatever order the batches come in, ranks and 合计 that hold across chunk borders."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from pipeline import summary, unitstore
from pipeline.unitstore import UnitStore


def _rows(codes, scores, year=2023, grades=None, **more):
    return pd.DataFrame({"单位编码": codes, "财年": year, "单位名称": [f"{c}局" for c in codes], "总分": scores,
                         "等级": grades or ["良"] * len(codes), **more})


def test_rows_come_back_in_batch_order_and_by_score():
    store = UnitStore()
    store.add(1, _rows(["C", "D"], [95.0, None]))
    store.add(0, _rows(["B", "A"], [80.0, 95.0]))
    store.add(2, _rows(["E"], [70.0], year=2022))
    assert store.frame()["单位编码"].tolist() == ["B", "A", "C", "D", "E"]  # batch 0, 1, 2; each in its own order
    assert store.frame(2023)["单位编码"].tolist() == ["B", "A", "C", "D"]
    # best first, ties by 单位编码, no total last
    assert store.frame(2023, by_score=True)["单位编码"].tolist() == ["A", "C", "B", "D"]
    assert math.isnan(store.frame(2023, by_score=True)["总分"].tolist()[-1])
    assert [len(c) for c in store.rows(2023, size=3)] == [3, 1]
    assert (store.count(), store.count(2023), store.count(2022), store.count(2021)) == (5, 4, 1, 0)
    assert store.years() == [2022, 2023]


def test_a_column_a_later_batch_brings_is_added():
    store = UnitStore()
    store.add(0, _rows(["A"], [90.0], 过程=[40.0]))
    store.add(1, _rows(["B"], [80.0], 过程=[30.0], 产出=[50.0]))
    frame = store.frame()
    assert list(frame.columns) == ["单位编码", "财年", "单位名称", "总分", "等级", "过程", "产出"]
    assert math.isnan(frame["产出"][0]) and frame["产出"][1] == 50.0


def test_tally_and_names():
    store = UnitStore.of(_rows(["A", "B", "C", "D"], [95.0, 61.5, None, 61.5], grades=["优", "中", "无法评级", "中"]))
    grades = store.tally(2023, "等级")
    assert grades[["等级", "单位数"]].values.tolist() == [["中", 2], ["优", 1], ["无法评级", 1]]  # UTF-8 byte order
    assert grades["最低分"].tolist()[:2] == [61.5, 95.0] and math.isnan(grades["最低分"][2])
    scores = store.tally(2023, "总分")
    assert scores["单位数"].tolist() == [1, 2, 1]  # no total first
    assert math.isnan(scores["总分"][0]) and scores["总分"].tolist()[1:] == [61.5, 95.0]
    assert store.names(2023, ["B", "X", "B", "A"]) == {"B": "B局", "A": "A局"}
    assert store.names(2022, ["A"]) == {}


def test_names_of_more_codes_than_one_statement_takes():
    codes = [f"U{k:04d}" for k in range(1_201)]
    store = UnitStore.of(_rows(codes, [80.0] * len(codes)))
    assert store.names(2023, codes[::-1]) == {c: f"{c}局" for c in codes}


def test_an_empty_store():
    store = UnitStore()
    assert (store.count(), store.years(), list(store.rows())) == (0, [], [])
    assert store.frame().empty and store.tally(None, "等级").empty


def _result(store):
    return type("R", (), {"store": store, "losses": pd.DataFrame(columns=summary.LOSS_TOTAL_COLUMNS),
                          "issues": []})()


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_ranks_and_totals_hold_across_chunks(monkeypatch, chunk):
    """Ranks 1 + the number of better totals, whatever chunk a tie falls in: 95, 95 → 1, 1; 90 → 3; 80, 80 → 4, 4;
    none → no rank. 合计: 100.10 + 0.20 + 50 + 10.01 + 0 = 160.31 of the rounded 全年预算数 (100.104 → 100.10,
    0.195 → 0.20 half away from zero); 实际 90 + 0.1 + 40 + 10 = 140.1 (E spent nothing recorded); rate
    140.1 / 160.31 = 0.873931… → 0.8739."""
    monkeypatch.setattr(unitstore, "CHUNK", chunk)
    codes = ["E", "B", "A", "D", "C", "F"]
    rows = _rows(codes, [80.0, 95.0, 90.0, 95.0, 80.0, math.nan],
                 全年预算数=[0.0, 100.104, 0.195, 50.0, 10.01, math.nan],
                 实际支出数=[math.nan, 90.0, 0.1, 40.0, 10.0, math.nan],
                 三公经费预算数=math.nan, 三公经费实际支出数=math.nan)
    store = UnitStore()
    store.add(1, rows.iloc[3:])
    store.add(0, rows.iloc[:3])
    tables = summary.summary_tables(_result(store), 2023)
    rank = tables["排名"].frame()
    assert rank["单位编码"].tolist() == ["B", "D", "A", "C", "E", "F"]
    assert rank["排名"].tolist()[:5] == [1, 1, 3, 4, 4] and pd.isna(rank["排名"][5])
    budget = tables["预算执行"].frame()
    assert budget["单位编码"].tolist() == [*codes, "合计"]
    assert budget["全年预算数"].tolist()[:2] == [0.0, 100.1]
    total = budget.iloc[-1]
    assert (total["单位名称"], total["全年预算数"], total["实际支出数"], total["预算执行率"]) == (
        "6 个单位", 160.31, 140.1, 0.8739)
    assert total["三公经费预算数"] is None and total["三公经费控制率"] is None
    assert len(tables["排名"]) == 6 and len(tables["预算执行"]) == 7
    bands = tables["分数分布"].set_index("分数段")["单位数"].to_dict()
    assert bands == {"60分以下": 0, "60–70分": 0, "70–80分": 0, "80–90分": 2, "90分及以上": 3}


def test_the_summary_written_a_row_at_a_time_is_the_same(monkeypatch, tmp_path):
    """The 汇总 written from chunks of one row is byte for byte the one written from a single chunk."""
    codes = [f"U{k:02d}" for k in range(12)]
    rows = _rows(codes, [90.0 - (k % 4) * 10 if k != 5 else math.nan for k in range(12)], 过程=30.0,
                 全年预算数=[100.0 + k for k in range(12)], 实际支出数=[90.0] * 12,
                 三公经费预算数=[5.0] * 12, 三公经费实际支出数=[4.5 if k % 2 else math.nan for k in range(12)])
    data = []
    for chunk in (1, 1000):
        monkeypatch.setattr(unitstore, "CHUNK", chunk)
        store = UnitStore()
        store.add(1, rows.iloc[5:])
        store.add(0, rows.iloc[:5])
        path = summary.write_summary(summary.summary_tables(_result(store), 2023), tmp_path / f"{chunk}.xlsx", 2023)
        data.append(path.read_bytes())
    assert data[0] == data[1]


def test_the_run_databases_have_a_small_page_cache(tmp_path):
    """The file index, the unit store and the manifest (new and read back) each cache at most CACHE_KIB of pages,
    so that the main process does not grow with them (SQLite's default is 2 MiB each)."""
    from pipeline import sqlitedb
    from pipeline.fileindex import FileIndex
    from pipeline.manifest import Manifest, new_manifest

    limit = (-sqlitedb.CACHE_KIB,)
    assert sqlitedb.CACHE_KIB < 2048
    with new_manifest(tmp_path, {"version": "x"}) as writer:
        assert writer._db.execute("PRAGMA cache_size").fetchone() == limit
    index = FileIndex()
    assert index._db.execute("PRAGMA cache_size").fetchone() == limit
    assert UnitStore()._db.execute("PRAGMA cache_size").fetchone() == limit
    assert Manifest.open(tmp_path)._db.execute("PRAGMA cache_size").fetchone() == limit


def test_a_snapshot_opened_elsewhere_reads_the_rows_so_far_and_only_reads(tmp_path):
    """What a worker writing one year's 汇总 gets: the rows added before the snapshot, ranked and counted as the
    store does; the store goes on taking rows, and the snapshot cannot be written to."""
    import sqlite3

    store = UnitStore()
    store.add(0, pd.DataFrame({"单位编码": ["U2", "U1"], "财年": [2023, 2023], "单位名称": ["二局", "一局"],
                               "总分": [80.0, 90.5], "等级": ["良", "优"]}))
    path = store.snapshot(tmp_path / "快照.sqlite")
    store.add(1, pd.DataFrame({"单位编码": ["U3"], "财年": [2024], "单位名称": ["三局"], "总分": [70.0],
                               "等级": ["中"]}))
    copy = UnitStore.opened(path, store.columns)
    try:
        assert copy.count() == 2 and store.count() == 3 and copy.years() == [2023]
        assert copy.frame(2023, by_score=True)[["单位编码", "总分"]].values.tolist() == [["U1", 90.5], ["U2", 80.0]]
        assert copy.names(2023, ["U2"]) == {"U2": "二局"}
        with pytest.raises(sqlite3.OperationalError):
            copy.add(2, pd.DataFrame({"单位编码": ["U4"], "财年": [2023]}))
    finally:
        copy.close()
        store.close()
