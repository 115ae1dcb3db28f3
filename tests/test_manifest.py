"""The manifest of what a run wrote (pipeline/manifest.py): a SQLite file built beside the old one and renamed into
place, read a batch of units at a time; a damaged, foreign or interrupted one never stops a run."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pipeline.manifest import LEGACY_STATE_FILE, STATE_FILE, STATE_FORMAT, Manifest, new_manifest, read_state

META = {"pipeline": "9.9", "code": "c0de"}
UNITS = {
    "2023/A1": {"hash": "h1", "outputs": {"2023/A1_甲_绩效评价.xlsx": "s1", "2023/A1_甲_绩效评价.docx": "s2"}},
    "2024/A1": {"hash": "h2", "outputs": {"2024/A1_甲_绩效评价.xlsx": "s3"}},
    "2023/B/2": {"hash": "h4", "outputs": {}},  # a 单位编码 with "/" in it
}


def write(folder, units=UNITS, files=None):
    with new_manifest(folder, META) as m:
        m.add(units)
        m.set_files(files or {"2023/汇总.xlsx": "f1"})


def test_written_then_read_back(tmp_path):
    write(tmp_path)
    assert read_state(tmp_path) == {"format": STATE_FORMAT, **META, "units": UNITS, "files": {"2023/汇总.xlsx": "f1"}}
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file, journal or lock left
    with Manifest.open(tmp_path) as m:
        # every 财年 of the given 单位编码, none of another
        assert m.units_of(["A1"]) == {"2023/A1": UNITS["2023/A1"], "2024/A1": UNITS["2024/A1"]}
        assert m.units_of(["B/2"]) == {"2023/B/2": UNITS["2023/B/2"]}
        assert m.units_of(["A"]) == {} and m.units_of([]) == {}
        # (uid, 财年, entry) in uid order
        assert [(uid, year) for uid, year, _ in m.entries()] == [("2023/A1", 2023), ("2023/B/2", 2023),
                                                                 ("2024/A1", 2024)]
    assert list(UNITS["2023/A1"]["outputs"]) == list(read_state(tmp_path)["units"]["2023/A1"]["outputs"])


def test_many_codes_in_one_lookup(tmp_path):
    """More 单位编码 than SQLite takes parameters in one statement."""
    units = {f"2023/{i:05d}": {"hash": str(i), "outputs": {}} for i in range(1_200)}
    write(tmp_path, units)
    with Manifest.open(tmp_path) as m:
        assert m.units_of(f"{i:05d}" for i in range(0, 1_200, 1)) == units


def test_a_failed_run_leaves_the_previous_manifest(tmp_path):
    write(tmp_path)
    with pytest.raises(RuntimeError):
        with new_manifest(tmp_path, META) as m:
            m.add({"2023/C3": {"hash": "x", "outputs": {}}})
            raise RuntimeError("interrupted")
    assert read_state(tmp_path)["units"] == UNITS
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


def test_an_entry_added_again_replaces_the_first(tmp_path):
    with new_manifest(tmp_path, META) as m:
        m.add({"2023/A1": {"hash": "old", "outputs": {"a": "1"}}})
        m.add({"2023/A1": {"hash": "new", "outputs": {"b": "2"}}})
        assert m.outputs_of("2023/A1") == {"b": "2"} and m.outputs_of("2023/Z9") == {}
    assert read_state(tmp_path)["units"] == {"2023/A1": {"hash": "new", "outputs": {"b": "2"}}}


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign format", "other tables"])
def test_a_manifest_that_cannot_be_read_counts_as_none(tmp_path, damage):
    write(tmp_path, {f"2023/{i:05d}": {"hash": "h" * 64, "outputs": {f"2023/{i}.xlsx": "s" * 64}}
                     for i in range(2_000)})
    path = tmp_path / STATE_FILE
    if damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "foreign format":
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = '99' WHERE name = 'format'")
        db.close()
    else:
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE meta(name, value)")
            db.execute("INSERT INTO meta VALUES ('format', ?)", (str(STATE_FORMAT),))
        db.close()
    assert read_state(tmp_path) == {}
    with Manifest.open(tmp_path) as m:
        assert m.units_of(["00001"]) == {} and list(m.entries()) == [] and m.files() == {}
    write(tmp_path)  # and the next run writes a good one over it
    assert read_state(tmp_path)["units"] == UNITS


def test_a_format_1_manifest_is_read_and_then_replaced(tmp_path):
    """The JSON manifest of earlier versions still says which outputs this program wrote (so that those of a unit
    gone from the input are removed); it is deleted once the new manifest is in place."""
    legacy = {"format": 1, "pipeline": "0.9", "units": {"2023/A1": UNITS["2023/A1"]}, "files": {"2023/汇总.xlsx": "f"}}
    (tmp_path / LEGACY_STATE_FILE).write_text(json.dumps(legacy, ensure_ascii=False), encoding="utf-8")
    with Manifest.open(tmp_path) as m:
        assert m.units_of(["A1"]) == {"2023/A1": UNITS["2023/A1"]}
        assert m.files() == {"2023/汇总.xlsx": "f"}
    write(tmp_path)
    assert not (tmp_path / LEGACY_STATE_FILE).exists()
    (tmp_path / STATE_FILE).unlink()
    (tmp_path / LEGACY_STATE_FILE).write_text(json.dumps({**legacy, "format": 7}), encoding="utf-8")
    assert read_state(tmp_path) == {}  # not a format this program wrote
    (tmp_path / LEGACY_STATE_FILE).write_text("{ half a docu", encoding="utf-8")
    assert read_state(tmp_path) == {}
