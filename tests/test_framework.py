"""Framework definitions (A, B) and the 评分标准 workbook loader: round trips and rejection of bad workbooks."""

from __future__ import annotations

import copy
from pathlib import Path

import openpyxl
import pytest

from pipeline import spec
from pipeline.framework import (
    default_framework_path, framework_workbook_data, load_framework, parse_bands, parse_number, parse_rule_params,
    parse_tiers, split_pairs,
)


def write_framework(path: Path, data: dict, meta: dict | None = None, blank_rows_above: int = 0,
                    reverse_columns: bool = False) -> Path:
    """A 评分标准 workbook with the layout of templates.write_workbook: one sheet per spec sheet, header row of
    Field.label, then the rows; hidden `_meta` (key in A, value in B). Written here so the tests do not depend on
    templates.py. `blank_rows_above` / `reverse_columns` mimic a user who inserted rows or moved columns."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in spec.SCORING_FRAMEWORK.sheets:
        if sheet.name not in data:
            continue
        ws = wb.create_sheet(sheet.name)
        fields = list(reversed(sheet.fields)) if reverse_columns else list(sheet.fields)
        for _ in range(blank_rows_above):
            ws.append([])
        ws.append([f.label for f in fields])
        for row in data[sheet.name]:
            ws.append([row.get(f.name) for f in fields])
    ws = wb.create_sheet(spec.META_SHEET)
    ws.sheet_state = "hidden"
    for k, v in ({"模板类型": "评分标准", "模板版本": spec.TEMPLATE_VERSION} | (meta or {})).items():
        ws.append([k, v])
    wb.save(path)
    return path


def shipped(tmp_path: Path, key: str, edit=None) -> Path:
    """Framework `key` written to tmp_path, after `edit(data)` changed it in place."""
    data, meta = framework_workbook_data(key)
    data = copy.deepcopy(data)
    if edit:
        edit(data)
    return write_framework(tmp_path / f"rules_{key}.xlsx", data, meta)


# ---------------------------------------------------------------------------------------------------------------
# Definitions round trip

@pytest.mark.parametrize("key, n_rows, levels", [
    ("A", 20, ["投入", "过程", "产出", "效果"]),
    ("B", 4, ["预算执行", "产出指标", "效益指标", "满意度指标"]),
])
def test_shipped_framework_round_trips(tmp_path, key, n_rows, levels):
    fw, issues = load_framework(shipped(tmp_path, key))
    assert issues == []
    assert fw is not None
    assert len(fw.rows) == n_rows
    assert fw.rows["分值"].sum() == pytest.approx(100)
    assert fw.level1_order == levels
    assert fw.grades == [("优", 90), ("良", 80), ("中", 60), ("差", 0)]
    assert fw.digits == 2
    assert fw.version == "2023.1"
    assert len(fw.sha256) == 64
    assert set(fw.rows["计算方法"]) <= set(spec.CALC_METHODS)
    assert set(fw.rows["评分方法"]) <= set(spec.SCORE_METHODS)


def test_framework_a_group_totals_match_scoring_md(tmp_path):
    fw, _ = load_framework(shipped(tmp_path, "A"))
    by_level1 = fw.rows.groupby("一级指标")["分值"].sum().to_dict()
    assert by_level1 == {"投入": 20, "过程": 35, "产出": 25, "效果": 20}
    by_level2 = fw.rows.groupby("二级指标")["分值"].sum().to_dict()
    assert by_level2 == {"目标设定": 5, "预算配置": 15, "预算执行": 20, "预算管理": 10, "资产管理": 5,
                         "职责履行": 25, "履职效益": 20}


def test_framework_a_parsed_parameters(tmp_path):
    fw, _ = load_framework(shipped(tmp_path, "A"))
    p = dict(zip(fw.rows["三级指标"], fw.rows["_params"]))
    assert p["预算执行率"] == {"不适用": "满分", "阈值": 1.0, "每点扣": 0.4}
    assert p["在职人员控制率"]["每点扣"] == 0.5
    assert p["“三公经费”控制率"]["每点扣"] == 1.0
    assert p["预算调整率"]["档"] == [("＝", 0.0, 3.0), ("≤", 0.1, 2.0), ("≤", 0.2, 1.0), ("≤", 0.3, 0.5),
                                   ("其他", None, 0.0)]
    assert p["结转结余率"]["次档"] == 2.0
    assert p["绩效目标合理性"]["项目"] == "绩效目标合理性"
    assert p["效益指标、满意度指标（单位绩效目标）"]["一级指标"] == ("效益指标", "满意度指标")
    assert fw.params["偏离度档"] == [(2.0, 0.1), (3.0, 0.2), (5.0, 0.3)]
    assert fw.params["定性区间"]["部分达成"] == (0.6, 0.8)
    assert fw.params["定性比例"] == {"达成": 1.0, "部分达成": 0.7, "未达成": 0.3}
    assert fw.params["偏离度扣分"] is True


def test_framework_rows_mark_their_sources():
    data_a, meta_a = framework_workbook_data("A")
    assert meta_a["框架名称"].endswith("（框架A）")
    assert all("财预〔2013〕53号" in r["依据"] and "岳阳市" in r["依据"] and "雨花区" in r["依据"]
               for r in data_a["评分标准"])
    assert all("合计" in r["依据"] for r in data_a["评分标准"])  # rows whose weight keeps a group's total
    data_b, _ = framework_workbook_data("B")
    assert all("财预〔2020〕10号" in r["依据"] for r in data_b["评分标准"])


def test_header_found_by_label_after_inserted_rows_and_moved_columns(tmp_path):
    data, meta = framework_workbook_data("B")
    path = write_framework(tmp_path / "moved.xlsx", data, meta, blank_rows_above=3, reverse_columns=True)
    fw, issues = load_framework(path)
    assert issues == []
    # 3 blank rows + header on row 4 → first data row is Excel row 5
    assert list(fw.rows["_row"]) == [5, 6, 7, 8]
    assert list(fw.rows["分值"]) == [10, 50, 30, 10]


def test_default_framework_path():
    p = default_framework_path()
    assert p.name == "评分标准_A_部门整体支出.xlsx"
    assert p.parent.name == "input_templates"
    assert (p.parent.parent / "pipeline" / "framework.py").exists()


# ---------------------------------------------------------------------------------------------------------------
# Rejection of bad workbooks: (edit, code, sheet, cell, words in the message)

def _set(sheet, index, **values):
    def edit(data):
        data[sheet][index].update(values)
    return edit


def _set_param(name, value):
    def edit(data):
        next(r for r in data["参数"] if r["参数"] == name)["值"] = value
    return edit


# Row index i of 评分标准 is Excel row i + 2 (header on row 1). Columns: A 指标编码 … E 分值, F 计算方法,
# G 评分方法, H 评分参数.
BAD_WORKBOOKS = [
    (_set("评分标准", 5, 计算方法="预算完成度"), "framework-unknown-calc", "评分标准", "F7", ["评分标准!F7", "预算完成度"]),
    (_set("评分标准", 2, 评分方法="倒扣"), "framework-unknown-method", "评分标准", "G4", ["评分标准!G4", "倒扣"]),
    (_set("评分标准", 17, 分值=0), "framework-total-not-100", "评分标准", "", ["合计为 99", "应为 100"]),
    (_set("评分标准", 17, 分值="一分"), "framework-bad-points", "评分标准", "E19", ["评分标准!E19", "一分"]),
    (_set("评分标准", 2, 评分参数="阈值=100%;每点扣=半分"), "framework-bad-params", "评分标准", "H4",
     ["评分标准!H4", "每点扣"]),
    (_set("评分标准", 2, 评分参数="阈值=100%;每点减=0.5"), "framework-bad-params", "评分标准", "H4", ["每点减"]),
    (_set("评分标准", 2, 评分参数="阈值100%"), "framework-bad-params", "评分标准", "H4", ["键=值"]),
    (_set("评分标准", 4, 评分参数="档=≥90%5,其他:0"), "framework-bad-params", "评分标准", "H6", ["≥90%5"]),
    (_set("评分标准", 4, 评分参数="档=≥90%:6,其他:0"), "framework-bad-params", "评分标准", "H6", ["0 到分值 5"]),
    (_set("评分标准", 0, 评分参数="项目=目标管理"), "framework-bad-params", "评分标准", "H2", ["目标管理"]),
    (_set("评分标准", 18, 评分参数="一级指标=产出"), "framework-bad-params", "评分标准", "H20", ["一级指标"]),
    (_set("评分标准", 5, 评分方法="定性"), "framework-method-mismatch", "评分标准", "G7", ["管理情况"]),
    (_set("评分标准", 3, 指标编码="A03"), "framework-duplicate-code", "评分标准", "A5", ["A03", "第 4 行"]),
    (_set("评分标准", 3, 三级指标=None), "framework-field-missing", "评分标准", "D5", ["三级指标"]),
    (_set("等级", 0, 最低分="九十"), "framework-bad-grade", "等级", "B2", ["等级!B2"]),
    (lambda d: d.update({"等级": []}), "framework-no-grades", "等级", "", ["至少填写一行"]),
    (_set_param("小数位数", "两位"), "framework-bad-param-value", "参数", "B4", ["小数位数"]),
    (_set_param("偏离度扣分", "要"), "framework-bad-param-value", "参数", "B5", ["是”或“否"]),
    (_set_param("定性区间", "达成:80%-100%,部分达成:60%-80%"), "framework-bad-param-value", "参数", "B7", ["未达成"]),
    (_set_param("定性比例", "达成:100%,部分达成:90%,未达成:30%"), "framework-ratio-outside-band", "参数", "",
     ["部分达成", "90%"]),
    (lambda d: d.pop("参数"), "framework-sheet-missing", "参数", "", ["参数"]),
]


@pytest.mark.parametrize("edit, code, sheet, cell, words", BAD_WORKBOOKS,
                         ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD_WORKBOOKS)])
def test_bad_framework_is_rejected_naming_the_cell(tmp_path, edit, code, sheet, cell, words):
    fw, issues = load_framework(shipped(tmp_path, "A", edit))
    assert fw is None
    errors = [(i.code, i.sheet, i.cell) for i in issues if i.severity == "错误"]
    assert (code, sheet, cell) in errors
    message = next(i.message for i in issues if i.code == code)
    for w in words:
        assert w in message
    assert all(i.file == "rules_A.xlsx" for i in issues)


def test_unknown_global_parameter_is_a_warning_only(tmp_path):
    fw, issues = load_framework(shipped(tmp_path, "B", lambda d: d["参数"].append({"参数": "封顶", "值": "是"})))
    assert fw is not None
    assert [(i.severity, i.code) for i in issues] == [("警告", "framework-unknown-param")]


def test_unreadable_file_is_an_issue_not_an_exception(tmp_path):
    path = tmp_path / "not.xlsx"
    path.write_text("not a workbook")
    fw, issues = load_framework(path)
    assert fw is None
    assert issues[0].code == "framework-unreadable"


# ---------------------------------------------------------------------------------------------------------------
# Parameter syntax

@pytest.mark.parametrize("text, expected", [
    ("100%", 1.0), ("0.5", 0.5), ("-3%", -0.03), ("１００％", 1.0), ("abc", None), ("", None),
])
def test_parse_number(text, expected):
    assert parse_number(text) == (pytest.approx(expected) if expected is not None else None)


def test_split_pairs_accepts_full_width_separators():
    assert split_pairs("阈值＝100％；每点扣＝0.5") == ({"阈值": "100%", "每点扣": "0.5"}, None)
    assert split_pairs("阈值=1;阈值=2")[1] == "参数“阈值”重复"


def test_parse_tiers_full_and_half_width_comparators():
    tiers, err = parse_tiers("＝0:3，<=10%:2,＞5%:1,>=1:0.5,＜0:0.2,其他:0")
    assert err is None
    assert tiers == [("＝", 0.0, 3.0), ("≤", 0.1, 2.0), ("＞", 0.05, 1.0), ("≥", 1.0, 0.5), ("＜", 0.0, 0.2),
                     ("其他", None, 0.0)]


def test_parse_bands_rejects_inverted_range():
    assert parse_bands("达成:100%-80%,部分达成:60%-80%,未达成:0%-60%")[0] == {}


@pytest.mark.parametrize("method, text, expected", [
    ("比例", "", {"不适用": "满分"}),
    ("比例", "不适用=零分", {"不适用": "零分"}),
    ("绩效目标", "一级指标=产出指标", {"不适用": "零分", "一级指标": ("产出指标",)}),
    ("结余控制", "次档=2", {"不适用": "满分", "次档": 2.0}),
])
def test_parse_rule_params(method, text, expected):
    assert parse_rule_params(method, text, 5) == (expected, None)
