"""Scoring frameworks (评分标准): the shipped frameworks A and B as data, and the loader of a framework workbook.

A framework is a workbook, not code, so that a finance bureau can change weights, thresholds and grades each year.
This module holds the two frameworks of SCORING.md as plain rows (written to `input_templates/` by `templates.py`)
and reads such a workbook back into a validated `Framework`, rejecting it with Chinese issues naming the cell when
it cannot be used.

Parameter syntax of the 评分参数 column: `键=值` pairs separated by `;` (full-width `；` also accepted).

| 评分方法 | keys | meaning |
| --- | --- | --- |
| 超出扣分 | `阈值=100%;每点扣=0.5` | value ≤ 阈值: full points; each percentage point above it costs 每点扣, floor 0 |
| 低于扣分 | `阈值=100%;每点扣=0.4` | value ≥ 阈值: full points; each percentage point below it costs 每点扣, floor 0 |
| 分档 | `档=≥90%:5,≥80%:4,其他:0` | first tier whose condition holds gives its points; comparators ≥ ＞ ≤ ＜ ＝, `其他` |
| 比例 | (none) | 分值 × min(value, 100%) |
| 结余控制 | `次档=2` | no 结余: full; 结余 ≤ 上年结转 (the indicator's 参照): 次档; else 0 |
| 定性 | `项目=绩效目标合理性` | the unit's 管理情况 item: conclusion band and 得分比例 |
| 绩效目标 | `一级指标=效益指标,满意度指标` | the unit's targets of those 一级指标, 分值 spread by the targets' own 分值 |

Every method also takes `不适用=满分|零分` (default 满分; for 绩效目标 it applies to a unit without any target of
the group and defaults to 零分, because the targets ought to exist). Percent values take `%`; a number without `%` is
a fraction (`阈值=1` is 100%).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import spec
from .issues import Issue, error, warning
from .numbers import cell_ref, excel_round, is_blank

FRAMEWORK_SHEET = "评分标准"
GRADES_SHEET = "等级"
PARAMS_SHEET = "参数"
WEIGHT_TOTAL = 100.0
WEIGHT_TOLERANCE = 0.001

# Which 计算方法 a 评分方法 needs, where the pairing is fixed.
_METHOD_PAIRS = {"定性": "管理情况", "绩效目标": "绩效目标"}

_SRC_53 = "指标：财预〔2013〕53号 部门整体支出绩效评价共性指标"
_SRC_CITY = "分值与评分规则：岳阳市 附件3-1 部门整体支出绩效评价评分表、长沙市雨花区 部门整体支出绩效评价指标表"
_SRC_FILL = "；两地未列明的三级分值按保持二级指标合计设定（待逐项核对原文）"
_SRC_A = f"{_SRC_53}；{_SRC_CITY}{_SRC_FILL}"
_SRC_B = "财预〔2020〕10号 项目支出绩效自评表：产出指标50分、效益指标30分、服务对象满意度指标10分、预算资金执行率10分"


def _row(code, l1, l2, l3, points, calc, method, params, text, source=_SRC_A) -> dict:
    return {"指标编码": code, "一级指标": l1, "二级指标": l2, "三级指标": l3, "分值": points, "计算方法": calc,
            "评分方法": method, "评分参数": params, "评分标准说明": text, "依据": source}


def _qual(code, l1, l2, item, points) -> dict:
    return _row(code, l1, l2, item, points, "管理情况", "定性", f"项目={item}",
                f"按管理情况表“{item}”的自评结论计分：达成 80%–100%，部分达成 60%–80%，未达成 0%–60% 的分值；"
                "填写的得分比例须在结论对应区间内，否则按默认比例（100% / 70% / 30%）计分。")


FRAMEWORK_A_ROWS = (
    _qual("A01", "投入", "目标设定", "绩效目标合理性", 2),
    _qual("A02", "投入", "目标设定", "绩效指标明确性", 3),
    _row("A03", "投入", "预算配置", "在职人员控制率", 5, "在职人员控制率", "超出扣分", "阈值=100%;每点扣=0.5",
         "在职人员控制率 = 年末在职人数 ÷ 编制人数。不超过 100% 得满分，每超出 1 个百分点扣 0.5 分，扣完为止。"),
    _row("A04", "投入", "预算配置", "“三公经费”变动率", 5, "三公经费变动率", "超出扣分", "阈值=0%;每点扣=0.5",
         "“三公经费”变动率 = (本年实际 − 上年实际) ÷ 上年实际。不高于 0 得满分，每增长 1 个百分点扣 0.5 分，扣完为止。"),
    _row("A05", "投入", "预算配置", "重点支出安排率", 5, "重点支出安排率", "分档",
         "档=≥90%:5,≥80%:4,≥70%:3,≥60%:2,其他:0;不适用=满分",
         "重点支出安排率 = 重点项目预算 ÷ 项目支出预算。≥90% 得 5 分，≥80% 得 4 分，≥70% 得 3 分，≥60% 得 2 分，"
         "低于 60% 不得分；无项目支出的不适用，得满分。"),
    _row("A06", "过程", "预算执行", "预算执行率", 5, "预算执行率", "低于扣分", "阈值=100%;每点扣=0.4",
         "预算执行率 = 实际支出数 ÷ 全年预算数。达到 100% 得满分，每低 5 个百分点扣 2 分（按比例每点扣 0.4 分），扣完为止。"),
    _row("A07", "过程", "预算执行", "预算调整率", 3, "预算调整率", "分档", "档=＝0:3,≤10%:2,≤20%:1,≤30%:0.5,其他:0",
         "预算调整率 = (预算调增数 + 预算调减数) ÷ 年初预算数。无调整得 3 分，≤10% 得 2 分，≤20% 得 1 分，"
         "≤30% 得 0.5 分，超过 30% 不得分。"),
    _row("A08", "过程", "预算执行", "结转结余率", 3, "结转结余率", "结余控制", "次档=2",
         "结转结余率 = 结转结余数 ÷ 全年预算数。无结转结余得 3 分；结转结余不超过上年结转数得 2 分；否则不得分。"),
    _row("A09", "过程", "预算执行", "公用经费控制率", 3, "公用经费控制率", "超出扣分", "阈值=100%;每点扣=0.5",
         "公用经费控制率 = 公用经费实际支出 ÷ 公用经费预算。不超过 100% 得满分，每超出 1 个百分点扣 0.5 分，扣完为止。"),
    _row("A10", "过程", "预算执行", "“三公经费”控制率", 3, "三公经费控制率", "超出扣分", "阈值=100%;每点扣=1",
         "“三公经费”控制率 = “三公经费”实际支出 ÷ 预算数。不超过 100% 得满分，每超出 1 个百分点扣 1 分，扣完为止。"),
    _row("A11", "过程", "预算执行", "政府采购执行率", 3, "政府采购执行率", "比例", "",
         "政府采购执行率 = 政府采购实际金额 ÷ 政府采购预算数。按执行率计分，最高得满分。"),
    _qual("A12", "过程", "预算管理", "管理制度健全性", 3),
    _qual("A13", "过程", "预算管理", "资金使用合规性", 3),
    _qual("A14", "过程", "预算管理", "预决算信息公开性", 2),
    _qual("A15", "过程", "预算管理", "基础信息完善性", 2),
    _qual("A16", "过程", "资产管理", "资产管理制度健全性", 2),
    _qual("A17", "过程", "资产管理", "资产管理安全性", 2),
    _row("A18", "过程", "资产管理", "固定资产利用率", 1, "固定资产利用率", "比例", "",
         "固定资产利用率 = 在用固定资产总额 ÷ 固定资产总额。按利用率计分，最高得满分。"),
    _row("A19", "产出", "职责履行", "产出指标（单位绩效目标）", 25, "绩效目标", "绩效目标", "一级指标=产出指标",
         "按绩效目标表中的产出指标计分：25 分按各指标分值比例分配（分值空白的取已填分值的平均数，全部空白的平均分配）；"
         "每项按完成率计分，最高得该项分值；偏离度过高按参数扣减。未填写产出指标的不得分。"),
    _row("A20", "效果", "履职效益", "效益指标、满意度指标（单位绩效目标）", 20, "绩效目标", "绩效目标",
         "一级指标=效益指标,满意度指标",
         "按绩效目标表中的效益指标和满意度指标计分：20 分按各指标分值比例分配，规则同产出指标。"),
)


def _group_b(code, level1, points) -> dict:
    return _row(code, level1, level1, f"{level1}（单位绩效目标）", points, "绩效目标", "绩效目标",
                f"一级指标={level1}",
                f"{points} 分按绩效目标表中各{level1}的分值比例分配（空白的取已填分值的平均数，全部空白的平均分配）；"
                "每项按完成率计分，最高得该项分值；未填写的不得分。", _SRC_B)


FRAMEWORK_B_ROWS = (
    _row("B01", "预算执行", "预算执行", "预算资金执行率", 10, "预算执行率", "比例", "",
         "预算执行率 = 实际支出数 ÷ 全年预算数；得分 = 执行率 × 10，最高 10 分。", _SRC_B),
    _group_b("B02", "产出指标", 50),
    _group_b("B03", "效益指标", 30),
    _group_b("B04", "满意度指标", 10),
)

DEFAULT_GRADES = (("优", 90), ("良", 80), ("中", 60), ("差", 0))

DEFAULT_PARAMS = {
    "小数位数": ("2", "每项得分按四舍五入（同 Excel ROUND）保留的小数位数"),
    "偏离度扣分": ("是", "正向指标完成值远超指标值时是否按偏离度扣分（是/否）"),
    "偏离度档": ("200%:10%,300%:20%,500%:30%", "偏离度 = (实际 − 指标值) ÷ 指标值；达到各档扣减该指标分值的比例"),
    "定性区间": ("达成:80%-100%,部分达成:60%-80%,未达成:0%-60%", "定性结论对应的得分比例区间（含端点）"),
    "定性比例": ("达成:100%,部分达成:70%,未达成:30%", "未填写得分比例或比例不在区间内时采用的默认比例"),
    "监控红线": ("60%", "绩效运行监控：实际进度 ÷ 时间进度低于此值为红色预警"),
    "监控黄线": ("80%", "绩效运行监控：实际进度 ÷ 时间进度低于此值（不低于红线）为黄色预警，达到为绿色"),
    "超前预警": ("5%", "绩效运行监控：绩效目标完成进度超过预算执行进度多于此百分点时预警"),
}

FRAMEWORKS = {
    "A": ("部门整体支出绩效评价共性指标（框架A）", "评分标准_A_部门整体支出.xlsx", FRAMEWORK_A_ROWS),
    "B": ("部门整体支出绩效自评表（框架B）", "评分标准_B_自评表.xlsx", FRAMEWORK_B_ROWS),
}
FRAMEWORK_VERSION = "2023.1"


def framework_workbook_data(key: str) -> tuple[dict, dict]:
    """The sheets of shipped framework `key` ("A" or "B") as rows keyed by field name, and its `_meta` entries.

    Returns (data, meta): data = {"评分标准": [...], "等级": [...], "参数": [...]}, one dict per row;
    meta = {"框架名称": ..., "框架版本": ...}. `templates.write_workbook` turns them into the shipped workbook.
    """
    name, _, rows = FRAMEWORKS[key]
    params = {"框架名称": (name, "评分框架名称，显示在评价结果的说明页"),
              "版本": (FRAMEWORK_VERSION, "评分框架版本，修改分值或规则后应更新")} | DEFAULT_PARAMS
    data = {
        FRAMEWORK_SHEET: [dict(r) for r in rows],
        GRADES_SHEET: [{"等级": g, "最低分": s} for g, s in DEFAULT_GRADES],
        PARAMS_SHEET: [{"参数": k, "值": v, "说明": note} for k, (v, note) in params.items()],
    }
    return data, {"框架名称": name, "框架版本": FRAMEWORK_VERSION}


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def framework_path(key: str) -> Path:
    """Where the shipped workbook of framework `key` lives."""
    return repo_root() / "input_templates" / FRAMEWORKS[key][1]


def default_framework_path() -> Path:
    """The default framework: A, 部门整体支出 共性指标."""
    return framework_path("A")


# ---------------------------------------------------------------------------------------------------------------
# Parameter parsing. Every parser returns (value, error message or None) so the loader can name the cell.

_ASCII_OPS = (("≥", "≥"), (">=", "≥"), ("≤", "≤"), ("<=", "≤"), (">", "＞"), ("<", "＜"), ("=", "＝"))
TIER_OTHER = "其他"


def _nfkc(text: object) -> str:
    """Full-width punctuation (；，：％＝＞) to ASCII, spaces removed; ≥ and ≤ are unchanged by NFKC."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", "" if text is None else str(text)))


