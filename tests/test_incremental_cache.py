"""The staged-file cache: a staged file comes back equal from its task's pack (tables with their dtypes, NaN, None and
mixed object columns, empty tables, issues), and anything but a whole pack of this format holding exactly the task's
files is a miss, never a crash. The file map reads and hashes each input once. Expectations are written by hand."""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import incremental, load
from pipeline.incremental import (
    cache_get, cache_key, cache_prune, entry_ref, load_and_stage, pack_file, pack_name, pack_put, pack_results,
    pack_units, stage_files, unit_of,
)
from pipeline.issues import error, info, warning
from pipeline.load import RawSheet, SourceFile
from pipeline.spec import BUDGET_EXECUTION
from pipeline.staging import StagedFile, empty_table, stage_file, table_frame

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "input_templates" / "example"
DEFECTS = REPO / "tests" / "fixtures" / "defects"
KEY = "0" * 64
NAME = "1" * 64  # a pack


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_dtype=True, check_index_type=True, check_column_type=True,
                                  check_exact=True)
    assert list(a.dtypes) == list(b.dtypes) and a.columns.dtype == b.columns.dtype
    assert type(a.index) is type(b.index) and a.index.equals(b.index)
    for x, y in zip(a.to_numpy(dtype=object).ravel().tolist(), b.to_numpy(dtype=object).ravel().tolist()):
        assert type(x) is type(y) and (x == y or x is y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)))


def assert_same_result(a, b) -> None:
    (sa, ia), (sb, ib) = a, b
    assert ia == ib and [type(i) for i in ia] == [type(i) for i in ib]
    if sa is None:
        assert sb is None
        return
    assert type(sb) is StagedFile
    for name in ("rel", "sha256", "template_type", "template_version", "kv_cells", "colmaps", "sheet_names", "meta"):
        assert getattr(sa, name) == getattr(sb, name), name
    assert str(sa.kv) == str(sb.kv)  # NaN compares unequal to itself; its spelling does not
    assert list(sa.tables) == list(sb.tables)
    for name in sa.tables:
        assert_same_frame(sa.tables[name], sb.tables[name])


def round_trip(tmp_path: Path, result):
    assert pack_put(tmp_path, NAME, [(KEY, result)])
    return cache_get(tmp_path, entry_ref(NAME, 0))


def _mixed_table() -> pd.DataFrame:
    """A staged-table-like frame (RangeIndex, text labels): float64 with NaN and ±0, int64, bool and object columns
    holding str, None, NaN, float, int, bool, dates and a tuple."""
    objects = ["项目支出", None, math.nan, 12.5, 7, True, dt.date(2024, 1, 15), dt.datetime(2024, 1, 15, 8, 30),
               ("a", 1)]
    n = len(objects)
    frame = pd.DataFrame({
        "文本": pd.Series(objects, dtype=object),
        "金额": pd.Series([1.5, math.nan, -0.0, 0.0, 1e300, -2.25, math.inf, 3.0, 4.0], dtype=np.float64),
        "_row": pd.Series(range(3, 3 + n), dtype=np.int64),
        "是否": pd.Series([True, False] * 4 + [True], dtype=bool),
        "备注": pd.Series(["x"] * n, dtype=object),
    })
    frame.columns = pd.Index(list(frame.columns), dtype="str")
    return frame


def test_a_staged_file_of_every_template_comes_back_equal(tmp_path):
    for path in sorted(EXAMPLE.rglob("*.xlsx")) + sorted(DEFECTS.rglob("*.xls*")):
        result = load_and_stage((str(path), str(path.parent)))
        assert_same_result(round_trip(tmp_path, result), result)


