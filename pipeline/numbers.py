"""Excel-compatible rounding and cell addressing."""

from __future__ import annotations

import math

import numpy as np

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
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    return (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def records(df) -> list[dict]:
    """`df.to_dict("records")`, several times faster on the small per-unit frames render walks (pandas builds each
    row through its indexing machinery; here each column becomes a list of Python scalars once)."""
    cols = list(df.columns)
    if not len(df):
        return []
    return [dict(zip(cols, row)) for row in zip(*(s.tolist() for _, s in df.items()))]
