"""Small real .xlsx fixtures for load/staging/dataset tests, written with openpyxl into a tmp_path.

Independent of `pipeline.templates` on purpose: the tests state the layout a user may leave behind (rows inserted
above the header, reordered or extra columns, renamed sheets, no `_meta`), not what the generator writes.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from pipeline.spec import BUDGET_EXECUTION, PERFORMANCE_TARGETS, WORK_STATISTICS, TemplateSpec

UNIT = {"单位名称": "测试市场监督管理局", "单位编码": "430399001", "财年": 2023}

BUDGET_LINES = [
    {"支出类别": "基本支出-人员经费", "年初预算数": 300, "全年预算数": 300, "实际支出数": 298.5, "结转结余数": 1.5},
    {"支出类别": "基本支出-公用经费", "年初预算数": 50, "全年预算数": 50, "实际支出数": 49},
    {"支出类别": "项目支出", "项目名称": "执法专项", "重点项目": "是", "年初预算数": 120.3,
     "全年预算数": 120.3, "实际支出数": 100},
]
SANGONG = [
    {"项目": item, "预算数": 1, "实际支出数": 0.5}
    for item in ("因公出国（境）费", "公务用车购置费", "公务用车运行维护费", "公务接待费")
]
MANAGEMENT = [{"评价内容": "绩效目标合理性", "自评结论": "达成", "得分比例": 90}]
OTHER = {"政府采购预算数": 25, "政府采购实际金额": 24.5, "固定资产总额": 320.5, "在用固定资产总额": 298.6}
TARGETS = [
    {"序号": 1, "一级指标": "产出指标", "二级指标": "数量指标", "三级指标": "检查次数", "比较符": "≥",
     "指标值": 80, "计量单位": "次", "取数公式": "[检查次数]", "分值": 5},
]
WORK = [{"统计项": "检查次数", "计量单位": "次", "汇总方式": "合计", "1月": 7, "2月": 6, "全年": 13}]


def write_xlsx(path: Path, sheets: dict[str, list[list]], meta: dict | None = None) -> Path:
    """Write `sheets` (name → rows of cell values, row 1 first) and, when given, a hidden `_meta` sheet."""
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
    if meta is not None:
        ws = wb.create_sheet("_meta")
        for r, (k, v) in enumerate(meta.items(), start=1):
            ws.cell(row=r, column=1, value=k)
            ws.cell(row=r, column=2, value=v)
        ws.sheet_state = "hidden"
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def kv_rows(template: TemplateSpec, sheet: str, values: dict) -> list[list]:
    """A key-value sheet: one row per spec field (label in A, value in B), title row first as generated ones have."""
    rows = [[f"{sheet}（B 列填写）"]]
    rows += [[f.label, values.get(f.name)] for f in template.sheet(sheet).fields]
    return rows


def table_rows(template: TemplateSpec, sheet: str, records: list, *, offset: int = 1, order: list[str] | None = None,
               extra: dict[str, list] | None = None) -> list[list]:
    """A table sheet: `offset` rows above the header (row 1 a title), the header of spec labels in `order` (default
    spec order), then one row per record. A record is a dict field → value, or a list written as is (raw rows such
    as a 合计 line). `extra` appends user columns: header label → values per record."""
    fields = {f.name: f for f in template.sheet(sheet).fields}
    names = order or list(fields)
    extra = extra or {}
    rows: list[list] = [[f"{sheet}表"]] + [[] for _ in range(offset - 1)]
    rows.append([fields[n].label for n in names] + list(extra))
    for i, rec in enumerate(records):
        if isinstance(rec, dict):
            rows.append([rec.get(n) for n in names] + [vals[i] for vals in extra.values()])
        else:
            rows.append(list(rec))
    return rows


def meta_for(template: TemplateSpec, year: int = 2023) -> dict:
    return {"模板类型": template.type, "模板版本": template.version, "财年": year}


def budget_book(path: Path, *, unit: dict | None = None, lines: list | None = None, meta: bool = True,
                rename: dict[str, str] | None = None, **table_opts) -> Path:
    """A filled 预算执行表. `table_opts` go to the 预算执行 sheet (offset, order, extra); `rename` renames sheets."""
    t, unit = BUDGET_EXECUTION, unit or UNIT
    sheets = {
        "单位信息": kv_rows(t, "单位信息", unit),
        "预算执行": table_rows(t, "预算执行", BUDGET_LINES if lines is None else lines, **table_opts),
        "三公经费": table_rows(t, "三公经费", SANGONG),
        "其他指标": kv_rows(t, "其他指标", OTHER),
        "管理情况": table_rows(t, "管理情况", MANAGEMENT),
    }
    sheets = {(rename or {}).get(k, k): v for k, v in sheets.items()}
    return write_xlsx(path, sheets, meta_for(t, unit.get("财年", 2023)) if meta else None)


def targets_book(path: Path, *, unit: dict | None = None, targets: list | None = None, meta: bool = True) -> Path:
    t, unit = PERFORMANCE_TARGETS, unit or UNIT
    sheets = {"单位信息": kv_rows(t, "单位信息", unit),
              "绩效目标": table_rows(t, "绩效目标", TARGETS if targets is None else targets)}
    return write_xlsx(path, sheets, meta_for(t) if meta else None)


def work_book(path: Path, *, unit: dict | None = None, stats: list | None = None, section: str = "执法股",
              meta: bool = True, **table_opts) -> Path:
    t, unit = WORK_STATISTICS, dict(unit or UNIT, 填报科室=section)
    sheets = {"单位信息": kv_rows(t, "单位信息", unit),
              "工作统计": table_rows(t, "工作统计", WORK if stats is None else stats, **table_opts)}
    return write_xlsx(path, sheets, meta_for(t) if meta else None)
