"""Find the filled workbooks in the drop folder and read them into raw grids.

This is one of the two stages that touch files (the other is render). Inputs are opened read-only and read once:
the bytes are hashed (SHA-256, shown in the report's 说明 sheet) and parsed from memory with python-calamine.
A file that cannot be read never stops the batch: it yields `None` and an 错误 issue saying how to fix it.

Grain: one `SourceFile` per workbook; one `RawSheet` per recognised sheet; one grid row per Excel row.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from xml.parsers import expat

import numpy as np
import pandas as pd
import python_calamine
from pandas.api.internals import create_dataframe_from_blocks

from .issues import Issue, error, info, warning
from .numbers import cell_ref, is_blank
from .spec import (
    ALL_TEMPLATES, HELP_SHEET, META_SHEET, TEMPLATES_BY_TYPE, TemplateSpec, normalize_label, normalize_sheet_name,
)
from .ziparchive import UnsupportedZip, ZipReader

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")
ZIP_SUFFIXES = (".xlsx", ".xlsm")

# Cheap defences before the parser sees the bytes. A filled template is tens of kilobytes; these limits are far
# above any honest workbook and far below what would exhaust memory.
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_ZIP_ENTRIES = 10_000
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200  # per entry, only checked for entries above 1 MiB uncompressed

Package = ZipReader | zipfile.ZipFile  # an opened .xlsx/.xlsm: `infolist`, `namelist`, `read`
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and also encrypted (password-protected) .xlsx
_FIX_RESAVE = "请用 Excel 或 WPS 打开后另存为 .xlsx 格式，再重新放入输入目录"


class RawSheet:
    """One worksheet as read. `name` is the sheet name as it appears in the workbook (what the user sees on the tab,
    e.g. `预算执行（2023）`); `grid` holds raw cell values, object dtype, index = 1-based Excel row,
    columns = 0-based column index, empty cells None. Grain: one row per Excel row from row 1.

    Made from a grid, or (by load_file) from its rows as lists (`values`: list position = Excel position, padded
    to one width), whose grid is built when first asked for and from then on is the sheet's values. `rows()` gives
    the values row by row either way: staging reads them so, and a DataFrame per sheet costs more than its cells."""

    __slots__ = ("_grid", "_values", "name")

    def __init__(self, name: str, grid: pd.DataFrame | None = None, *, values: list[list] | None = None):
        if (grid is None) == (values is None):
            raise TypeError("RawSheet takes either a grid or its values")
        self.name, self._grid, self._values = name, grid, values

    @property
    def grid(self) -> pd.DataFrame:
        if self._grid is None:
            self._grid, self._values = _grid(_cells(self._values)), None
        return self._grid

    def rows(self) -> list[tuple[int, list]]:
        """(Excel row, cell values by 0-based column index) in sheet order; a grid's columns are placed at their
        labels (load's grids have columns 0..width-1)."""
        if self._values is not None:
            return list(enumerate(self._values, start=1))
        return _grid_rows(self._grid)


@dataclass
class SourceFile:
    """One input workbook. `sheets` maps the canonical spec sheet name (e.g. `预算执行`) to its RawSheet; sheets the
    spec does not know (the user's own, `填表说明`, `_meta`) are not kept. `template` is None when unrecognised."""

    path: Path
    rel: str
    sha256: str
    template: TemplateSpec | None
    meta: dict = field(default_factory=dict)
    sheets: dict[str, RawSheet] = field(default_factory=dict)
    # Cell-level facts calamine does not give, read from the sheet XML (.xlsx/.xlsm only; empty for .xls):
    # canonical sheet → cells holding a formula without a saved result (calamine reads them as empty), and
    # canonical sheet → cells whose number format is a percentage (so 0.976 there means 97.6%).
    uncached_formulas: dict[str, frozenset[str]] = field(default_factory=dict)
    percent_cells: dict[str, frozenset[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# discover


def discover(input_dir: Path) -> list[Path]:
    """All workbooks under `input_dir`, recursively, sorted by path so every run sees them in the same order.
    Skips Excel/WPS lock files (`~$…`) and hidden files or folders (`.…`)."""
    return [Path(p) for p in discover_paths(input_dir)]


def discover_paths(input_dir: Path | str) -> list[str]:
    """`discover` as path strings: what a run over many units keeps of each file (a Path object costs several
    times its text, and parsing one interns every file name for the rest of the process)."""
    return [path for _, path in sorted(iter_workbooks(input_dir))]


def iter_workbooks(input_dir: Path | str) -> Iterator[tuple[str, str]]:
    """(name relative to input_dir with "/", path as text) of every workbook under input_dir, in no particular order
    (`discover_paths` sorts them; a streamed run sorts them on disk). Like Path.rglob, symbolic links to folders are
    not followed (a link to a workbook is a workbook) and unreadable folders are skipped; hidden files and folders and
    Excel's lock files (~$) are left out. Each folder is read once with os.scandir, whose entries know their type: no
    file is looked up again (os.walk plus os.path.isfile and os.path.relpath cost a system call and two path
    normalisations per file, the most of listing thousands of inputs)."""
    root = str(Path(input_dir))  # the form rglob's paths had
    if not os.path.isdir(root):
        return
    folders = [(root, "")]  # (folder, its relative name with a trailing "/"), walked without recursion
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as found:
                entries = list(found)
        except OSError:  # unreadable: skipped, as os.walk does
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, f"{prefix}{name}/"))
                elif not name.startswith("~$") and os.path.splitext(name)[1].lower() in WORKBOOK_SUFFIXES \
                        and entry.is_file():  # through a link: a dangling link or a link to a folder is not
                    yield prefix + name, entry.path
            except OSError:
                continue


# --------------------------------------------------------------------------------------------------------------
# load_file


def load_file(path: Path, root: Path, *, data: bytes | None = None,
              sha256: str | None = None) -> tuple[SourceFile | None, list[Issue]]:
    """Read one workbook. Returns (None, [错误]) when the file cannot be read at all; otherwise a SourceFile (its
    `template` None when the type cannot be recognised) and any issues. Never raises for a bad file.

    `data` (with its `sha256` hex digest, when known): the file's bytes as `read_input` gave them without a problem,
    for a caller that has already read and hashed them (the staged-file cache keys a file by its bytes).

    Only the cells staging reads are converted: `_meta`, then the sheets of the recognised template (the first by
    workbook order of each); of any other sheet (填表说明, the user's own, a duplicate) only the name counts."""
    path = Path(path)
    rel = _relative_name(path, root)
    data, problem = read_input(path) if data is None else (data, None)
    package = None  # the opened zip package (.xlsx/.xlsm), shared by the precheck and the XML facts
    if problem is None:
        problem, package = _precheck(path, data)
    if problem is not None:
        return None, [error(problem[0], f"文件无法打开：{rel}。{problem[1]}。", file=rel)]
    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        names = book.sheet_names
        meta_name = next((name for name in names if name.strip().lower() == META_SHEET), None)
        meta_values = _sheet_values(book, meta_name) if meta_name is not None else []
    except Exception as exc:  # noqa: BLE001 -- calamine raises many kinds; any of them means "unreadable file"
        return None, [_unreadable(rel, exc)]
    meta = _read_meta(meta_values)
    template, issues = _identify(rel, meta, names)
    kept, sheet_issues = _map_sheets(rel, template, names) if template is not None else ({}, [])
    values = {}
    for canonical, actual in kept.items():
        try:
            values[canonical] = _sheet_values(book, actual)
        except Exception as exc:  # noqa: BLE001 -- as above; the sheet is named, the user's way to it
            return None, [_unreadable(rel, exc, actual)]
    sheets = {canonical: RawSheet(kept[canonical], values=v) for canonical, v in values.items()}
    src = SourceFile(path=path, rel=rel, sha256=sha256 or hashlib.sha256(data).hexdigest(), template=template,
                     meta=meta, sheets=sheets)
    facts = _sheet_xml_facts(package, set(kept.values())) if package is not None and kept else {}
    return src, issues + sheet_issues + _apply_xml_facts(src, facts, values)


def _unreadable(rel: str, exc: Exception, sheet: str = "") -> Issue:
    if sheet:
        msg = (f"文件无法打开：{rel} 的工作表「{sheet}」无法读取（{type(exc).__name__}），文件可能已损坏，"
               f"{_FIX_RESAVE}。")
    else:
        msg = f"文件无法打开：{rel}（{type(exc).__name__}）。文件可能已损坏或不是 Excel 工作簿，{_FIX_RESAVE}。"
    return error("file-unreadable", msg, file=rel, sheet=sheet)


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def read_input(path: Path) -> tuple[bytes, tuple[str, str] | None]:
    """The file's bytes, read once (opened read-only); or b"" and a (code, reason) problem, which load_file reports
    (a file above MAX_FILE_BYTES is not read)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return b"", ("file-too-large", f"文件大小 {size // (1024 * 1024)} MB，超过上限 "
                                           f"{MAX_FILE_BYTES // (1024 * 1024)} MB。请删除无关的工作表、图片后重新保存")
        with open(path, "rb") as fh:
            return fh.read(), None
    except OSError as exc:
        return b"", ("file-unreadable", f"读取失败（{exc.strerror or exc}）。请确认文件没有被其他程序占用且有读取权限")


def _precheck(path: Path, data: bytes) -> tuple[tuple[str, str] | None, Package | None]:
    """Reject, before parsing, what the parser should never see: empty files, encrypted workbooks and zip archives
    that would expand to an absurd size (zip bombs). Returns (problem, the opened zip package of an .xlsx/.xlsm that
    passed, else None)."""
    if not data:
        return ("file-unreadable", f"文件为空（0 字节），{_FIX_RESAVE}"), None
    if path.suffix.lower() not in ZIP_SUFFIXES:
        return None, None
    if data.startswith(_OLE_MAGIC):
        return ("file-encrypted", ("文件可能设置了打开密码，或实际是旧版 .xls 格式。请在 Excel 中取消密码"
                                   "（文件→信息→保护工作簿→用密码进行加密，清空密码），另存为 .xlsx 后重新放入")), None
    return _zip_precheck(data)


def _zip_precheck(data: bytes) -> tuple[tuple[str, str] | None, Package | None]:
    """The zip-bomb checks on the package's directory; the package is read by ziparchive.ZipReader, or by zipfile
    when it is not the plain case that reader handles."""
    try:
        zf = ZipReader(data)
    except UnsupportedZip:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))  # in memory: nothing to close
        except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
            return ("file-unreadable", f"文件已损坏或不是 Excel 工作簿（可能下载或复制不完整），{_FIX_RESAVE}"), None
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    too_compressed = any(
        i.file_size > 1024 * 1024 and i.file_size > MAX_COMPRESSION_RATIO * max(i.compress_size, 1) for i in infos
    )
    if len(infos) > MAX_ZIP_ENTRIES or total > MAX_UNCOMPRESSED_BYTES or too_compressed:
        return ("file-suspicious", ("文件解压后体积异常（可能已损坏或为恶意文件），已跳过。"
                                    "请用 Excel 打开确认内容后另存为 .xlsx 重新放入")), None
    return None, zf


def _sheet_values(book: python_calamine.CalamineWorkbook, name: str) -> list[list]:
    """A sheet's cells as rows of Python values (`to_python(skip_empty_area=False)`: padded from A1, so list
    positions are Excel positions), '' (calamine's empty cell) as None, short rows padded with None."""
    return _values(book.get_sheet_by_name(name).to_python(skip_empty_area=False))


def _values(rows: list[list]) -> list[list]:
    """calamine's rows with '' as None, each padded with None to the widest (a row of values only is kept as it
    is: calamine gives every row the sheet's width)."""
    width = max(map(len, rows), default=0)
    values = [r if "" not in r else [None if v == "" else v for v in r] for r in rows]
    return [r if len(r) == width else r + [None] * (width - len(r)) for r in values]


def _cells(values: list[list]) -> np.ndarray:
    """Rows of one width as a 2-D object array: one flat sequence placed by np.fromiter (each value one object,
    never nested) costs a fraction of filling the array cell by cell."""
    width = len(values[0]) if values else 0
    return np.fromiter(chain.from_iterable(values), dtype=object, count=len(values) * width).reshape(len(values),
                                                                                                     width)


def _grid(cells: np.ndarray) -> pd.DataFrame:
    """The contract's grid over `cells` (not copied): index = 1-based Excel row, columns = 0-based column index,
    object dtype. Built as the one 2-D object block it is: the DataFrame constructor would spend several times as
    long checking and inferring what is already known."""
    rows, width = cells.shape
    blocks = [(cells.T, np.arange(width))] if width else []  # no cells: no block, as pandas builds it
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(1, rows + 1), columns=pd.RangeIndex(width))


