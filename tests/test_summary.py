"""汇总.xlsx and 年度对比: small hand-made evaluations with figures worked out by hand, then a real run over the
example (2023) beside a modified copy of it for 2022.

Hand arithmetic of the three-unit evaluation below (财年 2023; U1 also has a 2022 row that must stay out):
- totals U1 92.5, U2 80.0, U3 80.0 → ranks 1, 2, 2 (a tie shares the rank); grades 优 1, 良 2, 中 0, 差 0;
  bands 90分及以上 1, 80–90分 2, others 0.
- points lost (分值 − 得分): A01 U1 2 − 1.4 = 0.6, U2 2 − 1 = 1, U3 0 → Σ 1.6, mean 1.6 / 3 = 0.53, 2 units;
  A06 U1 0, U2 5 − 4 = 1, U3 5 − 3 = 2 → Σ 3, mean 1; A19 (targets, summed per unit): U1 (4 − 3.5) + 0 = 0.5,
  U2 8 − 6 = 2, U3 0 + (4 − 3) = 1 → Σ 3.5 over 3 losing units, mean 3.5 / 3 = 1.1667 → 1.17.
  Order: A19 3.5, A06 3, A01 1.6.
- budget: Σ全年预算 100 + 50 + 40 = 190, Σ实际 90 + 45 + 30 = 165, rate 165 / 190 = 0.868421 → 86.84%;
  三公 U1 8.7 / 9.6 = 0.90625 → 90.63%, U2 2 / 2 = 100%, U3 not filled; Σ 11.6 / 10.7 → 10.7 / 11.6 = 92.24%.
"""

from __future__ import annotations

import random
import shutil
from types import SimpleNamespace

import numpy as np
import openpyxl
import pandas as pd
import pytest

from pipeline import example, summary
from pipeline.framework import default_framework_path, load_framework
from pipeline.issues import error, warning
from pipeline.run import RunResult, evaluate, write_outputs
from pipeline.spec import BUDGET_EXECUTION, PERFORMANCE_TARGETS, WORK_STATISTICS
from pipeline.templates import write_workbook
from pipeline.unitstore import UnitStore

NAN = np.nan
GRADES = [("优", 90.0), ("良", 80.0), ("中", 60.0), ("差", 0.0)]


def _detail(code, item, level1, name, points, score, method="预算执行率", rule=None):
    return {"单位编码": code, "财年": 2023, "指标编码": item, "一级指标": level1, "三级指标": name, "分值": points,
            "得分": score, "计算方法": method, "_rule": rule or item}


def _indicator(code, method, num, den, year=2023):
    return {"单位编码": code, "财年": year, "计算方法": method, "值": NAN, "分子": num, "分母": den, "状态": "正常"}


def _details() -> pd.DataFrame:
    t = "绩效目标"
    return pd.DataFrame([
        _detail("U1", "A01", "过程", "绩效目标合理性", 2, 1.4, "管理情况"), _detail("U1", "A06", "过程", "预算执行率", 5, 5),
        _detail("U1", "A19-1", "产出", "检查次数", 4, 3.5, t, "A19"), _detail("U1", "A19-2", "产出", "宣传次数", 4, 4, t, "A19"),
        _detail("U2", "A01", "过程", "绩效目标合理性", 2, 1, "管理情况"), _detail("U2", "A06", "过程", "预算执行率", 5, 4),
        _detail("U2", "A19-1", "产出", "办件数", 8, 6, t, "A19"),
        _detail("U3", "A01", "过程", "绩效目标合理性", 2, 2, "管理情况"), _detail("U3", "A06", "过程", "预算执行率", 5, 3),
        _detail("U3", "A19-1", "产出", "检查次数", 4, 4, t, "A19"), _detail("U3", "A19-2", "产出", "宣传次数", 4, 3, t, "A19"),
        {**_detail("U1", "A06", "过程", "预算执行率", 5, 0), "财年": 2022},  # another year: never counted
    ])