def parse_number(text: str) -> float | None:
    """`100%` → 1.0, `0.5` → 0.5, `-3%` → -0.03; None when not a number."""
    s = _nfkc(text)
    pct = s.endswith("%")
    try:
        v = float(s[:-1] if pct else s)
    except ValueError:
        return None
    return v / 100 if pct else v


def split_pairs(text: object) -> tuple[dict[str, str], str | None]:
    """`阈值=100%;每点扣=0.5` → {"阈值": "100%", "每点扣": "0.5"}; split at the first `=` of each part."""
    out: dict[str, str] = {}
    for part in filter(None, _nfkc(text).split(";")):
        key, eq, value = part.partition("=")
        if not eq or not key or not value:
            return {}, f"“{part}”不是“键=值”的形式"
        if key in out:
            return {}, f"参数“{key}”重复"
        out[key] = value
    return out, None


def parse_tiers(text: str) -> tuple[list[tuple[str, float | None, float]], str | None]:
    """`≥90%:5,≥80%:4,其他:0` → [("≥", 0.9, 5.0), ("≥", 0.8, 4.0), ("其他", None, 0.0)], in the order written."""
    tiers = []
    for part in filter(None, re.split(r"[,、]", _nfkc(text))):
        cond, colon, pts = part.rpartition(":")
        points = parse_number(pts)
        if not colon or points is None:
            return [], f"档位“{part}”应写成“条件:得分”，如“≥90%:5”"
        if cond == TIER_OTHER:
            tiers.append((TIER_OTHER, None, points))
            continue
        raw_op, op = next(((raw, canon) for raw, canon in _ASCII_OPS if cond.startswith(raw)), ("", None))
        bound = parse_number(cond[len(raw_op):]) if op else None
        if op is None or bound is None:
            return [], f"档位条件“{cond}”无法识别，应为 ≥ ＞ ≤ ＜ ＝ 加数值，或“其他”"
        tiers.append((op, bound, points))
    return (tiers, None) if tiers else ([], "未给出任何档位")


