"""Data problems as values: every stage returns the issues it found instead of raising.

Grain of the issues table: one row per problem found, pointing at the file, sheet and cell a user must fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from .spec import SEVERITY_ERROR, SEVERITY_INFO, SEVERITY_WARNING

SEVERITY_ORDER = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 1, SEVERITY_INFO: 2}
ISSUE_COLUMNS = ("严重程度", "代码", "单位编码", "财年", "文件", "工作表", "单元格", "问题", "原值")


@dataclass(frozen=True)
class Issue:
    """One data problem. `message` is Chinese and says how to fix it; `code` is a stable English slug that tests
    and scripts match on (e.g. `budget-total-mismatch`)."""

    severity: str
    code: str
    message: str
    file: str = ""
    sheet: str = ""
    cell: str = ""
    value: str = ""
    unit: str = ""
    year: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_ORDER:
            raise ValueError(f"unknown severity {self.severity!r}")

    def with_unit(self, unit: str, year: int | None) -> "Issue":
        d = asdict(self)
        d.update(unit=unit, year=year)
        return Issue(**d)


def located(row: dict, field: str, cell) -> dict:
    """Where-keywords for an Issue about `field` of a staged table row; `cell` is `Dataset.cell`."""
    return dict(file=row["_file"], sheet=row["_sheet"], cell=cell(row, field), unit=row["单位编码"], year=row["财年"])


def error(code: str, message: str, **where) -> Issue:
    return Issue(SEVERITY_ERROR, code, message, **where)


def warning(code: str, message: str, **where) -> Issue:
    return Issue(SEVERITY_WARNING, code, message, **where)


def info(code: str, message: str, **where) -> Issue:
    return Issue(SEVERITY_INFO, code, message, **where)


def issues_frame(issues: list[Issue]) -> pd.DataFrame:
    """The issues as a table with the Chinese column names of the `数据问题` sheet, errors first."""
    rows = [
        (i.severity, i.code, i.unit, i.year, i.file, i.sheet, i.cell, i.message, i.value) for i in issues
    ]
    df = pd.DataFrame(rows, columns=list(ISSUE_COLUMNS))
    order = df["严重程度"].map(SEVERITY_ORDER)
    return df.assign(_o=order).sort_values(["_o", "单位编码", "文件", "工作表"], kind="stable").drop(columns="_o") \
        .reset_index(drop=True)
