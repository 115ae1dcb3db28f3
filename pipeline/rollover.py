"""Year rollover: last year's unit data → next year's templates, pre-filled with what carries over.

Source of last year's data: the machine-readable sidecar `output/<财年>/.data/<单位编码>.json` that `run` writes
beside each unit workbook (one JSON object per unit: its staged tables, total and indicators; UTF-8, NaN as null,
format tag `pipeline-unit-data` version 1). Reading it back does not depend on the layout of the output workbooks,
which may change from release to release. Where a folder has no sidecars (an output written before they existed, or
a folder of last year's *filled templates*), the folder is read as input and staged like `run` does.

What carries over into the templates of year Y (see `template_data`):
- 单位信息: 单位名称, 单位编码, 主管部门, 编制人数, 单位职能, 填报人, 联系电话; 财年 = Y (年末在职人数 and 填报日期
  are figures of the new year and stay blank);
- 预算执行: one row per last year's line (支出类别, 项目名称, 重点项目) with 上年结转数 = last year's 结转结余数;
- 三公经费: 上年预算数 / 上年实际支出数 = last year's 预算数 / 实际支出数 of the four rows;
- 绩效目标: last year's targets (序号, 一级/二级/三级指标, 比较符, 指标值, 计量单位, 取数公式, 分值) with 实际完成值,
  偏差原因 and 备注 cleared;
- 工作统计: one workbook per 填报科室 with the 统计项 names (业务条线, 计量单位, 汇总方式), months and 全年 cleared.

Everything but the two small file functions (`write_sidecar`, `write_rollover`) and `read_previous` is pure.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from .atomic import write_atomic
from .spec import BUDGET_EXECUTION, PERFORMANCE_TARGETS, WORK_STATISTICS, safe_name

DATA_DIR = ".data"
DATA_FORMAT = "pipeline-unit-data"
DATA_VERSION = 1

UNIT_CARRY = ("单位名称", "单位编码", "主管部门", "编制人数", "单位职能", "填报人", "联系电话")
BUDGET_LINE_CARRY = ("支出类别", "项目名称", "重点项目")
TARGET_CARRY = ("序号", "一级指标", "二级指标", "三级指标", "比较符", "指标值", "计量单位", "取数公式", "分值")
STAT_CARRY = ("统计项", "业务条线", "计量单位", "汇总方式")


# --- the sidecar ---------------------------------------------------------------------------------------------------


def _plain(v):
    """A JSON-safe value: NaN/NA → None, numpy scalars → Python, dates → ISO text."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v


class _Index:
    """Per table (of one evaluation), found once: the row positions of every unit key (a group-by; a mask per unit
    would be quadratic in the number of units), the columns a sidecar keeps and the JSON text of every row (a
    unit's rows are then taken by position, not sliced out of the DataFrame for every unit)."""

    def __init__(self):
        self.cache: dict = {}

    def positions(self, df: pd.DataFrame | None, code: str, year: int):
        """Row positions of the unit in df (an empty list when it has none)."""
        if df is None or df.empty:
            return []
        groups = self.cache.get(("groups", id(df)))
        if groups is None:
            groups = self.cache[("groups", id(df))] = _unit_groups(df)
        return groups.get((str(code), int(year)), [])

    def names(self, df: pd.DataFrame, keep_technical: bool = False) -> list[str]:
        """df's columns but the unit key, and but the technical `_` columns unless `keep_technical`."""
        key = ("names", id(df), keep_technical)
        if key not in self.cache:
            self.cache[key] = [c for c in df.columns if c not in ("单位编码", "财年")
                               and (keep_technical or not str(c).startswith("_"))]
        return self.cache[key]

    def json_rows(self, df: pd.DataFrame, names: list[str], extra: dict[str, list] | None = None) -> list[str]:
        """The JSON text of every row of df as a dict of plain values: the columns `names`, then the `extra`
        columns (lists aligned with df); built once per table, column by column."""
        key = ("json", id(df), tuple(names), tuple(extra or {}))
        if key not in self.cache:
            columns = {name: _json_column(df[name]) for name in names}
            # a repeated name keeps its place and takes the later values, as in a dict
            columns.update({name: list(map(_json_value, values)) for name, values in (extra or {}).items()})
            self.cache[key] = _json_rows(columns, len(df))
        return self.cache[key]


