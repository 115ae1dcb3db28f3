"""Common indicators on hand-made budget figures; every expectation is hand arithmetic on the rows below."""

import math

import pandas as pd
import pytest

from pipeline.indicators import compute_indicators, unit_amounts

UNITS = pd.DataFrame([
    {"单位编码": "U1", "财年": 2023, "编制人数": 30, "年末在职人数": 28, "政府采购预算数": 25.0,
     "政府采购实际金额": 24.5, "固定资产总额": 320.5, "在用固定资产总额": 298.6},
    {"单位编码": "U2", "财年": 2023, "编制人数": 10, "年末在职人数": 11, "政府采购预算数": 0.0,
     "政府采购实际金额": 0.0, "固定资产总额": None, "在用固定资产总额": None},
])


def line(unit, cat, b0, b, e, c0=0.0, u=0.0, d=0.0, r=0.0, key="否"):
    return {"单位编码": unit, "财年": 2023, "支出类别": cat, "重点项目": key, "上年结转数": c0, "年初预算数": b0,
            "预算调增数": u, "预算调减数": d, "全年预算数": b, "实际支出数": e, "结转结余数": r}


LINES = pd.DataFrame([
    line("U1", "基本支出-人员经费", 452.30, 471.71, 471.71, u=26.32, d=5.10),
    line("U1", "基本支出-公用经费", 70.00, 70.00, 70.00),
    line("U1", "项目支出", 0.0, 0.0, 0.0),
    line("U2", "基本支出-人员经费", 100.0, 100.0, 90.0, r=10.0),
    line("U2", "项目支出", 40.0, 50.0, 45.0, c0=10.0, r=5.0, key="是"),
    line("U2", "项目支出", 10.0, 10.0, 10.0),
])

SANGONG = pd.DataFrame([
    {"单位编码": "U1", "财年": 2023, "项目": "公务接待费", "预算数": 3.6, "实际支出数": 3.3, "上年预算数": 3.8, "上年实际支出数": 3.4},
    {"单位编码": "U1", "财年": 2023, "项目": "公务用车运行维护费", "预算数": 6.0, "实际支出数": 5.4, "上年预算数": 6.5, "上年实际支出数": 6.1},
    {"单位编码": "U2", "财年": 2023, "项目": "公务接待费", "预算数": 0.0, "实际支出数": 0.0, "上年预算数": 0.0, "上年实际支出数": 0.0},
])


@pytest.fixture(scope="module")
def ind():
    out = compute_indicators(unit_amounts(UNITS, LINES, SANGONG))
    return {(r["单位编码"], r["计算方法"]): r for r in out.to_dict("records")}


@pytest.mark.parametrize("unit, name, value", [
    ("U1", "预算执行率", 541.71 / 541.71),                 # 471.71 + 70 = 541.71 both
    ("U1", "预算调整率", (26.32 + 5.10) / 522.30),        # 31.42 / 522.30
    ("U1", "结转结余率", 0.0),
    ("U1", "公用经费控制率", 1.0),                          # 70 / 70
    ("U1", "项目支出预算控制率", 1.0),                      # 0 / 0 → 100% as the report does
    ("U1", "三公经费控制率", 8.7 / 9.6),                    # (3.3 + 5.4) / (3.6 + 6.0) = 0.90625
    ("U1", "三公经费变动率", (8.7 - 9.5) / 9.5),            # last year 3.4 + 6.1 = 9.5
    ("U1", "政府采购执行率", 24.5 / 25.0),
    ("U1", "在职人员控制率", 28 / 30),
    ("U1", "固定资产利用率", 298.6 / 320.5),
    ("U2", "预算执行率", 145.0 / 160.0),                   # 90 + 45 + 10 over 100 + 50 + 10
    ("U2", "结转结余率", 15.0 / 160.0),
    ("U2", "结转结余变动率", (15.0 - 10.0) / 10.0),
    ("U2", "项目支出预算控制率", 55.0 / 60.0),
    ("U2", "重点支出安排率", 50.0 / 60.0),
    ("U2", "在职人员控制率", 11 / 10),
])
def test_values(ind, unit, name, value):
    r = ind[(unit, name)]
    assert r["状态"] == "正常"
    assert r["值"] == pytest.approx(value)


@pytest.mark.parametrize("unit, name, status", [
    ("U1", "重点支出安排率", "不适用"),        # no 项目支出 budget at all
    ("U1", "结转结余变动率", "无法计算"),      # 上年结转数 0: SCORING says do not divide
    ("U2", "公用经费控制率", "不适用"),        # no 公用经费 line
    ("U2", "三公经费控制率", "不适用"),        # 0 budget, 0 spent
    ("U2", "政府采购执行率", "不适用"),
    ("U2", "固定资产利用率", "无法计算"),      # not filled
])
def test_zero_denominators_never_divide(ind, unit, name, status):
    r = ind[(unit, name)]
    assert r["状态"] == status
    assert math.isnan(r["值"])
    assert r["说明"]