def parse_bands(text: str) -> tuple[dict[str, tuple[float, float]], str | None]:
    """`达成:80%-100%,部分达成:60%-80%` → {"达成": (0.8, 1.0), "部分达成": (0.6, 0.8)}."""
    bands = {}
    for part in filter(None, re.split(r"[,、]", _nfkc(text))):
        name, _, rng = part.partition(":")
        lo, _, hi = re.sub(r"[–—~至]", "-", rng).partition("-")
        lo_v, hi_v = parse_number(lo), parse_number(hi)
        if name not in spec.CONCLUSIONS or lo_v is None or hi_v is None or lo_v > hi_v:
            return {}, f"区间“{part}”应写成“结论:下限%-上限%”，结论为 达成/部分达成/未达成"
        bands[name] = (lo_v, hi_v)
    missing = [c for c in spec.CONCLUSIONS if c not in bands]
    return (bands, None) if not missing else ({}, f"缺少结论“{'、'.join(missing)}”的区间")


def parse_ratios(text: str, keys: tuple[str, ...] = spec.CONCLUSIONS) -> tuple[dict[str, float], str | None]:
    """`达成:100%,部分达成:70%` → {"达成": 1.0, "部分达成": 0.7}; also used for 偏离度档 (`200%:10%`)."""
    out = {}
    for part in filter(None, re.split(r"[,、]", _nfkc(text))):
        name, colon, value = part.rpartition(":")
        v = parse_number(value)
        if not colon or v is None or (keys and name not in keys):
            return {}, f"“{part}”应写成“名称:比例”，如“达成:100%”"
        out[name] = v
    missing = [k for k in keys if k not in out]
    return (out, None) if not missing else ({}, f"缺少“{'、'.join(missing)}”的比例")