@pytest.fixture()
def ev():
    units = pd.DataFrame({"单位编码": ["U1", "U2", "U3", "U1"], "财年": [2023, 2023, 2023, 2022],
                          "单位名称": ["一局", "二局", "三局", "一局"]})
    totals = pd.DataFrame({"单位编码": ["U1", "U2", "U3", "U1"], "财年": [2023, 2023, 2023, 2022],
                           "总分": [92.5, 80.0, 80.0, 99.0], "等级": ["优", "良", "良", "优"],
                           "过程": [40.0, 30.0, 35.0, 50.0], "产出": [52.5, 50.0, 45.0, 49.0]})
    details = _details()
    indicators = pd.DataFrame([
        _indicator("U1", "预算执行率", 90, 100), _indicator("U2", "预算执行率", 45, 50), _indicator("U3", "预算执行率", 30, 40),
        _indicator("U1", "三公经费控制率", 8.7, 9.6), _indicator("U2", "三公经费控制率", 2, 2),
        _indicator("U3", "三公经费控制率", NAN, NAN), _indicator("U1", "预算执行率", 1, 1000, year=2022),
    ])
    issues = [error("budget-total-mismatch", "U1 的问题", file="u1.xlsx", unit="U1", year=2023),
              warning("x", "U2 的 2022 年问题", file="u2.xlsx", unit="U2", year=2022),
              error("unreadable", "读不出的文件", file="bad.xlsx")]
    return RunResult(store=UnitStore.of(summary.unit_rows(units, totals, indicators)),
                     losses=summary.loss_totals(details), issues=issues)


def test_ranking_ties_share_a_rank(ev):
    rank = summary.summary_tables(ev, 2023)["排名"].frame()
    assert rank[["排名", "单位编码", "总分", "等级"]].values.tolist() == [
        [1, "U1", 92.5, "优"], [2, "U2", 80.0, "良"], [2, "U3", 80.0, "良"]]
    assert list(rank.columns) == ["排名", "单位编码", "单位名称", "总分", "等级", "过程", "产出"]
    assert rank.loc[2, "过程"] == 35.0 and rank.loc[2, "产出"] == 45.0


def test_grade_and_score_distributions(ev):
    tables = summary.summary_tables(ev, 2023, SimpleNamespace(grades=GRADES, rows=pd.DataFrame(
        {"指标编码": ["A19"], "三级指标": ["产出指标（单位绩效目标）"]})))
    grades = tables["等级分布"]
    assert grades[["等级", "单位数"]].values.tolist() == [["优", 1], ["良", 2], ["中", 0], ["差", 0]]
    assert grades["占比"].tolist() == [0.3333, 0.6667, 0.0, 0.0]
    bands = tables["分数分布"]
    assert bands[["分数段", "单位数"]].values.tolist() == [
        ["60分以下", 0], ["60–70分", 0], ["70–80分", 0], ["80–90分", 2], ["90分及以上", 1]]
    assert tables["失分指标"].loc[0, "三级指标"] == "产出指标（单位绩效目标）"  # the framework's name of the rule


def test_lost_points_ranking(ev):
    lost = summary.summary_tables(ev, 2023)["失分指标"]
    assert lost[["指标编码", "一级指标", "单位数", "失分单位数", "失分合计", "平均失分"]].values.tolist() == [
        ["A19", "产出", 3, 3, 3.5, 1.17], ["A06", "过程", 3, 2, 3.0, 1.0], ["A01", "过程", 3, 2, 1.6, 0.53]]
    assert lost.loc[0, "三级指标"] == "产出（绩效目标）"  # without a framework at hand


def test_lost_points_add_up_over_batches(ev):
    # The same units scored in two batches (U1; U2 and U3): each batch's line totals, summed in the main process,
    # give the table of all units at once. A19: U1 loses 0.5 (3.5 of 4 on 检查次数), U2 2, U3 1 → 3.5 over 3 units.
    details = _details()
    batches = [summary.loss_totals(details[details["单位编码"].isin(codes)]) for codes in (["U1"], ["U2", "U3"])]
    expected = [["A19", 3, 3, 3.5, 1.17], ["A06", 3, 2, 3.0, 1.0], ["A01", 3, 2, 1.6, 0.53]]
    lost = summary.lost_points(pd.concat(batches, ignore_index=True).query("财年 == 2023"))
    assert lost[["指标编码", "单位数", "失分单位数", "失分合计", "平均失分"]].values.tolist() == expected
    # summed as the batches return (what the main process keeps): one row per line, the same table
    folded = summary.add_loss_totals(summary.add_loss_totals(None, batches[0]), batches[1])
    assert not folded.duplicated(summary.LOSS_LINE).any()
    a19 = folded[(folded["_code"] == "A19") & (folded["财年"] == 2023)]
    assert a19[["_units", "_losing", "_cents"]].values.tolist() == [[3, 3, 350]]
    lost = summary.lost_points(folded.query("财年 == 2023"))
    assert lost[["指标编码", "单位数", "失分单位数", "失分合计", "平均失分"]].values.tolist() == expected


