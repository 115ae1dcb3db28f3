"""Staging: raw grids → typed tables, one function per sheet kind. Pure: no file access.

Staging only finds, renames and casts: it locates headers and keys by label, parses every value by its field kind
(numbers, percentages, dropdown choices, dates), drops blank and subtotal rows, and reports every value it cannot
read as an Issue pointing at the cell. Consistency between values is the checks stage's job.

The value parsers are public and total: `parse_x(raw) -> (value, problem)` never raises; `problem` is None or a
short Chinese phrase saying what is wrong and how to write it instead (the caller adds sheet, cell and field).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import chain
from numbers import Number
from types import MappingProxyType

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from .issues import Issue, error, info, warning
from .load import RawSheet, SourceFile, remembered_for_short_text
from .numbers import cell_ref, col_letter, is_blank
from .spec import (
    AMOUNT, CHOICE, DATE, INTEGER, NUMBER, PERCENT, SUBTOTAL_LABELS, TEMPLATE_VERSION, VALUE, Field, SheetSpec,
    changes_since, normalize_label, version_tuple,
)

NAN = float("nan")
NUMERIC_KINDS = (AMOUNT, NUMBER, INTEGER, PERCENT)
HEADER_SCAN_ROWS = 30
TECH_COLUMNS = ("_file", "_sheet", "_row")


def _memo_per_spec(compute):
    """`compute(spec, *more)` (pure, its value read-only) remembered per spec object and `more`. Specs are the
    module's constants, compared by identity: a frozen dataclass hashes all its fields on every call, which costs
    more than the lookup saves. The spec is kept with its value, so its id cannot be taken by another object.
    Bounded: a full memo starts over."""
    remembered: dict = {}

    @functools.wraps(compute)
    def compute_or_recall(spec, *more):
        key = (id(spec), *more)
        hit = remembered.get(key)
        if hit is not None and hit[0] is spec:
            return hit[1]
        value = compute(spec, *more)
        if len(remembered) >= 256:
            remembered.clear()
        remembered[key] = (spec, value)
        return value

    return compute_or_recall


# ==============================================================================================================
# Value parsers
# ==============================================================================================================

# Typed by users for "nothing here"; read as blank rather than as an unreadable number.
_BLANK_MARKERS = frozenset({"-", "--", "—", "——", "–", "/", "无", "空", "n/a", "na", "null", "none", "#n/a"})
_NUMBER_RE = re.compile(
    r"(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(?P<unit>%|‰|[a-z\u4e00-\u9fff/·]{1,8})?"
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MINUS_SIGNS = str.maketrans({"−": "-", "﹣": "-", "‐": "-", "‑": "-"})
_AMOUNT_UNITS = ("", "万元", "万")
# A trailing word that makes the number approximate (`80左右`, `100余次`) is not a unit: the figure is unknown.
_VAGUE_WORDS = re.compile(r"左右|多|余|以上|以下|以内|不到|不足|上下|约|近|超")


def _clean_text(raw: str) -> str:
    """NFKC (full-width digits, ％, （）, ，→ half-width), one kind of minus, no whitespace, lower case."""
    s = unicodedata.normalize("NFKC", raw).translate(_MINUS_SIGNS)
    return re.sub(r"\s+", "", s).lower()


def _number_and_unit(raw) -> tuple[float, str, str | None]:
    """(value, trailing unit, problem). Blank → (NaN, "", None). The shared core of the number parsers."""
    if raw is None:
        return NAN, "", None
    if isinstance(raw, (bool, np.bool_)):
        return NAN, "", "是逻辑值（TRUE/FALSE），请填写数字"
    if isinstance(raw, Number):
        try:
            return _finite(float(raw))
        except (TypeError, ValueError, OverflowError):  # complex, ints beyond float range
            return NAN, "", f"「{raw}」不是有效数字，请填写数字"
    if not isinstance(raw, str):
        return NAN, "", f"「{raw}」不是数字，请填写数字，如 12.5"
    s = _THOUSANDS.sub("", _clean_text(raw))
    if s == "" or s in _BLANK_MARKERS:
        return NAN, "", None
    negative = len(s) > 2 and s[0] == "(" and s[-1] == ")"  # accounting style (12.5) = -12.5
    m = _NUMBER_RE.fullmatch(s[1:-1] if negative else s)
    if m is None:
        return NAN, "", f"「{raw.strip()}」不是数字，请只填写数字，如 12.5（不要带文字说明）"
    if m["unit"] and _VAGUE_WORDS.search(m["unit"]):
        return NAN, "", f"「{raw.strip()}」不是确切的数字，请填写确切数值，如 80"
    value, _unit, problem = _finite(float(m["num"]))
    return (-value if negative else value), (m["unit"] or ""), problem


def _finite(value: float) -> tuple[float, str, str | None]:
    if math.isnan(value):
        return NAN, "", None
    if math.isinf(value):
        return NAN, "", "不是有限数字，请填写数字"
    return value, "", None


def parse_number(raw) -> tuple[float, str | None]:
    """Any number: int/float pass through; text may carry full-width digits, thousands separators (`1,234.5`), a
    trailing unit (`81次`, `541.71万元`, `97.6%` → 97.6), accounting negatives (`(12.5)` → -12.5). `—`, `/`, `无`,
    `-` and blank → NaN without a problem."""
    value, _unit, problem = _number_and_unit(raw)
    return value, problem


def parse_amount(raw) -> tuple[float, str | None]:
    """An amount in 万元: like parse_number, but a unit other than 万元 (e.g. `12345元`) is a problem rather than a
    silent misreading by a factor of 10 000."""
    value, unit, problem = _number_and_unit(raw)
    if problem is None and unit not in _AMOUNT_UNITS:
        return NAN, f"金额单位应为万元，「{str(raw).strip()}」请换算为万元后只填数字（如 12345 元填 1.23）"
    return value, problem


def parse_int(raw) -> tuple[float, str | None]:
    """A whole number (head counts, 财年); returned as float so a column with blanks stays numeric (NaN blank).
    `28人`, `2023年` are accepted."""
    value, problem = parse_number(raw)
    if problem is None and not math.isnan(value) and abs(value - round(value)) > 1e-9:
        return NAN, f"「{raw}」应为整数"
    return value, problem


def parse_percent(raw) -> tuple[float, str | None]:
    """A ratio as a fraction. Rule: text ending in `%` is divided by 100 (`75%` → 0.75, `0.5%` → 0.005); a plain
    number whose magnitude is at most 1 is taken as already a fraction (a percent-formatted cell showing 75% holds
    0.75), a larger one as percent points (75 → 0.75). So a bare `1` reads as 100%, never as 1%."""
    value, unit, problem = _number_and_unit(raw)
    if problem is not None or math.isnan(value):
        return value, problem
    if unit == "%":
        return value / 100, None
    if unit == "‰":
        return value / 1000, None
    if unit:
        return NAN, f"「{str(raw).strip()}」不是百分比，请填写如 75 或 75%"
    return (value if abs(value) <= 1 else value / 100), None


def parse_text(raw) -> tuple[str | None, None]:
    """Free text, stripped; blank → None. Numbers become their plain text, integral floats without `.0` (calamine
    reads the code 430399001 as 430399001.0); dates become ISO text. Never a problem."""
    if is_blank(raw):
        return None, None
    if isinstance(raw, str):
        return raw.strip(), None
    if isinstance(raw, (bool, np.bool_)):
        return ("是" if raw else "否"), None
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw)), None
    if isinstance(raw, dt.datetime) and raw.time() == dt.time(0):
        return raw.date().isoformat(), None
    if isinstance(raw, (dt.date, dt.datetime)):
        return raw.isoformat(), None
    return str(raw), None


def parse_value(raw) -> tuple[object, str | None]:
    """A target value (指标值, 实际完成值): kept raw (number as float, or stripped text such as `≥80次` or `达成`) for
    the intermediate stage to split. Blank → None."""
    if is_blank(raw):
        return None, None
    if isinstance(raw, (bool, np.bool_)):
        return None, "是逻辑值（TRUE/FALSE），请填写数值或 达成/部分达成/未达成"
    if isinstance(raw, Number):
        value, problem = parse_number(raw)
        return (None if problem else value), problem
    if isinstance(raw, str):
        return raw.strip(), None
    return parse_text(raw)[0], None


_DATE_RE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def parse_date(raw) -> tuple[dt.date | None, str | None]:
    """A date: a date cell, an Excel serial number, or text like 2024-01-15, 2024/1/15, 2024年1月15日."""
    if is_blank(raw):
        return None, None
    if isinstance(raw, dt.datetime):
        return raw.date(), None
    if isinstance(raw, dt.date):
        return raw, None
    serial, problem = parse_number(raw) if isinstance(raw, Number) else (NAN, "")
    if problem is None and 1 <= serial < 2958466:  # an Excel date serial in an unformatted cell
        return _EXCEL_EPOCH + dt.timedelta(days=int(serial)), None
    m = _DATE_RE.fullmatch(_clean_text(raw)) if isinstance(raw, str) else None
    if m:
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3])), None
        except ValueError:
            pass
    return None, f"「{raw}」不是日期，请按 2024-01-15 的格式填写"


# --- choices ------------------------------------------------------------------------------------------------

_CHOICE_NOISE = re.compile(r"[\s\-—–_·()\[\]【】]")
_SYNONYMS = {
    "是": ("y", "yes", "√", "✓", "✔", "true", "t", "是的"),
    "否": ("n", "no", "×", "x", "✗", "✘", "false", "f", "不是"),
    "达成": ("完成", "已达成", "已完成", "全部达成", "全部完成"),
    "部分达成": ("部分完成", "部分实现"),
    "未达成": ("未完成", "没有达成", "没有完成", "未实现"),
    "≥": (">=", "=>", "≧", "大于等于", "大于或等于", "不低于", "不少于", "不小于", "至少", "达到"),
    "≤": ("<=", "=<", "≦", "小于等于", "小于或等于", "不高于", "不超过", "不多于", "不大于"),
    "＝": ("=", "==", "等于"),
    "＞": (">", "大于", "高于", "超过"),
    "＜": ("<", "小于", "低于"),
    "定性": ("定性指标",),
    "合计": ("求和", "累计", "相加"),
    "期末": ("期末数", "年末", "年末数", "最后"),
    "平均": ("平均值", "均值"),
    "基本支出-人员经费": ("人员经费",),
    "基本支出-公用经费": ("公用经费",),
    "项目支出": ("项目", "项目经费"),
}

# Comparator words a user may type in front of a target value (`不低于70%`), longest first so `大于等于` wins over
# `大于`; the same vocabulary as the 比较符 column's synonyms.
COMPARATOR_PREFIXES = tuple(sorted(
    ((word, symbol) for symbol in ("≥", "≤", "＝", "＞", "＜") for word in (symbol, *_SYNONYMS[symbol])),
    key=lambda pair: -len(pair[0])))


def _choice_key(text: str) -> str:
    """Comparison form of a choice: NFKC (`＞` → `>`, `（` → `(`), lower case, no spaces, dashes or brackets, so
    `基本支出—人员经费` and `因公出国(境)费` match the canonical spellings."""
    return _CHOICE_NOISE.sub("", unicodedata.normalize("NFKC", text).lower())


_SYNONYM_KEYS = {_choice_key(alt): canon for canon, alts in _SYNONYMS.items() for alt in alts}


def parse_choice(raw, choices: tuple[str, ...]) -> tuple[str | None, str | None]:
    """One of `choices` (canonical spelling) or None for blank. Matches after `_choice_key`, then through simple
    synonyms (Y/√ → 是, 完成 → 达成, >= / 不低于 → ≥, …) and a dropped `指标` suffix (`产出` → 产出指标)."""
    if is_blank(raw):
        return None, None
    text = ("是" if raw else "否") if isinstance(raw, (bool, np.bool_)) else parse_text(raw)[0]
    key = _choice_key(text)
    by_key = {_choice_key(c): c for c in choices}
    found = by_key.get(key) or by_key.get(key + "指标")
    if found is None and _SYNONYM_KEYS.get(key) in choices:
        found = _SYNONYM_KEYS[key]
    if found is not None:
        return found, None
    return None, f"「{text}」不是可选值，请从下拉列表中选择：{'、'.join(choices)}"


# --- dispatch by field kind -----------------------------------------------------------------------------------

_PROBLEM_CODES = {
    AMOUNT: "bad-number", NUMBER: "bad-number", INTEGER: "bad-integer", PERCENT: "bad-percent",
    CHOICE: "bad-choice", DATE: "bad-date", VALUE: "bad-value",
}


def parse_field(f: Field, raw) -> tuple[object, str | None]:
    """Parse one raw cell value by the field's kind, per the staging contract."""
    if f.kind == AMOUNT:
        return parse_amount(raw)
    if f.kind == NUMBER:
        return parse_number(raw)
    if f.kind == INTEGER:
        return parse_int(raw)
    if f.kind == PERCENT:
        return parse_percent(raw)
    if f.kind == CHOICE:
        return parse_choice(raw, f.choices)
    if f.kind == DATE:
        return parse_date(raw)
    if f.kind == VALUE:
        return parse_value(raw)
    return parse_text(raw)  # TEXT, FORMULA


