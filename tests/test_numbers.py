"""numbers: Excel rounding (the pure-Python scalar path is the numpy path, bit for bit) and `records`."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from pipeline.numbers import excel_round, records


def bits(x) -> bytes:
    return np.float64(x).tobytes()


@pytest.mark.parametrize("x, digits, expected", [
    (90.625, 2, 90.63), (2.675, 2, 2.68), (-1.005, 2, -1.01), (8.7 / 9.6 * 100, 2, 90.63), (0.5, 0, 1.0),
    (-0.5, 0, -1.0), (1.5, 0, 2.0), (2.5, 0, 3.0), (0.90625, 4, 0.9063), (1234.5, -1, 1230.0), (5, 2, 5.0),
])
def test_excel_round_half_away_from_zero(x, digits, expected):
    assert excel_round(x, digits) == expected


def test_excel_round_zero_nan_and_types():
    for zero in (0.0, -0.0, -1e-12, 1e-12):
        assert bits(excel_round(zero, 2)) == bits(0.0)  # never -0.0
    assert math.isnan(excel_round(math.nan, 2))
    assert type(excel_round(np.float64(1.005), 2)) is float and excel_round(np.float64(1.005), 2) == 1.01
    assert type(excel_round(3, 2)) is float
    assert list(excel_round(np.array([1.005, -2.675, np.nan]), 2)[:2]) == [1.01, -2.68]


def _cases():
    rng = random.Random(20240101)
    out = [0.0, -0.0, 5e-324, 0.005, 0.015, 1.005, 2.675, 90.625, 0.125, 1e15 - 0.5, 9.99999999e14, 4503599627370497.0,
           1e16, -1e16, 1e300, math.inf, -math.inf]
    for _ in range(20000):
        k = rng.random()
        if k < 0.4:  # figures at a rounding boundary, with float noise around it
            v = rng.randint(-10**7, 10**7) / rng.choice([10, 100, 1000, 10000]) + rng.choice([0, 5e-3, -5e-3, 5e-5])
        elif k < 0.6:
            v = rng.randint(1, 999) / rng.randint(1, 999) * 100
        else:
            v = rng.uniform(-1, 1) * 10 ** rng.randint(-12, 17)
        out.append(v)
    return out


def test_scalar_path_is_the_array_path_bit_for_bit():
    values = _cases()
    for digits in (0, 1, 2, 4, -1):
        with np.errstate(over="ignore"):  # 1e300 × 10^digits × 10^9
            expected = excel_round(np.array(values), digits)
        for v, e in zip(values, expected):
            with np.errstate(over="ignore"):
                got = excel_round(v, digits)
            assert type(got) is float
            assert bits(got) == bits(e + 0.0) or (math.isnan(got) and math.isnan(e)), (v, digits, got, e)


def test_records_are_the_columns_as_python_scalars():
    df = pd.DataFrame({"s": ["a", None, "c"], "f": [1.5, np.nan, -0.0], "i": [1, 2, 3], "b": [True, False, True],
                       "n": pd.array([1, None, 3], dtype="Int64"), "o": [1, "x", None],
                       "d": pd.to_datetime(["2024-01-01", None, "2024-03-01"])})
    df = pd.concat([df, df[["s"]].rename(columns={"s": "f"})], axis=1)  # a repeated name: the last column wins
    cols = list(df.columns)
    expected = [dict(zip(cols, row)) for row in zip(*(df.iloc[:, j].tolist() for j in range(len(cols))))]
    got = records(df)
    assert [list(r) for r in got] == [list(r) for r in expected]
    for g, e in zip(got, expected):
        for k in g:
            assert type(g[k]) is type(e[k]) and (g[k] is e[k] or g[k] == e[k] or (g[k] != g[k] and e[k] != e[k]))
    assert got[0]["f"] == "a"
    assert records(df.iloc[0:0]) == []