def test_mixed_object_columns_nan_and_empty_tables_come_back_equal(tmp_path):
    staged = StagedFile(rel="a/b.xlsx", sha256="ab" * 32, template_type="预算执行表", template_version="2023.1",
                        kv={"单位信息": {"单位名称": "某局", "财年": 2023.0, "编制人数": math.nan, "填报日期": dt.date(2024, 1, 2)}},
                        kv_cells={"单位信息": {"单位名称": "B2"}}, colmaps={"预算执行": {"年初预算数": "E"}},
                        sheet_names={"预算执行": "预算执行（2023）"}, meta={"模板类型": "预算执行表", "财年": 2023})
    staged.tables = {
        "混合": _mixed_table(),
        "预算执行": empty_table(BUDGET_EXECUTION.sheet("预算执行")),
        "空行": _mixed_table().iloc[0:0].reset_index(drop=True),
    }
    issues = [error("bad-number", "「预算执行」E7：不是数字。", file="a/b.xlsx", sheet="预算执行", cell="E7", value="12左右"),
              warning("meta-missing", "缺少 _meta", file="a/b.xlsx"), info("x", "提示", unit="430399001", year=2023)]
    back = round_trip(tmp_path, (staged, issues))
    assert_same_result(back, (staged, issues))
    table = back[0].tables["混合"]
    assert table["文本"].iloc[1] is None and math.isnan(table["文本"].iloc[2])
    assert math.copysign(1.0, table["金额"].iloc[2]) == -1.0  # -0.0 stays negative zero
    assert back[0].tables["空行"].shape == (0, 5) and back[0].tables["预算执行"].empty


def test_rebuilt_tables_are_ordinary_writable_frames(tmp_path):
    staged = StagedFile(rel="b.xlsx", sha256="0", template_type=None, template_version=None)
    staged.tables = {"混合": _mixed_table()}
    table = round_trip(tmp_path, (staged, []))[0].tables["混合"]
    table.loc[0, "金额"] = 9.0  # a numeric block read from the entry's bytes can be written
    table.columns.name = "renamed"
    assert table.loc[0, "金额"] == 9.0
    again = cache_get(tmp_path, entry_ref(NAME, 0))[0].tables["混合"]  # another get: its own frame and labels
    assert again.columns.name is None and again.loc[0, "金额"] == 1.5


def test_frames_of_another_shape_travel_as_frames(tmp_path):
    """Anything but a plain staged table (another index, categorical or datetime columns, attrs) is stored as the
    frame itself and still comes back equal."""
    frames = {
        "index": pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 7]),
        "named": pd.DataFrame({"a": [1.0, 2.0]}).rename_axis("行"),
        "category": pd.DataFrame({"a": pd.Categorical(["x", "y"])}),
        "datetime": pd.DataFrame({"a": pd.to_datetime(["2024-01-01", "2024-02-01"])}),
        "numbers as labels": pd.DataFrame({0: [1.0], 1: ["x"]}),
    }
    frames["attrs"] = pd.DataFrame({"a": [1.0]})
    frames["attrs"].attrs["source"] = "x"
    staged = StagedFile(rel="b.xlsx", sha256="0", template_type=None, template_version=None, tables=frames)
    back = round_trip(tmp_path, (staged, []))[0]
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(back.tables[name], frame)
        assert back.tables[name].attrs == frame.attrs
    assert all(incremental._pack_frame(f)[0] == "frame" for f in frames.values())
    assert incremental._pack_frame(_mixed_table())[0] == "blocks"


def test_an_unreadable_file_result_comes_back(tmp_path):
    result = load_and_stage((str(DEFECTS / "d20_不是工作簿.xlsx"), str(DEFECTS)))
    assert result[0] is None and result[1]
    assert_same_result(round_trip(tmp_path, result), result)


def _entry(tmp_path: Path, path: Path) -> tuple[Path, bytes]:
    result = load_and_stage((str(path), str(path.parent)))
    assert unit_of(result) is not None
    assert pack_put(tmp_path, NAME, [(KEY, result)])
    entry = pack_file(tmp_path, NAME)
    return entry, entry.read_bytes()


