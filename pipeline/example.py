"""The shipped example unit: 湘潭市市场监督管理局高新分局, 财年 2023, from its published 部门整体支出绩效评价报告
(shared/reference). The report's figures are kept as printed, including its inconsistencies, because catching them is
the pipeline's job; every figure the report does not give is marked 示例数据 in a 备注 column.

Monthly work statistics are split from the report's totals by a fixed seasonal pattern (largest remainder, integers),
so the months always sum exactly to the report's figure and the files are the same on every run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .spec import BUDGET_EXECUTION, MONTHS, PERFORMANCE_TARGETS, WORK_STATISTICS
from .templates import write_workbook

YEAR = 2023
UNIT_NAME = "湘潭市市场监督管理局高新分局"
UNIT_CODE = "430399001"
SOURCE = "湘潭市市场监督管理局高新分局2023年度部门整体支出绩效评价报告（示例单位）"
EXAMPLE_NOTE = "示例数据"
MONTHS_NOTE = "全年数取自报告；各月分布为示例数据"
# Relative weights of the months: quiet around the Spring Festival, busier towards the year end.
MONTH_WEIGHTS = (7, 6, 10, 9, 10, 9, 9, 10, 10, 9, 11, 12)

UNIT_FUNCTIONS = (
    "负责市场综合监督管理；市场主体统一登记注册，依法查处无照经营；监督管理市场秩序；产品质量、特种设备、"
    "食品和药品（含医疗器械、化妆品）安全监督管理；在市局指导下开展宏观质量、计量、标准化、认证认可监管；"
    "新闻宣传；消费维权；实施知识产权战略；完成市局、高新管委会交办的其他任务。"
)


def split_by_month(total: int, months: int = 12) -> dict[str, int]:
    """Split an integer total over the first `months` months by `MONTH_WEIGHTS`, largest remainder first (ties to
    the earlier month), so that the parts are integers summing exactly to `total`."""
    weights = MONTH_WEIGHTS[:months]
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    order = sorted(range(months), key=lambda i: (-remainders[i], i))
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return dict(zip(MONTHS, parts))


def _stat(name: str, line: str, unit: str, total: int, months: int = 12, *, full_year: bool = False,
          note: str = MONTHS_NOTE) -> dict:
    """One 工作统计 row whose months sum to `total`; `full_year` also fills 全年 (equal to that sum)."""
    row = {"统计项": name, "业务条线": line, "计量单位": unit, **split_by_month(total, months), "备注": note}
    if full_year:
        row["全年"] = total
    return row


def _unit_info(section: str | None = None) -> dict:
    info = {"单位名称": UNIT_NAME, "单位编码": UNIT_CODE, "财年": YEAR}
    if section:
        info["填报科室"] = section
    return info


# --- 预算执行表 ----------------------------------------------------------------------------------------------------


def budget_data() -> dict:
    """The 预算执行表 of the example: all spending is 基本支出, no 项目支出, no 结转结余."""
    return {
        "单位信息": {
            **_unit_info(), "主管部门": "湘潭市市场监督管理局", "编制人数": 30, "年末在职人数": 28,
            "单位职能": UNIT_FUNCTIONS, "填报人": "刘敏", "联系电话": "0731-00000000",
            "填报日期": date(2024, 1, 15),
        },
        "预算执行": budget_lines(),
        "月度支出": monthly_rows(),
        "三公经费": sangong_rows(),
        "其他指标": {"政府采购预算数": 25.00, "政府采购实际金额": 24.50, "固定资产总额": 320.50,
                     "在用固定资产总额": 298.60},
        "管理情况": management_rows(),
    }


def budget_lines() -> list[dict]:
    """预算执行 rows. The report's 全年预算数 541.71 is kept although 522.30 + 26.32 − 5.10 = 543.52: the pipeline
    must flag that, not hide it. The split between 人员经费 and 公用经费 is invented (the report gives none)."""
    zero = {"上年结转数": 0, "结转结余数": 0}
    return [
        {"支出类别": "基本支出-人员经费", **zero, "年初预算数": 452.30, "预算调增数": 26.32, "预算调减数": 5.10,
         "全年预算数": 471.71, "实际支出数": 471.71,
         "备注": "调增为2022年度绩效考核奖金，调减为退休人员调标；全年预算数取自报告"},
        {"支出类别": "基本支出-公用经费", **zero, "年初预算数": 70.00, "预算调增数": 0, "预算调减数": 0,
         "全年预算数": 70.00, "实际支出数": 70.00, "备注": "示例数据：报告未分列人员经费与公用经费"},
        {"支出类别": "项目支出", "项目名称": "本年无项目支出", "重点项目": "否", **zero, "年初预算数": 0,
         "预算调增数": 0, "预算调减数": 0, "全年预算数": 0, "实际支出数": 0,
         "备注": "报告：项目支出预算0万元，实际支出0万元"},
    ]


def monthly_rows() -> list[dict]:
    """月度支出 (示例数据, for the 绩效运行监控): each category's 实际支出数 split over the months by `MONTH_WEIGHTS`
    in whole fen, so the twelve months sum exactly to 471.71 and 70.00."""
    rows = []
    for category, actual in (("基本支出-人员经费", 471.71), ("基本支出-公用经费", 70.00)):
        fen = split_by_month(round(actual * 100))
        rows.append({"支出类别": category, **{m: v / 100 for m, v in fen.items()}})
    return rows


def sangong_rows() -> list[dict]:
    """三公经费: this year's totals 9.6 / 8.7 as in the report; the split and last year's figures are 示例数据."""
    figures = {
        "因公出国（境）费": (0, 0, 0, 0),
        "公务用车购置费": (0, 0, 0, 0),
        "公务用车运行维护费": (6.00, 5.40, 6.50, 6.10),
        "公务接待费": (3.60, 3.30, 3.80, 3.40),
    }
    fields = ("预算数", "实际支出数", "上年预算数", "上年实际支出数")
    return [{"项目": item, **dict(zip(fields, values))} for item, values in figures.items()]


def management_rows() -> list[dict]:
    """管理情况 self-assessment; 情况说明 quotes the report where it says something, else is marked 示例数据."""
    rows = (
        ("绩效目标合理性", "部分达成", None, "报告：预算够目标编制不完善、全面，绩效目标设置有待提高。", "部门整体支出绩效目标申报表"),
        ("绩效指标明确性", "达成", None, "各项绩效目标均设定了可衡量的指标值和计量单位（示例数据）", "部门整体支出绩效目标申报表"),
        ("管理制度健全性", "部分达成", None,
         "报告：已合法、合规、完整制定预算资金管理办法，内部财务管理制度、会计核算制度等管理制度，但相关管理制度还需进一步完善。",
         "《预算资金管理办法》《内部财务管理制度》"),
        ("资金使用合规性", "达成", None,
         "报告：执行政府采购规定，所有需经政府采购的事项，均需按规定办理手续；2023年度无财政拨款结转结余。", "政府采购手续"),
        ("预决算信息公开性", "达成", None, "报告：按规定内容、规定时限公开预决算信息。", "部门预决算公开页面"),
        ("基础信息完善性", "达成", None, "基础数据信息和会计信息资料真实、完整、准确（示例数据）", "会计账簿"),
        ("资产管理制度健全性", "部分达成", 75,
         "报告：已制定资产管理制度，相关制度合法、合规，但缺乏专人管理资产，资产配置和管理等方面制度还有待进一步完善。",
         "《资产管理制度》"),
        ("资产管理安全性", "达成", None, "报告：所采购资产按要求及时进行资产管理登记。", "资产登记台账"),
    )
    fields = ("评价内容", "自评结论", "得分比例", "情况说明", "佐证材料")
    return [dict(zip(fields, row)) for row in rows]


# --- 绩效目标表 ----------------------------------------------------------------------------------------------------

_TARGET_FIELDS = ("一级指标", "二级指标", "三级指标", "比较符", "指标值", "计量单位", "实际完成值", "取数公式",
                  "分值", "偏差原因分析及改进措施", "备注")


def target_rows() -> list[dict]:
    """The report's seven targets (⑦ has two parts) plus two the report only describes. 分值 is given for the
    效益/满意度 rows (they sum to 20) and left blank on the 产出 rows, so both weighting paths are exercised."""
    rows = (
        ("效益指标", "经济效益指标", "市场主体增长率", "≥", 3, "%", 18.65, None, 6,
         "指标值设置偏低，下年度按实际增长水平调整", "报告：目标完成18.65%，报告所列完成率1000%"),
        ("产出指标", "质量指标", "企业年报率", "≥", 70, "%", 97.6, None, None, None, "截至6月30日"),
        ("产出指标", "质量指标", "政府采购事项按规定办理率", "＝", 100, "%", 100, None, None, None, None),
        ("产出指标", "数量指标", "食品药品主题宣传活动次数", "≥", 2, "次", None, "[主题宣传活动次数]", None, None,
         "实际完成值由工作统计表取数"),
        ("效益指标", "社会效益指标", "消费者投诉处理答复率", "≥", 100, "%", 100, None, 4, None, None),
        ("产出指标", "数量指标", "特种设备监督检查次数", "≥", 80, "次", 81, "[特种设备监督检查次数]", None, None, None),
        ("产出指标", "数量指标", "双随机抽查覆盖企业数", "≥", 80, "户", 86, None, None, None,
         "实际完成值为示例数据（报告未列明）"),
        ("产出指标", "质量指标", "抽查结果公示率", "＝", 100, "%", 100, None, None, None, None),
        ("效益指标", "社会效益指标", "12345热线办结率", "≥", 90, "%", 93, "[12345办结件数]/[12345转办件数]*100",
         6, None, "指标值为示例数据；实际完成值93为报告所列（1-11月）"),
        ("满意度指标", "服务对象满意度指标", "服务对象满意度", "≥", 90, "%", 95, None, 4, None, EXAMPLE_NOTE),
    )
    return [{"序号": i, **dict(zip(_TARGET_FIELDS, row))} for i, row in enumerate(rows, start=1)]


# --- 工作统计表 ----------------------------------------------------------------------------------------------------


def registration_stats() -> list[dict]:
    """登记注册股: figures as of 11月3日 in the report, so months 1–11."""
    note = "报告数据截至11月3日；各月分布为示例数据"
    return [
        _stat("新登记经营主体户数", "登记注册", "户", 1853, 11, full_year=True, note=note),
        _stat("新登记企业户数", "登记注册", "户", 1235, 11, full_year=True, note=note),
        _stat("新登记个体工商户户数", "登记注册", "户", 618, 11, note="按报告1853−1235推算；各月分布为示例数据"),
        _stat("变更市场主体户数", "登记注册", "户", 1034, 11, note=note),
        _stat("注销市场主体户数", "登记注册", "户", 613, 11, note=note),
        _stat("办理迁出登记户数", "登记注册", "户", 80, 11, note=note),
        _stat("办理迁入登记户数", "登记注册", "户", 86, 11, note=note),
        _stat("食品经营许可新办户数", "行政许可", "户", 134, 11, note=note),
        _stat("指导网上注册户数", "登记注册", "户", 965, 11, note=note),
    ]


def consumer_stats() -> list[dict]:
    """消费者权益保护股: 12345 figures cover 1–11月 as the report says; 挽回经济损失 only as a year figure."""
    note = "报告为1-11月数据；各月分布为示例数据"
    return [
        _stat("12345转办件数", "消费维权", "件", 2753, 11, full_year=True, note=note),
        _stat("12345办结件数", "消费维权", "件", 2532, 11, full_year=True, note=note),
        {"统计项": "为消费者挽回经济损失", "业务条线": "消费维权", "计量单位": "万元", "全年": 230,
         "备注": "报告：挽回经济损失230余万元；仅填全年"},
    ]


def special_equipment_stats() -> list[dict]:
    """特种设备安全监察股: the report's year figures, plus a 期末 item (a stock, not a flow)."""
    stock = (310, 311, 313, 315, 316, 318, 320, 321, 323, 325, 326, 328)
    return [
        _stat("特种设备监督检查次数", "特种设备", "次", 81, full_year=True),
        _stat("检查特种设备使用单位家次", "特种设备", "家次", 170),
        _stat("出动监管人员人次", "特种设备", "人次", 360),
        _stat("下达安全监察指令书份数", "特种设备", "份", 65),
        _stat("排查安全隐患个数", "特种设备", "个", 49),
        _stat("整改安全隐患个数", "特种设备", "个", 45),
        {"统计项": "在册特种设备使用单位数", "业务条线": "特种设备", "计量单位": "家", "汇总方式": "期末",
         **dict(zip(MONTHS, stock)), "备注": EXAMPLE_NOTE},
    ]