def _unit_groups(df: pd.DataFrame) -> dict[tuple[str, int], list[int]]:
    """(单位编码 as text, 财年 as int) → the positions of its rows in df, in order; rows with a missing key are left
    out, as groupby leaves them out. A loop rather than groupby(...).indices (pandas' group-by costs over a
    millisecond a call whatever the size): rows gathered by their key as stored, each distinct key then made text
    and int once, not once per row."""
    missing = (df["单位编码"].isna() | df["财年"].isna()).tolist()
    stored: dict[tuple, list[int]] = {}
    for i, code, year, skip in zip(range(len(df)), df["单位编码"].tolist(), df["财年"].tolist(), missing):
        if not skip:
            stored.setdefault((code, year), []).append(i)
    groups: dict[tuple[str, int], list[int]] = {}
    for (code, year), rows in stored.items():
        key = (str(code), int(year))
        # two stored keys of one unit (2023 and 2023.0): their rows merged back into table order
        groups[key] = sorted(groups[key] + rows) if key in groups else rows
    return groups


# --- JSON text as json.dumps(..., ensure_ascii=False, allow_nan=False) writes it, built from pieces ---------------
# A sidecar is written for every unit of a run; json.dumps of a whole record cost about a millisecond per unit
# (mostly encoding the same column names and figures over and over). The pieces below are encoded once per table
# and joined per unit; tests/test_rollover.py checks the result against json.dumps of the record, byte for byte.

_encode_str = json.encoder.encode_basestring  # the string encoder json.dumps uses with ensure_ascii=False


def _json_value(v) -> str:
    """json.dumps(v, ensure_ascii=False, allow_nan=False) of a plain value (floats are finite: NaN and inf are
    None by then); str, float, int and None directly, anything else through json.dumps."""
    cls = v.__class__
    if cls is str:
        return _encode_str(v)
    if cls is float:
        return float.__repr__(v)
    if v is None:
        return "null"
    if cls is int:
        return int.__repr__(v)
    return json.dumps(v, ensure_ascii=False, allow_nan=False)


def _json_object(items: list[tuple[str, str]]) -> str:
    """A JSON object from (key, JSON text of the value) pairs, in order."""
    return "{" + ", ".join(f"{_encode_str(k)}: {text}" for k, text in items) + "}"


def _json_array(texts: list[str]) -> str:
    """A JSON array from the JSON texts of its items."""
    return "[" + ", ".join(texts) + "]"


def _json_column(s: pd.Series) -> list[str]:
    """_json_value(_plain(v)) of every value of a column, column-wise (floats and text directly)."""
    values = s.tolist()  # Python scalars for numeric dtypes
    if s.dtype.kind == "f":
        return _json_floats(values)
    return [_encode_str(v) if v.__class__ is str else "null" if v is None or (v.__class__ is float and math.isnan(v))
            else _json_value(_plain(v)) for v in values]


def _json_floats(values: list[float]) -> list[str]:
    """The JSON text of each float: its repr, null for NaN and ±inf. Figures repeat (months, amounts) and a float's
    repr costs far more than a dict look-up, so each distinct value is formatted once; not zeros, as 0.0 and -0.0
    are one key of a dict but two texts."""
    texts: dict[float, str] = {}
    out = []
    for v in values:
        text = texts.get(v)
        if text is None:
            text = float.__repr__(v) if math.isfinite(v) else "null"
            if v:
                texts[v] = text
        out.append(text)
    return out


def _json_rows(columns: dict[str, list[str]], n: int) -> list[str]:
    """The JSON object text of each of n rows of some columns of JSON texts (name → texts, n each)."""
    if not columns:
        return ["{}"] * n
    template = "{" + ", ".join(_encode_str(name).replace("%", "%%") + ": %s" for name in columns) + "}"
    return [template % row for row in zip(*columns.values())]


