"""Scoring rules, table-driven. Every expected figure is worked out by hand in the comment beside it."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from pipeline import spec
from pipeline.framework import framework_workbook_data, load_framework
from pipeline.scoring import DETAIL_COLUMNS, completion_rate, completion_rates, score_units

from test_framework import write_framework

NAN = float("nan")


def _framework(tmp_path_factory, key, edit=None):
    data, meta = framework_workbook_data(key)
    data = copy.deepcopy(data)
    if edit:
        edit(data)
    path = write_framework(tmp_path_factory.mktemp("rules") / f"{key}.xlsx", data, meta)
    fw, issues = load_framework(path)
    assert fw is not None, issues
    return fw


@pytest.fixture(scope="module")
def fw_a(tmp_path_factory):
    return _framework(tmp_path_factory, "A")


@pytest.fixture(scope="module")
def fw_b(tmp_path_factory):
    return _framework(tmp_path_factory, "B")


# ---------------------------------------------------------------------------------------------------------------
# Input builders (the contracts of docs/ARCHITECTURE.md)

def indicator(unit, calc, value, state="正常", note=None, numerator=NAN, reference=NAN, year=2023):
    return dict(单位编码=unit, 财年=year, 计算方法=calc, 值=value, 分子=numerator, 分母=NAN, 参照=reference, 状态=state,
                说明=note)


def management_row(unit, item, conclusion, ratio=NAN, row=3, year=2023):
    return dict(单位编码=unit, 财年=year, 评价内容=item, 自评结论=conclusion, 得分比例=ratio, 单元格=f"管理情况!C{row}",
                _file="预算执行表.xlsx")


def target(unit, level1, op, value, actual, points=NAN, conclusion=None, name="指标", seq=1, unit_of="次",
           year=2023, row=5):
    return dict(单位编码=unit, 财年=year, 序号=seq, 一级指标=level1, 二级指标="数量指标", 三级指标=name, 比较符=op,
                计量单位=unit_of, 分值=points, 指标值=value, 实际完成值=actual, 结论=conclusion,
                指标值文本=None if np.isnan(value) else f"{value:g}", 实际完成值文本=None, _file="绩效目标表.xlsx",
                _sheet="绩效目标", _row=row)


def frames(indicators=(), management=(), targets=()):
    ind = pd.DataFrame(list(indicators), columns=["单位编码", "财年", "计算方法", "值", "分子", "分母", "参照", "状态", "说明"])
    man = pd.DataFrame(list(management), columns=["单位编码", "财年", "评价内容", "自评结论", "得分比例", "单元格", "_file"])
    tg = pd.DataFrame(list(targets), columns=list(target("u", "产出指标", "≥", 1, 1)))
    return ind, man, tg


def item(scores, unit, code):
    rows = scores.details[(scores.details["单位编码"] == unit) & (scores.details["指标编码"] == code)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------------------------
# Common indicators under framework A: (case, calc, value, numerator, reference, code, expected 得分, expected 扣分说明)

INDICATOR_CASES = [
    # 超出扣分 (在职人员控制率, 5 points, −0.5 per point over 100%)
    ("staff-100", "在职人员控制率", 1.00, NAN, NAN, "A03", 5.00, ""),
    ("staff-105", "在职人员控制率", 1.05, NAN, NAN, "A03", 2.50,  # 5 − 5 × 0.5 = 2.5
     "在职人员控制率 105.00%，超出 100% 5.00 个百分点，每点扣 0.5 分，扣 2.50 分"),
    ("staff-120-floor", "在职人员控制率", 1.20, NAN, NAN, "A03", 0.00,  # 5 − 20 × 0.5 = −5 → floor 0
     "在职人员控制率 120.00%，超出 100% 20.00 个百分点，每点扣 0.5 分，扣 5.00 分（扣完为止）"),
    # 三公经费变动率: threshold 0, −0.5 a point
    ("sangong-change-4pct", "三公经费变动率", 0.04, NAN, NAN, "A04", 3.00,  # 5 − 4 × 0.5 = 3
     "“三公经费”变动率 4.00%，超出 0% 4.00 个百分点，每点扣 0.5 分，扣 2.00 分"),
    ("sangong-change-down", "三公经费变动率", -0.10, NAN, NAN, "A04", 5.00, ""),
    # 三公经费控制率: 8.7 / 9.6 = 0.90625 ≤ 100% → full 3
    ("sangong-control-90.625", "三公经费控制率", 8.7 / 9.6, NAN, NAN, "A10", 3.00, ""),
    ("sangong-control-102", "三公经费控制率", 1.02, NAN, NAN, "A10", 1.00,  # 3 − 2 × 1 = 1
     "“三公经费”控制率 102.00%，超出 100% 2.00 个百分点，每点扣 1 分，扣 2.00 分"),
    ("sangong-control-105", "三公经费控制率", 1.05, NAN, NAN, "A10", 0.00,  # 3 − 5 × 1 < 0 → 0
     "“三公经费”控制率 105.00%，超出 100% 5.00 个百分点，每点扣 1 分，扣 3.00 分（扣完为止）"),
    ("public-funds-101", "公用经费控制率", 1.01, NAN, NAN, "A09", 2.50, None),  # 3 − 1 × 0.5 = 2.5
    # 低于扣分 (预算执行率, 5 points, −0.4 per point below 100%)
    ("execution-99.17", "预算执行率", 0.9917, NAN, NAN, "A06", 4.67,  # 5 − 0.83 × 0.4 = 4.668 → 4.67
     "预算执行率 99.17%，低于 100% 0.83 个百分点，每点扣 0.4 分，扣 0.33 分"),
    ("execution-100", "预算执行率", 541.71 / 541.71, NAN, NAN, "A06", 5.00, ""),
    ("execution-over", "预算执行率", 1.02, NAN, NAN, "A06", 5.00, ""),
    ("execution-80", "预算执行率", 0.80, NAN, NAN, "A06", 0.00, None),  # 5 − 20 × 0.4 = −3 → 0
    ("execution-95", "预算执行率", 0.95, NAN, NAN, "A06", 3.00, None),  # 5 − 5 × 0.4 = 3 ("−2 per 5 points")
    # 分档 (重点支出安排率: ≥90% 5, ≥80% 4, ≥70% 3, ≥60% 2, else 0)
    ("key-90", "重点支出安排率", 0.90, NAN, NAN, "A05", 5.00, ""),
    ("key-89.99", "重点支出安排率", 0.8999, NAN, NAN, "A05", 4.00, "重点支出安排率 89.99%，按“≥80%”档得 4.00 分"),
    ("key-80", "重点支出安排率", 0.80, NAN, NAN, "A05", 4.00, None),
    ("key-70", "重点支出安排率", 0.70, NAN, NAN, "A05", 3.00, None),
    ("key-60", "重点支出安排率", 0.60, NAN, NAN, "A05", 2.00, None),
    ("key-59.99", "重点支出安排率", 0.5999, NAN, NAN, "A05", 0.00, "重点支出安排率 59.99%，按“其他”档得 0.00 分"),
    # 分档 (预算调整率: ＝0 3, ≤10% 2, ≤20% 1, ≤30% 0.5, else 0)
    ("adjust-0", "预算调整率", 0.0, NAN, NAN, "A07", 3.00, ""),
    ("adjust-0.01", "预算调整率", 0.0001, NAN, NAN, "A07", 2.00, None),
    ("adjust-10", "预算调整率", 0.10, NAN, NAN, "A07", 2.00, None),
    ("adjust-10.01", "预算调整率", 0.1001, NAN, NAN, "A07", 1.00, None),
    ("adjust-20", "预算调整率", 0.20, NAN, NAN, "A07", 1.00, None),
    ("adjust-30", "预算调整率", 0.30, NAN, NAN, "A07", 0.50, "预算调整率 30.00%，按“≤30%”档得 0.50 分"),
    ("adjust-30.01", "预算调整率", 0.3001, NAN, NAN, "A07", 0.00, None),
    # (26.32 + 5.1) / 522.3 = 0.06016 → ≤10% → 2
    ("adjust-reference", "预算调整率", (26.32 + 5.1) / 522.3, NAN, NAN, "A07", 2.00, "预算调整率 6.02%，按“≤10%”档得 2.00 分"),
    # 结余控制 (结转结余率, 3 points, 次档 2): 分子 = 结转结余数, 参照 = 上年结转数
    ("surplus-none", "结转结余率", 0.0, 0.0, 5.0, "A08", 3.00, ""),
    ("surplus-within", "结转结余率", 12.3 / 500, 12.3, 20.0, "A08", 2.00,
     "结转结余 12.30 万元，不超过上年结转 20.00 万元，得 2.00 分"),
    ("surplus-equal", "结转结余率", 20 / 500, 20.0, 20.0, "A08", 2.00, None),
    ("surplus-over", "结转结余率", 25 / 500, 25.0, 20.0, "A08", 0.00, "结转结余 25.00 万元，超过上年结转 20.00 万元，不得分"),
    ("surplus-no-carry", "结转结余率", 1 / 500, 1.0, NAN, "A08", 0.00, None),  # 上年结转 blank = 0 < 1
    # 比例 (政府采购执行率 3 points, 固定资产利用率 1 point)
    ("procurement-92", "政府采购执行率", 0.92, NAN, NAN, "A11", 2.76, "政府采购执行率 92.00%，按比例得 2.76 分"),  # 3 × 0.92
    ("procurement-120", "政府采购执行率", 1.20, NAN, NAN, "A11", 3.00, ""),  # capped
    ("assets-93.17", "固定资产利用率", 0.9317, NAN, NAN, "A18", 0.93, None),  # 1 × 0.9317 → 0.93
    ("assets-93.15", "固定资产利用率", 0.9315, NAN, NAN, "A18", 0.93, None),  # 0.9315 → 0.93 (not half up at 2 dp)
    ("assets-negative", "固定资产利用率", -0.5, NAN, NAN, "A18", 0.00, None),
]


@pytest.mark.parametrize("case, calc, value, numerator, reference, code, score, reason", INDICATOR_CASES,
                         ids=[c[0] for c in INDICATOR_CASES])
def test_indicator_rules(fw_a, case, calc, value, numerator, reference, code, score, reason):
    ind, man, tg = frames([indicator("U1", calc, value, numerator=numerator, reference=reference)])
    row = item(score_units(fw_a, ind, man, tg), "U1", code)
    assert row["得分"] == score
    if reason is not None:
        assert row["扣分说明"] == reason
    assert (row["扣分说明"] == "") == (row["得分"] == row["分值"])


def test_rate_is_rounded_like_excel(fw_a):
    # 8.7 / 9.6 = 0.90625 → 90.63% (Python's round would give 90.62%)
    ind, man, tg = frames([indicator("U1", "三公经费控制率", 8.7 / 9.6)])
    row = item(score_units(fw_a, ind, man, tg), "U1", "A10")
    assert row["完成率"] == 0.9063
    assert row["实际完成值"] == "90.63%"
    assert row["指标值"] == "≤100%"


def test_not_applicable_scores_full_by_default_and_says_why(fw_a):
    ind, man, tg = frames([indicator("U1", "重点支出安排率", NAN, state="不适用", note="无项目支出")])
    scores = score_units(fw_a, ind, man, tg)
    row = item(scores, "U1", "A05")
    assert (row["得分"], row["状态"]) == (5.0, "不适用")
    assert row["扣分说明"] == "不适用：无项目支出，按规则得满分"
    assert np.isnan(row["完成率"])


def test_not_applicable_with_zero_points_param(tmp_path_factory):
    def edit(data):
        data["评分标准"][4]["评分参数"] = "档=≥90%:5,其他:0;不适用=零分"
    fw = _framework(tmp_path_factory, "A", edit)
    ind, man, tg = frames([indicator("U1", "重点支出安排率", NAN, state="不适用", note="无项目支出")])
    row = item(score_units(fw, ind, man, tg), "U1", "A05")
    assert row["得分"] == 0.0
    assert row["扣分说明"] == "不适用：无项目支出，按规则不得分"


@pytest.mark.parametrize("rows, note", [
    ([indicator("U1", "政府采购执行率", NAN, state="无法计算", note="政府采购预算数为 0")], "政府采购预算数为 0"),
    ([indicator("U1", "政府采购执行率", NAN)], "缺少计算所需数据"),  # 正常 but no value
    ([indicator("U1", "预算执行率", 1.0)], "缺少计算所需数据"),      # no 政府采购执行率 row at all
])
def test_not_computable_scores_zero_with_an_error(fw_a, rows, note):
    ind, man, tg = frames(rows)
    scores = score_units(fw_a, ind, man, tg)
    row = item(scores, "U1", "A11")
    assert (row["得分"], row["状态"], row["实际完成值"]) == (0.0, "无法计算", "无法计算")
    assert row["扣分说明"] == f"无法计算：{note}，不得分"
    errs = [i for i in scores.issues if i.code == "indicator-not-computable" and "政府采购执行率" in i.message]
    assert [(e.severity, e.unit, e.year) for e in errs] == [("错误", "U1", 2023)]
    assert note in errs[0].message


# ---------------------------------------------------------------------------------------------------------------
# 管理情况 (定性): bands 达成 80–100%, 部分达成 60–80%, 未达成 0–60%; defaults 100% / 70% / 30%

MANAGEMENT_CASES = [
    # (case, item, conclusion, ratio, code, points, expected 得分, warning expected)
    ("achieved-default", "绩效目标合理性", "达成", NAN, "A01", 2, 2.00, False),            # 2 × 100%
    ("achieved-80", "管理制度健全性", "达成", 0.80, "A12", 3, 2.40, False),                 # 3 × 80% (inclusive)
    ("partly-in-band", "管理制度健全性", "部分达成", 0.75, "A12", 3, 2.25, False),          # 3 × 75%
    ("partly-upper-edge", "管理制度健全性", "部分达成", 0.80, "A12", 3, 2.40, False),       # 3 × 80%
    ("partly-lower-edge", "管理制度健全性", "部分达成", 0.60, "A12", 3, 1.80, False),       # 3 × 60%
    ("partly-out-of-band", "管理制度健全性", "部分达成", 0.95, "A12", 3, 2.10, True),       # default 3 × 70%
    ("partly-blank", "资金使用合规性", "部分达成", NAN, "A13", 3, 2.10, False),             # 3 × 70%
    ("not-achieved-blank", "资金使用合规性", "未达成", NAN, "A13", 3, 0.90, False),         # 3 × 30%
    ("not-achieved-out", "资金使用合规性", "未达成", 0.70, "A13", 3, 0.90, True),           # 3 × 30%
    ("achieved-third", "基础信息完善性", "部分达成", 0.6667, "A15", 2, 1.33, False),        # 2 × 0.6667 = 1.3334
]


@pytest.mark.parametrize("case, name, conclusion, ratio, code, points, score, warned", MANAGEMENT_CASES,
                         ids=[c[0] for c in MANAGEMENT_CASES])
def test_management_items(fw_a, case, name, conclusion, ratio, code, points, score, warned):
    ind, man, tg = frames(management=[management_row("U1", name, conclusion, ratio, row=7)])
    scores = score_units(fw_a, ind, man, tg)
    row = item(scores, "U1", code)
    assert (row["分值"], row["得分"]) == (points, score)
    warnings = [i for i in scores.issues if i.code == "management-ratio-out-of-band"]
    assert bool(warnings) == warned
    if warned:
        assert (warnings[0].sheet, warnings[0].cell, warnings[0].file) == ("管理情况", "C7", "预算执行表.xlsx")


def test_management_out_of_band_message(fw_a):
    ind, man, tg = frames(management=[management_row("U1", "管理制度健全性", "部分达成", 0.95)])
    scores = score_units(fw_a, ind, man, tg)
    w = next(i for i in scores.issues if i.code == "management-ratio-out-of-band")
    assert w.severity == "警告"
    assert "得分比例 95% 不在“部分达成”对应区间 60%–80%，已按默认比例 70% 计分" in w.message
    row = item(scores, "U1", "A12")
    assert row["扣分说明"] == ("自评结论“部分达成”，填写的得分比例 95.00% 不在该结论区间 60.00%–80.00% 内，"
                           "按默认比例 70.00% 得 2.10 分")


def test_management_missing_conclusion(fw_a):
    ind, man, tg = frames(management=[management_row("U1", "管理制度健全性", None, 0.9, row=6)])
    scores = score_units(fw_a, ind, man, tg)
    row = item(scores, "U1", "A12")
    assert (row["得分"], row["状态"], row["扣分说明"]) == (0.0, "数据缺失", "未填写自评结论，不得分")
    errs = [(i.severity, i.cell) for i in scores.issues
            if i.code == "management-conclusion-missing" and "“管理制度健全性”" in i.message]
    assert errs == [("错误", "C6")]


# ---------------------------------------------------------------------------------------------------------------
# Targets under framework B: a single 产出指标 target carries all 50 points, so 得分 = 50 × ratio.

TARGET_CASES = [
    # (case, op, 指标值, 实际, 结论, expected 完成率, expected 得分)
    ("ge-below", "≥", 80, 62, None, 0.775, 38.75),             # 62 / 80 = 0.775; 50 × 0.775
    ("ge-met", "≥", 80, 81, None, 1.0125, 50.00),              # 81 / 80 = 1.0125 → capped
    ("gt-below", "＞", 10, 9, None, 0.9, 45.00),               # 9 / 10; 50 × 0.9
    ("le-zero-actual", "≤", 5, 0, None, 1.0, 50.00),           # actual 0 → 100%
    ("le-over", "≤", 5, 8, None, 0.625, 31.25),                # 5 / 8 = 0.625; 50 × 0.625
    ("le-under", "≤", 5, 4, None, 1.25, 50.00),                # 5 / 4 = 1.25 → capped
    ("lt-over", "＜", 2, 4, None, 0.5, 25.00),                 # 2 / 4
    ("eq-equal", "＝", 4, 4, None, 1.0, 50.00),
    ("eq-above", "＝", 4, 5, None, 0.8, 40.00),                # min(5/4, 4/5) = 0.8
    ("eq-below", "＝", 4, 3, None, 0.75, 37.50),               # min(3/4, 4/3) = 0.75
    ("ge-third", "≥", 3, 2, None, 0.6667, 33.34),              # 2/3 → 0.6667; 50 × 0.6667 = 33.335 → 33.34
    ("ge-zero-target-met", "≥", 0, 0, None, 1.0, 50.00),       # target 0: met → 100%, no division
    ("ge-zero-target-above", "≥", 0, 5, None, 1.0, 50.00),     # met; 偏离度 not computed
    ("gt-zero-target-missed", "＞", 0, 0, None, 0.0, 0.00),    # 0 > 0 is false → 0%
    ("ge-negative-actual", "≥", 10, -2, None, 0.0, 0.00),      # −0.2 clipped to 0
    ("le-negative-target-zero-actual", "≤", -5, 0, None, 0.0, 0.00),  # 指标值 ≤ 0: 0 ≤ −5 is false → 0%
    ("le-negative-target-met", "≤", -5, -8, None, 1.0, 50.00),        # −8 ≤ −5 holds → 100%
    ("lt-zero-target-zero-actual", "＜", 0, 0, None, 0.0, 0.00),      # 0 ＜ 0 is false → 0%
    ("qual-achieved", "定性", NAN, NAN, "达成", 1.0, 50.00),
    ("qual-partly", "定性", NAN, NAN, "部分达成", 0.7, 35.00),  # default ratio 70%
    ("qual-not", "定性", NAN, NAN, "未达成", 0.3, 15.00),       # default ratio 30%
    # 偏离度 = (actual − target) / target, tiers 200% → −10%, 300% → −20%, 500% → −30% of the item's points
    ("dev-199", "≥", 1, 2.99, None, 2.99, 50.00),              # 偏离度 199% → no tier
    ("dev-200", "≥", 1, 3, None, 3.0, 45.00),                  # 偏离度 200% → 50 × (1 − 0.1)
    ("dev-300", "＞", 1, 4, None, 4.0, 40.00),                 # 300% → 50 × 0.8
    ("dev-500", "≥", 1, 6, None, 6.0, 35.00),                  # 500% → 50 × 0.7
    ("dev-market-entities", "≥", 3, 18.65, None, 6.2167, 35.00),  # 18.65/3 = 621.67%, 偏离度 521.67% → 50 × 0.7
]


@pytest.mark.parametrize("case, op, value, actual, conclusion, rate, score", TARGET_CASES,
                         ids=[c[0] for c in TARGET_CASES])
def test_target_rules(fw_b, case, op, value, actual, conclusion, rate, score):
    ind, man, tg = frames(targets=[target("U1", "产出指标", op, value, actual, conclusion=conclusion)])
    scores = score_units(fw_b, ind, man, tg)
    row = item(scores, "U1", "B02-1")
    assert (row["分值"], row["完成率"], row["得分"]) == (50.0, rate, score)
    assert (row["扣分说明"] == "") == (score == 50.0)


@pytest.mark.parametrize("op, actual, target, rate", [
    ("≥", 62, 80, 0.775),        # 62 / 80
    ("≥", 2, 3, 0.6667),         # 2 / 3 = 0.66667 → 66.67%
    ("≤", 8, 5, 0.625),          # 5 / 8
    ("≤", 0, 5, 1.0),            # SCORING.md: actual 0 → 100%
    ("＜", 0, 5, 1.0),
    ("≤", 0, -5, 0.0),           # 指标值 ≤ 0: 0 ≤ −5 is false
    ("＝", 5, 4, 0.8),           # min(5/4, 4/5)
    ("≥", -2, 10, 0.0),          # −0.2 clipped to 0
    ("定性", 1, 1, NAN),          # not a quantitative comparator
    (None, 1, 1, NAN),
    ("≥", NAN, 1, NAN),          # a figure missing
    ("≥", 1, NAN, NAN),
])
def test_completion_rate(op, actual, target, rate):
    """The 完成率 monitoring reads too (scoring.completion_rate)."""
    got = completion_rate(op, actual, target)
    assert got == rate or (np.isnan(rate) and np.isnan(got))


def test_completion_rates_are_the_scored_rates(fw_b):
    ops, actual, value = ["≥", "≤", "＝", "＞", "≤"], [62.0, 8.0, 5.0, 9.0, 0.0], [80.0, 5.0, 4.0, 10.0, -5.0]
    ind, man, tg = frames(targets=[target("U1", "产出指标", o, v, a, seq=i + 1)
                                   for i, (o, a, v) in enumerate(zip(ops, actual, value))])
    details = score_units(fw_b, ind, man, tg).details
    scored = details[details["一级指标"] == "产出指标"]["完成率"].to_numpy()
    assert np.array_equal(scored, completion_rates(ops, actual, value))
    assert scored.tolist() == [0.775, 0.625, 0.8, 0.9, 0.0]


def test_target_reason_texts(fw_b):
    ind, man, tg = frames(targets=[
        target("U1", "产出指标", "≥", 80, 62, points=5, name="检查次数", seq=1, unit_of="%"),
        target("U1", "产出指标", "≥", 3, 18.65, points=5, name="市场主体增长率", seq=2, unit_of="%"),
    ])
    scores = score_units(fw_b, ind, man, tg)
    below, high = item(scores, "U1", "B02-1"), item(scores, "U1", "B02-2")
    # each gets 50 × 5/10 = 25; 25 × 0.775 = 19.375 → 19.38; 25 × 0.7 = 17.5
    assert below["扣分说明"] == "实际 62%，低于指标值 80%，完成率 77.50%，按比例得 19.38 分"
    assert high["扣分说明"] == ("实际 18.65%，指标值 ≥3%，完成率 621.67%，偏离度 521.67% 达到 500% 档，指标值可能设置过低，"
                            "扣减该项分值的 30%（7.50 分），得 17.50 分")
    assert (high["指标值"], high["实际完成值"]) == ("≥3%", "18.65%")
    info = [i for i in scores.issues if i.code == "target-deviation"]
    assert [(i.severity, i.value) for i in info] == [("提示", "521.67%")]


def test_deviation_deduction_can_be_switched_off(tmp_path_factory):
    def edit(data):
        next(r for r in data["参数"] if r["参数"] == "偏离度扣分")["值"] = "否"
    fw = _framework(tmp_path_factory, "B", edit)
    ind, man, tg = frames(targets=[target("U1", "产出指标", "≥", 3, 18.65)])
    assert item(score_units(fw, ind, man, tg), "U1", "B02-1")["得分"] == 50.0


@pytest.mark.parametrize("op, value, actual, conclusion, why", [
    ("≥", 80, NAN, None, "未填写实际完成值"),
    ("定性", NAN, NAN, None, "未填写实际完成情况"),
    ("≥", NAN, 5, None, "指标值不是数字"),
])
def test_target_that_cannot_be_scored(fw_b, op, value, actual, conclusion, why):
    ind, man, tg = frames(targets=[target("U1", "产出指标", op, value, actual, conclusion=conclusion, row=9)])
    scores = score_units(fw_b, ind, man, tg)
    row = item(scores, "U1", "B02-1")
    assert (row["得分"], row["状态"]) == (0.0, "数据缺失")
    assert np.isnan(row["完成率"])
    assert row["扣分说明"].startswith(why)
    errs = [i for i in scores.issues if i.code == "target-not-scorable"]
    assert len(errs) == 1 and "第 9 行" in errs[0].message and why in errs[0].message
    assert (errs[0].file, errs[0].sheet, errs[0].unit) == ("绩效目标表.xlsx", "绩效目标", "U1")


# ---------------------------------------------------------------------------------------------------------------
# Group points: framework A 产出 = 25, 效果 = 20

GROUP_CASES = [
    # (case, 分值 of the unit's 产出指标 targets, expected shares)
    ("explicit", [2, 3], [10.00, 15.00]),                      # 25 × 2/5, 25 × 3/5
    ("explicit-sum-not-25", [5, 5, 10], [6.25, 6.25, 12.50]),  # 25 × 5/20, 25 × 5/20, 25 × 10/20
    ("all-blank", [NAN, NAN, NAN], [8.34, 8.33, 8.33]),        # 25/3 = 8.333…; largest remainder: +0.01 to the first
    ("mixed", [4, NAN, 8], [5.56, 8.33, 11.11]),               # blank → mean(4, 8) = 6; 25×4/18 = 5.556, 25×6/18 =
                                                               # 8.333, 25×8/18 = 11.111; 555+833+1111 = 2499 cents
                                                               # → the largest remainder (.56) gets the last cent
    ("all-zero", [0, 0], [12.50, 12.50]),                      # no weight given → equal
    ("single", [7], [25.00]),
]


@pytest.mark.parametrize("case, weights, shares", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_group_points_are_spread_by_target_weights(fw_a, case, weights, shares):
    tg_rows = [target("U1", "产出指标", "≥", 10, 10, points=w, seq=i + 1) for i, w in enumerate(weights)]
    ind, man, tg = frames(targets=tg_rows)
    scores = score_units(fw_a, ind, man, tg)
    d = scores.details[scores.details["一级指标"] == "产出"]
    assert list(d["指标编码"]) == [f"A19-{i + 1}" for i in range(len(weights))]
    assert list(d["分值"]) == shares
    assert list(d["得分"]) == shares                # every target met → full share
    assert scores.totals.loc[0, "产出"] == 25.00     # the shares add up to the group exactly


def test_group_shares_are_ranked_within_each_unit(fw_a):
    # two units in one call, rows interleaved (U2's first). U1: 25 points over three blank 分值 = 8.333… each; the
    # cents 833 × 3 = 2499 leave one, given to the first of equal remainders → 8.34, 8.33, 8.33. U2: 分值 1 and 2 →
    # 25 × 1/3 = 8.333…, 25 × 2/3 = 16.666…; 833 + 1666 = 2499 cents, the larger remainder (.67) is U2's second
    # target's → 8.33, 16.67.
    rows = [target("U2", "产出指标", "≥", 10, 10, points=1, seq=1), target("U1", "产出指标", "≥", 10, 10, seq=1),
            target("U2", "产出指标", "≥", 10, 10, points=2, seq=2), target("U1", "产出指标", "≥", 10, 10, seq=2),
            target("U1", "产出指标", "≥", 10, 10, seq=3)]
    scores = score_units(fw_a, *frames(targets=rows))
    d = scores.details[scores.details["一级指标"] == "产出"]
    shares = {u: list(d[d["单位编码"] == u]["分值"]) for u in ("U1", "U2")}
    assert shares == {"U1": [8.34, 8.33, 8.33], "U2": [8.33, 16.67]}
    assert list(d[d["单位编码"] == "U1"]["指标编码"]) == ["A19-1", "A19-2", "A19-3"]


def test_effect_group_combines_benefit_and_satisfaction_targets(fw_a):
    ind, man, tg = frames(targets=[
        target("U1", "效益指标", "≥", 10, 5, points=10, seq=1),       # 20 × 10/20 = 10; 10 × 5/10 = 5
        target("U1", "满意度指标", "≥", 90, 99, points=10, seq=2),    # 10, met
        target("U1", "产出指标", "≥", 1, 1, seq=3),                   # not in 效果
    ])
    scores = score_units(fw_a, ind, man, tg)
    d = scores.details[scores.details["一级指标"] == "效果"]
    assert list(d["指标编码"]) == ["A20-1", "A20-2"]
    assert list(d["二级指标"]) == ["数量指标", "数量指标"]
    assert list(d["得分"]) == [5.00, 10.00]
    assert scores.totals.loc[0, "效果"] == 15.00   # 5 + 10


def test_unit_without_targets_in_a_group(fw_a):
    ind, man, tg = frames(targets=[target("U1", "效益指标", "≥", 1, 1)])
    scores = score_units(fw_a, ind, man, tg)
    row = item(scores, "U1", "A19")
    assert (row["分值"], row["得分"], row["状态"]) == (25.0, 0.0, "数据缺失")
    assert row["扣分说明"] == "未填写产出指标，该项 25 分不得分"
    errs = [i for i in scores.issues if i.code == "targets-group-missing"]
    assert [(e.severity, e.unit) for e in errs] == [("错误", "U1")]
    assert "未填写产出指标" in errs[0].message


def test_unit_without_targets_with_full_points_param(tmp_path_factory):
    def edit(data):
        data["评分标准"][18]["评分参数"] = "一级指标=产出指标;不适用=满分"
    fw = _framework(tmp_path_factory, "A", edit)
    ind, man, tg = frames(targets=[target("U1", "效益指标", "≥", 1, 1)])
    scores = score_units(fw, ind, man, tg)
    row = item(scores, "U1", "A19")
    assert (row["得分"], row["状态"]) == (25.0, "不适用")
    assert [i.severity for i in scores.issues if i.code == "targets-group-missing"] == ["提示"]


# ---------------------------------------------------------------------------------------------------------------
# Totals and grades

@pytest.mark.parametrize("total, grade", [
    (100, "优"), (90, "优"), (89.995, "优"),   # 89.995 prints as 90.00 → 优
    (89.994, "良"), (89.99, "良"), (80, "良"), (79.99, "中"), (60, "中"), (59.99, "差"), (0, "差"),
])
def test_grade_boundaries(fw_a, total, grade):
    assert fw_a.grade_for(total) == grade


def _full_unit_a(unit):
    """Inputs of a unit that loses no point under framework A."""
    values = {"在职人员控制率": 1.0, "三公经费变动率": 0.0, "重点支出安排率": 0.95, "预算执行率": 1.0, "预算调整率": 0.0,
              "公用经费控制率": 1.0, "三公经费控制率": 1.0, "政府采购执行率": 1.0, "固定资产利用率": 1.0}
    ind = [indicator(unit, k, v) for k, v in values.items()] + [indicator(unit, "结转结余率", 0.0, numerator=0.0)]
    man = [management_row(unit, m, "达成") for m in spec.MANAGEMENT_ITEMS]
    tg = [target(unit, lvl, "≥", 1, 1, seq=i + 1)
          for i, lvl in enumerate(["产出指标", "产出指标", "产出指标", "效益指标", "满意度指标"])]
    return ind, man, tg


def test_totals_full_unit_and_one_with_deductions(fw_a):
    ind1, man1, tg1 = _full_unit_a("U1")
    ind2, man2, tg2 = _full_unit_a("U2")
    ind2[3] = indicator("U2", "预算执行率", 0.9917)                  # 5 → 4.67 (−0.33)
    man2[2] = management_row("U2", "管理制度健全性", "部分达成")     # 3 → 2.10 (−0.90)
    tg2[0] = target("U2", "产出指标", "≥", 80, 62, seq=1)          # share 8.34 × 0.775 = 6.4635 → 6.46 (−1.88)
    ind, man, tg = frames(ind1 + ind2, man1 + man2, tg1 + tg2)
    scores = score_units(fw_a, ind, man, tg)
    t = scores.totals.set_index("单位编码")
    assert list(scores.totals.columns) == ["单位编码", "财年", "总分", "等级", "投入", "过程", "产出", "效果"]
    assert (t.loc["U1", "总分"], t.loc["U1", "等级"]) == (100.00, "优")
    # 100 − 0.33 − 0.90 − 1.88 = 96.89
    assert (t.loc["U2", "总分"], t.loc["U2", "等级"]) == (96.89, "优")
    # 过程 35 − 0.33 − 0.90 = 33.77; 产出 25 − 1.88 = 23.12
    assert (t.loc["U2", "投入"], t.loc["U2", "过程"], t.loc["U2", "产出"], t.loc["U2", "效果"]) == \
        (20.00, 33.77, 23.12, 20.00)
    assert scores.issues == []
    d = scores.details
    assert list(d.columns) == list(DETAIL_COLUMNS)
    assert d.groupby("单位编码")["分值"].sum().round(6).to_dict() == {"U1": 100.0, "U2": 100.0}
    assert np.isfinite(d["得分"]).all()
    assert not np.isinf(d["完成率"].fillna(0)).any()


def test_totals_add_the_rounded_item_scores(fw_a):
    # three blank-weight targets each at 2/3: shares 8.34, 8.33, 8.33; 完成率 0.6667;
    # 8.34 × 0.6667 = 5.5603 → 5.56; 8.33 × 0.6667 = 5.5536 → 5.55 (twice); 5.56 + 5.55 + 5.55 = 16.66
    ind, man, tg = frames(targets=[target("U1", "产出指标", "≥", 3, 2, seq=i) for i in (1, 2, 3)])
    scores = score_units(fw_a, ind, man, tg)
    d = scores.details[scores.details["一级指标"] == "产出"]
    assert list(d["得分"]) == [5.56, 5.55, 5.55]
    assert scores.totals.loc[0, "产出"] == 16.66


def test_framework_b_reference_unit(fw_b):
    ind, man, tg = frames(
        [indicator("U1", "预算执行率", 541.71 / 541.71)],
        targets=[target("U1", "产出指标", "≥", 80, 62, seq=1),       # 50 × 0.775 = 38.75
                 target("U1", "效益指标", "定性", NAN, NAN, conclusion="部分达成", seq=2),  # 30 × 0.7 = 21
                 target("U1", "满意度指标", "≥", 90, 95, seq=3)])    # 10
    scores = score_units(fw_b, ind, man, tg)
    assert item(scores, "U1", "B01")["得分"] == 10.00
    t = scores.totals.iloc[0]
    # 10 + 38.75 + 21 + 10 = 79.75 → 中
    assert (t["总分"], t["等级"], t["预算执行"], t["产出指标"], t["效益指标"], t["满意度指标"]) == \
        (79.75, "中", 10.00, 38.75, 21.00, 10.00)


def test_units_are_scored_independently_in_one_call(fw_b):
    ind, man, tg = frames(
        [indicator("U1", "预算执行率", 0.5), indicator("U2", "预算执行率", 0.9), indicator("U3", "预算执行率", 1.3)])
    scores = score_units(fw_b, ind, man, tg)
    got = scores.details[scores.details["指标编码"] == "B01"].set_index("单位编码")["得分"].to_dict()
    assert got == {"U1": 5.00, "U2": 9.00, "U3": 10.00}   # 10 × 0.5, 10 × 0.9, capped
    assert len(scores.totals) == 3


def test_details_merge_with_the_targets_in_every_batch(fw_a):
    """The workbooks match target rows to their details on (_file, _row): that works in a batch with targets and in
    one without any (whose targets table is empty and untyped), as it did when details were stacked with pd.concat."""
    targets = [target("U1", level, "≥", 1, 1, seq=i + 1, row=5 + i)
               for i, level in enumerate(["产出指标", "产出指标", "效益指标", "满意度指标"])]
    for ind, man, tg in [frames(targets=targets), frames([indicator("U1", "预算执行率", 1.0)]), frames()]:
        details = score_units(fw_a, ind, man, tg).details
        scored = details.dropna(subset=["_row"])[["_file", "_row", "得分"]]
        assert len(tg.merge(scored, on=["_file", "_row"], how="left")) == len(tg)
