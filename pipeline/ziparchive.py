"""A deterministic ZIP archive written in one go, its entries deflated with ISA-L (python-isal) when it is installed.

Why not zipfile: zipfile deflates with the stdlib zlib at level 6 (≈ 5 ms for one unit workbook's parts) and takes
no other compressor; ISA-L's level 1 does the same parts in ≈ 0.7 ms, the output ≈ 12% larger. Without python-isal
the entries are deflated with the stdlib zlib as zipfile would.

`zip_archive(entries, date_time)` returns the archive's bytes. Entries are written in the given order; each is
either `(name, data)`, deflated here, or a `Deflated` (see `deflated`) compressed beforehand, so that parts that
are the same in every file are compressed once per process. Every entry has the same fixed time and no extra
fields; a name that is not ASCII is flagged UTF-8 (bit 11), as zipfile does. There is no ZIP64: an archive that
would need it (an entry, offset or directory of 2**32 - 1 bytes or more, 65,535 entries or more) raises
`ZipLimitError`, and the caller falls back to zipfile.

Deterministic: the same entries give the same bytes with the same compressor (python-isal is pinned). Like zlib
builds, another ISA-L version or CPU family (its code differs below SSE4.2 and on ARM) may compress differently:
the contents read back the same, the compressed bytes (and tests/golden's zip containers) may not.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import NamedTuple

try:
    from isal import isal_zlib as _deflate_lib
    LEVEL = 1  # ≈ 7x faster than zlib's default, ≈ 12% larger; ISA-L's levels 2 and 3 gain < 2% for more time
except ImportError:  # pragma: no cover - python-isal is in requirements.txt
    _deflate_lib = zlib
    LEVEL = zlib.Z_DEFAULT_COMPRESSION  # what zipfile uses

# PKWARE APPNOTE.TXT 4.3.7 (local file header), 4.3.12 (central directory header), 4.3.16 (end of central directory)
_LOCAL = struct.Struct("<4sHHHHHLLLHH")
_CENTRAL = struct.Struct("<4sHHHHHHLLLHHHHHLL")
_END = struct.Struct("<4sHHHHLLH")
_VERSION = 20        # 2.0: deflate; "made by" MS-DOS (high byte 0), so no platform-dependent attributes
_DEFLATED = 8
_UTF8_NAME = 0x800   # general purpose flag bit 11: the name is UTF-8
LIMIT = 0xFFFFFFFF   # sizes and offsets must stay below this (0xFFFFFFFF itself means "see ZIP64")
ENTRY_LIMIT = 0xFFFF


class ZipLimitError(ValueError):
    """The archive would need ZIP64 (too large or too many entries): write it with zipfile instead."""


class Deflated(NamedTuple):
    """An entry compressed beforehand: raw deflate data (no zlib header) of `size` bytes whose CRC-32 is `crc`."""
    name: str
    crc: int
    size: int
    data: bytes


def deflated(name: str, data: bytes, level: int | None = None) -> Deflated:
    """`data` compressed for the entry `name`. With `level`, the stdlib zlib at that level (for parts compressed
    once, where the smaller output is worth zlib's time); else ISA-L at `LEVEL`."""
    if level is None:
        packed = _deflate_lib.compress(data, LEVEL, -15)
    else:
        packed = zlib.compress(data, level, -15)
    return Deflated(name, _deflate_lib.crc32(data), len(data), packed)


def _dos_time(date_time: tuple) -> tuple[int, int]:
    year, month, day, hour, minute, second = date_time
    return (year - 1980) << 9 | month << 5 | day, hour << 11 | minute << 5 | second // 2


def zip_archive(entries: Iterable[tuple[str, bytes] | Deflated], date_time: tuple = (1980, 1, 1, 0, 0, 0)) -> bytes:
    """The ZIP archive of `entries` (in order), every entry deflated and dated `date_time`."""
    date, time = _dos_time(date_time)
    chunks: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    for entry in entries:
        if not isinstance(entry, Deflated):
            entry = deflated(*entry)
        name, crc, size, packed = entry
        try:
            filename, flags = name.encode("ascii"), 0
        except UnicodeEncodeError:
            filename, flags = name.encode("utf-8"), _UTF8_NAME
        if size >= LIMIT or len(packed) >= LIMIT or offset >= LIMIT:
            raise ZipLimitError(f"{name}: too large for a zip archive without ZIP64")
        chunks += (_LOCAL.pack(b"PK\x03\x04", _VERSION, flags, _DEFLATED, time, date, crc, len(packed), size,
                               len(filename), 0), filename, packed)
        central += (_CENTRAL.pack(b"PK\x01\x02", _VERSION, _VERSION, flags, _DEFLATED, time, date, crc, len(packed),
                                  size, len(filename), 0, 0, 0, 0, 0, offset), filename)
        offset += _LOCAL.size + len(filename) + len(packed)
    count = len(central) // 2
    directory = b"".join(central)
    if count >= ENTRY_LIMIT or len(directory) >= LIMIT or offset >= LIMIT:
        raise ZipLimitError(f"{count} entries, {offset + len(directory)} bytes: too large without ZIP64")
    chunks += (directory, _END.pack(b"PK\x05\x06", 0, 0, count, count, len(directory), offset, 0))
    return b"".join(chunks)


# --- reading ---------------------------------------------------------------------------------------------------
#
# What load.py needs of an input workbook's package: its directory (names and sizes, for the zip-bomb checks) and a
# few small parts (workbook.xml, its relationships, styles.xml, the sheets it reads). zipfile does this in Python
# per member (an object, a seek and a header parse per read: ≈ 0.4 ms of the ≈ 2 ms a filled template costs to
# load); here the directory is one loop over struct-unpacked records and a member one slice and one inflate. Only
# the plain case is read: one disk, no ZIP64, no encryption, stored or deflated, the directory right before its end
# record. Anything else raises `UnsupportedZip`, and the caller reads the package with zipfile as before.


class UnsupportedZip(ValueError):
    """Not the plain case this reader handles (or not a well-formed one): read it with zipfile."""


class Member(NamedTuple):
    name: str
    method: int
    flags: int
    crc: int
    compress_size: int
    file_size: int
    offset: int          # of the member's local header


_END_SEARCH = _END.size + 0xFFFF  # the end record is followed by a comment of at most 65,535 bytes
# The fields of a directory record the reader uses (the rest skipped): signature, version needed, flags, method,
# CRC-32, compressed and uncompressed size, the lengths of name, extra field and comment, the local header's offset.
_CENTRAL_READ = struct.Struct("<4s2xHHH4xLLLHHH8xL")  # 46 bytes, as _CENTRAL
_MAX_VERSION = 63  # zipfile's MAX_EXTRACT_VERSION: a member needing a later version is left to zipfile (it refuses)


class ZipReader:
    """A ZIP archive in memory, read in its plain case (see above). `infolist()` gives the members in directory
    order (with `file_size` and `compress_size` as zipfile's), `namelist()` their names, `read(name)` a member's
    bytes, checked against its size and CRC-32 and never inflated beyond its declared size. Raises UnsupportedZip
    (on construction or on read) for anything else."""

    def __init__(self, data: bytes):
        at = data.rfind(b"PK\x05\x06", max(0, len(data) - _END_SEARCH))
        if at < 0 or at + _END.size > len(data):
            raise UnsupportedZip("no end record")
        _sig, disk, start_disk, here, count, size, offset, comment = _END.unpack_from(data, at)
        if (disk, start_disk) != (0, 0) or here != count or offset + size != at or at + _END.size + comment != \
                len(data) or count == ENTRY_LIMIT or LIMIT in (size, offset):
            raise UnsupportedZip("several disks, ZIP64, data around the archive or a stray end record")
        self._data = data
        self._members: dict[str, Member] = {}
        pos = offset
        for _ in range(count):
            if pos + _CENTRAL.size > at:
                raise UnsupportedZip("directory past its end")
            sig, needed, flags, method, crc, csize, usize, n, m, k, local = _CENTRAL_READ.unpack_from(data, pos)
            raw = data[pos + _CENTRAL.size:pos + _CENTRAL.size + n]
            pos += _CENTRAL.size + n + m + k
            if sig != b"PK\x01\x02" or pos > at or LIMIT in (csize, usize, local) or flags & 1 \
                    or method not in (0, _DEFLATED) or needed & 0xFF > _MAX_VERSION:
                raise UnsupportedZip("a bad directory record, ZIP64, encrypted, compressed otherwise or too new")
            try:
                name = raw.decode("utf-8" if flags & _UTF8_NAME else "ascii" if raw.isascii() else "cp437")
            except UnicodeDecodeError:
                raise UnsupportedZip("a name flagged UTF-8 that is not") from None
            if name in self._members:
                raise UnsupportedZip("a name twice")
            self._members[name] = Member(name, method, flags, crc, csize, usize, local)
        if pos != at:
            raise UnsupportedZip("directory size")

    def infolist(self) -> list[Member]:
        return list(self._members.values())

    def namelist(self) -> list[str]:
        return list(self._members)

    def read(self, name: str) -> bytes:
        member, packed = self._packed(name)
        if member.method == _DEFLATED:
            inflater = _deflate_lib.decompressobj(-15)
            out = inflater.decompress(packed, member.file_size + 1)
        else:
            out = packed
        if len(out) != member.file_size or _deflate_lib.crc32(out) != member.crc:
            raise UnsupportedZip(f"{name}: size or CRC-32 differs from the directory")
        return out

    def deflated(self, name: str) -> Deflated:
        """A deflated member as it is stored, not inflated: an entry zip_archive copies into another archive (its
        size and CRC-32 as the directory gives them). Raises UnsupportedZip for a member stored uncompressed."""
        member, packed = self._packed(name)
        if member.method != _DEFLATED:
            raise UnsupportedZip(f"{name}: not deflated")
        return Deflated(name, member.crc, member.file_size, packed)

    def _packed(self, name: str) -> tuple[Member, bytes]:
        """A member's directory record and its data as stored."""
        member = self._members[name]  # KeyError for a missing name, as zipfile
        data, at = self._data, member.offset
        if data[at:at + 4] != b"PK\x03\x04" or at + _LOCAL.size > len(data):
            raise UnsupportedZip(f"{name}: bad local header")
        n, m = _LOCAL.unpack_from(data, at)[-2:]
        start = at + _LOCAL.size + n + m
        packed = data[start:start + member.compress_size]
        if len(packed) != member.compress_size:
            raise UnsupportedZip(f"{name}: truncated")
        return member, packed