def parse_deviation_tiers(text: str) -> tuple[list[tuple[float, float]], str | None]:
    """`200%:10%,300%:20%,500%:30%` → [(2.0, 0.1), (3.0, 0.2), (5.0, 0.3)] sorted by threshold."""
    raw, err = parse_ratios(text, keys=())
    if err:
        return [], err.replace("达成:100%", "200%:10%")
    tiers = []
    for k, v in raw.items():
        bound = parse_number(k)
        if bound is None or not 0 <= v <= 1:
            return [], f"偏离度档“{k}:{v}”应写成“偏离度%:扣减比例%”，扣减比例在 0%–100% 之间"
        tiers.append((bound, v))
    return sorted(tiers), None


_COMMON_KEYS = {"不适用"}
_METHOD_KEYS = {
    "超出扣分": {"阈值", "每点扣"}, "低于扣分": {"阈值", "每点扣"}, "分档": {"档"}, "比例": set(),
    "结余控制": {"次档"}, "定性": {"项目"}, "绩效目标": {"一级指标"},
}
_REQUIRED_KEYS = {"超出扣分": {"阈值", "每点扣"}, "低于扣分": {"阈值", "每点扣"}, "分档": {"档"}, "定性": {"项目"},
                  "绩效目标": {"一级指标"}}


