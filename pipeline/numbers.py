"""Excel-compatible rounding and cell addressing."""

from __future__ import annotations

import math

import numpy as np


def excel_round(x, digits: int = 2):
    """Round half away from zero, as Excel's ROUND does: excel_round(90.625, 2) == 90.63 where Python's round gives
    90.62. Float noise (90.62499999999999 from 8.7/9.6*100) is removed first by rounding to 9 decimals of the scaled
    value, which is far below any figure we show. Works on scalars and numpy arrays; NaN stays NaN."""
    arr = np.asarray(x, dtype=float)
    scale = 10.0 ** digits
    scaled = np.round(np.abs(arr) * scale, 9)
    out = np.sign(arr) * np.floor(scaled + 0.5) / scale
    if np.ndim(out) == 0:
        v = float(out)
        return 0.0 if v == 0 else v
    return out + 0.0  # turn -0.0 into 0.0


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
    return [dict(zip(cols, row)) for row in zip(*(df.iloc[:, j].tolist() for j in range(len(cols))))]
