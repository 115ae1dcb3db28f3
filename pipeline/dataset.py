"""Assemble staged files into one Dataset: files grouped into units by (单位编码, 财年), tables concatenated.

Pure: no file access. This is where files meet, so it reports what only shows across files: a file that cannot be
joined, two 预算执行表 for one unit, disagreeing 单位名称, a 统计项 reported by two sections, a unit lacking a template.
Value consistency (sums, years) is the checks stage's job.
"""

from __future__ import annotations

import functools
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .issues import Issue, error, info, warning
from .spec import (
    BUDGET_EXECUTION, PERFORMANCE_TARGETS, UNIT_KEY, UNIT_TEMPLATES, WORK_STATISTICS, SheetSpec,
)
from .staging import NUMERIC_KINDS, StagedFile, concat_tables, empty_table, table_column, table_rows

# Canonical table sheet → Dataset attribute.
TABLES: dict[str, tuple[str, SheetSpec]] = {
    "预算执行": ("budget_lines", BUDGET_EXECUTION.sheet("预算执行")),
    "月度支出": ("monthly", BUDGET_EXECUTION.sheet("月度支出")),
    "三公经费": ("sangong", BUDGET_EXECUTION.sheet("三公经费")),
    "管理情况": ("management", BUDGET_EXECUTION.sheet("管理情况")),
    "绩效目标": ("targets", PERFORMANCE_TARGETS.sheet("绩效目标")),
    "工作统计": ("work_stats", WORK_STATISTICS.sheet("工作统计")),
}
# The templates of which a unit must have exactly one.
SINGLE_TEMPLATES = (BUDGET_EXECUTION.type, PERFORMANCE_TARGETS.type)
UNIT_TYPES = frozenset(t.type for t in UNIT_TEMPLATES)  # templates a unit fills (not the 评分标准)
UNIT_INFO_FIELDS = tuple(f for f in BUDGET_EXECUTION.sheet("单位信息").fields if f.name not in UNIT_KEY)
OTHER_FIELDS = BUDGET_EXECUTION.sheet("其他指标").fields
UNIT_COLUMNS = (
    list(UNIT_KEY) + [f.name for f in UNIT_INFO_FIELDS] + [f.name for f in OTHER_FIELDS]
    + ["_budget_file", "_targets_file", "_work_stat_files"]
)
FILE_COLUMNS = ["单位编码", "财年", "文件", "模板类型", "模板版本", "填报科室", "sha256", "_used"]

Key = tuple[str, int]


