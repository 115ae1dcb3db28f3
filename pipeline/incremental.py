"""What makes a rerun cheap (issue #5): the staged-file cache, and whether recorded outputs are intact.

- Staged-file cache `output/.cache/staged/<pack>.pack`: the (StagedFile, issues) of the files of one task of the
  file map, packed into one file (a file per input file cost one new file per input file: creating a file, not
  writing it, is what costs on most file systems, ≈ 0.03 ms on a quiet Linux disk but 0.3–1.6 ms after many deletes
  or under a virus scanner). Each file's key is the SHA-256 of its bytes, its name relative to the input folder and
  the pipeline's code (`code_digest`); a pack is named by the SHA-256 of its files' keys (`pack_name`), so a rerun
  that finds the same files in a task finds its pack, and a task with a file changed, added or removed stages its
  files again into a new pack. The file map's tasks are cut where a file's name says so (`task_cuts`), not by
  position, so that a file added or removed changes only its own task. A pack is two parts: the head (format tag,
  and each entry's key, unit key, length and CRC-32), so that a rerun's file map reads only that, then the entries'
  results, each with its staged tables as plain column data (`_pack_frame`: a DataFrame's own pickle costs several
  times more, on both sides). An entry is found by its reference `<pack>/<place>` (`entry_ref`). The cache is this
  program's own folder inside the output folder (its pickles are trusted as the program's own writing); an
  unreadable, truncated or foreign pack or entry is staged again.
- A file is read once per file map step: its bytes are hashed for the key and, on a miss, parsed from memory.
- `outputs_intact`: whether the files the manifest (manifest.py) records for a unit still have the bytes written (an
  output changed or deleted by hand is written again).

`stage_files` (a task of several files) is the unit of work of the file map (it runs in the executor's workers).
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


def stage_files(jobs: list[tuple]) -> list:
    """The unit of work of the file map (runs in a worker): read and stage the files of one task, or find them in
    the task's pack of the staged-file cache. Each job = (path, input root, cache folder or None, force, want the
    results back), the same but the path over a task. Returns per file (entry reference or None, unit key of a unit
    file or None, (StagedFile or None, issues) — or None when it is in the cache and not wanted back: the batch that
    needs it reads it from there, so staged tables never pass through the main process).
    Each file's bytes are read and hashed once: for its key and (on a miss) parsed from memory by load_file. A file
    load_file reports as unreadable, and every file when there is no cache, is staged and travels back."""
    if not jobs:
        return []
    _, root, cache_dir, force, want = jobs[0]
    root = Path(root)
    out: list = [None] * len(jobs)
    keyed = []  # (place in jobs, path, bytes, SHA-256, cache key) of the files the pack holds
    for i, job in enumerate(jobs):
        path = Path(job[0])
        data, problem = read_input(path) if cache_dir else (b"", None)
        if not cache_dir or problem is not None:
            result = load_and_stage((path, root))
            out[i] = (None, unit_of(result), result)
            continue
        digest = hashlib.sha256(data).digest()
        keyed.append((i, path, data, digest, _key_of(path, root, digest)))
    if not keyed:
        return out
    keys = [key for *_, key in keyed]
    name = pack_name(keys)
    found = None if force else (pack_results(cache_dir, name, keys) if want else pack_units(cache_dir, name, keys))
    if found is not None:  # results when wanted, else unit keys
        for j, ((i, *_), got) in enumerate(zip(keyed, found)):
            out[i] = (entry_ref(name, j), unit_of(got), got) if want else (entry_ref(name, j), got, None)
        return out
    # Staged into the packed form the cache stores; frames are built only for results that travel back.
    results = [_stage_loaded(load_file(path, root, data=data, sha256=digest.hex()), packed=True)
               for _, path, data, digest, _ in keyed]
    stored = pack_put(cache_dir, name, list(zip(keys, results)))
    travels = want or not stored  # the cache cannot be written: the results travel instead
    for j, ((i, *_), result) in enumerate(zip(keyed, results)):
        out[i] = (entry_ref(name, j) if stored else None, unit_of(result), _with_frames(result) if travels else None)
    return out


def unit_of(result) -> tuple | None:
    """The unit key of a staged file that a unit fills in, else None."""
    sf = result[0]
    return unit_key(sf) if sf is not None and sf.template_type in UNIT_TYPES else None


def code_digest() -> str:
    """SHA-256 over the package's source files and the data files shipped in it (the report's Word skeleton): any
    change to the program invalidates caches and manifests (so a developer never sees a stale result without bumping
    __version__)."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        h = hashlib.sha256(__version__.encode())
        here = Path(__file__).resolve().parent
        for p in sorted([*here.glob("*.py"), *(here / name for name in _PACKAGE_DATA)]):
            if p.name in _NOT_IN_OUTPUTS:
                continue
            # a data file gone (a broken installation) is left for its user to report: report._skeleton does
            h.update(p.name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"\0missing"))
        _CODE_DIGEST = h.hexdigest()
    return _CODE_DIGEST