def test_folding_batches_gives_the_loss_totals_of_all_their_units():
    """Batches of random units folded in batch order (as the main process does) give loss_totals of all their
    details at once: the same lines in the same order, the same tallies, the same dtypes; and folding in the
    pandas way (concatenation, group-by of the line in order of appearance, sum) gives it too."""
    rng = random.Random(3)
    lines = [("A01", "过程", "绩效目标合理性", "管理情况", None), ("A06", "过程", "预算执行率", "预算执行率", None),
             ("A19-1", "产出", "检查次数", "绩效目标", "A19"), ("A19-2", "产出", "宣传次数", "绩效目标", "A19"),
             ("A20-1", "效果", "满意度", "绩效目标", "A20"), ("A07", "过程", "三公经费控制率", "三公经费控制率", None)]
    for _ in range(30):
        rows = []
        for u in range(rng.randint(1, 12)):
            for item, level1, name, method, rule in rng.sample(lines, rng.randint(1, len(lines))):
                points = rng.choice([2, 4, 5, 8])
                score = rng.choice([points, points, points - 0.5, 0, NAN, points * 0.37])
                year = rng.choice([2023, 2023, 2024])
                rows.append({**_detail(f"U{u}", item, level1, name, points, score, method, rule), "财年": year})
        details = pd.DataFrame(rows)
        codes = list(dict.fromkeys(details["单位编码"]))  # a batch holds whole units (all their years)
        cuts = sorted(rng.sample(range(1, len(codes)), min(3, len(codes) - 1))) if len(codes) > 1 else []
        parts = [details[details["单位编码"].isin(codes[a:b])] for a, b in zip([0, *cuts], [*cuts, len(codes)])]
        folded = None
        for part in parts:
            folded = summary.add_loss_totals(folded, summary.loss_totals(part))
        whole = summary.loss_totals(details)
        pd.testing.assert_frame_equal(folded, whole)
        both = pd.concat([summary.loss_totals(part) for part in parts], ignore_index=True)
        by_pandas = both.groupby(summary.LOSS_LINE, sort=False)[["_units", "_losing", "_cents"]].sum().reset_index()
        pd.testing.assert_frame_equal(folded, by_pandas[summary.LOSS_TOTAL_COLUMNS])


def test_losses_count_a_missing_score_as_nothing_and_leave_out_a_row_without_its_line():
    """U1's A19 targets: 4 − 3.5 = 0.5 and a target without a score (nothing lost: 0.5 in all, not NaN); U2's A19
    target scored 0 of 8 (loses 8); a row whose 一级指标 is blank has no 汇总 line and is left out, not counted as a
    unit scored there. A01: U1 2 − 1.4 = 0.6, U2 0 → 1 unit of 2 losing, 60 hundredths."""
    t = "绩效目标"
    details = pd.DataFrame([
        _detail("U1", "A01", "过程", "绩效目标合理性", 2, 1.4, "管理情况"),
        _detail("U1", "A19-1", "产出", "检查次数", 4, 3.5, t, "A19"),
        _detail("U1", "A19-2", "产出", "宣传次数", 4, NAN, t, "A19"),
        _detail("U2", "A01", "过程", "绩效目标合理性", 2, 2, "管理情况"),
        _detail("U2", "A19-1", "产出", "办件数", 8, 0, t, "A19"),
        _detail("U2", "A06", NAN, "预算执行率", 5, 1),
    ])
    totals = summary.loss_totals(details)
    assert totals[summary.LOSS_TOTAL_COLUMNS].values.tolist() == [
        [2023, "A01", "过程", "绩效目标合理性", False, 2, 1, 60], [2023, "A19", "产出", "", True, 2, 2, 850]]
    assert summary.loss_totals(details.iloc[:0]).empty


