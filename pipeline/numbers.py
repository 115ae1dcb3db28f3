"""Shared numeric helpers: Excel-compatible rounding, cell addressing, per-group sums."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Below this magnitude the pure-Python scalar path of excel_round is exact (no overflow of |x| × 10^digits × 10^9).
_SCALAR_LIMIT = 1e15


def excel_round(x, digits: int = 2):
    """Round half away from zero, as Excel's ROUND does: excel_round(90.625, 2) == 90.63 where Python's round gives
    90.62. Float noise (90.62499999999999 from 8.7/9.6*100) is removed first by rounding to 9 decimals of the scaled
    value, which is far below any figure we show. Works on scalars and numpy arrays; NaN stays NaN."""
    if isinstance(x, float) or x.__class__ is int:
        v = float(x)
        if -_SCALAR_LIMIT < v < _SCALAR_LIMIT:  # also False for NaN
            return _round_scalar(v, digits)
    arr = np.asarray(x, dtype=float)
    scale = 10.0 ** digits
    scaled = np.round(np.abs(arr) * scale, 9)
    out = np.sign(arr) * np.floor(scaled + 0.5) / scale
    if np.ndim(out) == 0:
        v = float(out)
        return 0.0 if v == 0 else v
    return out + 0.0  # turn -0.0 into 0.0


def _round_scalar(v: float, digits: int) -> float:
    """excel_round of one finite float, the same IEEE operations as the numpy path without its per-call overhead
    (called for every rounded figure): np.round(y, 9) is rint(y × 1e9) / 1e9, and rint is round-half-even like
    Python's round()."""
    scale = float(10.0 ** digits)
    scaled = round(abs(v) * scale * 1e9) / 1e9
    out = math.floor(scaled + 0.5) / scale
    if out == 0:
        return 0.0
    return -out if v < 0 else out


def col_letter(col: int) -> str:
    """0-based column index → Excel letters: 0 → A, 27 → AB."""
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cell_ref(row: int, col: int) -> str:
    """1-based Excel row and 0-based column index → `F7`."""
    return f"{col_letter(col)}{row}"


