"""Command line: `python -m pipeline run | check | templates`. A thin layer over importable functions.

Exit status: 0 every unit scored without errors, 1 some unit has errors (the others are still written), 2 usage.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from . import __version__
from .framework import default_framework_path, load_framework
from .issues import issues_frame
from .spool import error_unit_count, severity_counts, sheet_chunks

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = Path("input")
EXAMPLE_INPUT = REPO_ROOT / "input_templates" / "example"

RUN_EXAMPLE = """示例：
  python -m pipeline run                       # 评 input/；input/ 中没有表格时评内置示例
  python -m pipeline run --input 2023报表 --output 结果
  python -m pipeline run --rules input_templates/评分标准_B_自评表.xlsx
  python -m pipeline run --as-of 2023-06         # 绩效运行监控：按 1–6 月数据预警，写入 output/2023/监控_2023-06/
"""
CHECK_EXAMPLE = """示例：
  python -m pipeline check --input input/      # 只检查数据问题，有错误时退出码为 1
"""
TEMPLATES_EXAMPLE = """示例：
  python -m pipeline templates --year 2024     # 写入 input_templates/2024/
  python -m pipeline templates --year 2024 --out 空白模板/
  python -m pipeline templates --year 2024 --from output/2023
                                               # 按 2023 年结果为每个单位预填：input_templates/2024/<单位编码>_<单位名称>/
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description="部门整体支出绩效评价：读取填好的 Excel 模板，计算指标与得分，输出评价工作簿。",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="命令")
    raw = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="评分并输出评价工作簿", description="评分并输出评价工作簿。", epilog=RUN_EXAMPLE,
                         formatter_class=raw)
    _input_arg(run)
    run.add_argument("--output", type=Path, default=Path("output"), help="输出目录（默认 output/）")
    run.add_argument("--rules", type=Path, default=None, help="评分标准工作簿（默认 框架A 部门整体支出共性指标）")
    _scale_args(run)
    run.add_argument("--as-of", dest="as_of", default=None, metavar="YYYY-MM",
                     help="绩效运行监控：截至该月（如 2023-06）按时间进度预警，结果写入 <输出目录>/<财年>/监控_YYYY-MM/")

    check = sub.add_parser("check", help="只检查数据问题，不输出评价", description="只检查数据问题。",
                           epilog=CHECK_EXAMPLE, formatter_class=raw)
    _input_arg(check)
    check.add_argument("--rules", type=Path, default=None, help="评分标准工作簿（默认 框架A）")

    tpl = sub.add_parser("templates", help="生成空白填报模板", description="按年度生成三种空白填报模板和评分标准。",
                         epilog=TEMPLATES_EXAMPLE, formatter_class=raw)
    tpl.add_argument("--year", type=int, required=True, help="财年，例如 2024")
    tpl.add_argument("--out", type=Path, default=None, help="输出目录（默认 input_templates/<财年>/）")
    tpl.add_argument("--from", dest="source", type=Path, default=None,
                     help="上年结果目录（如 output/2023）或上年已填表格目录：按单位预填单位信息、三公经费和结转结余"
                          "（作上年数）、绩效目标（清空实际完成值）、统计项名称")
    return parser


def _scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="并行进程数（默认为本机 CPU 核数；1 表示不并行）")
    p.add_argument("--scheduler", default=None, metavar="tcp://主机:端口",
                   help="在 Dask 分布式集群上运行（各节点须安装本程序并能以相同路径访问输入、输出目录）")
    p.add_argument("--force", "--full", dest="force", action="store_true",
                   help="全部重新读取和输出（默认只重做输入有变化的单位）")
    p.add_argument("--quiet", action="store_true", help="不显示进度条")


def _executor(args):
    """The executor of `--workers` / `--scheduler`; a message (str) when the options are unusable."""
    from .parallel import make_executor

    if args.workers is not None and args.workers < 1:
        return "--workers 须为正整数，例如 --workers 4。"
    try:
        return make_executor(args.workers, args.scheduler)
    except ImportError:
        return "使用 --scheduler 需要安装 dask[distributed]（见 requirements.txt）。"
    except (OSError, TimeoutError, ValueError) as exc:
        return f"无法连接 Dask 调度器 {args.scheduler}：{exc}"


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _input_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, default=None,
                   help="放置已填模板的目录，按子目录递归读取（默认 input/；其中没有表格时使用内置示例）")


def resolve_input(given: Path | None) -> tuple[Path, str]:
    """The folder to score and a sentence saying which one it is."""
    from .load import discover

    if given is not None:
        return given, f"读取输入目录：{given}"
    if DEFAULT_INPUT.is_dir() and discover(DEFAULT_INPUT):
        return DEFAULT_INPUT, f"读取输入目录：{DEFAULT_INPUT}/"
    return EXAMPLE_INPUT, f"input/ 中没有表格，使用内置示例：{EXAMPLE_INPUT.relative_to(REPO_ROOT)}/"