def _unit_rows(index: _Index, df: pd.DataFrame | None, code: str, year: int, names: list[str] | None = None,
               extra: dict[str, list] | None = None) -> list[str]:
    """The JSON texts of the unit's rows of df as dicts of plain values: the columns `names` (default: all but the
    unit key and the technical `_` columns), then the `extra` columns (lists aligned with df)."""
    positions = index.positions(df, code, year)
    if not len(positions):
        return []
    texts = index.json_rows(df, index.names(df) if names is None else names, extra)
    return [texts[i] for i in positions]


def unit_text(ds, code: str, year: int, totals: pd.DataFrame | None = None,
              indicators: pd.DataFrame | None = None, index: _Index | None = None) -> str:
    """One unit's data as one line of JSON (the sidecar's text, without its newline): its `units` row, staged
    budget lines, 三公经费, targets (指标值 as typed), work statistics (with the 填报科室 of their file) and, when
    scored, its total and indicators. Values are plain (NaN/NA → null, numpy scalars → Python, dates → ISO text).
    Built from pieces encoded once per table, it is the text json.dumps(record, ensure_ascii=False,
    allow_nan=False) gives for the record as a dict (tests/test_rollover.py builds that dict cell by cell and
    compares). `index` (shared over calls on the same tables) makes many calls linear."""
    index = index if index is not None else _Index()
    rows = lambda df, **kw: _unit_rows(index, df, code, year, **kw)  # noqa: E731
    sections = None
    if ds.work_stats is not None and len(ds.work_stats):
        sections = index.cache.get("sections")
        if sections is None:
            of_file = {f: _plain(section) for f, section in zip(ds.files["文件"], ds.files["填报科室"])}
            sections = index.cache["sections"] = [of_file.get(f) for f in ds.work_stats["_file"].tolist()]
    unit = rows(ds.units)
    record = [
        ("格式", _json_value(DATA_FORMAT)), ("版本", _json_value(DATA_VERSION)), ("单位编码", _json_value(code)),
        ("财年", _json_value(int(year))),
        ("unit", unit[0] if unit else _json_object([("单位编码", _json_value(code))])),
        ("budget_lines", _json_array(rows(ds.budget_lines))),
        ("sangong", _json_array(rows(ds.sangong))),
        ("targets", _json_array(rows(ds.targets))),
        ("work_stats", _json_array(rows(ds.work_stats, extra={"填报科室": sections}) if sections is not None else [])),
    ]
    if totals is not None:  # the unit's first row, every column but the key, and the names of the 一级指标 columns
        level1 = [c for c in index.names(totals) if c not in ("总分", "等级")]
        found = rows(totals, names=index.names(totals, keep_technical=True), extra={"_level1": [level1] * len(totals)})
        if found:
            record.append(("totals", found[0]))
    if indicators is not None:
        found = rows(indicators, names=["计算方法", "值", "分子", "分母", "状态"])
        if found:
            record.append(("indicators", _json_array(found)))
    return _json_object(record)


def unit_record(ds, code: str, year: int, totals: pd.DataFrame | None = None,
                indicators: pd.DataFrame | None = None, index: _Index | None = None) -> dict:
    """One unit's data as a JSON-ready dict (unit_text read back: the dict its sidecar holds)."""
    return json.loads(unit_text(ds, code, year, totals, indicators, index))


def record_of(ev, code: str, year: int) -> dict:
    """unit_record of a unit of an Evaluation, read back from its sidecar text once per unit (kept on the
    evaluation with the group-by index: the 年度对比 asks for it)."""
    memo = _index_of(ev).cache.setdefault("records", {})
    key = (str(code), int(year))
    if key not in memo:
        memo[key] = json.loads(_text_of(ev, code, year))
    return memo[key]


def previous_record(ev, code: str, year: int, output_dir: Path) -> dict | None:
    """The unit's fiscal year before `year`: from the evaluation when its input holds that year, else from the
    sidecar an earlier run wrote into output_dir/<year − 1>/.data/; None when neither exists."""
    prev = int(year) - 1
    if _evaluated(ev, code, prev):
        return record_of(ev, code, prev)
    return _unit_data(_written_sidecar(ev, code, prev, output_dir))