def is_blank(v) -> bool:
    """None, NaN, pandas' NA and whitespace-only text are blank; 0 is not."""
    cls = v.__class__
    if cls is str:  # the common cases first (called for every cell of some tables)
        return not v.strip()
    if cls is float:
        return math.isnan(v)
    if v is None or cls.__name__ in ("NAType", "NaTType"):
        return True
    return (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def records(df) -> list[dict]:
    """`df.to_dict("records")`, several times faster on the small per-unit frames render walks (pandas builds each
    row through its indexing machinery; here each column becomes a list of Python scalars once)."""
    cols = list(df.columns)
    if not len(df):
        return []
    return [dict(zip(cols, row)) for row in zip(*(s.tolist() for _, s in df.items()))]


# ---------------------------------------------------------------------------------------------------------------
# Group aggregates with pandas' arithmetic, without its per-call overhead. A unit's figures must depend on its own
# rows only, never on which other units share its batch (run.py evaluates units in batches). pandas does not
# guarantee that: it sums with `np.add.reduceat` when the whole frame is in group order without NaN, and with its
# Kahan-compensated loop otherwise, so one blank amount in another unit would change the last bit of this unit's
# sums. These functions always use pandas' compensated loop (the same floats as `groupby(...).sum()` / `.mean()` on
# that path; tests/test_numbers.py compares them), which depends only on each group's values in row order. Every
# per-unit sum (intermediate, indicators, checks, scoring, and the totals render writes) goes through them.

TEXT_DTYPE = pd.Series([""]).dtype  # pandas' own dtype for text (`str` under pandas 3), for columns built from arrays


def group_ids(keys: list[np.ndarray], dropna: bool = True) -> tuple[np.ndarray, int]:
    """(group number of every row, number of groups) as `groupby(keys, sort=True, dropna=dropna)` numbers the
    groups: by key, text by code point, a missing key last (dropna=False) or -1 (dropna=True)."""
    n = len(keys[0]) if keys else 0
    combined = np.zeros(n, dtype=np.int64)
    missing = np.zeros(n, dtype=bool)
    for key in keys:
        codes, uniques = pd.factorize(key, sort=True, use_na_sentinel=dropna)
        missing |= codes < 0
        combined = combined * max(len(uniques), 1) + codes
    ids = np.full(n, -1, dtype=np.intp)
    uniques, ids[~missing] = np.unique(combined[~missing], return_inverse=True)
    return ids, len(uniques)


# Up to this many values _kahan_sums always takes the Python loop (numpy's fixed cost per call, counted in values).
_PYTHON_MIN = 150


def _kahan_sums(values: np.ndarray, ids: np.ndarray, n: int, reset_nan_only: bool):
    """pandas' Cython kernels (its path for unsorted rows or NaN): per group, Kahan-compensated sum of the non-NaN
    values in row order, and the number of values summed. group_sum resets an infinite compensation, group_mean only
    NaN. Implementations doing the same IEEE operations in the same order, hence the same bits
    (tests/test_numbers.py, tests/test_unit_costs.py): a plain-Python loop, about 0.4 µs per value, and a loop
    vectorised over the groups, about 60 µs per call plus 12 µs per value of the largest group; and, where no
    group has more than one row (a batch's 统计项, one line each), that loop's first step without its sort. The
    Python loop wins on the small per-unit tables that render and report sum and on a few large groups; numpy on
    many small groups (a whole batch)."""
    if len(values) > _PYTHON_MIN:
        largest = int(np.bincount(ids[ids >= 0], minlength=1).max())
        if largest <= 1:
            return _kahan_sums_single(values, ids, n)
        if len(values) >= _PYTHON_MIN + 30 * largest:  # 0.4 µs × values ≥ 60 µs + 12 µs × largest: numpy is cheaper
            return _kahan_sums_numpy(values, ids, n, reset_nan_only)
    return _kahan_sums_python(values, ids, n, reset_nan_only)


def _kahan_sums_python(values: np.ndarray, ids: np.ndarray, n: int, reset_nan_only: bool):
    """_kahan_sums one value at a time, with Python floats (C doubles, the operations of the numpy loop)."""
    total, comp, nobs = [0.0] * n, [0.0] * n, [0] * n
    for g, v in zip(ids.tolist(), values.tolist()):
        if g < 0 or math.isnan(v):  # a row of no group, a blank value
            continue
        y = v - comp[g]
        t = total[g] + y
        c = t - total[g] - y
        if math.isnan(c) if reset_nan_only else not math.isfinite(c):
            c = 0.0
        comp[g] = c
        total[g] = t
        nobs[g] += 1
    return np.array(total, dtype=np.float64), np.array(nobs, dtype=np.int64)


def _kahan_sums_numpy(values: np.ndarray, ids: np.ndarray, n: int, reset_nan_only: bool):
    """_kahan_sums vectorised over groups: step k adds every group's k-th value."""
    keep = (ids >= 0) & ~np.isnan(values)
    group, value = ids[keep], values[keep]
    order = np.argsort(group, kind="stable")
    group, value = group[order], value[order]
    nobs = np.bincount(group, minlength=n).astype(np.int64)
    rank = np.arange(len(group)) - (np.cumsum(nobs) - nobs)[group]
    total, comp = np.zeros(n), np.zeros(n)
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(int(rank.max()) + 1 if len(rank) else 0):
            at = rank == k
            g = group[at]
            y = value[at] - comp[g]
            t = total[g] + y
            c = t - total[g] - y
            c[np.isnan(c) if reset_nan_only else ~np.isfinite(c)] = 0.0
            comp[g] = c
            total[g] = t
    return total, nobs


def _kahan_sums_single(values: np.ndarray, ids: np.ndarray, n: int):
    """_kahan_sums where no group has more than one row: the loop's one step per group, 0.0 + the value (0.0 + -0.0
    is 0.0; the compensation, reset or not, is never used again); a blank value, or no row, sums to 0.0 and counts
    nothing."""
    keep = ids >= 0
    group, value = ids[keep], values[keep]
    blank = np.isnan(value)
    total, nobs = np.zeros(n), np.zeros(n, dtype=np.int64)
    total[group] = np.where(blank, 0.0, 0.0 + value)
    nobs[group] = ~blank
    return total, nobs


def group_sum(values, ids: np.ndarray, n: int, min_count: int = 0) -> np.ndarray:
    """Per group `Series.groupby(...).sum(min_count=min_count)` of float values: NaN skipped, NaN where fewer than
    min_count values; `ids` from group_ids."""
    values = np.asarray(values, dtype=float)
    total, nobs = _kahan_sums(values, ids, n, reset_nan_only=False)
    return np.where(nobs < min_count, np.nan, total) if min_count > 0 else total


def group_mean(values, ids: np.ndarray, n: int) -> np.ndarray:
    """Per group `Series.groupby(...).mean()` of float values (NaN skipped; NaN for a group without values)."""
    values = np.asarray(values, dtype=float)
    total, nobs = _kahan_sums(values, ids, n, reset_nan_only=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nobs > 0, total / np.maximum(nobs, 1), np.nan)


def group_first(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Per group the first non-missing value (`groupby(...).first()`), None where the group has none."""
    rows = np.flatnonzero(~pd.isna(values) & (ids >= 0))
    groups, first = np.unique(ids[rows], return_index=True)
    out = np.full(n, None, dtype=object)
    out[groups] = values[rows[first]]
    return out
