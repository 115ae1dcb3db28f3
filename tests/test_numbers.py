"""numbers: Excel rounding (the pure-Python scalar path is the numpy path, bit for bit), `records`, and the group
aggregates every per-unit sum goes through."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import numbers
from pipeline.numbers import (
    excel_round,
    group_first,
    group_ids,
    group_mean,
    group_sum,
    is_blank,
    records,
)


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


# ---------------------------------------------------------------------------------------------------------------
# Group aggregates: the same floats as pandas' groupby on its compensated path, with missing keys, blank values and
# overflow; and a group's figure never depends on the other groups (units sharing a batch).

def _group_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    keys = rng.integers(0, int(rng.integers(1, 6)), n).astype(float)
    if seed % 3 == 0:
        keys = np.sort(keys)                       # rows already in group order
    if seed % 5 == 0 and n:
        keys[rng.random(n) < 0.2] = np.nan         # missing keys
    pools = [rng.random(n) * 10.0 ** rng.integers(-3, 8, n), np.round(rng.random(n) * 100, 2),
             rng.choice([0.1, 0.2, 0.3, 1e16, -1e16, 1.0, np.nan, 3.33, 6.67, -0.0], n),
             rng.choice([1e308, -1e308, 1.0, np.inf, -np.inf, 5.0, np.nan], n)]
    return keys, pools[seed % 4]


@pytest.mark.parametrize("seed", range(400))
def test_group_aggregates_match_pandas(seed):
    keys, values = _group_case(seed)
    ids, n = group_ids([keys])
    expected_ids, uniques = pd.factorize(keys, sort=True)
    assert n == len(uniques) and (ids == expected_ids).all()
    # pandas takes its compensated path once any value is NaN or the rows are out of group order: a NaN row of a key
    # of its own forces it there, as another unit's blank amount does in a batch
    grouped = pd.Series(np.r_[values, np.nan]).groupby(np.r_[keys, 1e9])
    uniques = np.r_[uniques, 1e9]
    for got, want in [(group_sum(values, ids, n), grouped.sum()), (group_mean(values, ids, n), grouped.mean()),
                      (group_sum(values, ids, n, min_count=1), grouped.sum(min_count=1))]:
        want = want.reindex(uniques).to_numpy()[:-1]
        assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("seed", range(100))
def test_a_group_sum_depends_on_its_own_rows_only(seed):
    keys, values = _group_case(seed)
    ids, n = group_ids([keys])
    together = group_sum(values, ids, n)
    for g in range(n):
        alone = group_sum(values[ids == g], np.zeros(int((ids == g).sum()), dtype=np.intp), 1)
        assert np.array_equal(alone, together[g:g + 1], equal_nan=True)


def test_group_ids_and_first_as_groupby():
    codes = np.array(["b", "a", "b", None, "a", "c"], dtype=object)
    years = np.array([2024, 2023, 2023, 2023, 2023, 2023])
    ids, n = group_ids([codes, years])
    assert (n, ids.tolist()) == (4, [2, 0, 1, -1, 0, 3])             # (a,2023) (b,2023) (b,2024) (c,2023)
    ids, n = group_ids([codes], dropna=False)
    assert (n, ids.tolist()) == (4, [1, 0, 1, 3, 0, 2])             # the missing key is a group of its own, last
    text = np.array([None, "x", "y", np.nan, None, None], dtype=object)
    first = group_first(text, ids, n).tolist()
    assert first == ["x", "y", None, None]
    assert first == pd.Series(text, dtype=object).groupby(codes, dropna=False).first().tolist()


# The two implementations of numbers._kahan_sums (a plain-Python loop for small inputs, numpy for many groups) give
# the same bits, whatever the values: NaN, ±inf, -0.0, huge and subnormal magnitudes, rows of no group, empty groups.

_SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324,
            2.2250738585072014e-308, 0.1, 0.2, 0.3, 1e16, -1e16, 1.0, 3.33, 6.67, 2.0 ** 53, 1e-300]
_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_SPECIAL),
                    st.integers(-10**6, 10**6).map(lambda i: i / 100))


@st.composite
def _kahan_inputs(draw):
    n = draw(st.integers(1, 8))  # groups; some get no row (an empty group)
    rows = draw(st.lists(st.tuples(st.integers(-1, n - 1), _values), max_size=80))
    ids = np.array([g for g, _ in rows], dtype=np.intp)
    values = np.array([v for _, v in rows], dtype=np.float64)
    return values, ids, n


@settings(max_examples=1000, deadline=None)
@given(_kahan_inputs(), st.booleans())
def test_python_and_numpy_kahan_sums_are_bit_identical(case, reset_nan_only):
    values, ids, n = case
    py_total, py_nobs = numbers._kahan_sums_python(values, ids, n, reset_nan_only)
    np_total, np_nobs = numbers._kahan_sums_numpy(values, ids, n, reset_nan_only)
    assert py_total.dtype == np_total.dtype == np.float64 and py_nobs.dtype == np_nobs.dtype == np.int64
    assert py_total.tobytes() == np_total.tobytes(), (values, ids, py_total, np_total)
    assert py_nobs.tolist() == np_nobs.tolist()


@pytest.mark.parametrize("size, groups", [(0, 1), (150, 1), (151, 1), (400, 3), (2000, 1000), (5000, 5000),
                                          (3000, 40)])
def test_kahan_sums_takes_either_path_with_the_same_bits(size, groups):
    rng = np.random.default_rng(size + groups)
    ids = rng.integers(-1, groups, size).astype(np.intp)
    values = rng.choice([0.1, 0.2, 0.3, 1e16, -1e16, -0.0, np.nan, np.inf, 3.33, 1e308], size) * rng.random(size)
    for reset_nan_only in (False, True):
        got = numbers._kahan_sums(values, ids, groups, reset_nan_only)
        for impl in (numbers._kahan_sums_python, numbers._kahan_sums_numpy):
            want = impl(values, ids, groups, reset_nan_only)
            assert got[0].tobytes() == want[0].tobytes() and got[1].tolist() == want[1].tolist()


def _is_blank_reference(v) -> bool:
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    return (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def test_is_blank():
    """None, NaN (of any float), NA, NaT and whitespace-only text (of any str) are blank; as the definition says."""
    class Text(str):
        pass

    blank = [None, math.nan, np.nan, np.float64("nan"), pd.NA, pd.NaT, "", "  \t\n", "\u3000", Text(" "), np.str_(" ")]
    filled = [0, 0.0, -0.0, np.float64(0), math.inf, "a", " a ", Text("x"), np.str_("x"), False, True, np.int64(0),
              np.float32("nan"), pd.Timestamp("2024-01-01"), [], {}, b""]
    assert [is_blank(v) for v in blank] == [True] * len(blank)
    assert [is_blank(v) for v in filled] == [_is_blank_reference(v) for v in filled]
    assert [_is_blank_reference(v) for v in blank] == [True] * len(blank)
