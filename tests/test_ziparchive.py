"""pipeline.ziparchive: the archive reads back with zipfile (names in order, contents, CRCs, times, UTF-8 names),
entries compressed beforehand are taken as they are, the bytes are deterministic, and an archive that would need
ZIP64 is refused."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from pathlib import Path

import pytest

from pipeline import ziparchive
from pipeline.ziparchive import Deflated, UnsupportedZip, ZipLimitError, ZipReader, deflated, zip_archive

ENTRIES = [
    ("[Content_Types].xml", b'<?xml version="1.0"?><Types>' + b"<Default/>" * 200 + b"</Types>"),
    ("xl/worksheets/sheet1.xml", "<c>预算执行率 90.63%</c>".encode() * 500),
    ("empty.txt", b""),
    ("docs/评分明细.xml", "非 ASCII 的名称".encode()),
    ("random.bin", os.urandom(5000)),  # incompressible
]


def read_back(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None  # every entry's CRC-32 checked
        return [(i, z.read(i)) for i in z.infolist()]


def test_entries_read_back_in_order():
    got = read_back(zip_archive(ENTRIES, (2000, 1, 1, 0, 0, 0)))
    assert [(i.filename, content) for i, content in got] == ENTRIES
    for info, content in got:
        assert info.compress_type == zipfile.ZIP_DEFLATED and info.date_time == (2000, 1, 1, 0, 0, 0)
        assert info.CRC == zlib.crc32(content) and info.file_size == len(content)
        assert info.flag_bits & 0x800 == (0 if info.filename.isascii() else 0x800)  # UTF-8 names flagged
        assert info.extra == b"" and info.comment == b""


def test_default_time_is_xlsxwriters():
    [(info, _)] = read_back(zip_archive([("a", b"x")]))
    assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_entries_compressed_beforehand_are_taken_as_they_are():
    fixed = [deflated(name, data) for name, data in ENTRIES[:2]]
    small = deflated("small.xml", ENTRIES[1][1], level=9)  # the stdlib zlib, for parts compressed once
    assert small.data == zlib.compress(ENTRIES[1][1], 9, -15) and len(small.data) < len(fixed[1].data)
    data = zip_archive([fixed[0], ENTRIES[2], small, fixed[1]])
    assert [(i.filename, c) for i, c in read_back(data)] == \
        [ENTRIES[0], ENTRIES[2], ("small.xml", ENTRIES[1][1]), ENTRIES[1]]
    assert small.data in data and fixed[1].data in data
    assert zip_archive([fixed[0]]) == zip_archive([ENTRIES[0]])  # the same entry as deflated here


def test_deterministic():
    assert zip_archive(ENTRIES) == zip_archive(list(ENTRIES))
    assert zip_archive([]) == b"PK\x05\x06" + bytes(18)  # an empty archive: the end record alone
    assert read_back(zip_archive([])) == []


def test_without_isal_the_stdlib_zlib_deflates(monkeypatch):
    monkeypatch.setattr(ziparchive, "_deflate_lib", zlib)
    monkeypatch.setattr(ziparchive, "LEVEL", zlib.Z_DEFAULT_COMPRESSION)
    entry = deflated(*ENTRIES[1])
    assert entry.data == zlib.compress(ENTRIES[1][1], zlib.Z_DEFAULT_COMPRESSION, -15)
    assert [(i.filename, c) for i, c in read_back(zip_archive(ENTRIES))] == ENTRIES


@pytest.mark.parametrize("entries", [
    [("a", b"x" * 100)],                         # an entry's size
    [Deflated("a", 0, 10, b"z" * 100)],          # its compressed size
    [(k, b"x" * 50) for k in "abcd"],            # the offset of the fourth entry (each takes ~35 bytes)
    [(k, b"x" * 50) for k in "abc"],             # the offset of the central directory
], ids=["size", "compressed", "offset", "directory"])
def test_too_large_for_a_zip_without_zip64_is_refused(monkeypatch, entries):
    monkeypatch.setattr(ziparchive, "LIMIT", 100)
    zip_archive(entries[:2] if len(entries) > 1 else [("a", b"x" * 99)])  # below the limit: fine
    with pytest.raises(ZipLimitError):
        zip_archive(entries)


def test_too_many_entries_are_refused(monkeypatch):
    monkeypatch.setattr(ziparchive, "ENTRY_LIMIT", 3)
    zip_archive([(str(k), b"") for k in range(2)])
    with pytest.raises(ZipLimitError):
        zip_archive([(str(k), b"") for k in range(3)])


def test_a_deflated_entry_is_its_name_crc_size_and_data():
    entry = deflated("a.xml", b"abc" * 100)
    assert isinstance(entry, Deflated)
    assert (entry.name, entry.crc, entry.size) == ("a.xml", zlib.crc32(b"abc" * 100), 300)
    assert zlib.decompress(entry.data, -15) == b"abc" * 100


# --- reading: ZipReader ----------------------------------------------------------------------------------------


def _zipfile_bytes(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


class _Unseekable(io.RawIOBase):
    """A stream zipfile cannot seek back in: it writes each entry's sizes and CRC after its data (a data
    descriptor, flag bit 3), as LibreOffice does."""

    def __init__(self):
        self.buf = io.BytesIO()

    def writable(self):
        return True

    def write(self, b):
        return self.buf.write(b)

    def seekable(self):
        return False

    def tell(self):
        raise OSError("unseekable")


def _streamed_bytes(entries) -> bytes:
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    data = stream.buf.getvalue()
    assert {i.flag_bits & 0x8 for i in zipfile.ZipFile(io.BytesIO(data)).infolist()} == {0x8}
    return data


def _same_as_zipfile(data: bytes) -> None:
    theirs, ours = zipfile.ZipFile(io.BytesIO(data)), ZipReader(data)
    assert ours.namelist() == theirs.namelist()
    assert [(i.file_size, i.compress_size) for i in ours.infolist()] == \
        [(i.file_size, i.compress_size) for i in theirs.infolist()]
    for name in theirs.namelist():
        assert ours.read(name) == theirs.read(name)


@pytest.mark.parametrize("make", [
    lambda: zip_archive(ENTRIES),
    lambda: _zipfile_bytes(ENTRIES),
    lambda: _zipfile_bytes(ENTRIES, zipfile.ZIP_STORED),
    lambda: _streamed_bytes(ENTRIES),
], ids=["ours", "zipfile-deflated", "zipfile-stored", "data-descriptors"])
def test_the_reader_reads_what_zipfile_reads(make):
    data = make()
    _same_as_zipfile(data)
    assert ZipReader(data).read("docs/评分明细.xml") == "非 ASCII 的名称".encode()
    with pytest.raises(KeyError):
        ZipReader(data).read("missing.xml")


def test_a_deflated_member_is_copied_as_stored_into_another_archive():
    """ZipReader.deflated gives a member compressed as it is stored (here by the stdlib zlib at level 9, not the
    writer's own level): zip_archive copies it as it is, and the copy reads back as the original; a member stored
    uncompressed is refused."""
    original = zip_archive([deflated(name, data, level=9) for name, data in ENTRIES])
    reader = ZipReader(original)
    copied = [reader.deflated(name) for name, _ in ENTRIES]
    assert [c.data for c in copied] == [zlib.compress(data, 9, -15) for _, data in ENTRIES]
    assert [(c.name, c.crc, c.size) for c in copied] == [(n, zlib.crc32(d), len(d)) for n, d in ENTRIES]
    assert zip_archive(copied) == original
    with pytest.raises(UnsupportedZip):
        ZipReader(_zipfile_bytes(ENTRIES, zipfile.ZIP_STORED)).deflated("empty.txt")


def test_the_reader_reads_every_shipped_and_defect_workbook():
    """The example (written by this program) and the defect fixtures (written by openpyxl); the ones zipfile cannot
    open (not a zip, truncated, encrypted, .xls) are left out."""
    from pipeline.cli import EXAMPLE_INPUT

    defects = Path(__file__).resolve().parent / "fixtures" / "defects"
    books = sorted(EXAMPLE_INPUT.rglob("*.xlsx")) + sorted(defects.rglob("*.xls*"))
    read = 0
    for path in books:
        data = path.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            continue
        _same_as_zipfile(data)
        read += 1
    assert read >= 30


def test_a_name_without_the_utf8_flag_is_cp437():
    data = zip_archive([("abc.xml", b"x")])
    flagged = data.replace(b"abc.xml", "ab\u00e9.xml".encode("cp437"))  # é is 0x82 in cp437, one byte like c
    assert ZipReader(flagged).namelist() == ["abé.xml"]


def _central(data: bytes, name: bytes) -> int:
    """The offset of `name`'s central directory record."""
    at = data.index(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 1)
    return at


def _patched(data: bytes, at: int, fmt: str, value) -> bytes:
    import struct

    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


@pytest.mark.parametrize("change", [
    lambda d: b"#!junk before the archive\n" + d,                         # self-extracting style: offsets shift
    lambda d: d + b"junk after",                                          # bytes after the end record
    lambda d: d[:len(d) // 2],                                            # truncated: no end record
    lambda d: _patched(d, _central(d, b"empty.txt") + 8, "<H", 1),        # encrypted (flag bit 0)
    lambda d: _patched(d, _central(d, b"empty.txt") + 10, "<H", 12),      # bzip2
    lambda d: _patched(d, _central(d, b"empty.txt") + 24, "<L", 0xFFFFFFFF),  # size in a ZIP64 field
    lambda d: _patched(d, _central(d, b"empty.txt") + 6, "<H", 99),       # needs version 9.9 (zipfile refuses it)
    lambda d: d.replace("评分".encode(), b"\xff\xfe\xfd\xfc\xfb\xfa"),  # flagged UTF-8, and not UTF-8
], ids=["prepended", "appended", "truncated", "encrypted", "bzip2", "zip64", "too-new", "not-utf8"])
def test_what_the_reader_does_not_handle_is_refused_at_once(change):
    with pytest.raises(UnsupportedZip):
        ZipReader(change(zip_archive(ENTRIES)))


def test_a_member_is_never_inflated_past_its_declared_size_and_its_crc_is_checked():
    data = zip_archive(ENTRIES)
    at = _central(data, b"xl/worksheets/sheet1.xml")
    size = len("<c>预算执行率 90.63%</c>".encode()) * 500
    smaller = _patched(data, at + 24, "<L", 100)  # declares 100 bytes: inflating stops at 101 and refuses
    with pytest.raises(UnsupportedZip):
        ZipReader(smaller).read("xl/worksheets/sheet1.xml")
    wrong_crc = _patched(data, at + 16, "<L", 12345)
    with pytest.raises(UnsupportedZip):
        ZipReader(wrong_crc).read("xl/worksheets/sheet1.xml")
    assert len(ZipReader(data).read("xl/worksheets/sheet1.xml")) == size
    assert ZipReader(smaller).read("[Content_Types].xml") == ENTRIES[0][1]  # the other members still read
