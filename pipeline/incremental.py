"""What makes a rerun cheap (issue #5): the staged-file cache, and whether recorded outputs are intact.

- Staged-file cache `output/.cache/staged/<key>.pickle`: a file's (StagedFile, issues), keyed by the SHA-256 of its
  bytes, its name relative to the input folder and the pipeline's code (`code_digest`). An entry is two pickles,
  the head (entry format, unit key) first, so that a rerun's file map reads only that; then the result with each
  staged table as plain column data (`_pack_frame`: a DataFrame's own pickle costs several times more, on both
  sides). The cache is this program's own folder inside the output folder (its pickles are trusted as the
  program's own writing); an unreadable, truncated or foreign entry is staged again.
- A file is read once per file map step: its bytes are hashed for the key and, on a miss, parsed from memory.
- `outputs_intact`: whether the files the manifest (manifest.py) records for a unit still have the bytes written (an
  output changed or deleted by hand is written again).

`stage_cached` / `stage_files` are the unit of work of the file map (they run in the executor's workers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .atomic import write_atomic
from .dataset import UNIT_TYPES, unit_key
from .issues import Issue
from .load import load_file, read_input
from .staging import StagedFile, stage_file, table_frames

CACHE_DIR = ".cache"  # staged files by content hash


def load_and_stage(job: tuple[str, str]):
    """One file: (StagedFile or None, issues)."""
    path, root = Path(job[0]), Path(job[1])
    return _stage_loaded(load_file(path, root))


def _stage_loaded(loaded, packed: bool = False):
    """(StagedFile or None, issues) of load_file's result; packed: its tables left as packed blocks (stage_file)."""
    source, problems = loaded
    if source is None:
        return None, problems
    staged_file, more = stage_file(source, packed=packed)
    return staged_file, problems + more


def stage_cached(job: tuple[str, str, str | None, bool, bool]):
    """The unit of work of the file map (runs in a worker): read and stage one file, or find it in the staged-file
    cache. job = (path, input root, cache folder or None, force, want the result back). Returns (cache key or None,
    unit key of a unit file or None, (StagedFile or None, issues) — or None when it is in the cache and not wanted
    back: the batch that needs it reads it from there, so staged tables never pass through the main process).
    The file's bytes are read and hashed once: for the key, and (on a miss) parsed from memory by load_file."""
    path, root, cache_dir, force, want = job
    path, root = Path(path), Path(root)
    data, problem = read_input(path) if cache_dir else (b"", None)
    if not cache_dir or problem is not None:  # no cache, or a file load_file reports as unreadable: no entry
        result = load_and_stage((path, root))
        return None, unit_of(result), result
    digest = hashlib.sha256(data).digest()
    key = _key_of(path, root, digest)
    result = None
    if not force and not want:  # (a file without a head has no entry: no need to look for the rest)
        head = cache_get(cache_dir, key, head_only=True)
        if head is not None:
            return key, head, None
    elif not force:
        result = cache_get(cache_dir, key)
    if result is None:
        # Staged into the packed form the cache stores; frames are built only for a result that travels back.
        result = _stage_loaded(load_file(path, root, data=data, sha256=digest.hex()), packed=True)
        if not cache_put(cache_dir, key, result):
            key = None  # the cache cannot be written: the result travels instead
        if want or key is None:
            result = _with_frames(result)
    return key, unit_of(result), result if want or key is None else None


def stage_files(jobs: list[tuple]) -> list:
    """stage_cached of several files (one task of the file map)."""
    return [stage_cached(job) for job in jobs]


def unit_of(result) -> tuple | None:
    """The unit key of a staged file that a unit fills in, else None."""
    sf = result[0]
    return unit_key(sf) if sf is not None and sf.template_type in UNIT_TYPES else None