def parse_rule_params(method: str, text: object, points: float) -> tuple[dict, str | None]:
    """Parse one row's 评分参数 for its 评分方法 into typed values; (params, Chinese error or None)."""
    raw, err = split_pairs(text)
    if err:
        return {}, err
    unknown = set(raw) - _METHOD_KEYS.get(method, set()) - _COMMON_KEYS
    if unknown:
        allowed = "、".join(sorted(_METHOD_KEYS.get(method, set()) | _COMMON_KEYS))
        return {}, f"评分方法“{method}”不认识参数“{'、'.join(sorted(unknown))}”（可用：{allowed}）"
    missing = _REQUIRED_KEYS.get(method, set()) - set(raw)
    if missing:
        return {}, f"评分方法“{method}”缺少参数“{'、'.join(sorted(missing))}”"
    default_na = "零分" if method == "绩效目标" else "满分"
    parsed: dict = {"不适用": raw.get("不适用", default_na)}
    if parsed["不适用"] not in ("满分", "零分"):
        return {}, f"不适用={parsed['不适用']} 无法识别，应为 不适用=满分 或 不适用=零分"
    err = _parse_method_keys(method, raw, parsed, points)
    return (parsed, None) if err is None else ({}, err)


def _parse_method_keys(method: str, raw: dict, parsed: dict, points: float) -> str | None:
    """Fill `parsed` with the typed method-specific keys; return an error message or None."""
    if method in ("超出扣分", "低于扣分"):
        parsed["阈值"], parsed["每点扣"] = parse_number(raw["阈值"]), parse_number(raw["每点扣"])
        if parsed["阈值"] is None or parsed["每点扣"] is None or parsed["每点扣"] < 0:
            return "阈值、每点扣应为数字，如 阈值=100%;每点扣=0.5"
    elif method == "分档":
        parsed["档"], err = parse_tiers(raw["档"])
        if err:
            return err
        if any(p > points + 1e-9 or p < 0 for _, _, p in parsed["档"]):
            return f"档位得分应在 0 到分值 {points:g} 之间"
    elif method == "结余控制":
        parsed["次档"] = parse_number(raw.get("次档", "0"))
        if parsed["次档"] is None or not 0 <= parsed["次档"] <= points:
            return f"次档应为 0 到分值 {points:g} 之间的数字，如 次档=2"
    elif method == "定性":
        parsed["项目"] = raw["项目"]
        if raw["项目"] not in spec.MANAGEMENT_ITEMS:
            return f"项目“{raw['项目']}”不是管理情况表的评价内容（{'、'.join(spec.MANAGEMENT_ITEMS)}）"
    elif method == "绩效目标":
        parsed["一级指标"] = tuple(filter(None, re.split(r"[,、]", raw["一级指标"])))
        bad = [x for x in parsed["一级指标"] if x not in spec.TARGET_LEVEL1]
        if bad or not parsed["一级指标"]:
            return f"一级指标应为 {'、'.join(spec.TARGET_LEVEL1)} 中的一个或多个，用逗号分隔"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The loaded framework.

@dataclass
class Framework:
    """A validated scoring framework.

    `rows`: one row per 评分标准 row, in workbook order: the spec fields plus `_row` (Excel row) and `_params`
    (the parsed 评分参数 dict). `grades`: (等级, 最低分) by 最低分 descending. `params`: the 参数 sheet parsed
    (小数位数 int, 偏离度扣分 bool, 偏离度档 list, 定性区间 and 定性比例 dicts, 框架名称, 版本).
    """

    name: str
    version: str
    rows: pd.DataFrame
    grades: list[tuple[str, float]]
    params: dict
    path: Path | None = None
    sha256: str = ""
    level1_order: list[str] = field(default_factory=list)

    @property
    def digits(self) -> int:
        return int(self.params.get("小数位数", 2))

    def grade_for(self, total: float) -> str:
        """The grade of a total as printed: rounded to 小数位数 first, so 89.995 prints 90.00 and is 优."""
        shown = excel_round(total, self.digits)
        return next((g for g, low in self.grades if shown >= low), "")


