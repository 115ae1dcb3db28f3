"""Year rollover (`templates --year 2024 --from output/2023`) and template-version refusal.

The 2023 input is the shipped example with its 预算执行 changed so that something carries over: 公用经费 spends 65.00 of
70.00 (结转结余 5.00) and a 项目支出 line 执法专项 (重点项目 是) spends 7.50 of 10.00 (结转结余 2.50). Expected
pre-filled 2024 templates, by hand from that input: 上年结转数 0 / 5.00 / 2.50 on the three lines; 三公经费 上年预算数 /
上年实际支出数 = 2023 预算数 / 实际支出数 (0/0, 0/0, 6.00/5.40, 3.60/3.30); the ten targets with 指标值, 取数公式 and
分值 kept and 实际完成值 blank; one 工作统计表 per section with its 统计项 names and no figures.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import openpyxl
import pandas as pd
import pytest

from pipeline import example, rollover, spec
from pipeline.cli import main
from pipeline.framework import default_framework_path, load_framework
from pipeline.run import evaluate, load_dataset, write_outputs
from pipeline.spec import BUDGET_EXECUTION, FieldChange
from pipeline.templates import write_workbook
from xlsx_factory import BUDGET_LINES, OTHER, SANGONG, UNIT, kv_rows, table_rows, write_xlsx

CODE, NAME = example.UNIT_CODE, example.UNIT_NAME
FOLDER = f"{CODE}_{NAME}"


def _input_2023(folder):
    example.write_example(folder)
    budget = example.budget_data()
    lines = example.budget_lines()
    lines[1] = {**lines[1], "实际支出数": 65.00, "结转结余数": 5.00}
    lines[2] = {**lines[2], "项目名称": "执法专项", "重点项目": "是", "年初预算数": 10.00, "全年预算数": 10.00,
                "实际支出数": 7.50, "结转结余数": 2.50}
    budget["预算执行"] = lines
    write_workbook(BUDGET_EXECUTION, folder / "预算执行表_2023.xlsx", 2023, budget)
    return folder


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollover")
    inp = _input_2023(root / "input")
    fw, _ = load_framework(default_framework_path())
    write_outputs(evaluate(inp, fw), fw, root / "output")
    return root


@pytest.fixture(scope="module")
def templates_2024(scored):
    out = scored / "templates"
    assert main(["templates", "--year", "2024", "--from", str(scored / "output" / "2023"), "--out", str(out)]) == 0
    return out / FOLDER


def kv(ws) -> dict:
    return {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r[0]}


def records(ws) -> list[dict]:
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r)) for r in rows[1:] if any(v is not None for v in r)]


def test_sidecar_is_written_beside_the_unit_workbook(scored):
    record = rollover.read_unit_data(scored / "output" / "2023" / ".data" / f"{CODE}.json")
    assert record["单位编码"] == CODE and record["财年"] == 2023
    assert [r["结转结余数"] for r in record["budget_lines"]] == [0, 5.0, 2.5]


def test_one_folder_per_unit_with_every_template(templates_2024):
    names = sorted(p.name for p in templates_2024.iterdir())
    sections = sorted(f"工作统计表_2024_{s}.xlsx" for s in example.WORK_STAT_FILES)
    assert names == sorted(["预算执行表_2024.xlsx", "绩效目标表_2024.xlsx", *sections])


def test_budget_template_carries_unit_info_sangong_and_carry_over(templates_2024):
    wb = openpyxl.load_workbook(templates_2024 / "预算执行表_2024.xlsx")
    info = kv(wb["单位信息"])
    assert info["单位名称*"] == NAME and info["单位编码*"] == CODE and info["财年*"] == 2024
    assert info["主管部门"] == "湘潭市市场监督管理局" and info["编制人数"] == 30
    assert info["年末在职人数"] is None and info["填报日期"] is None  # figures of the new year
    lines = [r for r in records(wb["预算执行"]) if r["支出类别*"] != "合计"]
    assert [(r["支出类别*"], r["项目名称"], r["重点项目"], r["上年结转数（万元）"]) for r in lines] == [
        ("基本支出-人员经费", None, None, 0), ("基本支出-公用经费", None, None, 5), ("项目支出", "执法专项", "是", 2.5)]
    assert all(r["年初预算数*（万元）"] is None and r["实际支出数*（万元）"] is None for r in lines)
    sangong = {r["项目*"]: r for r in records(wb["三公经费"]) if r["项目*"] != "合计"}
    got = {k: (r["预算数*（万元）"], r["实际支出数*（万元）"], r["上年预算数（万元）"], r["上年实际支出数（万元）"])
           for k, r in sangong.items()}
    assert got == {"因公出国（境）费": (None, None, 0, 0), "公务用车购置费": (None, None, 0, 0),
                   "公务用车运行维护费": (None, None, 6, 5.4), "公务接待费": (None, None, 3.6, 3.3)}
    assert kv(wb["_meta"])["财年"] == 2024


def test_targets_keep_values_formulas_and_points_without_actuals(templates_2024):
    wb = openpyxl.load_workbook(templates_2024 / "绩效目标表_2024.xlsx")
    rows = records(wb["绩效目标"])
    assert len(rows) == 10
    assert all(r["实际完成值"] is None and r["偏差原因分析及改进措施"] is None for r in rows)
    r9 = next(r for r in rows if r["三级指标*"] == "12345热线办结率")
    assert (r9["比较符*"], r9["指标值*"], r9["计量单位"], r9["分值"]) == ("≥", 90, "%", 6)
    assert r9["取数公式"] == "[12345办结件数]/[12345转办件数]*100"
    assert kv(wb["单位信息"])["财年*"] == 2024


def test_work_statistics_keep_item_names_only(templates_2024):
    wb = openpyxl.load_workbook(templates_2024 / "工作统计表_2024_特种设备安全监察股.xlsx")
    assert kv(wb["单位信息"])["填报科室"] == "特种设备安全监察股"
    rows = records(wb["工作统计"])
    assert [r["统计项*"] for r in rows][:2] == ["特种设备监督检查次数", "检查特种设备使用单位家次"]
    assert next(r for r in rows if r["统计项*"] == "在册特种设备使用单位数")["汇总方式"] == "期末"
    assert all(r[m] is None for r in rows for m in [*(f"{i}月" for i in range(1, 13)), "全年"])


def test_prefilled_templates_read_back_as_the_new_year(templates_2024):
    ds, _ = load_dataset(templates_2024)
    assert ds.units[["单位编码", "财年"]].values.tolist() == [[CODE, 2024]]
    assert ds.budget_lines["上年结转数"].tolist() == [0, 5, 2.5]


def test_from_a_folder_of_filled_templates_gives_the_same(scored, templates_2024, tmp_path):
    """Without sidecars, --from reads last year's filled templates as input."""
    assert main(["templates", "--year", "2024", "--from", str(scored / "input"), "--out", str(tmp_path)]) == 0
    for path in templates_2024.iterdir():
        a, b = openpyxl.load_workbook(path), openpyxl.load_workbook(tmp_path / FOLDER / path.name)
        for ws in a.worksheets:
            assert list(ws.iter_rows(values_only=True)) == list(b[ws.title].iter_rows(values_only=True)), ws.title