def code_digest() -> str:
    """SHA-256 over the package's source files: any change to the program invalidates caches and manifests (so a
    developer never sees a stale result without bumping __version__)."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        h = hashlib.sha256(__version__.encode())
        for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
            if p.name in _NOT_IN_OUTPUTS:
                continue
            h.update(p.name.encode() + b"\0" + p.read_bytes())
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


_CODE_DIGEST: str | None = None
# Modules that cannot change what is written (command line, executors, benchmark): editing them keeps the cache.
_NOT_IN_OUTPUTS = frozenset({"__main__.py", "cli.py", "parallel.py", "bench.py"})


def cache_key(path: Path, root: Path) -> str | None:
    """The cache key of a file (None when it cannot be read: load_file reports it)."""
    data, problem = read_input(Path(path))
    return None if problem is not None else _key_of(Path(path), Path(root), hashlib.sha256(data).digest())


def _key_of(path: Path, root: Path, digest: bytes) -> str:
    rel = path.relative_to(root).as_posix()
    return hashlib.sha256(f"{code_digest()}\0{rel}\0".encode() + digest).hexdigest()


def cache_file(cache_dir: Path, key: str) -> Path:
    return Path(_entry_path(cache_dir, key))


def _entry_path(cache_dir: Path | str, key: str) -> str:
    """cache_file as text (a Path costs more to build than the entry's head to read)."""
    return os.path.join(cache_dir, "staged", key + ".pickle")


# The head of an entry: (this tag, unit key, length and CRC-32 of the result's pickle). An entry of another format,
# a truncated one and one whose bytes changed are misses (the key, which covers the code, already keeps formats
# apart; the tag also turns away anything else found under the name).
_ENTRY_FORMAT = "staged-file/2"


def cache_get(cache_dir: Path, key: str | None, head_only: bool = False):
    """The cached (StagedFile, issues) of a file, or None; with head_only, just its unit key (or the empty tuple for
    a file of no unit). An entry is two pickles, the head then the result, so that the file map reads only the
    head. The cache is this program's own folder inside the output folder (pickles are trusted as the program's own
    writing); an unreadable entry is simply recomputed."""
    if key is None:
        return None
    try:
        with open(_entry_path(cache_dir, key), "rb") as fh:
            tag, unit, size, crc = pickle.load(fh)
            if tag != _ENTRY_FORMAT or type(unit) is not tuple:
                return None
            if head_only:
                return unit
            body = fh.read()
        if len(body) != size or zlib.crc32(body) != crc:
            return None
        return _unpack_result(pickle.loads(body))
    except Exception:  # noqa: BLE001 -- missing, truncated, foreign or from another Python: recompute
        return None


def cache_put(cache_dir: Path, key: str, result) -> bool:
    """Store a staged file; False when the cache folder cannot be written (read-only output, disk full)."""
    body = pickle.dumps(_pack_result(result), protocol=_PICKLE_PROTOCOL)
    head = (_ENTRY_FORMAT, tuple(unit_of(result) or ()), len(body), zlib.crc32(body))
    try:
        write_atomic(_entry_path(cache_dir, key), pickle.dumps(head, protocol=_PICKLE_PROTOCOL) + body)
    except OSError:
        return False
    return True


_PICKLE_PROTOCOL = 5  # bytearray travels as itself (a writable buffer for the numeric blocks)
# --- the entry's result as plain data ---------------------------------------------------------------------------
#
# (StagedFile or None, issues) → (StagedFile's fields in order with `tables` packed, issues' fields as tuples). A
# staged table is stored as staging.table_blocks gives it (the file map stages straight into that form) or, a frame
# of that shape, packed the same way from its blocks (_pack_frame): its row count, column labels and their dtype,
# and each block's (dtype, number of columns, column positions, values: the raw bytes of a numeric block, the flat
# list of an object block's values); staging.table_frame builds it again. Any other frame is pickled as it is.

_STAGED_FIELDS = tuple(f.name for f in dataclasses.fields(StagedFile))
_ISSUE_FIELDS = tuple(f.name for f in dataclasses.fields(Issue))
_NUMERIC_BLOCK_KINDS = frozenset("fiub")


def _pack_result(result) -> tuple:
    staged, issues = result
    packed_issues = [tuple(getattr(i, name) for name in _ISSUE_FIELDS) for i in issues]
    if staged is None:
        return None, packed_issues
    values = [getattr(staged, name) for name in _STAGED_FIELDS]
    at = _STAGED_FIELDS.index("tables")
    values[at] = {name: t if type(t) is tuple else _pack_frame(t) for name, t in values[at].items()}
    return values, packed_issues


def _unpack_result(packed) -> tuple:
    values, packed_issues = packed
    issues = [Issue(*fields) for fields in packed_issues]
    if values is None:
        return None, issues
    return _with_frames((StagedFile(*values), issues))


def _with_frames(result) -> tuple:
    """A staged result with any table left packed (stage_file(packed=True), a cache entry) built as its DataFrame."""
    staged, _issues = result
    if staged is not None:
        staged.tables = table_frames(staged.tables)
    return result


def _pack_frame(df: pd.DataFrame) -> tuple:
    """A staged table as plain data (see above); ("frame", df) for a frame of another shape."""
    index, columns = df.index, df.columns
    labels = columns.tolist()  # iterating a `str` Index costs several times more
    plain = (type(index) is pd.RangeIndex and index.start == 0 and index.step == 1 and index.name is None
             and columns.name is None and not df.attrs and (columns.dtype == object or columns.dtype == "str")
             and all(type(label) is str for label in labels))
    blocks = []
    if plain:
        try:
            for block in df._mgr.blocks:
                values, dtype = block.values, block.dtype
                if type(values) is not np.ndarray or values.ndim != 2:
                    plain = False
                    break
                if dtype.kind in _NUMERIC_BLOCK_KINDS:
                    data = bytearray(np.ascontiguousarray(values))
                elif dtype == object:
                    data = values.ravel().tolist()
                else:
                    plain = False
                    break
                blocks.append((dtype.str, values.shape[0], block.mgr_locs.as_array.tolist(), data))
        except AttributeError:  # pandas internals moved: the frame's own pickle still works
            plain = False
    if not plain:
        return ("frame", df)
    return ("blocks", len(index), tuple(labels), str(columns.dtype), blocks)


STALE_TEMPORARY = 3600  # seconds after which a temporary cache entry is a killed run's leftover


def cache_prune(cache_dir: Path | str, keep) -> None:
    """Drop the cache entries of files no longer in the input (the cache never outgrows the input; `keep`: the keys
    of the input's files, anything that answers `in`), and temporary entries (".<key>.….pickle") that a killed run
    left behind: those older than STALE_TEMPORARY seconds (a running writer holds one for milliseconds). The folder
    is read an entry at a time: tens of thousands of entries for a province."""
    now = time.time()
    try:
        with os.scandir(os.path.join(cache_dir, "staged")) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(".pickle"):
                    continue
                try:
                    gone = (now - entry.stat().st_mtime > STALE_TEMPORARY) if name.startswith(".") \
                        else name[:-len(".pickle")] not in keep
                    if gone:
                        os.unlink(entry.path)
                except FileNotFoundError:  # removed meanwhile (another run on the same output folder)
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return


def sha256_file(path: Path | str) -> str:
    """The file's SHA-256, read a block at a time (a year's 评分明细.csv of a province is tens of megabytes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def outputs_intact(output_dir: Path, outputs: dict) -> bool:
    """Every recorded output still exists with the bytes written (a file edited or deleted by hand is redone)."""
    if not outputs or any(v is None for v in outputs.values()):
        return False
    for rel, sha in outputs.items():
        p = output_dir / rel
        if not p.is_file() or sha256_file(p) != sha:
            return False
    return True