def load_framework(path: Path | str) -> tuple[Framework | None, list[Issue]]:
    """Read and validate a 评分标准 workbook. Returns (None, issues) when it has any 错误: a framework with a bad
    row would score every unit wrongly, so it is rejected as a whole."""
    path = Path(path)
    where = {"file": path.name}
    try:
        sheets = _read_sheets(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        return None, [error("framework-unreadable", f"无法读取评分标准文件：{exc}。请确认它是 .xlsx 工作簿。", **where)]
    issues: list[Issue] = []
    rows = _framework_rows(sheets, issues, where)
    grades = _grades(sheets, issues, where)
    params = _global_params(sheets, issues, where)
    if any(i.severity == spec.SEVERITY_ERROR for i in issues) or rows is None:
        return None, issues
    meta = _kv(sheets.get(spec.META_SHEET, []))
    name = params.pop("框架名称", None) or meta.get("框架名称") or path.stem
    version = params.pop("版本", None) or meta.get("框架版本") or meta.get("模板版本") or ""
    fw = Framework(str(name), str(version), rows, grades, params, path, _sha256(path),
                   list(dict.fromkeys(rows["一级指标"])))
    return fw, issues


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_sheets(path: Path) -> dict[str, list[list]]:
    """All sheets as grids of values anchored at A1 (list index + 1 = Excel row), keyed by normalised name."""
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(path))
    try:
        return {spec.normalize_sheet_name(n) if n != spec.META_SHEET else n:
                wb.get_sheet_by_name(n).to_python(skip_empty_area=False) for n in wb.sheet_names}
    finally:
        wb.close()


def _kv(grid: list[list]) -> dict[str, str]:
    return {str(r[0]).strip(): r[1] for r in grid if len(r) >= 2 and not _blank(r[0])}


def _blank(v) -> bool:
    return is_blank(v)


def _table(grid: list[list], sheet: spec.SheetSpec, issues: list[Issue], where: dict) -> list[dict] | None:
    """Rows of a table sheet as dicts keyed by field name plus `_row` (Excel row) and `_cells` (field → `G7`).
    The header is the first row (of the first 20) holding every required label; None when there is none."""
    required = {f.name for f in sheet.required_fields}
    for h, header in enumerate(grid[:20]):  # noqa: B007 (h names the header row after the loop)
        labels = {spec.normalize_label(v): c for c, v in enumerate(header) if not _blank(v)}
        if required <= labels.keys():
            break
    else:
        issues.append(error("framework-header-missing", f"工作表“{sheet.name}”找不到表头，须包含列："
                            f"{'、'.join(f.name for f in sheet.required_fields)}。请按模板恢复表头。",
                            sheet=sheet.name, **where))
        return None
    cols = {f.name: labels[f.name] for f in sheet.fields if f.name in labels}
    out = []
    for r, values in enumerate(grid[h + 1:], start=h + 2):
        rec = {name: (values[c] if c < len(values) else None) for name, c in cols.items()}
        if all(_blank(v) for v in rec.values()):
            continue
        rec = {k: (None if _blank(v) else v) for k, v in rec.items()}
        out.append(rec | {"_row": r, "_cells": {name: cell_ref(r, c) for name, c in cols.items()}})
    return out


def _sheet_grid(sheets: dict, name: str, issues: list[Issue], where: dict) -> list[list] | None:
    if name not in sheets:
        issues.append(error("framework-sheet-missing", f"评分标准文件缺少工作表“{name}”。请使用项目提供的评分标准模板。",
                            sheet=name, **where))
        return None
    return sheets[name]


def _bad(issues: list[Issue], where: dict, code: str, sheet: str, rec: dict, fieldname: str, message: str) -> None:
    """An 错误 naming the cell as `评分标准!G7` in both the cell column and the message."""
    cell = rec["_cells"].get(fieldname, f"A{rec['_row']}")
    value = "" if rec.get(fieldname) is None else str(rec.get(fieldname))
    issues.append(error(code, f"{sheet}!{cell}：{message}", sheet=sheet, cell=cell, value=value, **where))


def _framework_rows(sheets: dict, issues: list[Issue], where: dict) -> pd.DataFrame | None:
    """The 评分标准 sheet validated row by row; None when it cannot be read at all."""
    sheet = spec.SCORING_FRAMEWORK.sheet(FRAMEWORK_SHEET)
    grid = _sheet_grid(sheets, FRAMEWORK_SHEET, issues, where)
    recs = _table(grid, sheet, issues, where) if grid is not None else None
    if recs is None:
        return None
    for rec in recs:
        _check_framework_row(rec, issues, where)
    if not recs:
        issues.append(error("framework-empty", "评分标准工作表没有任何指标行。", sheet=FRAMEWORK_SHEET, **where))
        return None
    _check_codes_and_total(recs, issues, where)
    return pd.DataFrame([{k: v for k, v in r.items() if k != "_cells"} for r in recs])


