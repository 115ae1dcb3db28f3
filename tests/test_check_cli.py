"""`python -m pipeline check`: prints every issue with where to fix it, exits 1 on errors and 0 without.

Run as a subprocess, as users run it (cli.print_issues binds sys.stdout at import, which pytest's capture misses)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pipeline import summary
from pipeline.cli import _print_summary
from pipeline.unitstore import UnitStore

REPO = Path(__file__).resolve().parent.parent
DEFECTS = REPO / "tests" / "fixtures" / "defects"
EXAMPLE = REPO / "input_templates" / "example"


def check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "check", "--input", str(folder)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_check_exits_1_and_names_the_cell_on_errors(tmp_path):
    shutil.copyfile(DEFECTS / "d17_公式无计算结果.xlsx", tmp_path / "d17_公式无计算结果.xlsx")
    proc = check(tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert ("[错误] d17_公式无计算结果.xlsx 预算执行!H3：「预算执行」H3 的「全年预算数」：公式没有保存计算结果，"
            "请在 Excel 中打开并保存后再放入（或把公式改为数值）。") in proc.stdout
    assert "[警告] d17_公式无计算结果.xlsx 预算执行!J2：「预算执行」J2 的「结转结余数」：公式没有保存计算结果" in proc.stdout


def test_check_exits_0_on_the_example_which_has_warnings_only():
    proc = check(EXAMPLE)
    assert proc.returncode == 0, proc.stderr
    assert "共 4 个问题：错误 0，警告 2，提示 2。" in proc.stdout


def test_check_reports_an_unreadable_file_and_exits_1(tmp_path):
    shutil.copyfile(DEFECTS / "d20_不是工作簿.xlsx", tmp_path / "d20_不是工作簿.xlsx")
    proc = check(tmp_path)
    assert proc.returncode == 1
    assert "[错误] d20_不是工作簿.xlsx ：文件无法打开：d20_不是工作簿.xlsx。文件已损坏或不是 Excel 工作簿" in proc.stdout


def test_run_summary_counts_the_outputs_of_the_run(capsys):
    """`run`'s closing summary reads the files written, unchanged and removed from the run's `outputs`."""
    units = pd.DataFrame({"单位编码": ["U1", "U2"], "财年": [2023, 2023], "单位名称": ["甲局", "乙局"]})
    totals = pd.DataFrame({"单位编码": ["U1"], "财年": [2023], "总分": [91.5], "等级": ["优"]})  # U2 not scored
    result = SimpleNamespace(
        store=UnitStore.of(summary.unit_rows(units, totals, pd.DataFrame(columns=["单位编码", "财年", "计算方法", "分子", "分母"]))),
        issues=[], timings={"read": 1.0, "compute": 0.5, "write": 0.3},
        outputs={"written": [Path("out/a.xlsx"), Path("out/b.csv")], "unchanged": [Path("out/c.docx")], "removed": []})
    _print_summary(result)
    out = capsys.readouterr().out
    assert "2023 U1 甲局：总分 91.50，等级 优\n2023 U2 乙局：总分 无，等级 无法评级\n" in out
    assert f"已写入：{Path('out/a.xlsx')}\n已写入：{Path('out/b.csv')}\n" in out   # a small run lists them
    assert "评价单位 2 个（2023 年 2 个），其中数据有错误的 0 个。\n等级分布：优 1，无法评级 1\n" in out
    assert "输出文件：写入 2 个，未变 1 个，删除 0 个。" in out
    assert "共评价 2 个单位，用时 1.80 秒（读取 1.0 秒，计算 0.5 秒，输出 0.3 秒）。" in out   # 1.0 + 0.5 + 0.3