def test_a_pack_of_several_files_gives_each_back_by_its_place(tmp_path):
    names = ["预算执行表_2023.xlsx", "绩效目标表_2023.xlsx", "工作统计/工作统计表_2023_登记注册股.xlsx"]
    results = [load_and_stage((str(EXAMPLE / n), str(EXAMPLE))) for n in names]
    keys = ["a" * 64, "b" * 64, "c" * 64]
    assert pack_put(tmp_path, NAME, list(zip(keys, results)))
    for place in (2, 0, 1):  # each entry found past the ones before it, in any order
        assert_same_result(cache_get(tmp_path, entry_ref(NAME, place)), results[place])
    assert cache_get(tmp_path, entry_ref(NAME, 3)) is None and cache_get(tmp_path, f"{NAME}/x") is None
    assert pack_units(tmp_path, NAME, keys) == [("430399001", 2023)] * 3
    for got, expected in zip(pack_results(tmp_path, NAME, keys), results):
        assert_same_result(got, expected)
    # a pack is found only for exactly its files, in their order
    for other in (keys[:2], keys[::-1], [*keys, "d" * 64], []):
        assert pack_units(tmp_path, NAME, other) is None and pack_results(tmp_path, NAME, other) is None


def test_the_pack_name_is_its_keys_in_order():
    assert pack_name(["a", "b"]) == pack_name(["a", "b"]) and len(pack_name(["a"])) == 64
    assert len({pack_name(["a", "b"]), pack_name(["b", "a"]), pack_name(["a"]), pack_name(["ab"])}) == 4


def test_the_head_alone_gives_the_unit_keys(tmp_path):
    entry, data = _entry(tmp_path, EXAMPLE / "预算执行表_2023.xlsx")
    assert pack_units(tmp_path, NAME, [KEY]) == [("430399001", 2023)]
    fh = io.BytesIO(data)
    pickle.load(fh)
    entry.write_bytes(data[:fh.tell()])  # only the head survives
    assert pack_units(tmp_path, NAME, [KEY]) == [("430399001", 2023)]
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is None and pack_results(tmp_path, NAME, [KEY]) is None


@pytest.mark.parametrize("cut", [0, 1, 10, 0.5, -1])
def test_a_truncated_pack_is_a_miss(tmp_path, cut):
    entry, data = _entry(tmp_path, EXAMPLE / "预算执行表_2023.xlsx")
    entry.write_bytes(data[:int(len(data) * cut) if isinstance(cut, float) else cut])
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is None and pack_results(tmp_path, NAME, [KEY]) is None
    if cut in (0, 1, 10):  # not even the head
        assert pack_units(tmp_path, NAME, [KEY]) is None