def test_without_from_blank_templates(tmp_path):
    assert main(["templates", "--year", "2024", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["工作统计表_2024.xlsx", "绩效目标表_2024.xlsx",
                                                          "预算执行表_2024.xlsx"]


def test_from_without_earlier_data_is_a_usage_error(scored, tmp_path, capsys):
    assert main(["templates", "--year", "2024", "--from", str(tmp_path / "nope")]) == 2
    assert main(["templates", "--year", "2023", "--from", str(scored / "output" / "2023"),
                 "--out", str(tmp_path)]) == 2  # only 2023 data: nothing before 2023
    assert "没有 2023 年以前的单位数据" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- template versions -----------------------------------------------------------------------------------------


def _old_budget_file(path, header_rename: dict[str, str], version="2022.1"):
    """A 预算执行表 filled on template version `version`, whose 预算执行 header uses old labels."""
    rows = table_rows(BUDGET_EXECUTION, "预算执行", BUDGET_LINES)
    rows[1] = [header_rename.get(h, h) for h in rows[1]]
    sheets = {"单位信息": kv_rows(BUDGET_EXECUTION, "单位信息", UNIT),
              "预算执行": rows,
              "三公经费": table_rows(BUDGET_EXECUTION, "三公经费", SANGONG),
              "其他指标": kv_rows(BUDGET_EXECUTION, "其他指标", OTHER)}
    return write_xlsx(path, sheets, {"模板类型": "预算执行表", "模板版本": version, "财年": 2023})


def _issues(folder):
    fw, _ = load_framework(default_framework_path())
    ev = evaluate(folder, fw)
    return ev, {i.code: i for i in ev.issues}


def test_old_version_with_a_renamed_field_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(spec, "TEMPLATE_CHANGES",
                        (FieldChange("2023.1", "预算执行表", "预算执行", "本年预算数", "全年预算数"),))
    _old_budget_file(tmp_path / "旧预算执行表.xlsx", {"全年预算数*（万元）": "本年预算数*（万元）"})
    ev, found = _issues(tmp_path)
    err = found["template-version-incompatible"]
    assert err.severity == "错误" and err.file == "旧预算执行表.xlsx" and err.value == "2022.1"
    assert "版本 2022.1" in err.message and "当前版本 2023.1" in err.message
    assert "「预算执行」缺少「全年预算数」" in err.message
    assert "2023.1 版起预算执行表「预算执行」的「本年预算数」改名为「全年预算数」" in err.message
    assert (err.unit, err.year) == (UNIT["单位编码"], 2023)          # shown in the unit's 数据问题
    assert "template-version-old" not in found and "missing-column" not in found
    assert ev.dataset.budget_lines.empty                            # nothing of the file is used
    assert ev.dataset.units.empty                                   # its only file refused: no unit formed


def test_old_version_missing_a_required_field_is_refused_without_registry(tmp_path):
    _old_budget_file(tmp_path / "旧.xlsx", {"实际支出数*（万元）": "支出数"})
    _, found = _issues(tmp_path)
    err = found["template-version-incompatible"]
    assert "「预算执行」缺少「实际支出数」" in err.message and "表头字段已调整" in err.message


def test_old_version_whose_fields_match_is_read_with_a_warning(tmp_path):
    _old_budget_file(tmp_path / "旧.xlsx", {})
    ev, found = _issues(tmp_path)
    assert found["template-version-old"].severity == "警告"
    assert "template-version-incompatible" not in found
    assert len(ev.dataset.budget_lines) == 3


def test_current_version_with_a_missing_column_is_not_a_version_problem(tmp_path):
    _old_budget_file(tmp_path / "新.xlsx", {"实际支出数*（万元）": "支出数"}, version=spec.TEMPLATE_VERSION)
    _, found = _issues(tmp_path)
    assert "missing-column" in found and "template-version-incompatible" not in found


def test_version_fields_undo_later_changes(monkeypatch):
    monkeypatch.setattr(spec, "TEMPLATE_CHANGES", (
        FieldChange("2024.1", "预算执行表", "预算执行", "本年预算数", "全年预算数"),
        FieldChange("2024.1", "预算执行表", "预算执行", None, "备注"),
    ))
    old = spec.version_fields(BUDGET_EXECUTION, "2023.1")["预算执行"]
    assert "本年预算数" in old and "全年预算数" not in old and "备注" not in old
    assert spec.version_fields(BUDGET_EXECUTION, "2024.1")["预算执行"] == tuple(
        f.name for f in BUDGET_EXECUTION.sheet("预算执行").fields)


# --- the sidecar text: built from pieces per table, the bytes of json.dumps of the unit's record -------------------


def _plain_ref(v):
    """What a sidecar holds for a cell value: NaN / NA / inf → None, numpy scalars → Python, dates → ISO text."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return v


def _reference_record(ds, code, year, totals=None, indicators=None) -> dict:
    """The unit record as the format defines it, cell by cell with pandas (slow and obvious)."""
    def rows(df, names=None, extra=None):
        if df is None or df.empty:
            return []
        mine = [i for i in range(len(df)) if str(df["单位编码"].iloc[i]) == str(code) and int(df["财年"].iloc[i]) == year]
        names = names or [c for c in df.columns if c not in ("单位编码", "财年") and not str(c).startswith("_")]
        out = []
        for i in mine:
            row = {c: _plain_ref(df[c].iloc[i]) for c in names}
            row.update({k: values[i] for k, values in (extra or {}).items()})
            out.append(row)
        return out

    of_file = dict(zip(ds.files["文件"], ds.files["填报科室"]))
    sections = [_plain_ref(of_file.get(f)) for f in ds.work_stats["_file"]] if len(ds.work_stats) else None
    unit = rows(ds.units)
    record = {"格式": "pipeline-unit-data", "版本": 1, "单位编码": code, "财年": year,
              "unit": unit[0] if unit else {"单位编码": code}, "budget_lines": rows(ds.budget_lines),
              "sangong": rows(ds.sangong), "targets": rows(ds.targets),
              "work_stats": rows(ds.work_stats, extra={"填报科室": sections}) if sections is not None else []}
    mine = [r for r in rows(totals, names=list(totals.columns))] if totals is not None else []
    if mine:
        record["totals"] = {k: v for k, v in mine[0].items() if k not in ("单位编码", "财年")}
        record["totals"]["_level1"] = [c for c in totals.columns if c not in ("单位编码", "财年", "总分", "等级")
                                       and not str(c).startswith("_")]
    if indicators is not None:
        found = rows(indicators, names=["计算方法", "值", "分子", "分母", "状态"])
        if found:
            record["indicators"] = found
    return record


def _dumps(record) -> str:
    return json.dumps(record, ensure_ascii=False, allow_nan=False)


def test_sidecar_text_is_json_dumps_of_the_record(scored):
    fw, _ = load_framework(default_framework_path())
    ev = evaluate(scored / "input", fw)
    for code, year in zip(ev.units["单位编码"], ev.units["财年"]):
        want = _dumps(_reference_record(ev.dataset, code, int(year), ev.scores.totals, ev.indicators))
        assert rollover._text_of(ev, code, year) == (want + "\n").encode("utf-8")
        assert rollover.record_of(ev, code, year) == json.loads(want)
        assert (scored / "output" / "2023" / ".data" / f"{code}.json").read_bytes() == (want + "\n").encode()


def test_sidecar_text_of_awkward_values():
    """Text with quotes, backslashes, control and non-BMP characters; NaN, ±inf, -0.0, extreme magnitudes, ints,
    booleans, dates, NA; a unit without rows in some tables; a repeated unit key (its first totals row)."""
    texts = pd.Series(['a"b', "c\\d", "e\nf\x00\x1f", "\u2028𝄞中文", "", None], dtype=object)
    floats = [math.nan, math.inf, -math.inf, -0.0, 1e300, 5e-324]
    key = {"单位编码": pd.array(["A", "A", "B", "A", "B", "A"], dtype="str"), "财年": [2023] * 6}
    frame = pd.DataFrame({**key, "文本": texts, "数": floats, "整数": [1, -2, 3, 2 ** 60, 0, 7],
                          "真假": [True, False, True, False, True, False],
                          "可空整数": pd.array([1, None, 3, None, 5, 6], dtype="Int64"),
                          "日期": [date(2024, 1, 15), datetime(2024, 2, 1, 8, 30), pd.NaT, None, pd.NA, "x"],
                          "混合": [1, 2.5, "三", np.float64(4.25), np.int64(5), np.nan],
                          "_row": range(6), "_file": ["f1", "f2", "f1", "f2", "f1", "f2"]})
    files = pd.DataFrame({"文件": ["f1", "f2"], "填报科室": ["一股", None]})
    units = pd.DataFrame({"单位编码": ["A", "B"], "财年": [2023, 2023], "单位名称": ['单位"一"', None],
                          "编制人数": [30.0, math.nan], "_budget_file": ["f1", "f2"]})
    ds = SimpleNamespace(units=units, budget_lines=frame, sangong=frame.iloc[0:0], targets=frame.iloc[[1, 3]],
                         work_stats=frame, files=files)
    totals = pd.DataFrame({**key, "总分": [90.5, math.nan, 80.0, 1.0, 2.0, 3.0], "等级": ["优", None, "良", "中", "差", "差"],
                           "投入": [1.0] * 6, "_x": [0] * 6})
    indicators = frame.rename(columns={"文本": "计算方法", "数": "值", "整数": "分子", "真假": "分母", "日期": "状态"})
    for code in ("A", "B", "C"):
        index = rollover._Index()
        got = rollover.unit_text(ds, code, 2023, totals, indicators, index)
        assert got == _dumps(_reference_record(ds, code, 2023, totals, indicators)), code
    assert rollover.unit_text(ds, "A", 2023) == _dumps(_reference_record(ds, "A", 2023))


def test_previous_year_read_once_from_the_sidecar_written_before(scored, monkeypatch):
    """A unit whose previous year is not in the evaluation: its unit hash and its 年度对比 both take that year from
    the sidecar written before, read once; a unit without one gets no record and the digest of nothing."""
    out = scored / "output"
    path = out / "2023" / ".data" / f"{CODE}.json"
    data = path.read_bytes()
    ev = SimpleNamespace(dataset=SimpleNamespace(units=pd.DataFrame({"单位编码": ["x"], "财年": [2025]})))
    reads = []
    open_ = Path.open
    monkeypatch.setattr(Path, "open", lambda p, *a, **k: (reads.append(p), open_(p, *a, **k))[1])
    assert rollover.previous_digest(ev, CODE, 2024, out) == hashlib.sha256(data).hexdigest()
    record = rollover.previous_record(ev, CODE, 2024, out)
    assert record == json.loads(data.decode("utf-8")) and record["财年"] == 2023 and record["单位编码"] == CODE
    assert reads == [path]
    assert rollover.previous_record(ev, "y", 2025, out) is None  # no 2024 sidecar
    assert rollover.previous_digest(ev, "y", 2025, out) == hashlib.sha256(b"").hexdigest()
