"""Benchmark: time to score the shipped example unit (`python -m pipeline.bench [--repeat N]`).

Reports the median wall time of (a) the whole command `python -m pipeline run` as a user starts it (interpreter
start, imports, read, score, write) and (b) read / compute / write inside one process. Speed is measured here,
never asserted in tests: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cli import EXAMPLE_INPUT


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_command(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipeline", "run", "--input", str(EXAMPLE_INPUT), "--output", out],
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
    return times


def time_stages(repeat: int) -> dict[str, list[float]]:
    from .framework import default_framework_path, load_framework
    from .run import evaluate, write_outputs

    fw, _ = load_framework(default_framework_path())
    stages: dict[str, list[float]] = {"read": [], "compute": [], "write": []}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            ev = evaluate(EXAMPLE_INPUT, fw)
            write_outputs(ev, fw, Path(out))
            for k in stages:
                stages[k].append(ev.timings[k])
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description="对内置示例单位计时（取中位数）。")
    parser.add_argument("--repeat", type=int, default=5, help="重复次数（默认 5）")
    args = parser.parse_args(argv)
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cmd = time_command(args.repeat)
    print(f"one unit, whole command `python -m pipeline run`: median {statistics.median(cmd):.2f} s "
          f"(min {min(cmd):.2f}, max {max(cmd):.2f}, n={args.repeat})")
    stages = time_stages(args.repeat)
    parts = ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in stages.items())
    print(f"one unit in-process (medians): {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