_CODE_DIGEST: str | None = None
# Modules that cannot change what is written (command line, executors, benchmark): editing them keeps the cache.
_NOT_IN_OUTPUTS = frozenset({"__main__.py", "cli.py", "parallel.py", "bench.py"})
_PACKAGE_DATA = ("report_skeleton.docx",)  # files beside the modules that decide what is written


def cache_key(path: Path, root: Path) -> str | None:
    """The cache key of a file (None when it cannot be read: load_file reports it)."""
    data, problem = read_input(Path(path))
    return None if problem is not None else _key_of(Path(path), Path(root), hashlib.sha256(data).digest())


def _key_of(path: Path, root: Path, digest: bytes) -> str:
    rel = path.relative_to(root).as_posix()
    return hashlib.sha256(f"{code_digest()}\0{rel}\0".encode() + digest).hexdigest()


def pack_name(keys: list[str]) -> str:
    """The name of the pack of the files with these cache keys (in the task's order)."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def entry_ref(name: str, place: int) -> str:
    """The reference of a file's entry: its pack and its place there."""
    return f"{name}/{place}"


def ref_pack(ref: str) -> str:
    """The pack of an entry reference."""
    return ref.partition("/")[0]


def pack_file(cache_dir: Path | str, name: str) -> Path:
    return Path(_pack_path(cache_dir, name))


def _pack_path(cache_dir: Path | str, name: str) -> str:
    """pack_file as text (a Path costs more to build than a head to read)."""
    return os.path.join(cache_dir, "staged", name + ".pack")


def task_cuts(rel: str, every: int) -> bool:
    """Whether the file map's task ends after the file of this relative name: one file in `every` (a power of two,
    the tasks' mean size), chosen by the name alone, so that a rerun cuts the same tasks and a file added or removed
    changes only its own (see the module doc)."""
    return zlib.crc32(rel.encode("utf-8", "surrogatepass")) & (every - 1) == 0


# The head of a pack: (this tag, [(cache key, unit key, length, CRC-32 of the result's pickle) per entry]). A pack of
# another format, a truncated one and one whose bytes changed are misses (the key, which covers the code, already
# keeps formats apart; the tag also turns away anything else found under the name).
_PACK_FORMAT = "staged-pack/1"


def _read_head(fh, keys: list[str] | None) -> list | None:
    """The entries of the head at the start of `fh` (None if it is not one, or not of exactly `keys` when given)."""
    tag, entries = pickle.load(fh)
    if tag != _PACK_FORMAT or type(entries) is not list:
        return None
    if keys is not None and [entry[0] for entry in entries] != keys:
        return None
    if not all(type(unit) is tuple for _, unit, _, _ in entries):
        return None
    return entries


