"""File and folder names built from cell text (单位编码, 单位名称, 填报科室) stay inside their folder."""

import pytest

from pipeline.rollover import data_path, unit_folder_name
from pipeline.run import unit_workbook_name
from pipeline.spec import safe_name


@pytest.mark.parametrize("text, expected", [
    ("430399001", "430399001"),
    ("教育局/体育局", "教育局_体育局"),
    ('a\\b:c*d?e"f<g>h|i', "a_b_c_d_e_f_g_h_i"),
    ("行\n政\t科", "行_政_科"),          # control characters
    ("  市场监管局.  ", "市场监管局"),      # Windows drops trailing dots and spaces
    ("..", "兜底"), (".", "兜底"), ("", "兜底"), (None, "兜底"), ("   ", "兜底"),
    ("../..", ".._"),                    # no separator survives (and the trailing dots go)
])
def test_safe_name(text, expected):
    assert safe_name(text, "兜底") == expected


def test_a_unit_code_never_picks_the_folder(tmp_path):
    name = unit_workbook_name({"单位编码": "../../etc", "单位名称": "局/科"})
    assert name == ".._.._etc_局_科_绩效评价.xlsx" and "/" not in name
    assert data_path(tmp_path, 2023, "../x").parent == tmp_path / "2023" / ".data"
    assert unit_folder_name({"单位编码": "..", "unit": {"单位名称": "."}}) == "未编码单位_未命名单位"