def _index_of(ev) -> _Index:
    """The group-by index and memos kept on an Evaluation (records, their texts)."""
    return ev.__dict__.setdefault("_rollover_index", _Index())


def _evaluated(ev, code: str, year: int) -> bool:
    """Whether the evaluation holds the unit in that fiscal year."""
    return len(_index_of(ev).positions(ev.dataset.units, code, year)) > 0


def _text_of(ev, code: str, year: int) -> bytes:
    """The sidecar bytes of a unit of an Evaluation (unit_text and a newline, UTF-8), built once (its sidecar, the
    next year's unit hash and its record)."""
    index = _index_of(ev)
    memo = index.cache.setdefault("texts", {})
    key = (str(code), int(year))
    if key not in memo:
        text = unit_text(ev.dataset, code, int(year), ev.scores.totals, ev.indicators, index)
        memo[key] = (text + "\n").encode("utf-8")
    return memo[key]


def previous_digest(ev, code: str, year: int, output_dir: Path) -> str:
    """A fingerprint of what previous_record reads, for the incremental run's unit hash (the 年度对比 sheet depends
    on it): the previous year's record when the evaluation holds it, else the bytes of its sidecar file (empty when
    there is none)."""
    prev = int(year) - 1
    text = _text_of(ev, code, prev) if _evaluated(ev, code, prev) else _written_sidecar(ev, code, prev, output_dir)
    return hashlib.sha256(text).hexdigest()


def _written_sidecar(ev, code: str, year: int, output_dir: Path) -> bytes:
    """The bytes of the unit's sidecar of `year` in output_dir (empty when there is none), read once per evaluation:
    the unit hash (previous_digest) and the 年度对比 (previous_record) both ask for it."""
    memo = _index_of(ev).cache.setdefault("written", {})
    key = (str(code), int(year), str(output_dir))
    if key not in memo:
        try:
            memo[key] = data_path(output_dir, year, code).read_bytes()
        except OSError:
            memo[key] = b""
    return memo[key]


def write_sidecar(ev, unit: dict, output_dir: Path) -> dict[str, str]:
    """Write the unit's sidecar output_dir/<财年>/.data/<单位编码>.json atomically; returns {path relative to
    output_dir: SHA-256}, the form of the incremental run's manifest."""
    text = _text_of(ev, unit["单位编码"], unit["财年"])
    path = write_atomic(data_path(output_dir, unit["财年"], unit["单位编码"]), text)
    return {path.relative_to(output_dir).as_posix(): hashlib.sha256(text).hexdigest()}


def read_unit_data(path: Path) -> dict | None:
    """A sidecar written by write_sidecar, or None when missing, unreadable or of another format."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return _unit_data(data)


def _unit_data(data: bytes) -> dict | None:
    """The record of a sidecar's bytes (UTF-8 JSON), or None when it is not one (empty: no sidecar)."""
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("格式") != DATA_FORMAT or record.get("版本") != DATA_VERSION:
        return None
    return record


def data_path(output_dir: Path, year: int, code: str) -> Path:
    return Path(output_dir) / str(year) / DATA_DIR / f"{safe_name(code, '未编码单位')}.json"


def read_previous(source: Path, year: int) -> tuple[list[dict], str]:
    """Last year's unit records for templates of `year`, and a sentence saying where they came from.

    `source` may be an output year folder (`output/2023`, holding `.data/`), the output root (`output`, holding
    `2023/.data/`) or a folder of filled templates (staged like `run`). Records of year − 1 are used; when the folder
    holds none of that year, those of its latest earlier year."""
    source = Path(source)
    for folder in (source / DATA_DIR, source / str(year - 1) / DATA_DIR):
        if folder.is_dir():
            records = [r for p in sorted(folder.glob("*.json")) if (r := read_unit_data(p))]
            if records:
                return _latest_before(records, year), f"读取上年数据：{folder}"
    from .run import load_dataset  # late: run imports the whole pipeline

    ds, _ = load_dataset(source)
    index = _Index()
    records = [unit_record(ds, u["单位编码"], int(u["财年"]), index=index) for u in ds.units.to_dict("records")]
    return _latest_before(records, year), f"读取上年填报表格：{source}"