def blank_value(f: Field):
    """The blank of a field's column: NaN for numeric kinds (so the column stays float), None otherwise."""
    return NAN if f.kind in NUMERIC_KINDS else None


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# ==============================================================================================================
# Staged file
# ==============================================================================================================


@dataclass
class StagedFile:
    """One input workbook after staging. `kv`: sheet → {field: parsed value} for key-value sheets; `kv_cells`:
    sheet → {field: "B3"}; `tables`: sheet → DataFrame (one row per data row of that sheet; one column per spec field
    plus `_file`, `_sheet`, `_row`), present for every table sheet of the template even when the sheet is missing;
    `colmaps`: sheet → {field: column letter}. Sheets are keyed by canonical spec name; `sheet_names` maps that to
    the sheet's name in the workbook, which is what `_sheet` and issues carry (what the user sees on the tab)."""

    rel: str
    sha256: str
    template_type: str | None
    template_version: str | None
    kv: dict[str, dict[str, object]] = field(default_factory=dict)
    kv_cells: dict[str, dict[str, str]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    colmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    sheet_names: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def unit_info(self) -> dict:
        """The 单位信息 sheet: 单位名称 (str|None), 单位编码 (str|None, `430399001` even when the cell held the
        number 430399001.0), 财年 (int|None), plus any other keys of that sheet."""
        d = dict(self.kv.get("单位信息", {}))
        code = d.get("单位编码")
        d["单位编码"] = parse_text(code)[0] if not _is_missing(code) else None
        year = d.get("财年")
        d["财年"] = int(year) if isinstance(year, Number) and not _is_missing(year) else None
        d.setdefault("单位名称", None)
        return d


@dataclass(frozen=True)
class _Ctx:
    """Where we are, for building issues."""

    file: str
    sheet: str       # the sheet's name in the workbook
    canonical: str   # the spec's sheet name
    formulas: frozenset = frozenset()  # cells holding a formula without a saved result (load)
    percent: frozenset = frozenset()   # percent-formatted cells (load; empty for .xls)

    def at(self, cell: str = "", raw=None) -> dict:
        return dict(file=self.file, sheet=self.sheet, cell=cell, value=_raw_str(raw))


def _raw_str(raw) -> str:
    if is_blank(raw):
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def stage_file(src: SourceFile, *, packed: bool = False) -> tuple[StagedFile, list[Issue]]:
    """Stage every sheet of the file's template. Required sheets that are missing are 错误; optional ones (月度支出)
    may be absent. A file with no recognised template yields an empty StagedFile (load already reported it).

    packed=True leaves each table as its packed blocks (see table_blocks) instead of a DataFrame: what the
    staged-file cache stores, for a caller that only stores it (the file map): the frame would be built only to be
    taken apart again."""
    t = src.template
    staged = StagedFile(
        rel=src.rel, sha256=src.sha256, template_type=t.type if t else None,
        template_version=_meta_text(src.meta.get("模板版本")), meta=dict(src.meta),
    )
    issues: list[Issue] = []
    for spec in (t.sheets if t else ()):
        raw = src.sheets.get(spec.name)
        staged.sheet_names[spec.name] = raw.name if raw else spec.name
        ctx = _Ctx(src.rel, staged.sheet_names[spec.name], spec.name,
                   src.uncached_formulas.get(spec.name, frozenset()), src.percent_cells.get(spec.name, frozenset()))
        if raw is None and spec.required:
            issues.append(_missing_sheet(ctx, t.type))
        issues += (_stage_kv if spec.kind == "kv" else _stage_table)(staged, spec, raw, ctx)
    if not packed:
        staged.tables = table_frames(staged.tables)
    if t is not None:
        refused = _incompatible_version(staged, t, src)
        if refused is not None:  # nothing of the file is used: its other issues would point at a layout not read
            staged.template_type = None
            return staged, [refused] + [i for i in _meta_checks(staged) if i.code != "template-version-old"]
        issues += _meta_checks(staged)
    return staged, issues


# version_tuple of a file's template version: every file's is compared with the current one, in a few spellings.
_version = remembered_for_short_text(version_tuple, 64)


def _incompatible_version(staged: StagedFile, t, src: SourceFile) -> Issue | None:
    """A file filled on an older template version whose fields no longer match: a required field of a sheet it has
    is missing, or a field renamed since its version (spec.TEMPLATE_CHANGES) is not there under its new name.
    Returns the 错误 that refuses the file, naming the file, its version and what changed; None when it can be read
    (then _meta_checks only warns that the version is old)."""
    have, current = _version(staged.template_version), _version(TEMPLATE_VERSION)
    if have is None or current is None or have >= current:
        return None
    changes = changes_since(t.type, staged.template_version)
    renamed = {(c.sheet, c.new) for c in changes if c.old and c.new}
    missing = []
    for spec in t.sheets:
        if spec.name == "单位信息" or src.sheets.get(spec.name) is None:
            continue  # the unit key is checked as usual; a missing sheet is its own 错误
        found = staged.colmaps.get(spec.name, {}) if spec.kind == "table" else staged.kv_cells.get(spec.name, {})
        missing += [f"「{spec.name}」缺少「{f.name}」" for f in spec.fields
                    if f.name not in found and (f.required or (spec.name, f.name) in renamed)]
    if not missing:
        return None
    what = "；".join(c.describe() for c in changes) or "表头字段已调整"
    msg = (f"文件 {staged.rel} 使用的是旧版模板（版本 {staged.template_version}），与当前版本 {TEMPLATE_VERSION} 不兼容，"
           f"未读取：{'、'.join(missing)}。变化：{what}。请用新版模板（python -m pipeline templates --year 财年）"
           f"重新填写，可把原数据复制到新模板的对应列。")
    info_ = staged.unit_info
    return error("template-version-incompatible", msg, file=staged.rel, value=staged.template_version,
                 unit=info_["单位编码"] or "", year=info_["财年"])


def _meta_checks(staged: StagedFile) -> list[Issue]:
    """`_meta` against the file itself: an older template version still read (fields match by label), and a
    `_meta` 财年 that differs from the 财年 typed in 单位信息 (a last-year template reused: check the figures)."""
    found = []
    sheet = staged.sheet_names.get("单位信息", "单位信息")
    have, current = _version(staged.template_version), _version(TEMPLATE_VERSION)
    if have is not None and current is not None and have < current:
        msg = (f"文件 {staged.rel} 使用的是旧版模板（版本 {staged.template_version}，当前版本 {TEMPLATE_VERSION}）。"
               f"已按表头文字读取；请下次改用新版模板填写（python -m pipeline templates --year 财年）。")
        found.append(warning("template-version-old", msg, file=staged.rel, value=staged.template_version))
    meta_year, _ = parse_int(staged.meta.get("财年"))
    year = staged.unit_info["财年"]
    if year is not None and not math.isnan(meta_year) and int(meta_year) != year:
        cell = staged.kv_cells.get("单位信息", {}).get("财年", "")
        msg = (f"文件 {staged.rel} 是 {int(meta_year)} 年的模板，但「{sheet}」中填写的财年为 {year}，已按 {year} 年评价。"
               f"请确认财年填写正确，并核对表中数据是否已更新为 {year} 年的数据（建议使用 {year} 年的模板）。")
        found.append(warning("meta-year-mismatch", msg, file=staged.rel, sheet=sheet, cell=cell, value=str(year)))
    return found


def _meta_text(v) -> str | None:
    return None if is_blank(v) else parse_text(v)[0]


def _missing_sheet(ctx: _Ctx, template_type: str) -> Issue:
    msg = (f"{template_type}缺少工作表「{ctx.canonical}」。请使用模板中的该工作表填写"
           f"（工作表名须为「{ctx.canonical}」，可带年份，如「{ctx.canonical}（2023）」）。")
    return error("missing-sheet", msg, file=ctx.file, sheet=ctx.canonical)


def _value_issue(ctx: _Ctx, f: Field, cell: str, raw, problem: str) -> Issue:
    code = _PROBLEM_CODES.get(f.kind, "bad-value")
    msg = f"「{ctx.sheet}」{cell} 的「{f.name}」：{problem}。"
    make = warning if f.kind == DATE else error  # a bad 填报日期 does not stop scoring
    return make(code, msg, **ctx.at(cell, raw))


def _required_blank(ctx: _Ctx, f: Field, cell: str, hint: str = "") -> Issue:
    extra = hint or ("没有的请填 0" if f.kind in NUMERIC_KINDS else "")
    msg = f"「{ctx.sheet}」{cell} 的「{f.name}」是必填项，不能为空。请填写{('；' + extra) if extra else ''}。"
    return error("required-blank", msg, **ctx.at(cell))


# --- key-value sheets -----------------------------------------------------------------------------------------

# Per-process memos of pure functions of a cell's text (labels, choices, subtotal words): the same few spellings
# fill most cells of every file. Bounded in entries, and long text (free-text notes) is never kept.
_MEMO_TEXT_LEN = 64


_label_key = remembered_for_short_text(normalize_label, _MEMO_TEXT_LEN)  # of a header or key cell's text


def _stage_kv(staged: StagedFile, spec: SheetSpec, raw: RawSheet | None, ctx: _Ctx) -> list[Issue]:
    """Key in column A (matched by normalize_label), value in column B. Grain: one value per spec field."""
    found = _kv_locations(raw.rows()) if raw is not None else {}
    values, cells, issues = {}, {}, []
    for f in spec.fields:
        loc = found.get(_label_key(f.name))
        if loc is None:
            values[f.name] = blank_value(f)
            if raw is not None and f.required:
                issues.append(_missing_key(ctx, f))
            continue
        row, value = loc
        cells[f.name] = cell_ref(row, 1)
        values[f.name], problem = parse_field(f, value)
        if is_blank(value) and cells[f.name] in ctx.formulas:
            issues.append(_uncached_formula(ctx, f, cells[f.name]))
        elif problem is not None:
            values[f.name] = blank_value(f)
            issues.append(_value_issue(ctx, f, cells[f.name], value, problem))
        elif f.required and _is_missing(values[f.name]):
            issues.append(_required_blank(ctx, f, cells[f.name]))
    staged.kv[spec.name], staged.kv_cells[spec.name] = values, cells
    return issues


def _kv_locations(rows: list[tuple[int, list]]) -> dict[str, tuple[int, object]]:
    """normalised key → (Excel row, raw value in column B) of a sheet's rows (RawSheet.rows); the first occurrence
    of a key wins."""
    out: dict[str, tuple[int, object]] = {}
    for row, values in rows:
        key = values[0] if values else None
        if isinstance(key, str) and key.strip():
            out.setdefault(_label_key(key), (row, values[1] if len(values) > 1 else None))
    return out


def _missing_key(ctx: _Ctx, f: Field) -> Issue:
    msg = (f"「{ctx.sheet}」缺少「{f.name}」一行。请在 A 列填写「{f.label}」，并在同一行 B 列填写内容"
           f"（可从空白模板复制该行）。")
    return error("missing-key", msg, **ctx.at())


# --- table sheets ---------------------------------------------------------------------------------------------


def _stage_table(staged: StagedFile, spec: SheetSpec, raw: RawSheet | None, ctx: _Ctx) -> list[Issue]:
    """Find the header by label, then parse each data row. Grain of the result: one row per non-blank,
    non-subtotal Excel row below the header."""
    rows = raw.rows() if raw is not None else []
    if not rows or not rows[0][1]:  # no sheet, or no cells
        staged.tables[spec.name], staged.colmaps[spec.name] = table_blocks(spec, None, [], ctx), {}
        return [] if raw is None or not spec.required else [_header_not_found(ctx, spec)]
    header_row, colmap, issues = _find_header(rows[:HEADER_SCAN_ROWS], spec, ctx)
    if header_row is None:
        staged.tables[spec.name], staged.colmaps[spec.name] = table_blocks(spec, None, [], ctx), {}
        return issues
    # The whole sheet is staged as plain Python lists, one column list per field, and becomes a DataFrame once:
    # pandas objects per row or per cell cost far more than parsing the cells.
    kept, row_numbers = [], []
    stage_row = _RowStager(spec, colmap, ctx)
    for row, values in rows:
        if row > header_row:
            record = stage_row(values, row, issues)
            if record is not None:
                kept.append(record)
                row_numbers.append(row)
    staged.tables[spec.name] = table_blocks(spec, list(zip(*kept)) if kept else None, row_numbers, ctx)
    staged.colmaps[spec.name] = {name: _letter(c) for name, c in colmap.items()}
    return issues


_letter = functools.lru_cache(maxsize=256)(col_letter)  # of a header's columns: the same few in every file


def table_columns(spec: SheetSpec) -> list[str]:
    return [f.name for f in spec.fields] + list(TECH_COLUMNS)


def empty_table(spec: SheetSpec) -> pd.DataFrame:
    """A staged table with no rows but the right columns and dtypes (a fresh copy: callers may modify it)."""
    return _empty_table(spec).copy()


@functools.lru_cache(maxsize=None)
def _empty_table(spec: SheetSpec) -> pd.DataFrame:
    return table_frame(table_blocks(spec, None, [], _Ctx("", "", spec.name)))


def table_blocks(spec: SheetSpec, columns: list | None, rows: list[int], ctx: _Ctx) -> tuple:
    """A staged table as its packed blocks, from its column sequences (one per spec field; None when there are no
    rows) of the Excel rows `rows`: ("blocks", row count, column labels, their dtype, [(dtype, number of columns,
    column positions, values)]), the values of a numeric block its raw bytes (column after column), of an object
    block the flat list of its values. Numeric kinds are float64, `_row` int64, everything else object (so blanks
    stay None rather than being turned into NaN by pandas' string inference). The blocks are grouped by dtype as
    pandas groups the columns of a frame (see _table_layout). This is the form the staged-file cache stores;
    table_frame builds the DataFrame from it: the public constructor would infer pandas 3's `str` dtype for object
    columns, and assembling column by column costs several times more than the cells' own parsing."""
    n = len(rows)
    labels, labels_dtype, layout = _table_layout(spec)
    width = len(spec.fields)
    tech = {"_file": ctx.file, "_sheet": ctx.sheet}
    blocks = []
    for dtype, positions in layout:
        k = len(positions)
        if dtype == np.int64:  # `_row`, the only int64 column
            values = bytearray(np.array(rows, dtype=np.int64))
        elif columns is None:
            values = [] if dtype == object else bytearray()
        else:
            parts = chain.from_iterable(columns[i] if i < width else (tech[TECH_COLUMNS[i - width]],) * n
                                        for i in positions)
            values = list(parts) if dtype == object else bytearray(np.fromiter(parts, dtype=dtype, count=k * n))
        blocks.append((dtype.str, k, list(positions), values))
    return "blocks", n, labels, labels_dtype, blocks


def table_frame(packed: tuple) -> pd.DataFrame:
    """The DataFrame of a table's packed blocks (table_blocks; ("frame", df) for a frame of another shape, as the
    staged-file cache keeps one): each block one 2-D array (an object block filled in one np.fromiter, each value one
    element, never nested; a numeric one over its bytes, not copied)."""
    if packed[0] == "frame":
        df = packed[1]
        if not isinstance(df, pd.DataFrame):
            raise TypeError("not a table")
        return df
    return _stacked_blocks([packed])


def table_rows(table) -> int:
    """The number of rows of a staged table, packed (table_blocks, ("frame", df)) or built."""
    if type(table) is tuple:
        return table[1] if table[0] == "blocks" else len(table[1])
    return len(table)


def table_column(table, name: str) -> list:
    """One column of a staged table as a list, packed or built: of packed blocks without building the frame."""
    if type(table) is tuple and table[0] == "blocks":
        _tag, n, labels, _labels_dtype, packed_blocks = table
        at = labels.index(name)
        for dtype, width, positions, data in packed_blocks:
            if at in positions:
                j = positions.index(at)
                if np.dtype(dtype) == object:
                    return list(data[j * n:(j + 1) * n])
                return np.frombuffer(data, dtype=dtype).reshape(width, n)[j].tolist()
        raise KeyError(name)
    return (table_frame(table) if type(table) is tuple else table)[name].tolist()


def concat_tables(tables: list) -> pd.DataFrame:
    """Staged tables of one sheet (none empty; packed or built) stacked, as pd.concat(frames, ignore_index=True)
    stacks their frames. Tables packed in one layout (the cache's, the batches' common case) are stacked block by
    block into one frame, without a frame per file: building a hundred small frames and concatenating them cost
    more than their cells."""
    layouts = {(t[2], t[3], tuple((d, w, tuple(p)) for d, w, p, _ in t[4]))
               for t in tables if type(t) is tuple and t[0] == "blocks"}
    if len(layouts) != 1 or not all(type(t) is tuple and t[0] == "blocks" for t in tables):
        return pd.concat([table_frame(t) if type(t) is tuple else t for t in tables], ignore_index=True)
    return _stacked_blocks(tables)


def _stacked_blocks(tables: list[tuple]) -> pd.DataFrame:
    """The frame of packed tables of one layout (table_blocks), their rows one after the other: each block one 2-D
    array, an object block filled column by column (each table's part of the column in turn) in one np.fromiter,
    each value one element, never nested; a numeric block over a single table's bytes, not copied, or the tables'
    arrays concatenated."""
    _tag, _n, labels, labels_dtype, first = tables[0]
    sizes = [t[1] for t in tables]
    total = sum(sizes)
    blocks = []
    for b, (dtype, width, positions, _data) in enumerate(first):
        dtype = np.dtype(dtype)
        if dtype == object:
            parts = _data if len(tables) == 1 else chain.from_iterable(
                t[4][b][3][j * n:(j + 1) * n] for j in range(width) for t, n in zip(tables, sizes))
            values = np.fromiter(parts, dtype=object, count=width * total).reshape(width, total)
        else:
            arrays = [np.frombuffer(t[4][b][3], dtype=dtype).reshape(width, n) for t, n in zip(tables, sizes)]
            values = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)
        blocks.append((values, np.array(positions, dtype=np.intp)))
    # A view: each frame gets its own Index object over the shared labels.
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex.from_range(range(total)),
                                       columns=_labels(labels, labels_dtype).view())


