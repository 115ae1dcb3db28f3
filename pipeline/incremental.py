"""What makes a rerun cheap (issue #5): the staged-file cache and the manifest of what was written.

- Staged-file cache `output/.cache/staged/<key>.pickle`: a file's (StagedFile, issues), keyed by the SHA-256 of its
  bytes, its name relative to the input folder and the pipeline's code (`code_digest`). An entry is two pickles,
  the unit key first, so that a rerun's file map reads only that head. The cache is this program's own folder
  inside the output folder (its pickles are trusted as the program's own writing); an unreadable entry is staged
  again.
- Manifest `output/.pipeline-state.json`: per unit its hash (inputs, 评分标准, code, options, issues) and the
  SHA-256 of each file written for it; per 财年 the files of the year. An output whose bytes changed on disk is
  written again.

`stage_cached` / `stage_files` are the unit of work of the file map (they run in the executor's workers).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

from . import __version__
from .atomic import write_atomic
from .dataset import UNIT_TYPES, unit_key
from .load import load_file
from .staging import stage_file

STATE_FILE = ".pipeline-state.json"  # the manifest of what was written for which inputs
CACHE_DIR = ".cache"                 # staged files by content hash
STATE_FORMAT = 1


def load_and_stage(job: tuple[str, str]):
    """One file: (StagedFile or None, issues)."""
    path, root = Path(job[0]), Path(job[1])
    source, problems = load_file(path, root)
    if source is None:
        return None, problems
    staged_file, more = stage_file(source)
    return staged_file, problems + more


def stage_cached(job: tuple[str, str, str | None, bool, bool]):
    """The unit of work of the file map (runs in a worker): read and stage one file, or find it in the staged-file
    cache. job = (path, input root, cache folder or None, force, want the result back). Returns (cache key or None,
    unit key of a unit file or None, (StagedFile or None, issues) — or None when it is in the cache and not wanted
    back: the batch that needs it reads it from there, so staged tables never pass through the main process)."""
    path, root, cache_dir, force, want = job
    key = cache_key(Path(path), Path(root)) if cache_dir else None
    if not force and not want and key is not None:
        head = cache_get(cache_dir, key, head_only=True)
        if head is not None:
            return key, head, None
    result = None if force or key is None else cache_get(cache_dir, key)
    if result is None:
        result = load_and_stage((path, root))
        if key is not None and not cache_put(cache_dir, key, result):
            key = None  # the cache cannot be written: the result travels instead
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
    try:
        data = path.read_bytes()
    except OSError:
        return None  # load_file reports it
    rel = path.relative_to(root).as_posix()
    return hashlib.sha256(f"{code_digest()}\0{rel}\0".encode() + hashlib.sha256(data).digest()).hexdigest()


def cache_file(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "staged" / f"{key}.pickle"


def cache_get(cache_dir: Path, key: str | None, head_only: bool = False):
    """The cached (StagedFile, issues) of a file, or None; with head_only, just its unit key (or the empty tuple for
    a file of no unit). An entry is two pickles, the head then the result, so that the file map reads only the
    head. The cache is this program's own folder inside the output folder (pickles are trusted as the program's own
    writing); an unreadable entry is simply recomputed."""
    if key is None:
        return None
    try:
        with open(cache_file(cache_dir, key), "rb") as fh:
            head = pickle.load(fh)
            if head_only:
                return tuple(head)
            return pickle.load(fh)
    except Exception:  # noqa: BLE001 -- missing, truncated or from another Python: recompute
        return None


def cache_put(cache_dir: Path, key: str, result) -> bool:
    """Store a staged file; False when the cache folder cannot be written (read-only output, disk full)."""
    head = pickle.dumps(list(unit_of(result) or ()), protocol=pickle.HIGHEST_PROTOCOL)
    try:
        write_atomic(cache_file(cache_dir, key), head + pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        return False
    return True


def cache_prune(cache_dir: Path, keep: set[str]) -> None:
    """Drop cache entries of files no longer in the input (the cache never outgrows the input)."""
    folder = Path(cache_dir) / "staged"
    if folder.is_dir():
        for p in folder.glob("*.pickle"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def outputs_intact(output_dir: Path, outputs: dict) -> bool:
    """Every recorded output still exists with the bytes written (a file edited or deleted by hand is redone)."""
    if not outputs or any(v is None for v in outputs.values()):
        return False
    for rel, sha in outputs.items():
        p = output_dir / rel
        if not p.is_file() or sha256_file(p) != sha:
            return False
    return True


def read_state(output_dir: Path) -> dict:
    try:
        state = json.loads((Path(output_dir) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else {}


def write_state(output_dir: Path, state: dict) -> None:
    path = Path(output_dir) / STATE_FILE
    write_atomic(path, json.dumps(state, ensure_ascii=False, indent=1))
