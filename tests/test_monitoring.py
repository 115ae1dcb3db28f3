"""绩效运行监控 (issue #6): hand arithmetic on the example's 月度支出 and work statistics, colour boundaries, thresholds
from the framework, the --as-of command line."""

from __future__ import annotations

from types import SimpleNamespace

import openpyxl
import pandas as pd
import pytest

from pipeline.cli import EXAMPLE_INPUT, main, parse_as_of
from pipeline.framework import default_framework_path, load_framework
from pipeline.monitoring import level, monitor, thresholds, warning_counts
from pipeline.run import evaluate
from pipeline.spec import MONTHS

LIMITS = {"监控红线": 0.6, "监控黄线": 0.8, "超前预警": 0.05}
# The example's 月度支出 (pipeline/example.py: 实际支出数 split by the month weights, in fen), months 1–6, typed here.
PERSONNEL_H1 = [29.48, 25.27, 42.12, 37.91, 42.12, 37.90]   # 214.80
PUBLIC_H1 = [4.38, 3.75, 6.25, 5.63, 6.25, 5.63]          # 31.89


@pytest.fixture(scope="module")
def framework():
    fw, _ = load_framework(default_framework_path())
    return fw


@pytest.fixture(scope="module")
def ev(framework):
    return evaluate(EXAMPLE_INPUT, framework)


@pytest.fixture(scope="module")
def june(ev, framework):
    return monitor(ev.dataset, ev.targets, 6, framework.params)


def row(frame, kind, item) -> dict:
    hit = frame[(frame["类别"] == kind) & (frame["项目"] == item)]
    assert len(hit) == 1, (kind, item)
    return hit.iloc[0].to_dict()


def test_example_monthly_spending_sums_to_actual(ev):
    monthly = ev.dataset.monthly.set_index("支出类别")
    assert monthly.loc["基本支出-人员经费", list(MONTHS)].astype(float).sum() == pytest.approx(471.71)
    assert monthly.loc["基本支出-公用经费", list(MONTHS)].astype(float).sum() == pytest.approx(70.00)
    assert list(monthly.loc["基本支出-人员经费", list(MONTHS[:6])]) == pytest.approx(PERSONNEL_H1)
    assert not [i for i in ev.issues if i.code == "monthly-sum-mismatch"]


def test_budget_execution_as_of_june(june):
    r = row(june, "预算执行", "基本支出-人员经费")
    spent = sum(PERSONNEL_H1)                                   # 214.80
    assert r["时间进度"] == pytest.approx(0.5)                   # 6 / 12
    assert r["累计完成"] == pytest.approx(214.80) and spent == pytest.approx(214.80)
    assert r["实际进度"] == pytest.approx(0.4554)                # 214.80 / 471.71 = 45.536%
    assert r["进度比"] == pytest.approx(0.9107)                  # 45.536% / 50%
    assert r["预警等级"] == "绿" and r["截至月份"] == "2023-06"
    total = row(june, "预算执行", "合计")
    assert total["累计完成"] == pytest.approx(sum(PERSONNEL_H1) + sum(PUBLIC_H1)) == 246.69
    assert total["全年目标"] == pytest.approx(541.71)
    assert total["进度比"] == pytest.approx(0.9108)              # 246.69 / 541.71 / 0.5
    assert row(june, "预算执行", "项目支出")["预警等级"] == "不适用"   # 全年预算数 0


def test_work_statistics_targets_against_pro_rated_target(june):
    r = row(june, "绩效目标", "特种设备监督检查次数")                 # ≥80次, 81 over the year
    assert r["应完成"] == pytest.approx(40.0)                    # 80 × 6/12
    assert r["累计完成"] == pytest.approx(37.0)                   # months 1–6 of the example
    assert r["进度比"] == pytest.approx(0.925)                    # 37 / 40
    rate = row(june, "绩效目标", "12345热线办结率")                   # a rate: against the full 90%
    assert rate["应完成"] == pytest.approx(90.0)
    assert "比率" in rate["说明"]
    campaign = row(june, "绩效目标", "食品药品主题宣传活动次数")
    assert campaign["累计完成"] == 1 and campaign["进度比"] == pytest.approx(1.0)  # one campaign in June, 2 × 50%


