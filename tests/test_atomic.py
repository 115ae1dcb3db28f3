"""Outputs are written atomically: the previous file stays whole until the new one is complete, no temporary file
is left behind, and the file is readable by colleagues (0644)."""

import itertools
import os
import stat
import sys

import pytest

from pipeline import atomic
from pipeline.atomic import atomic_output, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_creates_folders_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    assert write_atomic(target, "第一版") == target
    assert target.read_text(encoding="utf-8") == "第一版"
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]  # no temporary file left


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_outputs_are_readable_by_others(tmp_path):
    old = os.umask(0o077)  # even under a strict umask: mkstemp's 0600 is widened on purpose
    try:
        a = write_atomic(tmp_path / "a.csv", b"x")
        with atomic_output(tmp_path / "b.xlsx") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert _mode(a) == 0o644 and _mode(tmp_path / "b.xlsx") == 0o644


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "x.xlsx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # not bytes: fails before anything is replaced
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.xlsx"]


def test_a_temporary_name_left_behind_is_neither_reused_nor_published(tmp_path, monkeypatch):
    """Temporary names are mkstemp's shape, `.{stem}.{8 hex digits}{suffix}`: the pid's last three and the serial's
    last five. One left by a killed process whose pid comes round again is skipped for a random name, and the
    leftover stays as it was."""
    monkeypatch.setattr(atomic, "_serial", itertools.count(0x12345))
    stale = tmp_path / f".x.{os.getpid() % 4096:03x}12345.json"
    stale.write_bytes(b"left behind")
    write_atomic(tmp_path / "x.json", b"new")
    write_atomic(tmp_path / "x.json", b"newer")  # the next serial: its own name
    assert (tmp_path / "x.json").read_bytes() == b"newer" and stale.read_bytes() == b"left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([stale.name, "x.json"])