def _grid_rows(grid: pd.DataFrame) -> list[tuple[int, list]]:
    """A grid as (Excel row, cell values by 0-based column index) in grid order. Load's grids have columns
    0..width-1, so a row's list position is its column; any other column labels are placed at their index."""
    values = grid.to_numpy(dtype=object).tolist()
    index = _int_labels(grid.index)
    columns = _int_labels(grid.columns)
    if columns != list(range(len(columns))):
        width = max(columns, default=-1) + 1
        dense = []
        for row in values:
            out = [None] * width
            for c, v in zip(columns, row):
                out[c] = v
            dense.append(out)
        values = dense
    return list(zip(index, values))


def _int_labels(labels: pd.Index) -> list[int]:
    """An axis's labels as ints; a RangeIndex straight from its range."""
    if type(labels) is pd.RangeIndex:
        return list(range(labels.start, labels.stop, labels.step))
    return [int(label) for label in labels.tolist()]


# --------------------------------------------------------------------------------------------------------------
# template recognition


def _read_meta(values: list[list]) -> dict:
    """`_meta` (its rows) as {key: value}: key in column A, value in column B. Integral floats become int (calamine
    reads every number as float, and 财年 2023.0 should read as 2023)."""
    if not values or len(values[0]) < 2:
        return {}
    meta = {}
    for row in values:
        if not is_blank(row[0]):
            meta[_meta_key(row[0])] = _tidy_meta_value(row[1])
    return meta