@dataclass
class Dataset:
    """All units of a run. Tables (grain in brackets): `units` (one row per unit 单位编码 × 财年), `files` (one row
    per staged input file; `_used` False when its data was left out), `budget_lines` (per 预算执行 line), `monthly`
    (per 月度支出 line), `sangong` (per 三公 item), `management` (per 管理情况 item), `targets` (per 绩效目标),
    `work_stats` (per 工作统计 line, several files per unit). Every data table has the unit key first, then the spec
    fields, then `_file`, `_sheet` (the sheet's name in the workbook), `_row` (Excel row)."""

    units: pd.DataFrame
    files: pd.DataFrame
    budget_lines: pd.DataFrame
    monthly: pd.DataFrame
    sangong: pd.DataFrame
    management: pd.DataFrame
    targets: pd.DataFrame
    work_stats: pd.DataFrame
    cells: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    unit_cells: dict[Key, dict[str, tuple[str, str, str]]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def cell(self, row, field_name: str) -> str:
        """`F7` for a field of a table row (a row of any data table, as Series or dict); "" when unknown."""
        letter = self.cells.get((row["_file"], row["_sheet"]), {}).get(field_name)
        return f"{letter}{int(row['_row'])}" if letter else ""

    def where(self, row, field_name: str) -> dict:
        """`dict(file=, sheet=, cell=)` for Issue construction: `error(code, msg, **ds.where(row, "实际支出数"))`.
        Works for data-table rows and for `units` rows (the key-value cell in the unit's 预算执行表)."""
        if "_row" in row:
            return dict(file=row["_file"], sheet=row["_sheet"], cell=self.cell(row, field_name))
        return self.unit_where(row["单位编码"], int(row["财年"]), field_name)

    def unit_where(self, code: str, year: int, field_name: str) -> dict:
        """Where a `units` value was read (单位信息 / 其他指标 of the 预算执行表), empty strings when unknown."""
        file, sheet, cell = self.unit_cells.get((code, year), {}).get(field_name, ("", "", ""))
        return dict(file=file, sheet=sheet, cell=cell)

    def table(self, sheet: str) -> pd.DataFrame:
        """A data table by its canonical sheet name (`预算执行` → budget_lines)."""
        return getattr(self, TABLES[sheet][0])


# ==============================================================================================================


def assemble(staged: list[StagedFile], issues: list[Issue] | None = None) -> Dataset:
    """Group staged files into units and concatenate their tables. `issues` (from load and staging) are carried
    into `Dataset.issues`, tagged with the unit and year of their file where known; assemble's own follow them."""
    staged = sorted(staged, key=lambda s: s.rel)  # "the first file" means the first by path, on every run
    found: list[Issue] = []
    groups = _group_by_unit(staged, found)
    chosen = {key: _choose_files(key, files, found) for key, files in groups.items()}
    for key, files in chosen.items():
        found += _check_unit(key, files)
    used = {sf.rel for files in chosen.values() for sf in _flatten(files)}
    ds = Dataset(
        units=_units_table(chosen), files=_files_table(staged, used),
        **{attr: _concat_table(sheet, spec, chosen) for sheet, (attr, spec) in TABLES.items()},
        cells=_cells(staged), unit_cells=_unit_cells(chosen),
    )
    ds.issues = _tag_issues(list(issues or []), groups) + found
    return ds


def unit_key(sf: StagedFile) -> Key | None:
    """(单位编码, 财年) of a staged file, or None when either is missing."""
    info_ = sf.unit_info
    if info_["单位编码"] and info_["财年"] is not None:
        return info_["单位编码"], info_["财年"]
    return None


def _group_by_unit(staged: list[StagedFile], found: list[Issue]) -> dict[Key, list[StagedFile]]:
    """Unit key → its files in path order. Files that cannot be keyed are reported and left out."""
    groups: dict[Key, list[StagedFile]] = defaultdict(list)
    for sf in staged:
        if sf.template_type is None:
            continue  # unrecognised: load already said so
        if sf.template_type not in UNIT_TYPES:
            found.append(info("not-unit-template", f"文件 {sf.rel} 是「{sf.template_type}」，不是单位填报的表格，"
                              f"已跳过。评分标准请用 --rules 参数指定。", file=sf.rel))
            continue
        key = unit_key(sf)
        if key is None:
            found.append(_unkeyed(sf))
            continue
        groups[key].append(sf)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])))


def _unkeyed(sf: StagedFile) -> Issue:
    missing = "、".join(k for k in UNIT_KEY if sf.unit_info[k] in (None, ""))
    sheet = sf.sheet_names.get("单位信息", "单位信息")
    msg = (f"文件 {sf.rel} 的「单位信息」缺少{missing}，无法与同一单位的其他表格合并，该文件的数据未参与评价。"
           f"请在「{sheet}」中填写单位编码和财年（须与本单位其他表格一致）。")
    cell = next((sf.kv_cells.get("单位信息", {}).get(k) for k in UNIT_KEY if sf.unit_info[k] in (None, "")), "")
    return error("unit-key-missing", msg, file=sf.rel, sheet=sheet, cell=cell or "")


def _choose_files(key: Key, files: list[StagedFile], found: list[Issue]) -> dict[str, list[StagedFile]]:
    """Template type → the files used. One 预算执行表 and one 绩效目标表 per unit: with several, the first by path is
    used and an 错误 names the others; every 工作统计表 is used."""
    by_type: dict[str, list[StagedFile]] = defaultdict(list)
    for sf in files:
        by_type[sf.template_type].append(sf)
    for t in SINGLE_TEMPLATES:
        if len(by_type.get(t, ())) > 1:
            found += [_duplicate_file(key, t, by_type[t][0], extra) for extra in by_type[t][1:]]
            by_type[t] = by_type[t][:1]
    return dict(by_type)


def _duplicate_file(key: Key, template_type: str, kept: StagedFile, extra: StagedFile) -> Issue:
    msg = (f"单位 {key[0]}（{key[1]} 年）有多份{template_type}：{kept.rel}、{extra.rel}。已使用 {kept.rel}，"
           f"{extra.rel} 未参与评价。请只保留一份（删除重复或过时的文件），或核对其单位编码、财年是否填错。")
    return error("duplicate-file", msg, file=extra.rel, unit=key[0], year=key[1])


def _flatten(files: dict[str, list[StagedFile]]) -> list[StagedFile]:
    return sorted((sf for group in files.values() for sf in group), key=lambda s: s.rel)


# --- per-unit cross-file checks -------------------------------------------------------------------------------


def _check_unit(key: Key, files: dict[str, list[StagedFile]]) -> list[Issue]:
    return _missing_templates(key, files) + _name_mismatches(key, files) + _duplicate_stat_items(key, files)