def test_march_campaign_not_held_is_red(ev, framework):
    march = monitor(ev.dataset, ev.targets, 3, framework.params)
    r = row(march, "绩效目标", "食品药品主题宣传活动次数")
    assert r["时间进度"] == pytest.approx(0.25) and r["累计完成"] == 0 and r["预警等级"] == "红"
    counts = warning_counts(march)
    assert counts.to_dict("records") == [{"单位编码": "430399001", "财年": 2023, "截至月份": "2023-03",
                                          "红色预警": 1, "黄色预警": 0, "预警合计": 1, "检查项": len(march)}]


def test_ahead_of_budget_rule(june):
    r = row(june, "进度匹配", "食品药品主题宣传活动次数")
    # 目标完成进度 1/2 = 50.00%, 预算执行进度 246.69 / 541.71 = 45.54%: ahead by 4.46% ≤ 5% → no warning
    assert r["实际进度"] == pytest.approx(0.5) and r["进度差"] == pytest.approx(0.0446) and r["预警等级"] == "绿"


@pytest.mark.parametrize("ratio, colour", [(0.5999, "红"), (0.59994, "红"), (0.59995, "黄"), (0.6, "黄"),
                                           (0.7999, "黄"), (0.8, "绿"), (1.2, "绿"), (0.0, "红")])
def test_colour_boundaries(ratio, colour):
    assert level(ratio, LIMITS) == colour


def _synthetic(monthly_h1: float, budget: float = 120.0, stat_by_june: float = 30.0, target: float = 50.0):
    """One unit: one budget line, 月度支出 spending `monthly_h1` in months 1–6, one 统计项 and a ≥ target."""
    key = {"单位编码": "X1", "财年": 2023}
    months = {m: (monthly_h1 / 6 if i < 6 else 50.0) for i, m in enumerate(MONTHS)}
    stats = {m: (stat_by_june / 6 if i < 6 else 99.0) for i, m in enumerate(MONTHS)}
    ds = SimpleNamespace(
        units=pd.DataFrame([key]),
        budget_lines=pd.DataFrame([{**key, "支出类别": "项目支出", "全年预算数": budget}]),
        monthly=pd.DataFrame([{**key, "支出类别": "项目支出", **months}]),
        work_stats=pd.DataFrame([{**key, "统计项": "检查次数", "业务条线": "", "计量单位": "次", "汇总方式": None,
                                  **stats, "全年": None, "备注": None, "_file": "f", "_sheet": "s", "_row": 2}]),
    )
    targets = pd.DataFrame([{**key, "三级指标": "检查次数", "取数公式": "[检查次数]", "比较符": "≥", "指标值": target,
                             "计量单位": "次"}])
    return ds, targets


@pytest.mark.parametrize("spent, colour", [(35.99, "红"), (36.0, "黄"), (47.99, "黄"), (48.0, "绿")])
def test_budget_colour_at_60_and_80_percent(spent, colour):
    # budget 120, as of June: time progress 50%; 36 / 120 = 30% → 进度比 60%; 48 / 120 = 40% → 80%
    ds, targets = _synthetic(spent)
    r = row(monitor(ds, targets, 6, LIMITS), "预算执行", "项目支出")
    assert r["进度比"] == pytest.approx(spent / 120 / 0.5, abs=5e-5) and r["预警等级"] == colour


def test_target_ahead_of_budget_warns():
    # 检查次数 by June 30 of 50 = 60%; spending 60 of 120 = 50%: 10 points ahead > 5% → 黄
    ds, targets = _synthetic(60.0, stat_by_june=30.0, target=50.0)
    mon = monitor(ds, targets, 6, LIMITS)
    r = row(mon, "进度匹配", "检查次数")
    assert r["进度差"] == pytest.approx(0.10) and r["预警等级"] == "黄"
    assert "5.00%" in r["说明"] and "60.00%" in r["说明"] and "50.00%" in r["说明"]
    assert warning_counts(mon).iloc[0]["黄色预警"] == 1
    # a looser rule from the framework's 参数 (超前预警 = 15%) silences it
    assert row(monitor(ds, targets, 6, {**LIMITS, "超前预警": 0.15}), "进度匹配", "检查次数")["预警等级"] == "绿"


