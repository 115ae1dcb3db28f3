"""The one description of every template: sheets, fields, types, allowed values and help text.

Template generation (`templates.py`), staging (`staging.py`) and the 填表说明 sheets all read from here, so a field
is added or renamed in exactly one place. Labels are Chinese because they are what users see and type.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

TEMPLATE_VERSION = "2023.1"
"""Version written into every generated template's `_meta`; bump it when a field is added, renamed or removed."""

# Field kinds understood by staging and template generation.
TEXT = "text"          # free text
AMOUNT = "amount"      # money in 万元, 2 decimals
NUMBER = "number"      # any number (counts, rates typed as numbers)
INTEGER = "integer"    # whole number (head counts)
CHOICE = "choice"      # one of `choices` (a dropdown)
PERCENT = "percent"    # ratio; typed as 97.6, 97.6% or 0.976 in a percent-formatted cell
DATE = "date"
VALUE = "value"        # a target value: a number, possibly with comparator and unit, or a 定性 conclusion
FORMULA = "formula"    # a 取数公式 over 统计项 names

SEVERITY_ERROR = "错误"
SEVERITY_WARNING = "警告"
SEVERITY_INFO = "提示"

# Closed value sets, shared by dropdowns and staging.
SPENDING_CATEGORIES = ("基本支出-人员经费", "基本支出-公用经费", "项目支出")
YES_NO = ("是", "否")
SANGONG_ITEMS = ("因公出国（境）费", "公务用车购置费", "公务用车运行维护费", "公务接待费")
MANAGEMENT_ITEMS = (
    "绩效目标合理性", "绩效指标明确性", "管理制度健全性", "资金使用合规性",
    "预决算信息公开性", "基础信息完善性", "资产管理制度健全性", "资产管理安全性",
)
CONCLUSIONS = ("达成", "部分达成", "未达成")
TARGET_LEVEL1 = ("产出指标", "效益指标", "满意度指标")
TARGET_LEVEL2 = (
    "数量指标", "质量指标", "时效指标", "成本指标", "经济效益指标", "社会效益指标",
    "生态效益指标", "可持续影响指标", "服务对象满意度指标",
)
COMPARATORS = ("≥", "＞", "＝", "≤", "＜", "定性")
AGGREGATIONS = ("合计", "期末", "平均")
MONTHS = tuple(f"{m}月" for m in range(1, 13))
SUBTOTAL_LABELS = ("合计", "小计", "总计")


@dataclass(frozen=True)
class Field:
    """One column of a table sheet, or one key of a key-value sheet."""

    name: str
    kind: str = TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""          # shown in the header, e.g. 万元 → `年初预算数*（万元）`
    help: str = ""
    example: object = None
    width: int = 12          # column width in template, in Excel character units

    @property
    def label(self) -> str:
        """The header as written into a template: name, required mark, unit."""
        star = "*" if self.required else ""
        unit = f"（{self.unit}）" if self.unit else ""
        return f"{self.name}{star}{unit}"


@dataclass(frozen=True)
class SheetSpec:
    """One sheet of a template. `kind` is "kv" (key in column A, value in B) or "table" (header row, one row per
    record). `fixed_rows` pre-fills the key column of a table with a closed list (三公经费, 管理情况)."""

    name: str
    kind: str
    fields: tuple[Field, ...]
    required: bool = True
    fixed_key: str = ""
    fixed_rows: tuple[str, ...] = ()
    blank_rows: int = 0      # extra empty input rows in a generated blank table
    help: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")

    @property
    def required_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.required)


@dataclass(frozen=True)
class TemplateSpec:
    """One kind of workbook that users fill (or, for 评分标准, that the bureau edits)."""

    type: str               # 模板类型, written to _meta and used to recognise the file
    code: str               # short English name used in file names and code
    sheets: tuple[SheetSpec, ...]
    help: str = ""
    version: str = TEMPLATE_VERSION
    identifying_sheets: tuple[str, ...] = field(default=())  # recognise a file without _meta

    def sheet(self, name: str) -> SheetSpec:
        for s in self.sheets:
            if s.name == name:
                return s
        raise KeyError(f"{self.type} has no sheet {name}")


def _unit_info(extra: tuple[Field, ...] = ()) -> SheetSpec:
    base = (
        Field("单位名称", TEXT, True, help="与部门预算批复一致的单位全称", example="湘潭市市场监督管理局高新分局", width=30),
        Field("单位编码", TEXT, True, help="预算单位编码；同一单位的所有表格必须一致，作为合并依据", example="430301001"),
        Field("财年", INTEGER, True, help="评价的预算年度，四位数字", example=2023),
    )
    return SheetSpec("单位信息", "kv", base + extra, help="单位基本信息，每个模板都要填写，三项必填内容须一致。")