def _missing_templates(key: Key, files: dict[str, list[StagedFile]]) -> list[Issue]:
    issues = []
    name = _unit_name(files) or key[0]
    for t in SINGLE_TEMPLATES:
        if not files.get(t):
            msg = (f"单位「{name}」（编码 {key[0]}，{key[1]} 年）缺少{t}，相关指标无法评分。请放入该单位的{t}"
                   f"（「单位信息」中的单位编码和财年须与其他表格一致）。")
            issues.append(error("missing-template", msg, unit=key[0], year=key[1]))
    return issues


def _reference_file(files: dict[str, list[StagedFile]]) -> StagedFile:
    """The file whose 单位信息 speaks for the unit: its 预算执行表, else its 绩效目标表, else its first file."""
    for t in SINGLE_TEMPLATES:
        if files.get(t):
            return files[t][0]
    return _flatten(files)[0]


def _unit_name(files: dict[str, list[StagedFile]]) -> str | None:
    ref = _reference_file(files)
    return ref.unit_info["单位名称"] or next((sf.unit_info["单位名称"] for sf in _flatten(files)
                                              if sf.unit_info["单位名称"]), None)


@functools.lru_cache(maxsize=4096)
def _squashed(text: str) -> str:
    """The text as compared across files: NFKC-normalised, without white space. Memoised: the same names (单位名称,
    统计项) recur in every file and unit of a run."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _same_name(a: str, b: str) -> bool:
    return _squashed(a) == _squashed(b)


def _name_mismatches(key: Key, files: dict[str, list[StagedFile]]) -> list[Issue]:
    ref = _reference_file(files)
    ref_name = ref.unit_info["单位名称"]
    issues = []
    for sf in _flatten(files):
        name = sf.unit_info["单位名称"]
        if sf is ref or not name or not ref_name or _same_name(name, ref_name):
            continue
        msg = (f"单位名称不一致：{sf.rel} 中为「{name}」，{ref.rel} 中为「{ref_name}」（单位编码同为 {key[0]}）。"
               f"已按单位编码合并，报告使用「{ref_name}」。请统一各表格的单位名称。")
        issues.append(warning("unit-name-mismatch", msg, file=sf.rel, sheet=sf.sheet_names.get("单位信息", ""),
                              cell=sf.kv_cells.get("单位信息", {}).get("单位名称", ""), value=name,
                              unit=key[0], year=key[1]))
    return issues


def _duplicate_stat_items(key: Key, files: dict[str, list[StagedFile]]) -> list[Issue]:
    """The same 统计项 in two 工作统计表 of one unit: both rows are kept (intermediate combines them by 汇总方式);
    a 警告 on each later occurrence names the first, since a double-reported figure would be counted twice."""
    first_seen: dict[str, tuple[StagedFile, int]] = {}
    issues = []
    for sf in files.get(WORK_STATISTICS.type, []):
        table = sf.tables.get("工作统计")
        for item, row in zip(table_column(table, "统计项"), table_column(table, "_row")):
            if not item:
                continue
            norm = _squashed(item)
            if norm not in first_seen:
                first_seen[norm] = (sf, int(row))
            elif first_seen[norm][0] is not sf:
                issues.append(_duplicate_stat(key, item, first_seen[norm], sf, int(row)))
    return issues


def _duplicate_stat(key: Key, item: str, first: tuple[StagedFile, int], sf: StagedFile, row: int) -> Issue:
    sheet = sf.sheet_names.get("工作统计", "工作统计")
    letter = sf.colmaps.get("工作统计", {}).get("统计项", "")
    msg = (f"统计项「{item}」同时出现在 {first[0].rel}（第 {first[1]} 行）和 {sf.rel}（第 {row} 行）中，"
           f"两行都会按汇总方式合并计入。如果是同一数据被两个股室重复填报，请删除其中一行。")
    return warning("duplicate-stat-item", msg, file=sf.rel, sheet=sheet, cell=f"{letter}{row}" if letter else "",
                   value=item, unit=key[0], year=key[1])


# --- tables ---------------------------------------------------------------------------------------------------


def _concat_table(sheet: str, spec: SheetSpec, chosen: dict[Key, dict[str, list[StagedFile]]]) -> pd.DataFrame:
    """One table across all used files, unit key columns first. Grain: one row per staged row of `sheet`. A file's
    table may still be packed (a batch reads its files from the cache so: staging.concat_tables stacks them)."""
    tables, codes, years, sizes = [], [], [], []
    for key, files in chosen.items():
        for sf in _flatten(files):
            t = sf.tables.get(sheet)
            n = 0 if t is None else table_rows(t)
            if n:
                tables.append(t)
                codes.append(key[0])
                years.append(key[1])
                sizes.append(n)
    if not tables:
        return _with_key(empty_table(spec), None)
    table = concat_tables(tables)  # the key columns are added once, not once per file
    table.insert(0, "财年", np.repeat(np.array(years, dtype="int64"), sizes))
    table.insert(0, "单位编码", np.repeat(np.array(codes, dtype=object), sizes))
    return table


def _with_key(table: pd.DataFrame, key: Key | None) -> pd.DataFrame:
    n = len(table)
    codes = pd.Series([key[0] if key else None] * n, dtype=object)
    years = pd.Series([key[1] if key else 0] * n, dtype="int64")
    return pd.concat([pd.DataFrame({"单位编码": codes, "财年": years}), table.reset_index(drop=True)], axis=1)


def _units_table(chosen: dict[Key, dict[str, list[StagedFile]]]) -> pd.DataFrame:
    """One row per unit: 单位信息 and 其他指标 of its 预算执行表; a unit with only other templates gets what those
    say (单位名称) and blanks elsewhere."""
    rows = [_unit_row(key, files) for key, files in chosen.items()]
    df = pd.DataFrame(rows, columns=UNIT_COLUMNS)
    dtypes = {f.name: "float64" if f.kind in NUMERIC_KINDS else object for f in UNIT_INFO_FIELDS + OTHER_FIELDS}
    return df.astype({**dtypes, "单位编码": object, "财年": "int64", "_budget_file": object, "_targets_file": object,
                      "_work_stat_files": "int64"})


def _unit_row(key: Key, files: dict[str, list[StagedFile]]) -> dict:
    budget = (files.get(BUDGET_EXECUTION.type) or [None])[0]
    targets = (files.get(PERFORMANCE_TARGETS.type) or [None])[0]
    row = {"单位编码": key[0], "财年": key[1]}
    kv_info = budget.kv.get("单位信息", {}) if budget else {}
    kv_other = budget.kv.get("其他指标", {}) if budget else {}
    for f in UNIT_INFO_FIELDS:
        row[f.name] = kv_info.get(f.name)
    for f in OTHER_FIELDS:
        row[f.name] = kv_other.get(f.name)
    row["单位名称"] = _unit_name(files)
    row["_budget_file"] = budget.rel if budget else None
    row["_targets_file"] = targets.rel if targets else None
    row["_work_stat_files"] = len(files.get(WORK_STATISTICS.type, []))
    return row


def _files_table(staged: list[StagedFile], used: set[str]) -> pd.DataFrame:
    """One row per staged file, in path order, including files whose data was left out (`_used` False)."""
    rows = []
    for sf in staged:
        ui = sf.unit_info
        rows.append({"单位编码": ui["单位编码"], "财年": ui["财年"], "文件": sf.rel, "模板类型": sf.template_type,
                     "模板版本": sf.template_version, "填报科室": ui.get("填报科室"), "sha256": sf.sha256,
                     "_used": sf.rel in used})
    df = pd.DataFrame(rows, columns=FILE_COLUMNS)
    return df.astype({**{c: object for c in FILE_COLUMNS if c not in ("财年", "_used")}, "财年": "Int64", "_used": bool})


def _cells(staged: list[StagedFile]) -> dict[tuple[str, str], dict[str, str]]:
    """(file, sheet name in the workbook) → field → column letter, for every staged table."""
    return {(sf.rel, sf.sheet_names.get(sheet, sheet)): dict(colmap)
            for sf in staged for sheet, colmap in sf.colmaps.items()}


def _unit_cells(chosen: dict[Key, dict[str, list[StagedFile]]]) -> dict[Key, dict[str, tuple[str, str, str]]]:
    """Unit key → field → (file, sheet, cell) of the key-value values in its `units` row."""
    out = {}
    for key, files in chosen.items():
        ref = _reference_file(files)
        where = {}
        for sheet, cells in ref.kv_cells.items():
            for name, cell in cells.items():
                where.setdefault(name, (ref.rel, ref.sheet_names.get(sheet, sheet), cell))
        out[key] = where
    return out


def _tag_issues(issues: list[Issue], groups: dict[Key, list[StagedFile]]) -> list[Issue]:
    """Earlier issues carry only their file; give them the unit and year of that file's group."""
    by_file = {sf.rel: key for key, files in groups.items() for sf in files}
    return [i.with_unit(*by_file[i.file]) if i.file in by_file and not i.unit else i for i in issues]