def _tidy_meta_value(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value.strip()
    return value


def _identify(rel: str, meta: dict, names: list[str]) -> tuple[TemplateSpec | None, list[Issue]]:
    """The template type: from `_meta` 模板类型 when present and known, else from the sheet names (in workbook
    order, with a 警告)."""
    declared = str(meta.get("模板类型") or "").strip()
    by_meta = TEMPLATES_BY_TYPE.get(declared) or TEMPLATES_BY_TYPE.get(normalize_label(declared))
    if by_meta is not None:
        return by_meta, []
    guessed = _guess_by_sheet_names(names)
    if guessed is None:
        return None, [_unrecognised(rel, names)]
    if not meta:
        why = "缺少 _meta 工作表（可能是把工作表复制到了新文件中）"
    else:
        why = f"_meta 中的模板类型「{declared}」无法识别"
    msg = f"{why}，已按工作表名识别为「{guessed.type}」。建议使用本系统生成的模板填写，以免识别错误。"
    return guessed, [warning("meta-missing", msg, file=rel)]


def _guess_by_sheet_names(names: list[str]) -> TemplateSpec | None:
    """The template whose identifying sheets are best present (by share found); None when none or a tie, since a
    workbook holding the sheets of two templates cannot be attributed safely."""
    present = {_sheet_key(n) for n in names}
    scored = []
    for t in ALL_TEMPLATES:
        wanted = [_sheet_key(s) for s in t.identifying_sheets]
        hits = sum(w in present for w in wanted)
        if hits:
            scored.append((hits / len(wanted), t))
    scored.sort(key=lambda st: -st[0])
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


def _unrecognised(rel: str, names: list[str]) -> Issue:
    listed = "、".join(names) or "（无）"
    expected = "；".join(f"{t.type}：{'、'.join(t.identifying_sheets)}" for t in ALL_TEMPLATES)
    msg = (f"无法识别文件 {rel} 的模板类型（工作表：{listed}），该文件未参与评价。"
           f"请使用本系统生成的模板填写；各模板应包含的工作表为 {expected}。")
    return error("template-unrecognised", msg, file=rel)


def _map_sheets(rel: str, template: TemplateSpec, names: list[str]) -> tuple[dict[str, str], list[Issue]]:
    """Canonical sheet name → the workbook's sheet name. Sheet names match after normalising (`预算执行（2023）`,
    `预算执行 `); when two sheets match one spec sheet, the first by workbook order is used and a 警告 names both."""
    canonical = {_sheet_key(s.name): s.name for s in template.sheets}
    kept: dict[str, str] = {}
    issues: list[Issue] = []
    for actual in names:
        name = canonical.get(_sheet_key(actual))
        if name is None or actual in (META_SHEET, HELP_SHEET):
            continue
        if name in kept:
            msg = (f"工作表「{kept[name]}」和「{actual}」都对应「{name}」，已使用「{kept[name]}」。"
                   f"请删除或重命名多余的工作表。")
            issues.append(warning("duplicate-sheet", msg, file=rel, sheet=actual))
            continue
        kept[name] = actual
    return kept, issues


def remembered_for_short_text(normalize, max_len: int):
    """`normalize` (pure, of a text) remembered per spelling of text up to `max_len` characters: the same few sheet
    names and `_meta` keys are normalised for every file, and NFKC plus regexes cost more than the rest of reading
    them. Bounded in entries; longer text and non-text are normalised without the memo."""
    remembered = functools.lru_cache(maxsize=1024)(normalize)
    return lambda text: remembered(text) if isinstance(text, str) and len(text) <= max_len else normalize(text)


_sheet_key = remembered_for_short_text(normalize_sheet_name, 31)  # Excel's longest sheet name
_meta_key = remembered_for_short_text(normalize_label, 64)


# --------------------------------------------------------------------------------------------------------------
# cell-level facts from the sheet XML
#
# calamine gives values only. Four things a user can leave behind need the XML: a formula without a saved result
# (written by a program, never opened in Excel: calamine reads it as empty, which would silently become 0 or a
# "required" error), merged cells (calamine puts the value in the first cell only), hidden rows (read like any
# other row, as Excel's SUM counts them, but said so) and percent-formatted cells. A regex over the part is enough
# and cheap: the precheck has already bounded the part sizes, and only attributes are read.


@dataclass
class _SheetFacts:
    uncached: list[str] = field(default_factory=list)
    percent: set[str] = field(default_factory=set)
    merged: list[str] = field(default_factory=list)
    hidden_rows: list[int] = field(default_factory=list)


_CELL_RE = re.compile(rb"<(?:\w+:)?c\s([^>]*?[^/>])>(.*?)</(?:\w+:)?c>", re.S)
_ATTR_RE = re.compile(rb'\b(r|s)="([^"]*)"')
_FORMULA_RE = re.compile(rb"<(?:\w+:)?f[\s>/]")
_VALUE_RE = re.compile(rb"<(?:\w+:)?v>([^<]+)</(?:\w+:)?v>")
_MERGE_RE = re.compile(rb'<(?:\w+:)?mergeCell\s[^>]*?ref="([A-Z]+\d+:[A-Z]+\d+)"')
_HIDDEN_ROW_RE = re.compile(rb'<(?:\w+:)?row\s[^>]*?\br="(\d+)"[^>]*?\bhidden="(?:1|true)"')
_PERCENT_BUILTIN = {9, 10}
_REL_ID = "http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"  # as _xml_elements spells it


def _sheet_xml_facts(zf: Package, wanted: set[str] | None = None) -> dict[str, _SheetFacts]:
    """Sheet name → facts (of the `wanted` sheets, default all) of the opened package. Any surprise in the package
    gives {} (the values calamine read are still used)."""
    try:
        parts = _sheet_parts(zf)
        percent_styles = _percent_styles(zf)
        names = set(zf.namelist())
        return {name: _scan_sheet(zf.read(part), percent_styles) for name, part in parts.items()
                if part in names and (wanted is None or name in wanted)}
    except Exception:  # noqa: BLE001 -- a malformed part only costs us the extra facts, never the file
        return {}


def _xml_elements(xml: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """(depth, tag, attributes) of every element of an XML part, in document order; the root has depth 0. Names in
    a namespace are spelled `namespace}local` (ElementTree's `{namespace}local` without the brace). Parsed by expat
    directly with defusedxml's defences: any entity declaration, external reference or unknown entity raises. (An
    ElementTree of the part costs several times more, and only a few attributes are read.)"""
    out: list[tuple[int, str, dict[str, str]]] = []
    depth = 0

    def start(tag, attrs):
        nonlocal depth
        out.append((depth, tag, attrs))
        depth += 1

    def end(_tag):
        nonlocal depth
        depth -= 1

    def forbidden(*_args):
        raise ValueError("XML entities are not allowed in a workbook part")

    parser = expat.ParserCreate(None, "}")
    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.EntityDeclHandler = parser.UnparsedEntityDeclHandler = forbidden
    parser.ExternalEntityRefHandler = parser.SkippedEntityHandler = forbidden
    parser.Parse(xml, True)
    return out


# Workbooks made from the same template carry byte-identical workbook.xml, workbook.xml.rels and styles.xml, and
# parsing them is most of what the facts cost; so their parsed form is remembered per process, keyed by the parts'
# bytes (never by path: a file rewritten in place is parsed again), as immutable values. Bounded in entries, and
# parts above _MEMO_PART_BYTES (far above a template's few kilobytes) are parsed without being kept.
_MEMO_PARTS = 64
_MEMO_PART_BYTES = 256 * 1024


def _memo_by_content(parse):
    """`parse` (a pure function of a package's part bytes) remembered by those bytes, for small parts only."""
    remembered = functools.lru_cache(maxsize=_MEMO_PARTS)(parse)

    @functools.wraps(parse)
    def parse_or_recall(*parts: bytes):
        return (remembered if sum(map(len, parts)) <= _MEMO_PART_BYTES else parse)(*parts)

    parse_or_recall.cache_info = remembered.cache_info  # `__wrapped__` (functools.wraps) parses afresh
    return parse_or_recall


def _sheet_parts(zf: Package) -> MappingProxyType:
    """Sheet name → its part path, through workbook.xml and its relationships."""
    return _sheet_parts_of(zf.read("xl/workbook.xml"), zf.read("xl/_rels/workbook.xml.rels"))


@_memo_by_content
def _sheet_parts_of(book_xml: bytes, rels_xml: bytes) -> MappingProxyType:
    """_sheet_parts of the two parts' bytes, read-only (the value may be shared by every file with these parts)."""
    book = _xml_elements(book_xml)
    rels = _xml_elements(rels_xml)
    targets = {attrs.get("Id"): attrs.get("Target", "") for depth, _tag, attrs in rels if depth == 1}
    out = {}
    for _depth, tag, sheet in book:
        if tag.endswith("}sheet") and sheet.get(_REL_ID) in targets:
            target = targets[sheet.get(_REL_ID)]
            out[sheet.get("name")] = target.lstrip("/") if target.startswith("/") else \
                posixpath.normpath(posixpath.join("xl", target))
    return MappingProxyType(out)


def _percent_styles(zf: Package) -> frozenset[int]:
    """Indexes into cellXfs whose number format shows a percentage."""
    if "xl/styles.xml" not in zf.namelist():
        return frozenset()
    return _percent_styles_of(zf.read("xl/styles.xml"))


@_memo_by_content
def _percent_styles_of(styles_xml: bytes) -> frozenset[int]:
    """_percent_styles of the part's bytes."""
    styles = _xml_elements(styles_xml)
    custom = {int(n.get("numFmtId")) for _depth, tag, n in styles if tag.endswith("}numFmt")
              and "%" in (n.get("formatCode") or "")}
    at = next((i for i, (_depth, tag, _n) in enumerate(styles) if tag.endswith("}cellXfs")), None)
    if at is None:
        return frozenset()
    level, xfs = styles[at][0], []  # the children of cellXfs: one level deeper, up to the end of cellXfs
    for depth, _tag, xf in styles[at + 1:]:
        if depth <= level:
            break
        if depth == level + 1:
            xfs.append(xf)
    return frozenset(i for i, xf in enumerate(xfs) if int(xf.get("numFmtId") or 0) in (_PERCENT_BUILTIN | custom))


def _scan_sheet(xml: bytes, percent_styles: frozenset[int]) -> _SheetFacts:
    facts = _SheetFacts()
    # Walking every cell is what costs, and most sheets need none of it: no formula anywhere in the part, and no
    # percent style used by anything in it. Both tests may say yes wrongly (then the walk finds nothing), never no.
    formulas = _may_hold_formula(xml)
    percent = bool(percent_styles) and _may_use_style(xml, percent_styles)
    if formulas or percent:
        for m in _CELL_RE.finditer(xml):
            uncached = formulas and _FORMULA_RE.search(m[2]) and not _VALUE_RE.search(m[2])
            if not uncached and not percent:
                continue
            attrs = dict(_ATTR_RE.findall(m[1]))
            ref = attrs.get(b"r", b"").decode()
            if not ref:
                continue
            if uncached:
                facts.uncached.append(ref)
            if percent and attrs.get(b"s", b"").isdigit() and int(attrs[b"s"]) in percent_styles:
                facts.percent.add(ref)
    # Substring tests first: a regex over the whole part costs far more than finding that its tag is absent.
    first_merge = xml.find(b"mergeCell")
    if first_merge >= 0:  # a match starts at the last `<` before its tag name, so not before this one's
        facts.merged = [r.decode() for r in _MERGE_RE.findall(xml, max(xml.rfind(b"<", 0, first_merge), 0))]
    if b"hidden" in xml:
        facts.hidden_rows = [int(r) for r in _HIDDEN_ROW_RE.findall(xml)]
    return facts


_FORMULA_END = frozenset(b" \t\n\r\f\v>/")
_ZERO_PADDED_STYLE_RE = re.compile(rb's="0+\d')


def _may_hold_formula(xml: bytes) -> bool:
    """False only when _FORMULA_RE cannot match: each of its matches is `<f` or `:f` (after a prefix) followed by
    a space, `>` or `/`. Found by substring search: `<formula1>` of data validations is the usual near miss."""
    for tag in (b"<f", b":f"):
        at = xml.find(tag)
        while at >= 0:
            if at + 2 >= len(xml) or xml[at + 2] in _FORMULA_END:
                return True
            at = xml.find(tag, at + 2)
    return False


def _may_use_style(xml: bytes, styles: frozenset[int]) -> bool:
    """False only when no `s="…"` of the part names one of `styles` (as a cell's style attribute read by _scan_sheet,
    digits possibly zero-padded)."""
    return any(b's="%d"' % s in xml for s in styles) or _ZERO_PADDED_STYLE_RE.search(xml) is not None


def _apply_xml_facts(src: SourceFile, facts: dict[str, _SheetFacts], values: dict[str, list[list]]) -> list[Issue]:
    """Record formula and percent cells on the SourceFile (staging reports a formula only where its cell is read),
    fill merged text down in the kept sheets' `values` (canonical name → rows, their RawSheets' own), and report
    merged figures and hidden rows with data."""
    issues: list[Issue] = []
    for canonical, raw in src.sheets.items():
        f = facts.get(raw.name)
        if f is None:
            continue
        src.uncached_formulas[canonical] = frozenset(f.uncached)
        src.percent_cells[canonical] = frozenset(f.percent)
        issues += _fill_merged(src.rel, raw.name, values[canonical], f.merged)
        issues += _hidden_rows(src.rel, raw.name, values[canonical], f.hidden_rows)
    return issues


_REF_RE = re.compile(r"([A-Z]+)(\d+)")


def _ref_to_pos(ref: str) -> tuple[int, int]:
    letters, row = _REF_RE.fullmatch(ref).groups()
    col = 0
    for ch in letters:
        col = col * 26 + ord(ch) - 64
    return int(row), col - 1


def _fill_merged(rel: str, sheet: str, values: list[list], ranges: list[str]) -> list[Issue]:
    """A text merged over several rows (支出类别 「项目支出」 over three project lines) belongs to each row: copy it
    down. A number merged over several rows cannot be split: it stays in the first row, with a 警告. `values`: the
    sheet's rows (Excel row r at position r - 1, column c at c), filled in place."""
    issues = []
    height, width = len(values), len(values[0]) if values else 0
    for rng in ranges:
        (r1, c1), (r2, c2) = (_ref_to_pos(x) for x in rng.split(":"))
        if r2 <= r1 or not 1 <= r1 <= height or not 0 <= c1 < width:
            continue  # merged within one row (titles), or outside the cells read: nothing to fill
        value = values[r1 - 1][c1]
        top = cell_ref(r1, c1)
        if isinstance(value, str):
            for row in values[r1 - 1:min(r2, height)]:
                for c in range(c1, min(c2, width - 1) + 1):
                    if row[c] is None:
                        row[c] = value
            msg = (f"「{sheet}」{rng} 是合并单元格，已把「{value.strip()}」用于其中每一行。"
                   f"建议取消合并，每一行分别填写。")
            issues.append(info("merged-cells-filled", msg, file=rel, sheet=sheet, cell=top, value=value))
        elif value is not None:
            msg = (f"「{sheet}」{rng} 是合并单元格，其中的数字 {value} 只计入第 {r1} 行。"
                   f"请取消合并，在每一行分别填写该行的数字。")
            issues.append(warning("merged-number", msg, file=rel, sheet=sheet, cell=top, value=str(value)))
    return issues


def _hidden_rows(rel: str, sheet: str, values: list[list], rows: list[int]) -> list[Issue]:
    issues = []
    for r in rows:
        if 1 <= r <= len(values) and any(not is_blank(v) for v in values[r - 1]):
            msg = (f"「{sheet}」第 {r} 行是隐藏行，其中的数据已照常读取（与 Excel 求和一致）。"
                   f"如该行不应计入，请删除该行；否则请取消隐藏以便核对。")
            issues.append(info("hidden-row", msg, file=rel, sheet=sheet, cell=f"A{r}"))
    return issues
