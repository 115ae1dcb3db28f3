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