UNIT_INFO_BUDGET = _unit_info((
    Field("主管部门", TEXT, help="上级主管部门全称", example="湘潭市市场监督管理局", width=30),
    Field("编制人数", INTEGER, help="核定编制人数（人）", example=30),
    Field("年末在职人数", INTEGER, help="年末实有在职人数（人）", example=28),
    Field("单位职能", TEXT, help="单位主要职能，简要列出", example="负责市场综合监督管理……", width=60),
    Field("填报人", TEXT, example="张三"),
    Field("联系电话", TEXT, example="0731-00000000"),
    Field("填报日期", DATE, example="2024-01-15"),
))

BUDGET_EXECUTION = TemplateSpec(
    type="预算执行表",
    code="budget",
    help="由单位财务人员填写全年预算执行情况。金额单位：万元，保留两位小数。",
    identifying_sheets=("预算执行", "三公经费"),
    sheets=(
        UNIT_INFO_BUDGET,
        SheetSpec("预算执行", "table", blank_rows=20, help="每个支出类别或项目一行。项目支出须逐个项目填列。", fields=(
            Field("支出类别", CHOICE, True, SPENDING_CATEGORIES, help="基本支出分人员经费、公用经费；项目支出逐项填列",
                  example="基本支出-人员经费", width=18),
            Field("项目名称", TEXT, help="支出类别为项目支出时必填", example="市场监管执法专项", width=24),
            Field("重点项目", CHOICE, choices=YES_NO, help="是否为本单位重点项目（仅项目支出填写）", example="否", width=8),
            Field("上年结转数", AMOUNT, unit="万元", help="上年结转到本年使用的资金", example=0),
            Field("年初预算数", AMOUNT, True, unit="万元", help="年初人大批复的预算数", example=470.3),
            Field("预算调增数", AMOUNT, unit="万元", help="年中追加、调增的预算", example=26.32),
            Field("预算调减数", AMOUNT, unit="万元", help="年中调减的预算，填正数", example=5.1),
            Field("全年预算数", AMOUNT, True, unit="万元",
                  help="应等于 上年结转数 + 年初预算数 + 预算调增数 − 预算调减数", example=491.52),
            Field("实际支出数", AMOUNT, True, unit="万元", help="全年实际支出", example=491.52),
            Field("结转结余数", AMOUNT, unit="万元", help="应等于 全年预算数 − 实际支出数", example=0),
            Field("备注", TEXT, width=24),
        )),
        SheetSpec("月度支出", "table", required=False, blank_rows=3,
                  help="选填。按支出类别填写每月实际支出，全年合计应等于预算执行表的实际支出数。用于年中监控。",
                  fields=(Field("支出类别", CHOICE, True, SPENDING_CATEGORIES, example="基本支出-人员经费", width=18),)
                  + tuple(Field(m, AMOUNT, unit="万元", example=40.0, width=9) for m in MONTHS)),
        SheetSpec("三公经费", "table", fixed_key="项目", fixed_rows=SANGONG_ITEMS,
                  help="四项“三公”经费各一行，没有发生的填 0。", fields=(
                      Field("项目", CHOICE, True, SANGONG_ITEMS, example="公务接待费", width=20),
                      Field("预算数", AMOUNT, True, unit="万元", example=3.6),
                      Field("实际支出数", AMOUNT, True, unit="万元", example=3.3),
                      Field("上年预算数", AMOUNT, unit="万元", example=3.8),
                      Field("上年实际支出数", AMOUNT, unit="万元", example=3.5),
                  )),
        SheetSpec("其他指标", "kv", help="用于计算政府采购执行率、固定资产利用率。", fields=(
            Field("政府采购预算数", AMOUNT, unit="万元", example=25.0),
            Field("政府采购实际金额", AMOUNT, unit="万元", example=24.5),
            Field("固定资产总额", AMOUNT, unit="万元", example=320.5),
            Field("在用固定资产总额", AMOUNT, unit="万元", example=298.6),
        )),
        SheetSpec("管理情况", "table", fixed_key="评价内容", fixed_rows=MANAGEMENT_ITEMS,
                  help="对每项管理内容作出自评结论；得分比例选填，须落在结论对应的区间内。", fields=(
                      Field("评价内容", CHOICE, True, MANAGEMENT_ITEMS, example="管理制度健全性", width=18),
                      Field("自评结论", CHOICE, True, CONCLUSIONS, example="部分达成", width=10),
                      Field("得分比例", PERCENT, unit="%", help="选填。达成 80%–100%，部分达成 60%–80%，未达成 0%–60%",
                            example=75),
                      Field("情况说明", TEXT, example="已制定管理制度，但还需进一步完善", width=36),
                      Field("佐证材料", TEXT, example="《预算资金管理办法》", width=24),
                  )),
    ),
)

