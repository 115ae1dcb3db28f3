"""取数公式 parser: expected values are hand arithmetic on the given statistics."""

import pytest

from pipeline.formula import FormulaError, parse_formula

STATS = {"12345办结件数": 2532.0, "12345转办件数": 2753.0, "特种设备监督检查次数": 81.0, "零": 0.0}


@pytest.mark.parametrize("text, expected", [
    ("[特种设备监督检查次数]", 81.0),
    ("[12345办结件数]/[12345转办件数]*100", 2532 / 2753 * 100),       # 91.9724…
    ("［12345办结件数］÷［12345转办件数］×100", 2532 / 2753 * 100),    # full-width signs from a Chinese IME
    ("【12345办结件数】÷【12345转办件数】×100", 2532 / 2753 * 100),
    ("([12345转办件数] - [12345办结件数]) / [12345转办件数] * 100", 221 / 2753 * 100),
    ("1 + 2 * 3", 7.0),
    ("(1 + 2) * 3", 9.0),
    ("-[特种设备监督检查次数] + 100", 19.0),
    ("10 / 4 / 5", 0.5),                 # left-associative: (10/4)/5
    ("2 - 3 - 4", -5.0),
    (".5*4", 2.0),
])
def test_evaluates(text, expected):
    assert parse_formula(text).evaluate(STATS) == pytest.approx(expected)


def test_names_in_order_of_use():
    f = parse_formula("[a]/[b]*[a]")
    assert f.names == ("a", "b")


@pytest.mark.parametrize("text, words", [
    ("", "为空"),
    ("[a] +", "不完整"),
    ("([a] + 1", "不完整"),
    ("[a] 1", "多出"),
    ("__import__('os')", "无法识别"),
    ("[a] ** 2", "位置不对"),
    ("[]", "空的方括号"),
    ("[a] ; 1", "无法识别"),
])
def test_syntax_errors_are_chinese_and_never_execute(text, words):
    with pytest.raises(FormulaError, match=words):
        parse_formula(text)


def test_unknown_name_listed():
    with pytest.raises(FormulaError, match=r"\[不存在\]"):
        parse_formula("[不存在]/[特种设备监督检查次数]").evaluate(STATS)


def test_division_by_zero_is_reported_not_raised_as_zerodivision():
    with pytest.raises(FormulaError, match="除以 0"):
        parse_formula("[特种设备监督检查次数]/[零]").evaluate(STATS)
