"""Command line: `python -m pipeline run | check | templates`. A thin layer over importable functions.

Exit status: 0 every unit scored without errors, 1 some unit has errors (the others are still written), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .framework import default_framework_path, load_framework
from .issues import issues_frame

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = Path("input")
EXAMPLE_INPUT = REPO_ROOT / "input_templates" / "example"

RUN_EXAMPLE = """示例：
  python -m pipeline run                       # 评 input/；input/ 中没有表格时评内置示例
  python -m pipeline run --input 2023报表 --output 结果
  python -m pipeline run --rules input_templates/评分标准_B_自评表.xlsx
"""
CHECK_EXAMPLE = """示例：
  python -m pipeline check --input input/      # 只检查数据问题，有错误时退出码为 1
"""
TEMPLATES_EXAMPLE = """示例：
  python -m pipeline templates --year 2024     # 写入 input_templates/2024/
  python -m pipeline templates --year 2024 --out 空白模板/
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

    check = sub.add_parser("check", help="只检查数据问题，不输出评价", description="只检查数据问题。",
                           epilog=CHECK_EXAMPLE, formatter_class=raw)
    _input_arg(check)
    check.add_argument("--rules", type=Path, default=None, help="评分标准工作簿（默认 框架A）")

    tpl = sub.add_parser("templates", help="生成空白填报模板", description="按年度生成三种空白填报模板和评分标准。",
                         epilog=TEMPLATES_EXAMPLE, formatter_class=raw)
    tpl.add_argument("--year", type=int, required=True, help="财年，例如 2024")
    tpl.add_argument("--out", type=Path, default=None, help="输出目录（默认 input_templates/<财年>/）")
    return parser


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
    if not found:
        print("未发现数据问题。", file=out)
        return
    frame = issues_frame(found)
    for r in frame.to_dict("records"):
        where = "!".join(x for x in (r["工作表"], r["单元格"]) if x)
        print(f"[{r['严重程度']}] {r['文件']} {where}：{r['问题']}", file=out)
    counts = frame["严重程度"].value_counts()
    print(f"共 {len(frame)} 个问题：错误 {counts.get('错误', 0)}，警告 {counts.get('警告', 0)}，"
          f"提示 {counts.get('提示', 0)}。", file=out)


def cmd_run(args) -> int:
    from .run import evaluate, write_outputs

    input_dir, said = resolve_input(args.input)
    if not input_dir.is_dir():
        print(f"输入目录不存在：{input_dir}", file=sys.stderr)
        return 2
    print(said)
    fw = _framework(args.rules)
    if fw is None:
        print("评分标准有错误，未评分。请按上面的提示修改评分标准工作簿。", file=sys.stderr)
        return 2
    ev = evaluate(input_dir, fw)
    written = write_outputs(ev, fw, args.output)
    print_issues(ev.issues)
    _print_summary(ev, written)
    return 1 if ev.has_errors else 0


def _print_summary(ev, written) -> None:
    totals = ev.scores.totals.merge(ev.dataset.units[["单位编码", "财年", "单位名称"]], on=["单位编码", "财年"], how="left")
    for t in totals.to_dict("records"):
        print(f"{t['财年']} {t['单位编码']} {t['单位名称']}：总分 {t['总分']:.2f}，等级 {t['等级']}")
    for path in written:
        print(f"已写入：{path}")
    secs = sum(ev.timings.values())
    print(f"共评价 {len(totals)} 个单位，用时 {secs:.2f} 秒。")


def cmd_check(args) -> int:
    from .run import evaluate

    input_dir, said = resolve_input(args.input)
    if not input_dir.is_dir():
        print(f"输入目录不存在：{input_dir}", file=sys.stderr)
        return 2
    print(said)
    fw = _framework(args.rules)
    if fw is None:
        return 2
    ev = evaluate(input_dir, fw)
    print_issues(ev.issues)
    return 1 if ev.has_errors else 0


def cmd_templates(args) -> int:
    from .templates import generate_templates, write_framework_workbooks

    if not 2000 <= args.year <= 2100:
        print(f"财年 {args.year} 不合理，请填写四位年份，例如 2024。", file=sys.stderr)
        return 2
    out = args.out or REPO_ROOT / "input_templates" / str(args.year)
    paths = generate_templates(args.year, out)
    if args.out is None:
        paths += write_framework_workbooks(REPO_ROOT / "input_templates")
    for p in paths:
        print(f"已生成：{p}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"run": cmd_run, "check": cmd_check, "templates": cmd_templates}
    if args.command is None:
        parser.print_help()
        return 2
    return commands[args.command](args)