def test_unit_rows_of_a_unit_without_totals_or_budget_indicators():
    """A unit the scoring never reached has no total (无法评级) and no amounts; the first 预算执行率 row of a unit
    gives its amounts (a second one is ignored, as the 汇总 always took the first)."""
    units = pd.DataFrame({"单位编码": ["U1", "U2"], "财年": [2023, 2023], "单位名称": ["一局", "二局"]})
    totals = pd.DataFrame({"单位编码": ["U1"], "财年": [2023], "总分": [88.125], "等级": ["良"], "过程": [30.004]})
    indicators = pd.DataFrame([_indicator("U1", "预算执行率", 90, 100), _indicator("U1", "预算执行率", 1, 2)])
    rows = summary.unit_rows(units, totals, indicators)
    assert list(rows.columns) == ["单位编码", "财年", "单位名称", "总分", "等级", "过程", "全年预算数", "实际支出数",
                                  "三公经费预算数", "三公经费实际支出数"]
    assert rows.loc[0, ["总分", "等级", "过程", "全年预算数", "实际支出数"]].tolist() == \
        [88.13, "良", 30.0, 100.0, 90.0]
    assert pd.isna(rows.loc[1, "总分"]) and rows.loc[1, "等级"] == summary.NO_GRADE
    assert pd.isna(rows.loc[1, "全年预算数"])
    assert rows[["三公经费预算数", "三公经费实际支出数"]].isna().all().all()


def test_budget_totals_and_overall_rates(ev):
    b = summary.summary_tables(ev, 2023)["预算执行"].frame()
    assert b["单位编码"].tolist() == ["U1", "U2", "U3", "合计"]
    assert b["预算执行率"].tolist() == [0.9, 0.9, 0.75, 0.8684]
    assert b.iloc[-1][["全年预算数", "实际支出数"]].tolist() == [190.0, 165.0]
    assert b["三公经费控制率"].tolist()[:2] == [0.9063, 1.0] and pd.isna(b.loc[2, "三公经费控制率"])
    assert b.iloc[-1][["三公经费预算数", "三公经费实际支出数", "三公经费控制率"]].tolist() == [11.6, 10.7, 0.9224]


def test_issues_of_the_year_with_unit_names(ev):
    chunks = list(summary.summary_tables(ev, 2023)["数据问题"])  # errors first; the file of no unit in every year
    assert all(list(chunk) == summary.ISSUE_COLUMNS for chunk in chunks)
    iss = {name: [v for chunk in chunks for v in chunk[name]] for name in summary.ISSUE_COLUMNS}
    assert iss["问题"] == ["读不出的文件", "U1 的问题"]
    assert [iss["单位编码"][1], iss["单位名称"][1]] == ["U1", "一局"]
    assert [iss["单位编码"][0], iss["单位名称"][0]] == [None, None]


def test_write_summary_reads_back(ev, tmp_path):
    path = summary.write_summary(summary.summary_tables(ev, 2023), tmp_path / "2023" / "汇总.xlsx", 2023)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["汇总排名", "分布", "失分指标", "预算执行汇总", "数据问题"]
    rows = list(wb["汇总排名"].iter_rows(min_row=3, values_only=True))
    assert [r[:5] for r in rows] == [(1, "U1", "一局", 92.5, "优"), (2, "U2", "二局", 80, "良"),
                                     (2, "U3", "三局", 80, "良")]
    assert len(wb["分布"]._charts) == 2
    assert [p.name for p in path.parent.iterdir()] == ["汇总.xlsx"]  # no temporary file left


# --- a real run: the example for 2023 and a modified copy for 2022 ----------------------------------------------


def _write_2022_copy(folder):
    """The example unit for 2022: 人员经费 spent 450.00 of 471.71 (so Σ实际 520.00 of Σ全年预算 541.71), and the
    三公经费 of 2022 as the 2023 example gives them as 上年 (公务用车运行维护费 6.50 / 6.10, 公务接待费 3.80 / 3.40)."""
    year = 2022
    budget = example.budget_data()
    budget["单位信息"] = {**budget["单位信息"], "财年": year}
    lines = example.budget_lines()
    lines[0] = {**lines[0], "实际支出数": 450.00, "结转结余数": 21.71}
    budget["预算执行"] = lines
    budget["三公经费"] = [{**r, "预算数": r["上年预算数"], "实际支出数": r["上年实际支出数"], "上年预算数": None,
                       "上年实际支出数": None} for r in example.sangong_rows()]
    info = {"单位名称": example.UNIT_NAME, "单位编码": example.UNIT_CODE, "财年": year}
    write_workbook(BUDGET_EXECUTION, folder / "预算执行表_2022.xlsx", year, budget)
    write_workbook(PERFORMANCE_TARGETS, folder / "绩效目标表_2022.xlsx", year,
                   {"单位信息": info, "绩效目标": example.target_rows()})
    for section, rows in example.WORK_STAT_FILES.items():
        write_workbook(WORK_STATISTICS, folder / f"工作统计表_2022_{section}.xlsx", year,
                       {"单位信息": {**info, "填报科室": section}, "工作统计": rows()})