def food_safety_stats() -> list[dict]:
    """食品安全监管股, ending with the 合计 row staff add by habit (a subtotal of the inspection rows that the
    reader must drop, never count)."""
    campaigns = {m: 0 for m in MONTHS} | {"6月": 1, "9月": 1}  # 食品安全宣传周; 制止餐饮浪费、月饼过度包装
    inspections = [
        _stat("检查餐饮服务经营者家次", "食品安全", "家次", 155),
        _stat("检查学校及幼儿园食堂家次", "食品安全", "家次", 18),
        _stat("检查校园周边食品经营门店家次", "食品安全", "家次", 23),
    ]
    subtotal = {"统计项": "合计", **{m: sum(r[m] for r in inspections) for m in MONTHS}, "全年": 155 + 18 + 23}
    return [
        {"统计项": "主题宣传活动次数", "业务条线": "食品安全", "计量单位": "次", **campaigns, "全年": 2,
         "备注": "全年数取自报告；举办月份为示例数据"},
        *inspections,
        subtotal,
    ]


WORK_STAT_FILES = {
    "登记注册股": registration_stats,
    "消费者权益保护股": consumer_stats,
    "特种设备安全监察股": special_equipment_stats,
    "食品安全监管股": food_safety_stats,
}


def write_example(out_dir: Path) -> list[Path]:
    """Write the example unit's filled workbooks: one 预算执行表, one 绩效目标表 and one 工作统计表 per section
    (in the subfolder `工作统计/`, as a unit would collect them).

    Args:
        out_dir: target folder, normally `input_templates/example/`.

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    meta = {"数据来源": SOURCE}
    jobs = [
        (BUDGET_EXECUTION, out_dir / f"预算执行表_{YEAR}.xlsx", budget_data()),
        (PERFORMANCE_TARGETS, out_dir / f"绩效目标表_{YEAR}.xlsx",
         {"单位信息": _unit_info(), "绩效目标": target_rows()}),
    ]
    for section, rows in WORK_STAT_FILES.items():
        path = out_dir / "工作统计" / f"工作统计表_{YEAR}_{section}.xlsx"
        jobs.append((WORK_STATISTICS, path, {"单位信息": _unit_info(section), "工作统计": rows()}))
    for spec, path, data in jobs:
        write_workbook(spec, path, YEAR, data, meta)
    return [path for _, path, _ in jobs]


if __name__ == "__main__":  # `make generated` runs `python -m pipeline.example`
    for written in write_example(Path(__file__).resolve().parent.parent / "input_templates" / "example"):
        print(written)