PERFORMANCE_TARGETS = TemplateSpec(
    type="绩效目标表",
    code="targets",
    help="年初填写绩效目标，年末填写实际完成值。实际完成值可由取数公式从工作统计表自动计算。",
    identifying_sheets=("绩效目标",),
    sheets=(
        _unit_info(),
        SheetSpec("绩效目标", "table", blank_rows=20, help="每个三级指标一行。", fields=(
            Field("序号", INTEGER, example=1, width=6),
            Field("一级指标", CHOICE, True, TARGET_LEVEL1, example="产出指标", width=12),
            Field("二级指标", CHOICE, True, TARGET_LEVEL2, example="数量指标", width=14),
            Field("三级指标", TEXT, True, help="指标名称", example="特种设备监督检查次数", width=28),
            Field("比较符", CHOICE, True, COMPARATORS, help="≥ ＞ ＝ ≤ ＜ 或 定性；≤、＜ 为反向指标", example="≥", width=8),
            Field("指标值", VALUE, True, help="目标数值；定性指标填 达成", example=80),
            Field("计量单位", TEXT, help="如 次、户、%", example="次", width=8),
            Field("实际完成值", VALUE, help="年末填写；定性指标填 达成/部分达成/未达成；有取数公式时可不填", example=81),
            Field("取数公式", FORMULA, help="用方括号引用工作统计表的统计项，可用 + − × ÷ ( ) 和数字，"
                  "如 [12345办结件数]/[12345转办件数]*100", example="[特种设备监督检查次数]", width=36),
            Field("分值", NUMBER, help="本指标的权重；空白时同组指标平均分配", example=5, width=8),
            Field("偏差原因分析及改进措施", TEXT, width=30),
            Field("备注", TEXT, width=20),
        )),
    ),
)

WORK_STATISTICS = TemplateSpec(
    type="工作统计表",
    code="workstats",
    help="各业务股室按月填写工作量统计。一个单位可以有多个股室各自填报的文件。",
    identifying_sheets=("工作统计",),
    sheets=(
        _unit_info((Field("填报科室", TEXT, help="填报本表的股室", example="特种设备安全监察股", width=20),)),
        SheetSpec("工作统计", "table", blank_rows=30, help="每个统计项一行，按月填写。", fields=(
            Field("统计项", TEXT, True, help="统计项名称，取数公式用方括号引用它", example="特种设备监督检查次数", width=28),
            Field("业务条线", TEXT, example="特种设备", width=12),
            Field("计量单位", TEXT, example="次", width=8),
            Field("汇总方式", CHOICE, choices=AGGREGATIONS, help="合计：各月相加；期末：取最后填写的月份；平均：各月平均；空白为合计",
                  example="合计", width=9),
        ) + tuple(Field(m, NUMBER, example=7, width=7) for m in MONTHS) + (
            Field("全年", NUMBER, help="选填；填写时与各月汇总核对；只填全年时直接使用", example=81, width=9),
            Field("备注", TEXT, width=20),
        )),
    ),
)

UNIT_TEMPLATES = (BUDGET_EXECUTION, PERFORMANCE_TARGETS, WORK_STATISTICS)

# The scoring framework workbook (评分标准), edited by the finance bureau.
CALC_METHODS = (
    "预算执行率", "预算调整率", "结转结余率", "结转结余变动率", "公用经费控制率", "项目支出预算控制率",
    "三公经费控制率", "三公经费变动率", "政府采购执行率", "在职人员控制率", "重点支出安排率", "固定资产利用率",
    "管理情况", "绩效目标",
)
SCORE_METHODS = ("比例", "超出扣分", "低于扣分", "分档", "结余控制", "定性", "绩效目标")

SCORING_FRAMEWORK = TemplateSpec(
    type="评分标准",
    code="rules",
    help="评分框架：由财政部门维护，可调整分值、阈值和等级，无需改程序。",
    identifying_sheets=("评分标准", "等级"),
    sheets=(
        SheetSpec("评分标准", "table", help="每个三级指标一行，分值合计须为 100。", fields=(
            Field("指标编码", TEXT, True, example="A01", width=9),
            Field("一级指标", TEXT, True, example="过程", width=8),
            Field("二级指标", TEXT, True, example="预算执行", width=10),
            Field("三级指标", TEXT, True, example="预算执行率", width=18),
            Field("分值", NUMBER, True, example=5, width=6),
            Field("计算方法", CHOICE, True, CALC_METHODS, example="预算执行率", width=14),
            Field("评分方法", CHOICE, True, SCORE_METHODS, example="低于扣分", width=10),
            Field("评分参数", TEXT, help="键=值，分号分隔，如 阈值=100%;每点扣=0.4", example="阈值=100%;每点扣=0.4", width=30),
            Field("评分标准说明", TEXT, width=40),
            Field("依据", TEXT, width=30),
        )),
        SheetSpec("等级", "table", help="总分不低于最低分即得该等级。", fields=(
            Field("等级", TEXT, True, example="优", width=8),
            Field("最低分", NUMBER, True, example=90, width=8),
        )),
        SheetSpec("参数", "table", help="全局评分参数。", fields=(
            Field("参数", TEXT, True, example="小数位数", width=14),
            Field("值", TEXT, True, example="2", width=40),
            Field("说明", TEXT, width=50),
        )),
    ),
)