@pytest.fixture(scope="module")
def two_years(tmp_path_factory):
    root = tmp_path_factory.mktemp("yoy")
    inp, out = root / "input", root / "output"
    shutil.copytree(example.Path(example.__file__).resolve().parent.parent / "input_templates" / "example",
                    inp / "2023")
    _write_2022_copy(inp / "2022")
    fw, _ = load_framework(default_framework_path())
    ev = evaluate(inp, fw)
    written = write_outputs(ev, fw, out)
    return ev, out, written


def _yoy(book):
    rows = list(book["年度对比"].iter_rows(min_row=2, values_only=True))
    return {r[0]: r[1:] for r in rows[1:] if r[0]}


def test_each_year_gets_its_own_summary(two_years):
    _, out, written = two_years
    for year in (2022, 2023):
        assert out / str(year) / "汇总.xlsx" in written
        wb = openpyxl.load_workbook(out / str(year) / "汇总.xlsx")
        rows = [r for r in wb["汇总排名"].iter_rows(min_row=3, values_only=True) if r[0] is not None]
        assert len(rows) == 1 and rows[0][1] == example.UNIT_CODE
    assert (out / "2022" / ".data" / f"{example.UNIT_CODE}.json").is_file()


def test_year_on_year_sheet(two_years):
    ev, out, _ = two_years
    name = f"{example.UNIT_CODE}_{example.UNIT_NAME}_绩效评价.xlsx"
    assert "年度对比" not in openpyxl.load_workbook(out / "2022" / name).sheetnames  # no 2021 to compare with
    book = openpyxl.load_workbook(out / "2023" / name)
    heads = next(book["年度对比"].iter_rows(min_row=2, max_row=2, values_only=True))
    assert heads[:5] == ("指标", "2022年", "2023年", "增减", "增减率")
    yoy = _yoy(book)
    # 2022: 520.00 / 541.71 = 0.959923 → 95.99%; 2023: 541.71 / 541.71 = 100% → +4.01 points
    assert yoy["预算执行率"][:3] == (0.9599, 1, 0.0401)
    assert yoy["全年预算数"] == (541.71, 541.71, 0, 0)
    assert yoy["实际支出数"][:3] == (520, 541.71, 21.71)
    # 三公: 2022 6.10 + 3.40 = 9.50 of 6.50 + 3.80 = 10.30; 2023 5.40 + 3.30 = 8.70 of 6.00 + 3.60 = 9.60
    assert yoy["“三公经费”实际支出数"] == (9.5, 8.7, -0.8, -0.0842)      # −0.8 / 9.5 = −0.084211
    assert yoy["“三公经费”预算数"] == (10.3, 9.6, -0.7, -0.068)         # −0.7 / 10.3 = −0.067961
    assert yoy["“三公经费”控制率"][:3] == (0.9223, 0.9063, -0.016)     # 9.5 / 10.3 = 0.922330; 8.7 / 9.6 = 0.90625
    assert yoy["公务接待费实际支出数"] == (3.4, 3.3, -0.1, -0.0294)      # −0.1 / 3.4 = −0.029412
    totals = ev.scores.totals.set_index("财年")["总分"]
    assert yoy["总分"][:3] == (totals[2022], totals[2023], round(totals[2023] - totals[2022], 2))
    assert yoy["等级"][2] is None


def test_a_year_missing_from_the_next_input_keeps_its_results(tmp_path):
    """Next year the bureau drops only 2023's files into input/: the 2022 results written before stay (年度对比 and
    `templates --from output/2022` need them); only units of the years in the input are pruned."""
    inp, out = tmp_path / "input", tmp_path / "output"
    shutil.copytree(example.Path(example.__file__).resolve().parent.parent / "input_templates" / "example",
                    inp / "2023")
    _write_2022_copy(inp / "2022")
    fw, _ = load_framework(default_framework_path())
    write_outputs(evaluate(inp, fw), fw, out)
    kept = sorted(p.relative_to(out) for p in (out / "2022").rglob("*") if p.is_file())
    assert kept  # workbook, report, CSV, 汇总, sidecar
    shutil.rmtree(inp / "2022")
    ev = evaluate(inp, fw)
    write_outputs(ev, fw, out)
    assert sorted(p.relative_to(out) for p in (out / "2022").rglob("*") if p.is_file()) == kept
    assert ev.outputs["removed"] == []
