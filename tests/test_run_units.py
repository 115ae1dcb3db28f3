"""run.py's per-unit helpers: a unit's parts of every table (split once per batch) are exactly its rows, as a
boolean mask per unit gives them, and its total row is `.iloc[0].to_dict()` of its totals."""

import pandas as pd
import pytest

from pipeline.bench import generate
from pipeline.framework import default_framework_path, load_framework
from pipeline.run import _UnitParts, evaluate


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    generate(5, d, 11, workers=1)
    fw, _ = load_framework(default_framework_path())
    return evaluate(d, fw)


def test_unit_parts_are_the_units_rows(ev):
    parts = _UnitParts(ev)
    keys = list(zip(ev.units["单位编码"], ev.units["财年"])) + [("no-such-unit", 2023)]
    assert len(keys) > 2
    for name, frame in parts.frames.items():
        for key in keys:
            mine = (frame["单位编码"] == key[0]) & (frame["财年"] == key[1])
            want = frame[mine.to_numpy(dtype=bool)].reset_index(drop=True)
            got = parts.get(name, key)
            pd.testing.assert_frame_equal(got, want)
            assert isinstance(got.index, pd.RangeIndex) and got.index.start == 0
            if name == "files":
                assert parts.texts(name, "文件", key) == want["文件"].astype(str).tolist()
            if name == "totals":  # the same values of the same types (repr shows np.float64 apart from float)
                assert repr(parts.total(key)) == repr(want.iloc[0].to_dict() if len(want) else {})
