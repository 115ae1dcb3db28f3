"""Work-statistics year values and targets' actual values; expectations are hand arithmetic."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.intermediate import (
    aggregate_work_stats,
    resolve_targets,
    split_target_value,
    year_values,
)
from pipeline.spec import MONTHS


def cell(row, field):
    return f"{field}{row['_row']}"


def stat(name, months, how=None, annual=None, file="a.xlsx", unit="U1", row=3):
    r = {"单位编码": unit, "财年": 2023, "统计项": name, "业务条线": None, "计量单位": "次", "汇总方式": how,
         "全年": annual, "_file": file, "_sheet": "工作统计", "_row": row}
    r.update({m: (months[i] if i < len(months) else None) for i, m in enumerate(MONTHS)})
    return r


def test_year_values_by_aggregation():
    m = np.array([[1, 2, 3] + [np.nan] * 9, [5, 7, np.nan, 9] + [np.nan] * 8, [2, 4] + [np.nan] * 10,
                  [np.nan] * 12], dtype=float)
    out = year_values(m, pd.Series(["合计", "期末", "平均", None]))
    assert out[0] == 6          # 1 + 2 + 3
    assert out[1] == 9          # last filled month is April
    assert out[2] == 3          # (2 + 4) / 2
    assert math.isnan(out[3])   # nothing filled


def test_aggregate_combines_files_and_checks_annual():
    ws = pd.DataFrame([
        stat("特种设备监督检查次数", [7] * 11 + [4]),                       # 7 × 11 + 4 = 81
        stat("12345转办件数", [250] * 11, annual=2753, file="b.xlsx"),      # months 2750 ≠ 2753 → warning
        stat("宣传次数", [1], file="a.xlsx"),
        stat("宣传次数", [0, 1], file="b.xlsx"),                            # two files: 1 + 1 = 2
        stat("只填全年", [], annual=12),
        stat("在册单位数", [40, 41, 43], how="期末"),
    ])
    stats, issues = aggregate_work_stats(ws, cell)
    v = dict(zip(stats["统计项"], stats["年度值"]))
    assert v == {"特种设备监督检查次数": 81, "12345转办件数": 2750, "宣传次数": 2, "只填全年": 12, "在册单位数": 43}
    assert [(i.code, i.cell, i.file) for i in issues] == [("workstat-annual-mismatch", "全年3", "b.xlsx")]
    assert "a.xlsx；b.xlsx" in set(stats["来源"])


@pytest.mark.parametrize("raw, expected", [
    ("≥80次", ("≥", 80.0, "次")),
    ("不低于70%", ("≥", 70.0, "%")),
    ("≤ 5", ("≤", 5.0, "")),
    (">=1,000户", ("≥", 1000.0, "户")),
    (81, (None, 81.0, "")),
    ("达成", (None, None, "达成")),
    (None, (None, None, "")),
])
def test_split_target_value(raw, expected):
    assert split_target_value(raw) == expected


def target(name, cmp, value, actual=None, formula=None, unit="%", row=5):
    return {"单位编码": "U1", "财年": 2023, "序号": row - 4, "一级指标": "效益指标", "二级指标": "社会效益指标",
            "三级指标": name, "比较符": cmp, "指标值": value, "计量单位": unit, "实际完成值": actual, "取数公式": formula,
            "分值": None, "偏差原因分析及改进措施": None, "_file": "t.xlsx", "_sheet": "绩效目标", "_row": row}


def test_resolve_targets_formula_wins_and_typed_slip_is_warned():
    stats = pd.DataFrame({"单位编码": ["U1", "U1"], "财年": [2023, 2023], "统计项": ["办结", "转办"],
                          "年度值": [2532.0, 2753.0]})
    t = pd.DataFrame([
        target("12345热线办结率", "≥", 90, actual=93, formula="[办结]/[转办]*100", row=5),
        target("同值", "≥", 90, actual=91.97, formula="[办结]/[转办]*100", row=6),   # 91.9724 → 91.97: no warning
        target("特种设备检查", None, "≥80次", actual=81, unit=None, row=7),
        target("满意度", "定性", "达成", actual="部分达成", unit=None, row=8),
        target("缺实际值", "≥", 10, row=9),
        target("坏公式", "≥", 10, actual=12, formula="[不存在]", row=10),
    ])
    out, issues = resolve_targets(t, stats, cell)
    rows = {r["三级指标"]: r for r in out.to_dict("records")}
    assert rows["12345热线办结率"]["实际完成值"] == pytest.approx(2532 / 2753 * 100)   # 91.97…
    assert rows["12345热线办结率"]["实际完成值文本"] == "91.97%"
    assert rows["特种设备检查"]["比较符"] == "≥" and rows["特种设备检查"]["指标值"] == 80
    assert rows["特种设备检查"]["计量单位"] == "次"
    assert rows["满意度"]["结论"] == "部分达成" and math.isnan(rows["满意度"]["指标值"])
    assert rows["坏公式"]["实际完成值"] == 12           # falls back to the typed value
    assert [(i.severity, i.code, i.cell) for i in issues] == [
        ("警告", "actual-formula-mismatch", "实际完成值5"),
        ("错误", "target-actual-missing", "实际完成值9"),
        ("错误", "formula-error", "取数公式10"),
    ]
