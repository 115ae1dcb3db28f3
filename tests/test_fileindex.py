"""The streamed run's index of its input files (pipeline/fileindex.py): kept on disk, giving back paths, 单位编码 and
batches' files in the order the in-memory run uses."""

from __future__ import annotations

import os
import sys

import pytest

from pipeline.fileindex import FileIndex
from pipeline.load import discover_paths


def touch(root, *names):
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_paths_come_back_in_discover_paths_order(tmp_path):
    # "a.xlsx" sorts before "a/b.xlsx" ("." < "/") though the walk meets folder a first or last; 单位 names sort by
    # code point; hidden files and folders, lock files and other suffixes are not workbooks
    touch(tmp_path, "a/b.xlsx", "a.xlsx", "a-c.xlsx", "b/乙.xlsx", "b/甲.xls", "B.xlsm", "a/z/y.xlsx",
          ".hidden/x.xlsx", "~$open.xlsx", "notes.txt", "a/.x.xlsx")
    with FileIndex() as index:
        assert index.discover(tmp_path) == 7
        assert list(index.paths()) == discover_paths(tmp_path)
    assert [os.path.relpath(p, tmp_path) for p in discover_paths(tmp_path)] == [
        "B.xlsm", "a-c.xlsx", "a.xlsx", os.path.join("a", "b.xlsx"), os.path.join("a", "z", "y.xlsx"),
        os.path.join("b", "乙.xlsx"), os.path.join("b", "甲.xls")]


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_a_file_name_that_is_not_utf8_comes_back_as_it_was(tmp_path):
    name = os.fsdecode(b"caf\xe9.xlsx")  # Latin-1 bytes: not UTF-8, escaped by Python
    (tmp_path / name).write_bytes(b"x")
    touch(tmp_path, "cafe.xlsx", "cafz.xlsx")
    with FileIndex() as index:
        index.discover(tmp_path)
        paths = list(index.paths())
    assert paths == discover_paths(tmp_path)
    assert os.path.join(str(tmp_path), name) in paths and os.path.exists(paths[-1])


def test_files_by_unit_and_by_pack():
    with FileIndex() as index:
        # (place in input order, path, cache entry reference `<pack>/<place>`, 单位编码) as the file map returns
        # them: out of order
        index.add(3, "in/b2.xlsx", "p1/1", "B")
        index.add(0, "in/a1.xlsx", "p0/0", "A")
        index.add(4, "in/readme.xlsx", "p1/2", None)
        index.add(2, "in/a2.xlsx", None, "A", result=("staged", ["issue"]))  # not cached: the result travels
        index.add(1, "in/b1.xlsx", "p0/1", "B")
        index.add(5, "in/c.xlsx", "p10/0", "C/1")
        assert index.unit_count() == 3
        assert list(index.codes()) == ["A", "B", "C/1"]
        assert index.files_of(["A", "B"]) == [("in/a1.xlsx", "p0/0", None), ("in/a2.xlsx", None, ("staged", ["issue"])),
                                              ("in/b1.xlsx", "p0/1", None), ("in/b2.xlsx", "p1/1", None)]
        assert index.files_of([]) == [] and index.files_of(["Z"]) == []
        assert index.loose() == [("in/readme.xlsx", "p1/2", None)]
        # the packs holding a file of the run: p0, p1 and p10; not p (a prefix of them), p2, an entry reference
        assert "p0" in index and "p1" in index and "p10" in index
        assert "p" not in index and "p2" not in index and "p0/0" not in index and None not in index


def test_a_batch_of_more_codes_than_one_statement_takes():
    with FileIndex() as index:
        for i in range(1_500):
            index.add(i, f"in/{i}.xlsx", f"k{i}", f"{i:05d}")
        codes = list(index.codes())
        assert codes == [f"{i:05d}" for i in range(1_500)]
        assert [p for p, _, _ in index.files_of(codes)] == [f"in/{i}.xlsx" for i in range(1_500)]