def _latest_before(records: list[dict], year: int) -> list[dict]:
    years = sorted({r["财年"] for r in records if r["财年"] < year})
    if not years:
        return []
    chosen = year - 1 if year - 1 in years else years[-1]
    return sorted((r for r in records if r["财年"] == chosen), key=lambda r: str(r["单位编码"]))


# --- previous year → template data (pure) ---------------------------------------------------------------------------


def _carried(row: dict, keys) -> dict:
    """The non-blank values of `keys` in row, as plain Python (a value for write_workbook)."""
    return {k: v for k in keys if (v := _plain(row.get(k))) is not None}


def template_data(record: dict, year: int) -> dict:
    """Template type → data for templates.write_workbook; 工作统计表 → list of (填报科室 or None, data)."""
    unit = record.get("unit") or {}
    info = _carried(unit, UNIT_CARRY)
    info.update(单位编码=str(record["单位编码"]), 财年=year)
    key_info = {k: info[k] for k in ("单位名称", "单位编码", "财年") if k in info}
    lines = []
    for line in record.get("budget_lines") or []:
        row = _carried(line, BUDGET_LINE_CARRY)
        row["上年结转数"] = _plain(line.get("结转结余数"))  # last year's 结转结余 is this year's 上年结转
        lines.append({k: v for k, v in row.items() if v is not None})
    sangong = [{"项目": r.get("项目"), "上年预算数": _plain(r.get("预算数")), "上年实际支出数": _plain(r.get("实际支出数"))}
               for r in record.get("sangong") or [] if r.get("项目")]
    budget = {"单位信息": info, "预算执行": lines, "三公经费": [{k: v for k, v in r.items() if v is not None}
                                                              for r in sangong]}
    targets = [_carried(t, TARGET_CARRY) for t in record.get("targets") or []]
    sections: dict[object, list[dict]] = {}
    for s in record.get("work_stats") or []:
        row = _carried(s, STAT_CARRY)
        if row.get("统计项"):
            sections.setdefault(s.get("填报科室"), []).append(row)
    stats = [(section, {"单位信息": {**key_info, **({"填报科室": section} if section else {})}, "工作统计": rows})
             for section, rows in sections.items()]
    if not stats:
        stats = [(None, {"单位信息": dict(key_info)})]
    return {BUDGET_EXECUTION.type: budget, PERFORMANCE_TARGETS.type: {"单位信息": key_info, "绩效目标": targets},
            WORK_STATISTICS.type: stats}


def unit_folder_name(record: dict) -> str:
    name = safe_name((record.get("unit") or {}).get("单位名称"), "未命名单位")
    return f"{safe_name(record['单位编码'], '未编码单位')}_{name}"


def write_rollover(records: list[dict], year: int, out_dir: Path) -> list[Path]:
    """Write the pre-filled templates of `year` for every record into `out_dir/<单位编码>_<单位名称>/`."""
    from .templates import write_workbook

    paths = []
    for record in records:
        folder = Path(out_dir) / unit_folder_name(record)
        data = template_data(record, year)
        meta = {"上年数据": f"{record['财年']} 年 {record['单位编码']}"}
        for spec in (BUDGET_EXECUTION, PERFORMANCE_TARGETS):
            path = folder / f"{spec.type}_{year}.xlsx"
            write_workbook(spec, path, year, data[spec.type], meta)
            paths.append(path)
        for section, stat_data in data[WORK_STATISTICS.type]:
            suffix = safe_name(section, "") if section else ""
            path = folder / (f"{WORK_STATISTICS.type}_{year}_{suffix}.xlsx" if suffix
                             else f"{WORK_STATISTICS.type}_{year}.xlsx")
            write_workbook(WORK_STATISTICS, path, year, stat_data, meta)
            paths.append(path)
    return paths