def _check_framework_row(rec: dict, issues: list[Issue], where: dict) -> None:
    """Validate one 评分标准 row in place: required fields, 分值, methods and 评分参数 (parsed into `_params`)."""
    s = FRAMEWORK_SHEET
    for f in spec.SCORING_FRAMEWORK.sheet(s).required_fields:
        if rec.get(f.name) is None:
            _bad(issues, where, "framework-field-missing", s, rec, f.name, f"“{f.name}”不能为空，请填写。")
    for name in ("指标编码", "一级指标", "二级指标", "三级指标", "计算方法", "评分方法"):
        rec[name] = None if rec.get(name) is None else str(rec[name]).strip()
    points = parse_number(rec["分值"]) if rec.get("分值") is not None else None
    if rec.get("分值") is not None and (points is None or points < 0):
        _bad(issues, where, "framework-bad-points", s, rec, "分值", f"分值“{rec['分值']}”不是非负数字，请填写数字，如 5。")
    rec["分值"] = points
    calc, method = rec.get("计算方法"), rec.get("评分方法")
    if calc is not None and calc not in spec.CALC_METHODS:
        _bad(issues, where, "framework-unknown-calc", s, rec, "计算方法",
             f"未知的计算方法“{calc}”，请从下拉列表选择：{'、'.join(spec.CALC_METHODS)}。")
    if method is not None and method not in spec.SCORE_METHODS:
        _bad(issues, where, "framework-unknown-method", s, rec, "评分方法",
             f"未知的评分方法“{method}”，请从下拉列表选择：{'、'.join(spec.SCORE_METHODS)}。")
        return
    _check_pairing(rec, issues, where)
    if method is not None and points is not None:
        rec["_params"], err = parse_rule_params(method, rec.get("评分参数"), points)
        if err:
            _bad(issues, where, "framework-bad-params", s, rec, "评分参数", f"评分参数无法识别：{err}。")


def _check_pairing(rec: dict, issues: list[Issue], where: dict) -> None:
    """定性 goes with 管理情况 and 绩效目标 with 绩效目标, both ways; other methods score a common indicator."""
    calc, method = rec.get("计算方法"), rec.get("评分方法")
    if calc is None or method is None or calc not in spec.CALC_METHODS:
        return
    needed = _METHOD_PAIRS.get(method)
    wrong = (needed is not None and calc != needed) or (needed is None and calc in _METHOD_PAIRS.values())
    if wrong:
        hint = f"评分方法“{method}”须配计算方法“{needed}”" if needed else \
            f"计算方法“{calc}”须配评分方法“{next(k for k, v in _METHOD_PAIRS.items() if v == calc)}”"
        _bad(issues, where, "framework-method-mismatch", FRAMEWORK_SHEET, rec, "评分方法", f"{hint}，请修改。")


def _check_codes_and_total(recs: list[dict], issues: list[Issue], where: dict) -> None:
    """指标编码 unique; 分值 sum to 100 (tolerance 0.001)."""
    seen: dict[str, int] = {}
    for rec in recs:
        code = rec.get("指标编码")
        if code is not None and code in seen:
            _bad(issues, where, "framework-duplicate-code", FRAMEWORK_SHEET, rec, "指标编码",
                 f"指标编码“{code}”与第 {seen[code]} 行重复，请改为唯一编码。")
        seen.setdefault(code, rec["_row"])
    total = sum(r["分值"] for r in recs if r.get("分值") is not None)
    if abs(total - WEIGHT_TOTAL) > WEIGHT_TOLERANCE:
        issues.append(error("framework-total-not-100", f"评分标准各指标分值合计为 {total:g}，应为 100。"
                            "请调整分值使合计等于 100。", sheet=FRAMEWORK_SHEET, value=f"{total:g}", **where))