def test_later_months_are_ignored():
    ds, targets = _synthetic(60.0)
    r = row(monitor(ds, targets, 6, LIMITS), "绩效目标", "检查次数")
    assert r["累计完成"] == pytest.approx(30.0)  # months 7–12 hold 99 each and are not counted


def test_no_monthly_sheet_is_not_computable():
    ds, targets = _synthetic(60.0)
    ds.monthly = ds.monthly.iloc[0:0]
    r = row(monitor(ds, targets, 6, LIMITS), "预算执行", "合计")
    assert r["预警等级"] == "无法计算" and "月度支出" in r["说明"]


def test_thresholds_come_from_the_framework(framework):
    assert thresholds(framework.params) == LIMITS
    assert thresholds({}) == LIMITS  # an older framework workbook without the keys
    assert thresholds({"监控红线": 0.5})["监控红线"] == 0.5


@pytest.mark.parametrize("text, expected", [("2023-06", (2023, 6)), ("2023-6", (2023, 6)), ("2023年6月", (2023, 6))])
def test_parse_as_of(text, expected):
    assert parse_as_of(text) == expected


@pytest.mark.parametrize("text", ["2023-13", "2023-00", "23-06", "June", ""])
def test_bad_as_of_exits_2(text, tmp_path, capsys):
    assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(tmp_path), "--as-of", text]) == 2
    assert "无法识别" in capsys.readouterr().err


def test_as_of_year_not_in_data_exits_2(tmp_path, capsys):
    assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(tmp_path), "--as-of", "2024-06"]) == 2
    err = capsys.readouterr().err
    assert "2024" in err and "2023" in err and "不一致" in err
    assert not (tmp_path / "2023").exists() and not (tmp_path / "2024").exists()


def test_as_of_run_writes_monitoring_folder(tmp_path):
    assert main(["run", "--input", str(EXAMPLE_INPUT), "--output", str(tmp_path), "--as-of", "2023-06"]) == 0
    folder = tmp_path / "2023" / "监控_2023-06"
    books = list(folder.glob("*_绩效评价.xlsx"))
    assert len(books) == 1 and (folder / "监控预警.csv").is_file()
    assert not list((tmp_path / "2023").glob("*_绩效评价.xlsx"))  # the year-end result is not overwritten
    wb = openpyxl.load_workbook(books[0], data_only=True)
    assert wb.sheetnames[1] == "监控预警"
    ws = wb["监控预警"]
    assert "截至 2023-06" in ws["A1"].value
    header = [c.value for c in ws[4]]
    records = [dict(zip(header, r)) for r in ws.iter_rows(min_row=5, values_only=True)]
    total = next(r for r in records if r["类别"] == "预算执行" and r["项目"] == "合计")
    assert total["累计完成"] == pytest.approx(246.69) and total["时间进度"] == pytest.approx(0.5)
    assert total["进度比"] == pytest.approx(0.9108) and total["预警等级"] == "绿"
    assert ws.cell(5, header.index("进度比") + 1).number_format == "0.00%"


# ---------------------------------------------------------------------------------------------------------------
# 进度比 of a target is scoring's 完成率 (scoring.completion_rate), not a copy of it.

def _one_target(op: str, target: float, unit_of: str, stat_by_june: float):
    ds, targets = _synthetic(60.0, stat_by_june=stat_by_june, target=target)
    return ds, targets.assign(比较符=op, 计量单位=unit_of)


def test_at_most_target_with_nothing_done_yet_is_complete():
    # SCORING.md: for ≤ the 完成率 is 指标值 ÷ actual, and an actual of 0 is 100%. ≤ 10 次 (pro-rated: 10 × 6/12 = 5
    # by June), none by June → 100%, 绿; the same against the full 指标值.
    ds, targets = _one_target("≤", 10.0, "次", stat_by_june=0.0)
    r = row(monitor(ds, targets, 6, LIMITS), "绩效目标", "检查次数")
    assert (r["应完成"], r["累计完成"]) == (5.0, 0.0)
    assert (r["进度比"], r["实际进度"], r["预警等级"]) == (1.0, 1.0, "绿")
    assert "进度比 100.00%" in r["说明"]