def table_frames(tables: dict) -> dict:
    """Sheet → table with every table still packed (a tuple: table_blocks, or the cache's ("frame", df)) built as
    its DataFrame."""
    return {name: table_frame(t) if type(t) is tuple else t for name, t in tables.items()}


@functools.lru_cache(maxsize=64)
def _labels(labels: tuple[str, ...], dtype: str) -> pd.Index:
    """The column Index of a staged table, per spelling of its labels (a handful per process; never modified: each
    frame gets a view)."""
    return pd.Index(list(labels), dtype=dtype)


@_memo_per_spec
def _table_layout(spec: SheetSpec) -> tuple[tuple[str, ...], str, tuple[tuple[np.dtype, tuple[int, ...]], ...]]:
    """A staged table's column labels, their Index's dtype and its block layout: column positions grouped by dtype
    (float64 numeric fields, int64 `_row`, object the rest), groups in the order of their first column, as pandas
    groups the columns of a frame it builds from arrays. Per spec, of which there are a handful."""
    kinds = [np.dtype(np.float64) if f.kind in NUMERIC_KINDS else np.dtype(object) for f in spec.fields]
    kinds += [np.dtype(object), np.dtype(object), np.dtype(np.int64)]  # TECH_COLUMNS
    groups: dict[np.dtype, list[int]] = {}
    for i, kind in enumerate(kinds):
        groups.setdefault(kind, []).append(i)
    labels = pd.Index(table_columns(spec))
    return (tuple(labels.tolist()), str(labels.dtype),
            tuple((kind, tuple(positions)) for kind, positions in groups.items()))