def pack_units(cache_dir: Path | str, name: str, keys: list[str]) -> list[tuple] | None:
    """The unit key of each file of a pack (the empty tuple for a file of no unit), reading only its head; None when
    the pack is missing or unreadable, or does not hold exactly the files with `keys`."""
    try:
        with open(_pack_path(cache_dir, name), "rb") as fh:
            entries = _read_head(fh, keys)
    except Exception:  # noqa: BLE001 -- missing, truncated, foreign or from another Python: recompute
        return None
    return None if entries is None else [unit for _, unit, _, _ in entries]


def pack_results(cache_dir: Path | str, name: str, keys: list[str]) -> list[tuple] | None:
    """The cached (StagedFile, issues) of each file of a pack, or None (as pack_units)."""
    try:
        with open(_pack_path(cache_dir, name), "rb") as fh:
            entries = _read_head(fh, keys)
            if entries is None:
                return None
            results = [_read_entry(fh, size, crc) for _, _, size, crc in entries]
    except Exception:  # noqa: BLE001
        return None
    return None if any(r is None for r in results) else results


def cache_get(cache_dir: Path | str, ref: str | None, frames: bool = True):
    """The cached (StagedFile, issues) of the file with this entry reference, or None: its pack is read up to the
    entry. An unreadable entry is simply recomputed. With frames=False its tables stay packed (a batch stacks
    them with those of its other files: dataset.assemble)."""
    if ref is None:
        return None
    name, _, place = ref.partition("/")
    try:
        place = int(place)
        with open(_pack_path(cache_dir, name), "rb") as fh:
            entries = _read_head(fh, None)
            if entries is None or not 0 <= place < len(entries):
                return None
            fh.seek(sum(size for _, _, size, _ in entries[:place]), os.SEEK_CUR)
            return _read_entry(fh, *entries[place][2:], frames=frames)
    except Exception:  # noqa: BLE001 -- missing, truncated, foreign or from another Python: recompute
        return None


def _read_entry(fh, size: int, crc: int, frames: bool = True):
    """The (StagedFile, issues) of the entry at `fh`'s position, of that length and CRC-32 (its tables built as
    frames, or left packed); None when its bytes are short or differ."""
    body = fh.read(size)
    if len(body) != size or zlib.crc32(body) != crc:
        return None
    return _unpack_result(pickle.loads(body), frames)


def pack_put(cache_dir: Path | str, name: str, entries: list[tuple[str, tuple]]) -> bool:
    """Store the staged files of a task, (cache key, result) each, as one pack; False when the cache folder cannot be
    written (read-only output, disk full)."""
    bodies = [pickle.dumps(_pack_result(result), protocol=_PICKLE_PROTOCOL) for _, result in entries]
    head = (_PACK_FORMAT, [(key, tuple(unit_of(result) or ()), len(body), zlib.crc32(body))
                           for (key, result), body in zip(entries, bodies)])
    try:
        write_atomic(_pack_path(cache_dir, name), b"".join([pickle.dumps(head, protocol=_PICKLE_PROTOCOL), *bodies]))
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


def _unpack_result(packed, frames: bool = True) -> tuple:
    values, packed_issues = packed
    issues = [Issue(*fields) for fields in packed_issues]
    if values is None:
        return None, issues
    result = StagedFile(*values), issues
    return _with_frames(result) if frames else result


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
    """Drop the packs that hold no file of the input (the cache never outgrows the input; `keep`: the names of the
    packs of the input's files, anything that answers `in`), the entries of earlier versions (`<key>.pickle`, one
    file per input file), and the temporary files (".<name>.….pack") that a killed run left behind: those older than
    STALE_TEMPORARY seconds (a running writer holds one for milliseconds). Nothing else is touched. The folder is
    read an entry at a time."""
    now = time.time()
    try:
        with os.scandir(os.path.join(cache_dir, "staged")) as entries:
            for entry in entries:
                name = entry.name
                stem, suffix = os.path.splitext(name)
                if suffix not in (".pack", ".pickle"):
                    continue
                try:
                    gone = (now - entry.stat().st_mtime > STALE_TEMPORARY) if name.startswith(".") \
                        else suffix == ".pickle" or stem not in keep
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