def _grades(sheets: dict, issues: list[Issue], where: dict) -> list[tuple[str, float]]:
    """The 等级 sheet as (等级, 最低分) sorted by 最低分 descending."""
    grid = _sheet_grid(sheets, GRADES_SHEET, issues, where)
    recs = _table(grid, spec.SCORING_FRAMEWORK.sheet(GRADES_SHEET), issues, where) if grid is not None else None
    if recs is None:
        return []
    grades = []
    for rec in recs:
        low = parse_number(rec["最低分"]) if rec.get("最低分") is not None else None
        if rec.get("等级") is None or low is None or not 0 <= low <= WEIGHT_TOTAL:
            _bad(issues, where, "framework-bad-grade", GRADES_SHEET, rec, "最低分" if rec.get("等级") else "等级",
                 "等级须填写名称，最低分须为 0 到 100 之间的数字，如“优 / 90”。")
            continue
        grades.append((str(rec["等级"]).strip(), low))
    if not grades and not any(i.code == "framework-bad-grade" for i in issues):
        issues.append(error("framework-no-grades", "等级工作表没有任何等级，请至少填写一行，如“优 / 90”。",
                            sheet=GRADES_SHEET, **where))
    elif grades and min(low for _, low in grades) > 0:
        issues.append(warning("framework-grades-gap", "等级表最低一档的最低分大于 0，低于它的总分将没有等级；"
                              "建议增加“差 / 0”一行。", sheet=GRADES_SHEET, **where))
    return sorted(grades, key=lambda g: -g[1])


def _parse_digits(text) -> tuple[int | None, str | None]:
    v = parse_number(text)
    ok = v is not None and float(v).is_integer() and 0 <= v <= 6
    return (int(v), None) if ok else (None, "应为 0 到 6 的整数")


def _parse_share(text) -> tuple[float | None, str | None]:
    """A monitoring threshold: `60%` → 0.6 (a number without `%` is a fraction), between 0% and 1000%."""
    v = parse_number(text)
    return (v, None) if v is not None and 0 <= v <= 10 else (None, "应为百分数，如 60%")


def _parse_yes_no(text) -> tuple[bool | None, str | None]:
    v = _nfkc(text)
    return ({"是": True, "否": False}[v], None) if v in ("是", "否") else (None, "应为“是”或“否”")


_PARAM_PARSERS = {
    "小数位数": _parse_digits,
    "偏离度扣分": _parse_yes_no,
    "偏离度档": parse_deviation_tiers,
    "定性区间": parse_bands,
    "定性比例": parse_ratios,
    "监控红线": lambda v: _parse_share(v),
    "监控黄线": lambda v: _parse_share(v),
    "超前预警": lambda v: _parse_share(v),
    "框架名称": lambda v: (str(v).strip(), None),
    "版本": lambda v: (str(v).strip(), None),
}


def _global_params(sheets: dict, issues: list[Issue], where: dict) -> dict:
    """The 参数 sheet parsed, defaults filled in for keys left out."""
    params = {k: _PARAM_PARSERS[k](v)[0] for k, (v, _) in DEFAULT_PARAMS.items()}
    grid = _sheet_grid(sheets, PARAMS_SHEET, issues, where)
    recs = _table(grid, spec.SCORING_FRAMEWORK.sheet(PARAMS_SHEET), issues, where) if grid is not None else None
    for rec in recs or []:
        key = spec.normalize_label(rec.get("参数"))
        parser = _PARAM_PARSERS.get(key)
        if parser is None:
            issues.append(warning("framework-unknown-param", f"{PARAMS_SHEET}!{rec['_cells']['参数']}：未知参数“{key}”，"
                                  f"已忽略。可用参数：{'、'.join(_PARAM_PARSERS)}。", sheet=PARAMS_SHEET,
                                  cell=rec["_cells"]["参数"], value=key, **where))
            continue
        value, err = parser(rec.get("值")) if rec.get("值") is not None else (None, "不能为空")
        if err:
            _bad(issues, where, "framework-bad-param-value", PARAMS_SHEET, rec, "值", f"参数“{key}”的值无法识别：{err}。")
            continue
        params[key] = value
    _check_default_ratios(params, issues, where)
    return params


def _check_default_ratios(params: dict, issues: list[Issue], where: dict) -> None:
    """Each default ratio of 定性比例 must lie in its band of 定性区间."""
    for concl, (lo, hi) in params["定性区间"].items():
        r = params["定性比例"].get(concl)
        if r is not None and not lo - 1e-9 <= r <= hi + 1e-9:
            issues.append(error("framework-ratio-outside-band", f"参数“定性比例”中“{concl}”的比例 {r:.0%} 不在"
                                f"“定性区间”{lo:.0%}–{hi:.0%} 内，请调整其中之一。", sheet=PARAMS_SHEET, **where))