def _find_header(rows: list[tuple[int, list]], spec: SheetSpec,
                 ctx: _Ctx) -> tuple[int | None, dict[str, int], list[Issue]]:
    """The header is the row among the first HEADER_SCAN_ROWS matching the most field labels (normalised), so rows
    inserted above it, reordered columns and extra user columns are all fine. Returns (row, field → column index)."""
    wanted = _header_labels(spec)
    best_row, best = None, {}
    for row, values in rows:
        found = _header_matches(values, wanted)
        if len(found) > len(best):
            best_row, best = row, found
            if len(best) == len(wanted):  # every label found: a later row could at most tie, and ties keep the first
                break
    if best_row is None:
        return None, {}, [_header_not_found(ctx, spec)]
    colmap = {name: cols[0] for name, cols in best.items()}
    issues = [_duplicate_column(ctx, best_row, name, cols) for name, cols in best.items() if len(cols) > 1]
    issues += [_missing_column(ctx, best_row, f) for f in spec.required_fields if f.name not in colmap]
    return best_row, colmap, issues


@_memo_per_spec
def _header_labels(spec: SheetSpec) -> MappingProxyType:
    """Normalised label → field name of a table sheet (read-only: shared by every file)."""
    return MappingProxyType({_label_key(f.name): f.name for f in spec.fields})