def test_at_most_a_negative_target_with_zero_actual_is_not_met():
    # 变动率 ≤ −5% (a rate: compared with the full 指标值), 0% by June. 指标值 ÷ actual means nothing here (÷ 0, and a
    # negative 指标值); scoring's rule for a 指标值 ≤ 0 is 100% when the comparison holds, else 0%: 0 ≤ −5 is false
    # → 0%, 红 (monitoring used to say 100%, 绿, where the year-end score of the same figures is 0).
    ds, targets = _one_target("≤", -5.0, "%", stat_by_june=0.0)
    r = row(monitor(ds, targets, 6, LIMITS), "绩效目标", "检查次数")
    assert (r["应完成"], r["累计完成"]) == (-5.0, 0.0)
    assert (r["进度比"], r["实际进度"], r["预警等级"]) == (0.0, 0.0, "红")


def test_at_least_zero_target_is_not_applicable():
    ds, targets = _one_target("≥", 0.0, "次", stat_by_june=3.0)
    r = row(monitor(ds, targets, 6, LIMITS), "绩效目标", "检查次数")
    assert (r["预警等级"], r["说明"]) == ("不适用", "指标值为 0，不适用")


def test_blank_comparator_cannot_be_computed():
    ds, targets = _one_target(None, 50.0, "次", stat_by_june=30.0)
    r = row(monitor(ds, targets, 6, LIMITS), "绩效目标", "检查次数")
    assert (r["预警等级"], r["说明"]) == ("无法计算", "未填写比较符，无法计算进度比。")
    assert not (monitor(ds, targets, 6, LIMITS)["类别"] == "进度匹配").any()


# ---------------------------------------------------------------------------------------------------------------
# Budget sums go through numbers.group_sum: a unit's rows do not depend on the other units monitored with it.

def _budget_unit(code: str, budgets: list[float], months_h1: list[list[float]]):
    key = {"单位编码": code, "财年": 2023}
    lines = [{**key, "支出类别": "项目支出", "全年预算数": b} for b in budgets]
    monthly = [{**key, "支出类别": "项目支出", **dict(zip(MONTHS, [*h1, *[0.0] * 6]))} for h1 in months_h1]
    return key, lines, monthly


def _budget_dataset(*units):
    empty_stats = pd.DataFrame(columns=["单位编码", "财年", "统计项", "业务条线", "计量单位", "汇总方式", *MONTHS, "全年",
                                        "备注", "_file", "_sheet", "_row"])
    return SimpleNamespace(units=pd.DataFrame([u[0] for u in units]),
                           budget_lines=pd.DataFrame([r for u in units for r in u[1]]),
                           monthly=pd.DataFrame([r for u in units for r in u[2]]), work_stats=empty_stats)


def test_budget_rows_of_a_unit_do_not_depend_on_the_other_units():
    # A: three 项目支出 lines 0.1 + 0.2 + 0.3 = 0.6 万元 (the float nearest 0.6, as compensated summation gives; adding
    # left to right gives 0.6000000000000001), 0.05 a month spent on one line in months 1–6 = 0.3.
    a = _budget_unit("A", [0.1, 0.2, 0.3], [[0.05] * 6])
    # B: a blank 全年预算数 and a blank month (NaN), and 0.1 + 0.2 (0.30000000000000004 left to right)
    b = _budget_unit("B", [0.1, 0.2, float("nan")], [[0.1, float("nan"), 0.2, 0.0, 0.0, 0.0]])
    no_targets = pd.DataFrame(columns=["单位编码", "财年", "三级指标", "取数公式", "比较符", "指标值", "计量单位"])
    alone = monitor(_budget_dataset(a), no_targets, 6, LIMITS)
    together = monitor(_budget_dataset(b, a), no_targets, 6, LIMITS)
    together_a = together[together["单位编码"] == "A"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, together_a)
    for item in ("项目支出", "合计"):
        r = row(alone, "预算执行", item)
        assert r["全年目标"] == 0.6                              # 0.1 + 0.2 + 0.3
        assert (r["应完成"], r["累计完成"]) == (0.3, 0.3)          # 0.6 × 6/12; 6 × 0.05
        assert (r["实际进度"], r["进度比"], r["预警等级"]) == (0.5, 1.0, "绿")  # 0.3 / 0.6; 50% / 50%