ALL_TEMPLATES = UNIT_TEMPLATES + (SCORING_FRAMEWORK,)
TEMPLATES_BY_TYPE = {t.type: t for t in ALL_TEMPLATES}

# --- template versions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One change of a template's fields, made by template version `version`: a field renamed (old → new), added
    (old None) or removed (new None). Staging tells a user filling an older version what changed, and refuses the
    file (错误 template-version-incompatible) where a field it needs is not there."""

    version: str
    template: str   # 模板类型
    sheet: str
    old: str | None
    new: str | None

    def describe(self) -> str:
        where = f"{self.template}「{self.sheet}」"
        if self.old and self.new:
            return f"{self.version} 版起{where}的「{self.old}」改名为「{self.new}」"
        if self.new:
            return f"{self.version} 版起{where}新增「{self.new}」"
        return f"{self.version} 版起{where}不再使用「{self.old}」"


TEMPLATE_CHANGES: tuple[FieldChange, ...] = ()
"""The registry of field changes between template versions, oldest first. 2023.1 is the first version, so it is
empty; whenever a field is added, renamed or removed, bump TEMPLATE_VERSION and add one FieldChange per field here
(e.g. `FieldChange("2024.1", "预算执行表", "预算执行", "结转结余数", "年末结转结余数")`). The field lists of any past
version follow from the current spec by undoing the changes: `version_fields`."""


def version_tuple(v: object) -> tuple[int, ...] | None:
    """`2023.1` → (2023, 1); None when the text holds no number."""
    parts = re.findall(r"\d+", str(v or ""))
    return tuple(int(x) for x in parts) if parts else None


def changes_since(template_type: str, version: str | None) -> list[FieldChange]:
    """The registered field changes of a template made after `version` (all of them when it is unreadable)."""
    have = version_tuple(version)
    return [c for c in TEMPLATE_CHANGES if c.template == template_type
            and (have is None or (version_tuple(c.version) or ()) > have)]


def version_fields(template: "TemplateSpec", version: str | None) -> dict[str, tuple[str, ...]]:
    """Sheet → field names of `template` as they were in `version`: the current spec with later changes undone."""
    fields = {s.name: [f.name for f in s.fields] for s in template.sheets}
    for c in reversed(changes_since(template.type, version)):
        names = fields.setdefault(c.sheet, [])
        if c.new in names:
            names.remove(c.new)
        if c.old:
            names.append(c.old)
    return {sheet: tuple(names) for sheet, names in fields.items()}


META_SHEET = "_meta"
HELP_SHEET = "填表说明"
UNIT_KEY = ("单位编码", "财年")

_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "＊": "*", "：": ":", "　": " "})
_TRAILING_UNIT = re.compile(r"\((万元|元|%|％|人|次|户|个|件)\)$")


def normalize_label(text: object) -> str:
    """Canonical form of a header or key label, so that `年初预算数*（万元）`, ` 年初预算数 ` and `年初预算数(万元)`
    all become `年初预算数`: NFKC (full-width → half-width), no spaces, no trailing required mark or unit."""
    s = unicodedata.normalize("NFKC", str(text or "")).translate(_FULLWIDTH)
    s = re.sub(r"\s+", "", s)
    for _ in range(2):  # `名称*(万元)` and `名称(万元)*` both occur
        s = _TRAILING_UNIT.sub("", s).rstrip("*")
    return s


def normalize_sheet_name(text: str) -> str:
    """Sheet names as users leave them: `预算执行 `, `预算执行（2023）` → `预算执行`."""
    s = normalize_label(text)
    return re.sub(r"\(\d{4}年?\)$|\d{4}年?$", "", s)


_UNSAFE_IN_NAMES = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


def safe_name(text: object, fallback: str) -> str:
    """Cell text (a 单位编码, 单位名称, 填报科室) made safe as part of a file or folder name on Windows, macOS and
    Linux: path separators, the characters Windows refuses and control characters become `_`; surrounding spaces
    and trailing dots go (Windows drops them); a result that is empty or only dots (`..` would climb out of the
    output folder) becomes `fallback`."""
    s = _UNSAFE_IN_NAMES.sub("_", "" if text is None else str(text)).strip().rstrip(". ")
    return s if s.strip(".") else fallback