def _framework(path: Path | None):
    fw, problems = load_framework(path or default_framework_path())
    for p in problems:
        print(f"[{p.severity}] 评分标准 {p.sheet}!{p.cell} {p.message}", file=sys.stderr)
    return fw


def print_issues(found, out=sys.stdout) -> None:
    """Every issue, errors first, then the counts. `found`: a list, or a run's IssueLog (read a chunk at a time)."""
    counts: Counter = Counter()
    for chunk in sheet_chunks(found):
        frame = issues_frame(chunk)
        for r in frame.to_dict("records"):
            where = "!".join(x for x in (r["工作表"], r["单元格"]) if x)
            print(f"[{r['严重程度']}] {r['文件']} {where}：{r['问题']}", file=out)
        counts.update(frame["严重程度"])
    if not counts:
        print("未发现数据问题。", file=out)
        return
    print(f"共 {counts.total()} 个问题：{_counted(counts)}。", file=out)


def _counted(counts) -> str:
    return f"错误 {counts.get('错误', 0)}，警告 {counts.get('警告', 0)}，提示 {counts.get('提示', 0)}"


def parse_as_of(text: str) -> tuple[int, int] | str:
    """`2023-06` → (2023, 6); a Chinese message (str) when the value is not a month of the form YYYY-MM."""
    m = re.fullmatch(r"\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?\s*", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2100:
        return f"--as-of 的值“{text}”无法识别：请写成 年-月，例如 2023-06（月份 1–12）。"
    return int(m.group(1)), int(m.group(2))


def _input_and_framework(args) -> tuple[Path, object] | int:
    """The input folder (said aloud) and the loaded 评分标准, or exit status 2 with the reason on stderr."""
    input_dir, said = resolve_input(args.input)
    if not input_dir.is_dir():
        print(f"输入目录不存在：{input_dir}", file=sys.stderr)
        return 2
    print(said)
    fw = _framework(args.rules)
    if fw is None:
        print("评分标准有错误，未评分。请按上面的提示修改评分标准工作簿。", file=sys.stderr)
        return 2
    return input_dir, fw


def cmd_run(args) -> int:
    from .run import CACHE_DIR, evaluate, run_streaming

    as_of = None
    if args.as_of is not None:
        as_of = parse_as_of(args.as_of)
        if isinstance(as_of, str):
            print(as_of, file=sys.stderr)
            return 2
    prepared = _input_and_framework(args)
    if isinstance(prepared, int):
        return prepared
    input_dir, fw = prepared
    executor = _executor(args)
    if isinstance(executor, str):
        print(executor, file=sys.stderr)
        return 2
    with executor:
        if as_of is not None:  # one 财年's monitoring: evaluated in memory, written by write_monitoring_outputs
            ev = evaluate(input_dir, fw, executor=executor, progress=_progress(args),
                          cache_dir=None if args.force else args.output / CACHE_DIR)
        else:
            result = run_streaming(input_dir, fw, args.output, executor=executor, force=args.force,
                                   progress=_progress(args))
    if as_of is not None:
        return _run_as_of(ev, fw, args.output, *as_of)
    _print_run_issues(result.issues)
    _print_summary(result)
    return 1 if result.has_errors else 0


# Up to this many units the run lists each unit's score and each file written; above it only the summary.
LIST_UNITS_UP_TO = 20
LIST_ISSUES_UP_TO = 40


def _print_run_issues(found) -> None:
    """All issues of a small run; for a large one the counts (the lines are in each workbook's 数据问题 sheet and in
    汇总.xlsx), so that the end of the run fits on one screen."""
    if len(found) <= LIST_ISSUES_UP_TO:
        print_issues(found)
        return
    print(f"共 {len(found)} 个数据问题：{_counted(severity_counts(found))}。逐条见各单位工作簿的「数据问题」工作表和各财年的 "
          f"汇总.xlsx。")


GRADE_ORDER = ("优", "良", "中", "差")


def _print_summary(result) -> None:
    """One screen: units scored (per 财年), units with errors, the grade distribution, files written / unchanged /
    removed (`result.outputs`) and the time per stage. Small runs also list each unit and each file written. The
    units are read from the run's store (result.store: a province's are never all in memory)."""
    outputs, store = result.outputs, result.store
    n = store.count()
    if n <= LIST_UNITS_UP_TO:
        for t in store.frame().to_dict("records"):
            score = "无" if t["总分"] is None or t["总分"] != t["总分"] else f"{t['总分']:.2f}"
            print(f"{t['财年']} {t['单位编码']} {t['单位名称']}：总分 {score}，等级 {t['等级']}")
        for path in outputs["written"]:
            print(f"已写入：{path}")
    years, grades = store.tally(None, "财年"), store.tally(None, "等级")
    per_year = "，".join(f"{y} 年 {c} 个" for y, c in zip(years["财年"], years["单位数"]))
    grades = dict(zip(grades["等级"], grades["单位数"]))
    order = [g for g in GRADE_ORDER if g in grades] + sorted(g for g in grades if g not in GRADE_ORDER)
    print(f"评价单位 {n} 个（{per_year or '无'}），其中数据有错误的 {error_unit_count(result.issues)} 个。")
    if grades:
        print("等级分布：" + "，".join(f"{g} {int(grades[g])}" for g in order))
    print(f"输出文件：写入 {len(outputs['written'])} 个，未变 {len(outputs['unchanged'])} 个，"
          f"删除 {len(outputs['removed'])} 个。")
    t = result.timings
    parts = "，".join(f"{name} {t[k]:.1f} 秒" for k, name in (("read", "读取"), ("compute", "计算"), ("write", "输出"))
                     if k in t)
    secs = sum(result.timings.values())
    print(f"共评价 {n} 个单位，用时 {secs:.2f} 秒（{parts}）。")


def _run_as_of(ev, fw, output: Path, year: int, month: int) -> int:
    """`run --as-of YYYY-MM`: monitoring outputs for the units of that 财年 (exit 2 when the data has none)."""
    from .monitoring import warning_counts
    from .run import monitoring_dir, write_monitoring_outputs

    years = sorted({int(y) for y in ev.dataset.units["财年"]})
    if year not in years:
        shown = "、".join(str(y) for y in years) or "无"
        print(f"--as-of {year}-{month:02d} 的年度与数据的财年（{shown}）不一致：请指定数据所属财年的月份，"
              f"例如 --as-of {years[0] if years else year}-{month:02d}。", file=sys.stderr)
        return 2
    if len(years) > 1:
        print(f"输入中还有其他财年（{'、'.join(str(y) for y in years if y != year)}）的单位，本次监控只处理 {year} 年。")
    written = write_monitoring_outputs(ev, fw, output, year, month)
    print_issues([i for i in ev.issues if i.year in (None, year)])
    names = ev.dataset.units.set_index(["单位编码", "财年"])["单位名称"]
    for c in warning_counts(_monitoring_of(written)).to_dict("records"):
        print(f"{year} {c['单位编码']} {names.get((c['单位编码'], c['财年']), '')}：截至 {c['截至月份']}，"
              f"红色预警 {c['红色预警']} 项，黄色预警 {c['黄色预警']} 项（共检查 {c['检查项']} 项）")
    for path in written:
        print(f"已写入：{path}")
    print(f"监控结果在 {output / str(year) / monitoring_dir(year, month)}/，年度评价结果不受影响。")
    return 1 if any(i.severity == "错误" and i.year == year for i in ev.issues) else 0


def _monitoring_of(written: list[Path]):
    import pandas as pd

    csv = next(p for p in written if p.name == "监控预警.csv")
    return pd.read_csv(csv, encoding="utf-8-sig", dtype={"单位编码": str})


def cmd_check(args) -> int:
    from .run import check_input

    prepared = _input_and_framework(args)
    if isinstance(prepared, int):
        return prepared
    result = check_input(*prepared)
    print_issues(result.issues)
    return 1 if result.has_errors else 0


def cmd_templates(args) -> int:
    from .templates import generate_templates, write_framework_workbooks

    if not 2000 <= args.year <= 2100:
        print(f"财年 {args.year} 不合理，请填写四位年份，例如 2024。", file=sys.stderr)
        return 2
    out = args.out or REPO_ROOT / "input_templates" / str(args.year)
    if args.source is not None:
        return _templates_from(args.source, args.year, out)
    paths = generate_templates(args.year, out)
    if args.out is None:
        paths += write_framework_workbooks(REPO_ROOT / "input_templates")
    for p in paths:
        print(f"已生成：{p}")
    return 0


def _templates_from(source: Path, year: int, out: Path) -> int:
    """`templates --from`: one folder of pre-filled templates per unit of the previous year."""
    from .rollover import read_previous, write_rollover

    if not source.is_dir():
        print(f"上年数据目录不存在：{source}", file=sys.stderr)
        return 2
    records, said = read_previous(source, year)
    if not records:
        print(f"{source} 中没有 {year} 年以前的单位数据。请指定上年的输出目录（如 output/{year - 1}，先运行 make run），"
              f"或上年已填报的表格目录。", file=sys.stderr)
        return 2
    print(said)
    for p in write_rollover(records, year, out):
        print(f"已生成：{p}")
    print(f"共为 {len(records)} 个单位生成 {year} 年预填模板（上年数据为 {records[0]['财年']} 年）。")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": cmd_run, "check": cmd_check, "templates": cmd_templates}
    if args.command is None:
        parser.print_help()
        return 2
    return commands[args.command](args)
