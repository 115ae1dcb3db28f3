"""The cheaper ways of the unit map give what the straightforward formulation gives: numbers' group sums where no
group has more than one row, scoring's target texts, the report template's item look-up, the 评分明细.csv rows of a
batch. Expected values are worked out by hand or by the plain pandas / Python formulation, never by the code under
test."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from pipeline import numbers, report, scoring
from pipeline.run import CSV_COLUMNS, details_csv_parts

# --- numbers: groups of at most one row (a batch's 统计项) ---------------------------------------------------------

_SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -5e-324, 0.1, 0.3, 1e16, 2.0 ** 53]


@st.composite
def _single_rows(draw):
    n = draw(st.integers(1, 40))  # groups, some without a row
    groups = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
    ids = groups + [-1] * draw(st.integers(0, 3))  # rows of no group
    ids = draw(st.permutations(ids))
    values = draw(st.lists(st.one_of(st.floats(), st.sampled_from(_SPECIAL)), min_size=len(ids), max_size=len(ids)))
    return np.array(values, dtype=np.float64), np.array(ids, dtype=np.intp), n


@settings(max_examples=500, deadline=None)
@given(_single_rows(), st.booleans())
def test_single_row_groups_sum_as_the_loop(case, reset_nan_only):
    values, ids, n = case
    got = numbers._kahan_sums_single(values, ids, n)
    want = numbers._kahan_sums_python(values, ids, n, reset_nan_only)
    assert got[0].tobytes() == want[0].tobytes() and got[1].tolist() == want[1].tolist()


def test_single_row_groups_as_pandas():
    """A batch-sized case (taking the single-row path), against pandas' group-by; -0.0 sums to 0.0, blank to 0.0
    (NaN with min_count=1)."""
    rng = np.random.default_rng(7)
    n = 400
    ids = rng.permutation(n + 50)[:n + 50] - 50  # 50 rows of no group, every group one row
    ids = np.where(ids < 0, -1, ids).astype(np.intp)
    values = rng.choice([0.1, -0.0, np.nan, 2.5, 1e16, np.inf], len(ids))
    kept = ids >= 0
    grouped = pd.Series(values[kept]).groupby(ids[kept])
    for got, want in ((numbers.group_sum(values, ids, n), grouped.sum()),
                      (numbers.group_sum(values, ids, n, min_count=1), grouped.sum(min_count=1)),
                      (numbers.group_mean(values, ids, n), grouped.mean())):
        want = want.reindex(range(n)).to_numpy()
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))
    assert not np.signbit(numbers.group_sum(np.array([-0.0] * 200), np.arange(200), 200)).any()


# --- scoring: the texts of targets -------------------------------------------------------------------------------

def _with_unit_ref(text, unit):
    unit = "" if pd.isna(unit) else str(unit)
    return text if not unit or text.endswith(unit) else text + unit


def _target_text_ref(ops, texts, numbers_, units, with_op=True):
    """The target as users read it, one pd.isna per value (the formulation the scorer had)."""
    out = []
    for op, text, num, unit in zip(ops, texts, numbers_, units):
        shown = str(text).strip() if not pd.isna(text) and str(text).strip() else num
        if op == "定性" or shown[:1] in "≥＞＝≤＜><=":
            out.append(shown if with_op or op == "定性" else shown[1:].lstrip("="))
        else:
            out.append(("" if pd.isna(op) or not with_op else str(op)) + _with_unit_ref(shown, unit))
    return out


def _actual_text_ref(ops, texts, numbers_, concls, units):
    out = []
    for op, text, num, concl, unit in zip(ops, texts, numbers_, concls, units):
        if op == "定性":
            out.append("未填写" if pd.isna(concl) else str(concl))
        elif not pd.isna(text) and str(text).strip():
            out.append(_with_unit_ref(str(text).strip(), unit))
        else:
            out.append("未填写" if not num else _with_unit_ref(num, unit))
    return out


def test_target_texts_as_one_value_at_a_time():
    ops = np.array(["≥", "≤", "定性", None, np.nan, "＝", "≥", "≤", "＞"], dtype=object)
    texts = np.array([" ≥80次 ", None, "达成", "  ", np.nan, "100%", 12, "5天", pd.NA], dtype=object)
    nums = ["80", "5", "", "3.5", "", "100", "12", "", "7"]
    units = np.array(["次", "天", None, "%", np.nan, "%", 3, pd.NA, "个"], dtype=object)
    concls = np.array([np.nan, np.nan, "部分达成", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan], dtype=object)
    unit_texts = scoring._unit_texts(units)
    assert unit_texts == ["次", "天", "", "%", "", "%", "3", "", "个"]
    for with_op in (True, False):
        assert scoring._target_text(ops, texts, nums, unit_texts, with_op).tolist() == \
            _target_text_ref(ops, texts, nums, units, with_op)
    assert scoring._actual_text(ops, texts, nums, concls, unit_texts).tolist() == \
        _actual_text_ref(ops, texts, nums, concls, units)
    assert scoring._target_text(ops, texts, nums, unit_texts).tolist()[:3] == ["≥80次", "≤5天", "达成"]


# --- report: the template reads a dict's item first --------------------------------------------------------------

def _sandbox():
    return SandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _report_env():
    return report._ReportEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     autoescape=False)


@pytest.mark.parametrize("source, context", [
    ("{{ 行.分值 }}|{{ 行['得分'] }}|{% for r in 表 %}{{ r.名 }}{% endfor %}",
     {"行": {"分值": "5.00", "得分": "4.17"}, "表": [{"名": "甲"}, {"名": "乙"}]}),
    ("{{ 行.items() | list | length }}|{{ 行.keys() | list }}", {"行": {"a": 1, "b": 2}}),  # dict methods stay
    ("{{ 行.upper() }}|{{ 数.real }}", {"行": "abc", "数": 3}),                                  # not a dict
    ("{{ 行.get('a', 0) }}", {"行": {"a": 7}}),
])
def test_report_environment_renders_as_the_sandbox(source, context):
    assert _report_env().from_string(source).render(context) == _sandbox().from_string(source).render(context)


@pytest.mark.parametrize("source, context, error", [
    ("{{ 行.无此项 }}", {"行": {"分值": 1}}, UndefinedError),             # StrictUndefined, as before
    ("{{ 行.__class__.__mro__ }}", {"行": {"分值": 1}}, SecurityError),    # the sandbox still guards attributes
])
def test_report_environment_refuses_as_the_sandbox(source, context, error):
    for env in (_report_env(), _sandbox()):
        with pytest.raises(error):
            env.from_string(source).render(context)


def _rows(*names):
    return [{n: f"{n}{i}" for n in names} for i in range(3)]


def test_report_template_renders_as_the_sandbox():
    """The shipped template with a context of every name it uses (figures as report_context formats them)."""
    context = {k: f"<{k}>" for k in ("单位名称", "单位编码", "主管部门", "财年", "单位职能", "编制人数", "年末在职人数",
                                      "评分框架", "总分", "等级")}
    context.update(
        预算={**{k: f"{k}值" for k in ("上年结转数", "年初预算数", "预算调增数", "预算调减数", "全年预算数", "实际支出数",
                                      "结转结余数")}, "有结余": True},
        三公={k: f"{k}值" for k in ("预算数", "实际支出数", "上年预算数", "上年实际支出数")},
        指标={k: f"{k}%" for k in report.RATE_NAMES},
        支出类别=_rows("支出类别", "全年预算数", "实际支出数", "执行率"),
        一级指标=_rows("一级指标", "分值", "得分", "失分", "得分率"),
        绩效目标=_rows("序号", "一级指标", "三级指标", "指标值", "实际完成值", "完成率", "分值", "得分"),
        存在的问题=["问题一。", "问题二。"])
    source = report.REPORT_TEMPLATE.read_text(encoding="utf-8")
    want = _sandbox().from_string(source).render(context)
    assert report.render_report_text(context) == want and "实际完成值2" in want and "问题二。" in want


# --- run: 评分明细.csv rows of a batch -----------------------------------------------------------------------------

def test_details_csv_parts_as_a_merge_and_group_by():
    """Two years, a unit without a name, a detail of a unit the units do not hold: the rows pandas' merge with the
    units and group-by on 财年 give (CSV text of each year, in order)."""
    text = pd.Series([""]).dtype
    details = pd.DataFrame({
        "单位编码": pd.array(["B", "A", "A", "C", "B"], dtype=text), "财年": [2024, 2023, 2024, 2023, 2023],
        "指标编码": pd.array(["A01", "A01", "A02", "A01", "A02"], dtype=text),
        "一级指标": pd.array(["投入", "投入", None, "投入", "过程"], dtype=text),
        "完成率": [0.5, 1.0, np.nan, 0.25, 1.0], "分值": [5.0, 5.0, 3.0, 5.0, 2.0],
        "得分": [2.5, 5.0, 0.0, 1.25, 2.0], "扣分说明": pd.array(['引号"与,逗号', "", None, "多\n行", ""], dtype=text)})
    units = pd.DataFrame({"单位编码": ["A", "A", "B", "B"], "财年": [2023, 2024, 2023, 2024],
                          "单位名称": ["甲", "甲", np.nan, "乙"]})
    ev = SimpleNamespace(details=details, units=units)
    named = details.merge(units, on=["单位编码", "财年"], how="left").reindex(columns=CSV_COLUMNS)
    want = {int(y): part.to_csv(index=False, header=False, lineterminator="\r\n").encode("utf-8")
            for y, part in named.groupby("财年", sort=True)}
    got = details_csv_parts(ev)
    assert list(got) == [2023, 2024] and got == want
    assert got[2023].decode("utf-8").splitlines()[0].startswith("A,2023,甲,A01,投入,")  # rows in table order
    assert ",2023,,A02,过程," in got[2023].decode("utf-8")                             # B has no name in 2023
    assert got[2023].decode("utf-8").count("\r\n") == 3                               # A, C (kept, nameless), B