def test_a_changed_byte_is_a_miss(tmp_path):
    entry, data = _entry(tmp_path, EXAMPLE / "预算执行表_2023.xlsx")
    for at in range(len(data) - 1, len(data) // 2, -max(1, len(data) // 40)):  # in the result's pickle
        changed = bytearray(data)
        changed[at] ^= 0x01
        entry.write_bytes(bytes(changed))
        assert cache_get(tmp_path, entry_ref(NAME, 0)) is None and pack_results(tmp_path, NAME, [KEY]) is None
    entry.write_bytes(data)
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is not None


@pytest.mark.parametrize("content", [
    b"",
    b"not a pickle at all",
    pickle.dumps(("staged-file/2", ("430399001", 2023), 0, 0)) + pickle.dumps((None, [])),  # one file's old entry
    pickle.dumps(("staged-pack/0", [(KEY, ("430399001", 2023), 0, 0)])),
    pickle.dumps(("staged-pack/1", "not a list")),
    pickle.dumps(("staged-pack/1", [(KEY, ["430399001", 2023], 0, 0)])),  # a unit key that is not a tuple
    pickle.dumps({"some": "thing"}),
    pickle.dumps(("staged-pack/1", [(KEY, (), 5, 0)])) + b"12345",  # its CRC-32 is not 0
])
def test_a_foreign_pack_is_a_miss(tmp_path, content):
    path = pack_file(tmp_path, NAME)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is None and pack_results(tmp_path, NAME, [KEY]) is None
    assert pack_units(tmp_path, NAME, [KEY]) in (None, [()])  # a well-formed head of no unit reads as such


def test_a_missing_pack_and_no_reference_are_misses(tmp_path):
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is None and cache_get(tmp_path, None) is None
    assert pack_units(tmp_path / "nowhere", NAME, [KEY]) is None
    assert pack_results(tmp_path / "nowhere", NAME, [KEY]) is None


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    result = load_and_stage((str(EXAMPLE / "绩效目标表_2023.xlsx"), str(EXAMPLE)))
    for _ in range(3):
        assert pack_put(tmp_path, NAME, [(KEY, result)])
    folder = tmp_path / "staged"
    assert [p.name for p in folder.iterdir()] == [f"{NAME}.pack"]
    (folder / f"{KEY}.pickle").write_bytes(b"an entry of the previous version")
    cache_prune(tmp_path, {NAME})
    assert [p.name for p in folder.iterdir()] == [f"{NAME}.pack"]
    assert cache_get(tmp_path, entry_ref(NAME, 0)) is not None
    cache_prune(tmp_path, set())
    assert list(folder.iterdir()) == []


def test_prune_spares_a_running_writers_temporary_pack(tmp_path):
    """Another run on the same output folder may be writing a pack (".<name>.<token>.pack", renamed into place in
    milliseconds): pruning leaves it, but removes one a killed run left behind (older than an hour), and leaves
    what is not the cache's."""
    folder = tmp_path / "staged"
    folder.mkdir()
    fresh, left, other = folder / f".{NAME}.00100001.pack", folder / f".{NAME}.00100002.pack", folder / "读我.txt"
    for p in (fresh, left, other):
        p.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(left, (two_hours_ago, two_hours_ago))
    cache_prune(tmp_path, set())
    assert sorted(p.name for p in folder.iterdir()) == sorted([fresh.name, other.name])
    cache_prune(tmp_path / "nowhere", set())  # no cache yet: nothing to do


def test_an_unwritable_cache_folder_says_so(tmp_path):
    result = load_and_stage((str(EXAMPLE / "绩效目标表_2023.xlsx"), str(EXAMPLE)))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert pack_put(blocker, NAME, [(KEY, result)]) is False  # its "staged" folder cannot be made
    assert [p.name for p in tmp_path.rglob("*")] == ["file"]  # no temporary file left


def test_the_key_covers_bytes_name_and_code(tmp_path, monkeypatch):
    a = tmp_path / "a.xlsx"
    a.write_bytes((EXAMPLE / "绩效目标表_2023.xlsx").read_bytes())
    key = cache_key(a, tmp_path)
    assert key == cache_key(a, tmp_path) and len(key) == 64
    b = tmp_path / "b.xlsx"
    b.write_bytes(a.read_bytes())
    assert cache_key(b, tmp_path) != key
    monkeypatch.setattr(incremental, "_CODE_DIGEST", "another program")
    assert cache_key(a, tmp_path) != key
    assert cache_key(tmp_path / "gone.xlsx", tmp_path) is None


def test_the_code_digest_covers_the_modules_and_the_shipped_report_skeleton(tmp_path, monkeypatch):
    """The program's digest (in every cache key and unit hash) changes with a module that decides outputs and with
    the report's Word skeleton shipped beside them, not with the command line's module."""
    package = Path(incremental.__file__).resolve().parent
    copy = tmp_path / "pipeline"
    copy.mkdir()
    for p in [*package.glob("*.py"), package / "report_skeleton.docx"]:
        (copy / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(incremental, "__file__", str(copy / "incremental.py"))

    def digest() -> str:
        monkeypatch.setattr(incremental, "_CODE_DIGEST", None)
        return incremental.code_digest()

    base = digest()
    assert base == digest() and len(base) == 64
    for name, changed in (("cli.py", False), ("report_skeleton.docx", True), ("scoring.py", True)):
        before = (copy / name).read_bytes()
        (copy / name).write_bytes(before + b"\n")
        assert (digest() != base) is changed, name
        (copy / name).write_bytes(before)
    assert digest() == base


def test_the_file_map_reads_each_file_once(tmp_path, monkeypatch):
    """On a miss the bytes read for the key are the bytes parsed: read_input once, load_file never reads again."""
    reads = []
    real = load.read_input

    def counted(path):
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(incremental, "read_input", counted)
    monkeypatch.setattr(load, "read_input", counted)
    path = EXAMPLE / "预算执行表_2023.xlsx"
    job = (str(path), str(EXAMPLE), str(tmp_path), False, True)
    key, unit, result = stage_files([job])[0]
    assert reads == [path.name] and key == entry_ref(pack_name([cache_key(path, EXAMPLE)]), 0)
    assert unit == ("430399001", 2023)
    assert_same_result(result, load_and_stage((str(path), str(EXAMPLE))))
    reads.clear()
    # A rerun: the head only (nothing travels back), then the whole entry when the result is wanted.
    assert stage_files([(str(path), str(EXAMPLE), str(tmp_path), False, False)])[0] == (key, unit, None)
    assert_same_result(stage_files([job])[0][2], result)
    assert reads == [path.name, path.name]


def test_the_file_map_without_a_cache_or_for_an_unreadable_file(tmp_path):
    path = EXAMPLE / "预算执行表_2023.xlsx"
    key, unit, result = stage_files([(str(path), str(EXAMPLE), None, False, False)])[0]
    assert key is None and unit == ("430399001", 2023) and result[0] is not None
    key, unit, result = stage_files([(str(tmp_path / "gone.xlsx"), str(tmp_path), str(tmp_path), False, False)])[0]
    assert key is None and unit is None and [i.code for i in result[1]] == ["file-unreadable"]


def test_load_file_given_the_bytes_is_load_file(tmp_path):
    for path in sorted(EXAMPLE.rglob("*.xlsx")) + sorted(DEFECTS.rglob("*.xls*")):
        data, problem = load.read_input(path)
        if problem is not None:
            continue
        a, ia = load.load_file(path, path.parent)
        b, ib = load.load_file(path, path.parent, data=data)
        assert ia == ib and (a is None) == (b is None)
        if a is not None:
            assert (a.rel, a.sha256, a.template, a.meta, a.uncached_formulas, a.percent_cells) == \
                   (b.rel, b.sha256, b.template, b.meta, b.uncached_formulas, b.percent_cells)
            assert list(a.sheets) == list(b.sheets)
            for name in a.sheets:
                assert a.sheets[name].name == b.sheets[name].name and a.sheets[name].grid.equals(b.sheets[name].grid)


def test_staging_a_rebuilt_source_gives_the_same_tables(tmp_path):
    """The cached tables are the ones staging builds (same blocks), so a table staged now equals one from the
    cache even in its block layout."""
    path = EXAMPLE / "预算执行表_2023.xlsx"
    result = load_and_stage((str(path), str(EXAMPLE)))
    back = round_trip(tmp_path, result)
    for name, table in result[0].tables.items():
        a, b = table._mgr, back[0].tables[name]._mgr
        assert [(blk.dtype, blk.mgr_locs.as_array.tolist()) for blk in a.blocks] == \
               [(blk.dtype, blk.mgr_locs.as_array.tolist()) for blk in b.blocks]


def test_hand_made_source_round_trip(tmp_path):
    grid = pd.DataFrame([["支出类别", "项目名称", "年初预算数"], ["项目支出", None, "12左右"]], dtype=object)
    grid.index = pd.RangeIndex(1, 3)
    src = SourceFile(path=None, rel="b.xlsx", sha256="0", template=BUDGET_EXECUTION, meta={},
                     sheets={"预算执行": RawSheet("预算执行", grid)})
    result = stage_file(src)
    assert {i.code for i in result[1]} >= {"bad-number", "project-name-missing"}
    assert_same_result(round_trip(tmp_path, result), result)


def _workbooks() -> list[Path]:
    return sorted(EXAMPLE.rglob("*.xlsx")) + sorted(DEFECTS.rglob("*.xls*"))


def test_a_file_staged_packed_is_the_file_staged_into_frames():
    """The file map stages straight into the packed blocks the cache stores (stage_file(packed=True)); they are what
    packing the frames gives, and build the same frames. Over every shipped and defect workbook, which between them
    have empty, missing and header-less tables."""
    seen = 0
    for path in _workbooks():
        framed, issues = load_and_stage((str(path), str(path.parent)))
        if framed is None:
            continue
        src, _ = load.load_file(path, path.parent)
        packed, packed_issues = stage_file(src, packed=True)
        assert packed_issues == issues[len(issues) - len(packed_issues):]
        assert list(packed.tables) == list(framed.tables)
        for name, frame in framed.tables.items():
            blocks = packed.tables[name]
            assert type(blocks) is tuple and blocks[0] == "blocks"
            assert blocks == incremental._pack_frame(frame) or _nan_equal(blocks, incremental._pack_frame(frame))
            assert_same_frame(table_frame(blocks), frame)
            seen += 1
    assert seen >= 15


def test_packed_tables_stack_as_their_frames_concatenate():
    """A batch stacks its files' tables packed (staging.concat_tables), never building a frame per file: equal to
    pd.concat of their frames, dtypes and NaN / None / mixed objects included, for every sheet of the shipped and
    defect workbooks stacked three times over; a mix of packed, built and ("frame", df) tables goes through
    pd.concat. table_rows and table_column read a packed table as its frame."""
    from pipeline.staging import concat_tables, table_column, table_rows

    by_sheet: dict[str, list] = {}
    for path in _workbooks():
        src, _ = load.load_file(path, path.parent)
        if src is None or src.template is None:
            continue
        packed, _ = stage_file(src, packed=True)
        for name, blocks in packed.tables.items():
            frame = table_frame(blocks)
            assert table_rows(blocks) == len(frame)
            for column in frame.columns:
                assert _nan_equal(table_column(blocks, column), frame[column].tolist()), (path.name, name, column)
            if len(frame):
                by_sheet.setdefault(name, []).append(blocks)
    assert len(by_sheet) >= 6
    for name, tables in by_sheet.items():
        tables = tables * 3
        expected = pd.concat([table_frame(t) for t in tables], ignore_index=True)
        assert_same_frame(concat_tables(tables), expected)
        mixed = [tables[0], table_frame(tables[1]), ("frame", table_frame(tables[2])), *tables[3:]]
        assert_same_frame(concat_tables(mixed), expected)
    mixed_objects = incremental._pack_frame(_mixed_table())
    assert table_rows(mixed_objects) == 9 and table_column(mixed_objects, "_row") == list(range(3, 12))
    assert_same_frame(concat_tables([mixed_objects, mixed_objects]),
                      pd.concat([_mixed_table(), _mixed_table()], ignore_index=True))


def _nan_equal(a, b) -> bool:
    """Packed blocks equal but for NaN in object lists (NaN is not equal to itself)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)) and type(a) is type(b):
        return len(a) == len(b) and all(x is y or x == y or _nan_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_the_file_map_stores_packed_tables_and_gives_frames_back(tmp_path):
    """A miss not wanted back is staged packed and stored; a rerun wanting it back gets frames equal to staging's.
    When the cache cannot be written the result travels, with its tables as frames."""
    path = EXAMPLE / "预算执行表_2023.xlsx"
    expected = load_and_stage((str(path), str(EXAMPLE)))
    ref, unit, result = stage_files([(str(path), str(EXAMPLE), str(tmp_path), False, False)])[0]
    assert ref is not None and result is None and unit == ("430399001", 2023)
    assert_same_result(cache_get(tmp_path, ref), expected)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ref, unit, result = stage_files([(str(path), str(EXAMPLE), str(blocker), False, False)])[0]
    assert ref is None and unit == ("430399001", 2023)
    assert all(isinstance(t, pd.DataFrame) for t in result[0].tables.values())
    assert_same_result(result, expected)


def _copy_example(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in names:
        p = folder / Path(n).name
        p.write_bytes((EXAMPLE / n).read_bytes())
        paths.append(p)
    return paths


def test_a_task_shares_one_pack_and_a_rerun_stages_nothing(tmp_path, monkeypatch):
    """The files of a task go into one pack named by their keys; a rerun of the same task reads its head only (or
    its results, when wanted) and stages nothing; a changed file makes a new pack of the whole task."""
    root, cache = tmp_path / "in", tmp_path / "out"
    paths = _copy_example(root, ["预算执行表_2023.xlsx", "绩效目标表_2023.xlsx",
                                 "工作统计/工作统计表_2023_登记注册股.xlsx"])
    jobs = [(str(p), str(root), str(cache), False, False) for p in paths]
    name = pack_name([cache_key(p, root) for p in paths])
    expected = [load_and_stage((str(p), str(root))) for p in paths]
    first = stage_files(jobs)
    assert first == [(entry_ref(name, i), ("430399001", 2023), None) for i in range(3)]
    assert [p.name for p in (cache / "staged").iterdir()] == [f"{name}.pack"]

    def no_staging(*args, **kwargs):
        raise AssertionError("staged again")

    monkeypatch.setattr(incremental, "load_file", no_staging)
    assert stage_files(jobs) == first
    wanted = stage_files([(*job[:4], True) for job in jobs])
    for place, ((ref, unit, result), staged) in enumerate(zip(wanted, expected)):
        assert (ref, unit) == (entry_ref(name, place), ("430399001", 2023))
        assert_same_result(result, staged)
    with pytest.raises(AssertionError):  # forced: staged again
        stage_files([(*job[:3], True, False) for job in jobs])
    monkeypatch.undo()

    paths[1].write_bytes((EXAMPLE / "工作统计" / "工作统计表_2023_食品安全监管股.xlsx").read_bytes())
    again = stage_files(jobs)
    changed = pack_name([cache_key(p, root) for p in paths])
    assert changed != name and [ref for ref, _, _ in again] == [entry_ref(changed, i) for i in range(3)]
    assert sorted(p.name for p in (cache / "staged").iterdir()) == sorted([f"{name}.pack", f"{changed}.pack"])
    cache_prune(cache, {changed})
    assert [p.name for p in (cache / "staged").iterdir()] == [f"{changed}.pack"]


def test_the_file_maps_tasks_are_cut_by_name(tmp_path, monkeypatch):
    """Tasks hold consecutive files, at most 4 × their mean size, cut where a file's name says: a file added in the
    middle changes its own task (or splits it in two at most, or shifts a cut forced by the size limit up to the
    next cut by name), never the tasks after it; every file comes back with its place."""
    from pipeline import parallel
    from pipeline import run as run_module

    tasks = []

    def record(jobs):
        tasks.append(tuple(job[0] for job in jobs))
        return [(None, None, (None, [])) for _ in jobs]

    monkeypatch.setattr(run_module, "stage_files", record)
    root = tmp_path / "in"

    def cut(paths):
        tasks.clear()
        places = {path: place for place, path, _ in run_module.map_files(
            iter(paths), len(paths), root, parallel.Executor(), tmp_path / "cache", want=False)}
        assert places == {path: place for place, path in enumerate(paths)}
        assert [p for task in tasks for p in task] == paths
        return list(tasks)

    paths = [str(root / f"单位{i:03d}" / "预算执行表_2023.xlsx") for i in range(600)]
    before = cut(paths)  # 600 files, one worker: a task ends at one name in 32 on average, at 128 files at most
    assert 10 <= len(before) <= 40 and max(map(len, before)) <= 128 and len(set(map(len, before))) > 3
    added = str(root / "单位300a" / "预算执行表_2023.xlsx")
    after = cut(sorted([*paths, added]))
    gone = [t for t in before if t not in after]
    assert 1 <= len(gone) <= 2 and any(added in t for t in after if t not in before)
    last_gone = max(before.index(t) for t in gone)
    assert before[last_gone + 1:] == after[len(after) - (len(before) - last_gone - 1):]  # every task after it kept