def _header_matches(values: list, wanted: dict[str, str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for col, value in enumerate(values):
        if isinstance(value, str) and (name := wanted.get(_label_key(value))):
            found.setdefault(name, []).append(col)
    return found


def _header_not_found(ctx: _Ctx, spec: SheetSpec) -> Issue:
    labels = "、".join(f.label for f in spec.required_fields) or "、".join(f.label for f in spec.fields)
    msg = (f"「{ctx.sheet}」前 {HEADER_SCAN_ROWS} 行中找不到表头，该表未被读取。表头应包含 {labels} 等列，"
           f"请从空白模板复制表头行。")
    return error("header-not-found", msg, **ctx.at())


def _missing_column(ctx: _Ctx, header_row: int, f: Field) -> Issue:
    msg = (f"「{ctx.sheet}」第 {header_row} 行的表头中找不到必填列「{f.label}」。请恢复该列"
           f"（表头文字须与模板一致，可调整列的顺序）。")
    return error("missing-column", msg, **ctx.at())


def _duplicate_column(ctx: _Ctx, header_row: int, name: str, cols: list[int]) -> Issue:
    used, other = cell_ref(header_row, cols[0]), cell_ref(header_row, cols[1])
    msg = f"「{ctx.sheet}」表头中「{name}」出现多次（{used}、{other}），已使用 {used} 列。请删除或重命名重复的列。"
    return warning("duplicate-column", msg, **ctx.at(other))


# --- rows -----------------------------------------------------------------------------------------------------

# Sheets whose template may carry its own 合计 row under the data (first column); dropping it needs no notice.
_TEMPLATE_TOTAL_SHEETS = frozenset({"预算执行", "三公经费", "月度支出"})
_SUBTOTAL_RE = re.compile(r"(本页|本表|全部|全年|总)?(合计|小计|总计)")
_SUBTOTAL_SUFFIX_RE = re.compile(r".{0,12}(合计|小计|总计)")
_NOTE_RE = re.compile(r"(注|说明|备注|填表说明)\s*[:：\d]")
_SPACE_RE = re.compile(r"\s")
_SUBTOTAL_NOISE_RE = re.compile(r"[\s:：]")
# Field kinds whose parser maps a finite float to itself (parse_number / parse_amount / parse_value).
_FLOAT_AS_IS = frozenset({AMOUNT, NUMBER, VALUE})


class _RowStager:
    """Stages the rows of one table below its header: `(values, row, issues) → record or None` (None for blank,
    subtotal and note rows; issues are appended). Everything that depends only on the sheet and the header is
    worked out once here (and remembered per header layout: the files of one template share it), not per row or
    per cell."""

    def __init__(self, spec: SheetSpec, colmap: dict[str, int], ctx: _Ctx):
        self.spec, self.colmap, self.ctx = spec, colmap, ctx
        self.plan, self.pick, self.last_col, self.field_at, self.names = _row_plan(spec, tuple(colmap.items()))
        self.row_rule = _ROW_RULES.get(ctx.canonical)

    def __call__(self, values: list, row: int, issues: list[Issue]) -> list | None:
        if _is_blank_row(self.pick(values)):
            return None
        skip = self._skip(values, row)
        if skip is not False:
            if skip is not None:
                issues.append(skip)
            return None
        ctx = self.ctx
        formulas, percent = ctx.formulas, ctx.percent
        record = []
        append = record.append
        # A cell's reference (`F7`) is spelled out only where something is said about the cell or it must be
        # looked up (formula or percent cells): most cells need neither. The two common cases first (a finite
        # float where it is read as is, non-blank text), then blanks, then parse_field for the rest (numbers as
        # int, dates, bools, NaN, …).
        for f, col, letter, blank, parse_text_cell, float_as_is, strip_only, required in self.plan:
            if col is None:  # a missing column was reported once at the header
                append(blank)
                continue
            raw = values[col]
            kind = type(raw)
            if kind is float and float_as_is and raw - raw == 0.0:  # finite: inf - inf and NaN - NaN are NaN
                if not percent:
                    append(raw)
                    continue
                value, problem = raw, None
            elif kind is str and (text := raw.strip()):
                if strip_only:  # the text itself: never a problem, never blank, never a percent figure
                    append(text)
                    continue
                value, problem = parse_text_cell(raw)
                if problem is None and not percent and not (required and _is_missing(value)):
                    append(value)
                    continue
            elif raw is None or kind is str:  # every parser reads these as blank
                if formulas or required:
                    cell = f"{letter}{row}"
                    if cell in formulas:
                        issues.append(_uncached_formula(ctx, f, cell))
                    elif required:
                        issues.append(_required_blank(ctx, f, cell))
                append(blank)
                continue
            elif is_blank(raw) and f"{letter}{row}" in formulas:
                issues.append(_uncached_formula(ctx, f, f"{letter}{row}"))
                append(blank)
                continue
            else:
                value, problem = parse_field(f, raw)
                if problem is None and not percent and not (required and _is_missing(value)):
                    append(value)
                    continue
            cell = f"{letter}{row}"
            if problem is None and cell in percent and isinstance(raw, Number) and not isinstance(raw, bool):
                value = _percent_cell_value(f, float(raw), value)
            if problem is not None:
                value = blank
                issues.append(_value_issue(ctx, f, cell, raw, problem))
            elif required and _is_missing(value):
                issues.append(_required_blank(ctx, f, cell))
            append(value)
        if self.row_rule is not None:
            issues += self.row_rule(dict(zip(self.names, record)), row, self.colmap, ctx)
        return record

    def _skip(self, values: list, row: int):
        """False to keep the row; None to drop it silently; an Issue (提示) to drop it and say so."""
        # The first *text* cell: a 序号 number may stand before the 合计 label.
        col = None
        for c, v in enumerate(values[:self.last_col + 1]):
            if isinstance(v, str) and v.strip():
                col = c
                break
        if col is None:
            return False
        text = values[col]
        spec, colmap, ctx = self.spec, self.colmap, self.ctx
        if _is_subtotal(text, self.field_at.get(col)):
            return _subtotal_issue(text, row, col, spec, colmap, ctx)
        if _NOTE_RE.match(text.strip()) and all(is_blank(v) for c, v in enumerate(values) if c != col):
            msg = f"「{ctx.sheet}」第 {row} 行是说明文字（{cell_ref(row, col)}），已忽略。"
            return info("note-row-dropped", msg, **ctx.at(cell_ref(row, col), text))
        return False


@_memo_per_spec
def _row_plan(spec: SheetSpec, columns: tuple[tuple[str, int], ...]):
    """What _RowStager needs of a sheet and its header (field → column index, in header order): per field (field,
    column index or None, column letter, blank value, parser of text cells, finite float read as is, text parser
    only strips, required); the mapped cells of a row (a tuple); the last mapped column; the field of each column
    (the first field of a column wins); the field names. Read-only, shared by the files with this header."""
    colmap = dict(columns)
    plan = tuple((f, colmap.get(f.name), col_letter(colmap[f.name]) if f.name in colmap else "", blank_value(f),
                  _text_parser(f), f.kind in _FLOAT_AS_IS, f.kind not in _MEMO_KINDS, f.required)
                 for f in spec.fields)
    mapped = list(colmap.values())
    if len(mapped) > 1:
        pick = operator.itemgetter(*mapped)
    else:
        pick = (lambda values: (values[mapped[0]],)) if mapped else (lambda values: ())
    field_at = MappingProxyType({c: spec.field(n) for n, c in reversed(colmap.items())})
    return plan, pick, max(mapped, default=0), field_at, tuple(f.name for f in spec.fields)


# Kinds whose parser of text does real work (normalising, matching, a regex); the others (parse_text, parse_value)
# return non-blank text stripped.
_MEMO_KINDS = frozenset({AMOUNT, NUMBER, INTEGER, PERCENT, CHOICE, DATE})


def _text_parser(f: Field):
    """parse_field for a non-blank text cell of field `f`; short text of a kind with real parsing is remembered per
    spelling (项目支出, ≥, 12.5, …). The parsers are pure and their results immutable, so sharing them is safe."""
    if f.kind not in _MEMO_KINDS:
        return _stripped
    parse, memo = functools.partial(parse_field, f), functools.partial(_parse_text_memo, f.kind, f.choices)
    return lambda raw: memo(raw) if len(raw) <= _MEMO_TEXT_LEN else parse(raw)


def _stripped(raw: str) -> tuple[str, None]:
    return raw.strip(), None


@functools.lru_cache(maxsize=8192)
def _parse_text_memo(kind: str, choices: tuple[str, ...], raw: str) -> tuple[object, str | None]:
    return parse_field(Field("", kind, choices=choices), raw)


def _is_blank_row(values) -> bool:
    """No text and no non-zero number. Zeros count as blank because computed cells of an unused template row
    (formulas such as 结转结余数 = 全年预算数 − 实际支出数) are cached as 0 by the writer."""
    for v in values:
        if v is None:
            continue
        t = type(v)
        if t is float:
            if v == 0 or math.isnan(v):
                continue
            return False
        if t is str:
            if v.strip():
                return False
            continue
        if is_blank(v):
            continue
        if isinstance(v, Number) and not isinstance(v, (bool, np.bool_)) and v == 0:
            continue
        return False
    return True


def _is_subtotal(text: str, f: Field | None) -> bool:
    """合计/小计/总计 (optionally 本页合计 …). In a dropdown column, where such text can never be a valid value,
    any text ending in one of them (项目支出小计) is a subtotal too; in a free-text column such as 统计项 that would
    swallow legitimate names like 投诉举报合计, so only the bare words count there. A cell where 合计 is itself a
    valid choice (汇总方式) is a value, not a label."""
    choices = f.choices if f is not None and f.kind == CHOICE else None
    return (_subtotal_memo if len(text) <= _MEMO_TEXT_LEN else _is_subtotal_text)(text, choices)


def _is_subtotal_text(text: str, choices: tuple[str, ...] | None) -> bool:
    """`_is_subtotal` by the only things it depends on: the text, and the choices when the column is a dropdown."""
    key = _SUBTOTAL_NOISE_RE.sub("", unicodedata.normalize("NFKC", text))
    if choices is not None and parse_choice(text, choices)[1] is None:
        return False
    if _SUBTOTAL_RE.fullmatch(key):
        return True
    return choices is not None and bool(_SUBTOTAL_SUFFIX_RE.fullmatch(key))


_subtotal_memo = functools.lru_cache(maxsize=4096)(_is_subtotal_text)


def _subtotal_issue(text: str, row: int, col: int, spec: SheetSpec, colmap: dict[str, int], ctx: _Ctx):
    first_field_col = colmap.get(spec.fields[0].name)
    label = _SPACE_RE.sub("", text)
    if spec.name in _TEMPLATE_TOTAL_SHEETS and label in SUBTOTAL_LABELS[:1] and col == first_field_col:
        return None
    cell = cell_ref(row, col)
    msg = (f"「{ctx.sheet}」第 {row} 行是合计/小计行（{cell}「{text.strip()}」），已忽略，不会重复计入。"
           f"如这一行是实际数据，请改用其他名称。")
    return info("subtotal-row-dropped", msg, **ctx.at(cell, text))


def _uncached_formula(ctx: _Ctx, f: Field, cell: str) -> Issue:
    """A formula whose result was never saved (the file was written by a program, not saved by Excel): its value is
    unknown. An 错误 where the field is required, else a 警告 (the cell is read as blank)."""
    msg = (f"「{ctx.sheet}」{cell} 的「{f.name}」：公式没有保存计算结果，请在 Excel 中打开并保存后再放入"
           f"（或把公式改为数值）。")
    return (error if f.required else warning)("formula-no-value", msg, **ctx.at(cell))


def _percent_cell_value(f: Field, raw: float, parsed):
    """A number in a percent-formatted cell is what Excel shows: 0.976 shown as 97.6%. A PERCENT field keeps the
    fraction as is (even 1.5 = 150%); a target value (VALUE, compared with 计量单位 %) becomes percent points."""
    if f.kind == PERCENT:
        return raw
    if f.kind == VALUE:
        return raw * 100
    return parsed


def _percent_ambiguity(record: dict, row: int, colmap: dict[str, int], ctx: _Ctx) -> list[Issue]:
    """计量单位 % with one of 指标值 / 实际完成值 at most 1 and the other above 1 (90 vs 0.976): almost surely a
    fraction typed where percent points were meant. Not converted (a target of ≤0.5% is legitimate): a 警告."""
    unit = record.get("计量单位")
    if not isinstance(unit, str) or unicodedata.normalize("NFKC", unit).strip() != "%":
        return []
    nums = {k: record.get(k) for k in ("指标值", "实际完成值")}
    if not all(isinstance(v, float) and not math.isnan(v) for v in nums.values()):
        return []
    small = [k for k, v in nums.items() if 0 < abs(v) <= 1]
    if len(small) != 1 or abs(nums[next(k for k in nums if k not in small)]) <= 1:
        return []
    k = small[0]
    cell = cell_ref(row, colmap[k])
    msg = (f"「{ctx.sheet}」{cell} 的「{k}」为 {nums[k]:g}，计量单位为 %，而同一行另一数值大于 1，"
           f"可能把 {nums[k] * 100:g}% 填成了小数。如是 {nums[k] * 100:g}%，请填写 {nums[k] * 100:g}；已按 {nums[k]:g}% 计算。")
    return [warning("percent-fraction-ambiguous", msg, **ctx.at(cell, nums[k]))]


def _project_name_rule(record: dict, row: int, colmap: dict[str, int], ctx: _Ctx) -> list[Issue]:
    """A 项目支出 line must name its project."""
    if record.get("支出类别") == "项目支出" and record.get("项目名称") is None:
        col = colmap.get("项目名称", colmap.get("支出类别", 0))
        cell = cell_ref(row, col)
        msg = f"「{ctx.sheet}」{cell} 的「项目名称」：支出类别为项目支出时必须填写项目名称。请逐个项目填写名称。"
        return [error("project-name-missing", msg, **ctx.at(cell))]
    return []


# Requirements that depend on another field of the same row, by canonical sheet: (record as {field: value}, Excel
# row, field → column index, ctx) → issues. Sheets without one skip building the record's dict.
_ROW_RULES = {"绩效目标": _percent_ambiguity, "预算执行": _project_name_rule}
