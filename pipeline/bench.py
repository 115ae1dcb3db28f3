"""Benchmarks. `python -m pipeline.bench [--repeat N]` (or `single`): time to score the shipped example unit.
`generate --units N --out DIR --seed S`: a deterministic workload of N synthetic units. `run --units 100 1000`:
the pipeline over N units (wall, units/s, read / compute / write, peak memory, an unchanged rerun) beside the floor
(reading the same inputs and writing the same output files, no computation).

Reports the median wall time of (a) the whole command `python -m pipeline run` as a user starts it (interpreter
start, imports, read, score, write) and (b) read / compute / write inside one process. Speed is measured here,
never asserted in tests: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
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


# ---------------------------------------------------------------------------------------------------------------
# workload generator: N realistic synthetic units built from the example unit's data builders


DEPARTMENTS = ("市场监督管理局", "自然资源局", "教育局", "卫生健康局", "农业农村局", "交通运输局", "民政局", "司法局",
               "文化旅游局", "水利局", "城市管理局", "人力资源和社会保障局")
PLACES = ("雨湖区", "岳塘区", "湘潭县", "湘乡市", "韶山市", "高新区", "经开区")
EXTRA_LINES = ("综合执法", "行政审批", "宣传教育", "安全检查", "信访接待", "统计调查", "培训指导", "专项整治")
EXTRA_ITEMS = ("检查", "受理", "办结", "走访", "培训", "抽查", "宣传", "回访", "核查", "督办", "巡查", "整改")
EXTRA_UNITS = ("次", "件", "户", "家次", "人次", "场")


def synthetic_unit(index: int, seed: int) -> tuple[str, int, list[tuple[str, object, str, dict]]]:
    """Unit `index` of a generated workload: (单位编码, 财年, [(relative path, spec, template year, data)]).
    Deterministic in (index, seed). Figures vary around the example unit's; some units lose points (low execution,
    missed targets, 部分达成), and one unit in five has a data issue (an approximate amount `12.5左右`, a missing
    实际完成值, a 指标值 with a comparator, 编制人数 in words), as real batches do."""
    import random

    from . import example as ex
    from .spec import BUDGET_EXECUTION, PERFORMANCE_TARGETS, WORK_STATISTICS

    rng = random.Random(f"{seed}:{index}")
    year = 2024 if index % 10 == 9 else 2023
    code = f"43{index % 100:02d}{index:05d}"
    place, dept = PLACES[index % len(PLACES)], DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
    name = f"{place}{dept}第{index + 1}分支机构"
    info = {"单位名称": name, "单位编码": code, "财年": year}
    scale = rng.uniform(0.3, 4.0)

    def amount(x):
        return round(x * scale, 2)

    lines = []
    for row in ex.budget_lines():
        row = dict(row)
        for k in ("年初预算数", "预算调增数", "预算调减数"):
            row[k] = amount(row[k])
        row["全年预算数"] = round(row["年初预算数"] + row["预算调增数"] - row["预算调减数"], 2)
        rate = 1.0 if rng.random() < 0.5 else rng.uniform(0.8, 1.0)
        row["实际支出数"] = round(row["全年预算数"] * rate, 2)
        row["备注"] = None
        lines.append(row)
    if rng.random() < 0.4:
        budget = amount(rng.uniform(10, 80))
        lines.append({"支出类别": "项目支出", "项目名称": f"{dept}专项工作经费", "重点项目": rng.choice(["是", "否"]),
                      "上年结转数": amount(rng.choice([0, 0, 2.5])), "结转结余数": 0, "年初预算数": budget,
                      "预算调增数": 0, "预算调减数": 0, "全年预算数": budget,
                      "实际支出数": round(budget * rng.uniform(0.7, 1.0), 2)})
        lines = [r for r in lines if r.get("项目名称") != "本年无项目支出"]
    sangong = []
    for row in ex.sangong_rows():
        row = {k: (amount(v) if isinstance(v, (int, float)) else v) for k, v in row.items()}
        row["实际支出数"] = round(row["预算数"] * rng.uniform(0.85, 1.12), 2)
        sangong.append(row)
    management = []
    for row in ex.management_rows():
        concl = rng.choices(["达成", "部分达成", "未达成"], weights=[7, 2, 1])[0]
        management.append({**row, "自评结论": concl, "得分比例": 60 if concl == "部分达成" and rng.random() < 0.3 else None})
    budget = ex.budget_data()
    budget["单位信息"] = {**budget["单位信息"], **info, "主管部门": f"湘潭市{dept}",
                       "编制人数": rng.randint(8, 120)}
    budget["单位信息"]["年末在职人数"] = budget["单位信息"]["编制人数"] - rng.randint(-1, 4)
    budget.update({"预算执行": lines, "三公经费": sangong, "管理情况": management})
    budget["其他指标"] = {"政府采购预算数": amount(25), "政府采购实际金额": round(amount(25) * rng.uniform(0.8, 1.0), 2),
                      "固定资产总额": amount(320.5), "在用固定资产总额": round(amount(320.5) * rng.uniform(0.85, 1), 2)}

    targets = []
    for row in ex.target_rows():
        row = dict(row)
        actual = row["实际完成值"]
        if isinstance(actual, (int, float)) and rng.random() < 0.25:  # a missed target now and then
            row["实际完成值"] = round(actual * rng.uniform(0.6, 0.99), 1)
        targets.append(row)

    stat_files = {section: [dict(r) for r in fn()] for section, fn in ex.WORK_STAT_FILES.items()}
    sections = list(stat_files)
    n_files = rng.randint(1, 3)  # 3–5 files per unit: 预算执行表, 绩效目标表 and 1–3 工作统计表
    grouped: dict[str, list[dict]] = {s: [] for s in sections[:n_files]}
    for i, s in enumerate(sections):
        grouped[sections[i % n_files]].extend(stat_files[s])
    for row in (r for rows in grouped.values() for r in rows):  # vary the example's figures a little
        for m in ex.MONTHS:
            if isinstance(row.get(m), int) and row["统计项"] not in ("主题宣传活动次数", "合计"):
                row[m] = max(0, row[m] + rng.randint(-2, 2))
        if row.get("全年") is not None and row["统计项"] not in ("主题宣传活动次数", "合计", "为消费者挽回经济损失"):
            months = [row[m] for m in ex.MONTHS if isinstance(row.get(m), int)]
            row["全年"] = sum(months) if row.get("汇总方式") != "期末" else row["全年"]
    extra = 100 - sum(len(r) for r in grouped.values())
    keys = list(grouped)
    for k in range(extra):
        line = EXTRA_LINES[k % len(EXTRA_LINES)]
        total = rng.randint(0, 400)
        grouped[keys[k % len(keys)]].append(
            ex._stat(f"{line}{EXTRA_ITEMS[(k // len(EXTRA_LINES)) % len(EXTRA_ITEMS)]}{k + 1:03d}", line,
                     EXTRA_UNITS[k % len(EXTRA_UNITS)], total, note=""))

    issue = index % 20
    if issue == 3:
        budget["预算执行"][1]["实际支出数"] = f"{budget['预算执行'][1]['实际支出数']}左右"
    elif issue == 7:
        targets[1]["实际完成值"] = None
    elif issue == 11:
        targets[2]["指标值"] = "≥100"
    elif issue == 15:
        budget["单位信息"]["编制人数"] = "三十"

    if index % 3 == 0:
        folder = f"{place}/{name}"
    elif index % 3 == 1:
        folder = f"{code}_{name}"
    else:
        folder = f"批次{index // 100:02d}/{code}"
    files = [(f"{folder}/预算执行表_{year}.xlsx", BUDGET_EXECUTION, year, budget),
             (f"{folder}/绩效目标表_{year}.xlsx", PERFORMANCE_TARGETS, year,
              {"单位信息": info, "绩效目标": targets})]
    for section, rows in grouped.items():
        files.append((f"{folder}/工作统计/工作统计表_{year}_{section}.xlsx", WORK_STATISTICS, year,
                      {"单位信息": {**info, "填报科室": section}, "工作统计": rows}))
    return code, year, files


def _write_unit(job: tuple[int, int, str]) -> int:
    from .templates import write_workbook

    index, seed, out = job
    _, _, files = synthetic_unit(index, seed)
    for rel, spec, year, data in files:
        write_workbook(spec, Path(out) / rel, year, data, {"数据来源": "pipeline.bench 合成数据"})
    return len(files)


def generate(units: int, out: Path, seed: int = 1, workers: int | None = None, quiet: bool = True) -> int:
    """Write `units` synthetic units under `out` (deterministic in seed); returns the number of files."""
    from .parallel import make_executor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, str(out)) for i in range(units)]
    n = 0
    with make_executor(workers if units > 8 else 1) as ex:
        for _, k in ex.imap(_write_unit, jobs):
            n += k
    return n


# ---------------------------------------------------------------------------------------------------------------
# scale benchmark: the pipeline over N generated units, beside the floor (read the same inputs, write the same
# number of similar workbooks, no computation). Each measurement runs in a fresh process, so peak memory is its own.


def _peak_mb() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest child (Linux ru_maxrss is in KiB)."""
    import resource

    kb = 1024 if sys.platform == "darwin" else 1  # macOS reports bytes
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kb / 1024
    return {"peak_mb": round(own, 1), "peak_child_mb": round(child, 1)}


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (a process pool's workers
    once it is shut down). Unlike wall time, this does not count the time the machine gave to others."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_pipeline(input_dir: Path, output_dir: Path, workers: int | None, scheduler: str | None = None,
                     force: bool = False) -> dict:
    """One `run` in this process, as the CLI does it (into a fresh output folder: a full run that fills the cache
    and the manifest; into the same folder again: an incremental rerun); stage times, units, peak memory and the
    CPU seconds of this process and its workers (None on a Dask cluster, whose workers are not ours)."""
    from .framework import default_framework_path, load_framework
    from .parallel import make_executor
    from .run import run_streaming

    cpu = _cpu_seconds()
    t0 = time.perf_counter()
    fw, _ = load_framework(default_framework_path())
    with make_executor(workers, scheduler) as ex:
        res = run_streaming(input_dir, fw, output_dir, executor=ex, force=force)
    wall = time.perf_counter() - t0
    return {"units": res.store.count(), "files": res.files, "wall": wall, **res.timings,
            "cpu": None if scheduler else _cpu_seconds() - cpu, "written": len(res.outputs["written"]),
            **_peak_mb()}


def _floor_read(paths: list[str]) -> tuple[float, float]:
    """(seconds, CPU seconds) to read `paths` with calamine, every sheet."""
    import python_calamine

    t0, c0 = time.perf_counter(), time.process_time()
    for p in paths:
        book = python_calamine.CalamineWorkbook.from_path(p)
        for name in book.sheet_names:
            book.get_sheet_by_name(name).to_python(skip_empty_area=False)
    return time.perf_counter() - t0, time.process_time() - c0


def _floor_write(job: tuple[list[str], str]) -> tuple[float, float]:
    """Write, for each given output file, the same file with no computation: an .xlsx as a plain xlsxwriter workbook
    with the same sheets and cell values (read untimed with calamine), any other file (report, CSV, sidecar) as its
    bytes (read untimed). The cost of writing that many files of that size: (seconds, CPU seconds)."""
    import python_calamine
    import xlsxwriter

    paths, out = job
    spent = cpu = 0.0
    for k, p in enumerate(paths):
        target = Path(out) / f"{os.getpid()}_{k}{Path(p).suffix}"
        if not p.endswith(".xlsx"):
            data = Path(p).read_bytes()
            t0, c0 = time.perf_counter(), time.process_time()
            target.write_bytes(data)
            spent += time.perf_counter() - t0
            cpu += time.process_time() - c0
            continue
        book = python_calamine.CalamineWorkbook.from_path(p)
        sheets = {n: book.get_sheet_by_name(n).to_python() for n in book.sheet_names}
        t0, c0 = time.perf_counter(), time.process_time()
        wb = xlsxwriter.Workbook(str(target), {"in_memory": True})
        for name, rows in sheets.items():
            ws = wb.add_worksheet(name)
            for r, row in enumerate(rows):
                for c, v in enumerate(row):
                    if v != "":
                        ws.write(r, c, v)
        wb.close()
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
    return spent, cpu


def deal(paths: list[str], workers: int) -> list[list[str]]:
    """`paths` split into `workers` shares with the same number of files of each kind (suffix) in each, give or take
    one: the per-file costs differ by kind (a workbook is written cell by cell, a report copied as bytes), and a share
    by plain position could hand every workbook to one worker (in a year folder they alternate with the reports),
    which would measure one worker's serial time instead of the floor."""
    ordered = sorted(paths, key=lambda p: (Path(p).suffix.lower(), p))
    return [ordered[i::workers] for i in range(max(1, workers))]


def measure_floor(input_dir: Path, produced_dir: Path, scratch: Path, workers: int) -> dict:
    """Read every input workbook (calamine, all sheets) and write every file the pipeline wrote (see _floor_write),
    split over `workers` processes like the pipeline. Times are the slowest worker's; CPU seconds are all workers'
    in the timed parts."""
    from .load import discover_paths
    from .manifest import STATE_FILE
    from .parallel import make_executor

    inputs = discover_paths(input_dir)
    produced = Path(produced_dir)
    outputs = sorted(str(p) for p in produced.rglob("*") if p.is_file()
                     and p.relative_to(produced).parts[0] not in (".cache", STATE_FILE))
    scratch.mkdir(parents=True, exist_ok=True)
    w = max(1, workers)
    t0 = time.perf_counter()
    with make_executor(w) as ex:
        reads = [t for _, t in ex.imap(_floor_read, deal(inputs, w))]
        t1 = time.perf_counter()
        writes = [t for _, t in ex.imap(_floor_write, [(share, str(scratch)) for share in deal(outputs, w)])]
    read, write = max(t for t, _ in reads), max(t for t, _ in writes)
    return {"read": read, "write": write, "floor": read + write, "cpu": sum(c for _, c in reads + writes),
            "read_wall": t1 - t0, "inputs": len(inputs), "outputs": len(outputs),
            "output_mb": round(sum(Path(p).stat().st_size for p in outputs) / 2**20, 1), **_peak_mb()}


def _subprocess_json(args: list[str]) -> dict:
    import json

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.bench", *args], check=True, capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - t0
    return result


def workload(work: Path, units: int, seed: int, workers: int | None) -> Path:
    """The generated input of `units` units under `work` (generated once per (units, seed), then reused)."""
    folder = work / f"units-{units}-seed-{seed}"
    done = folder / ".complete"
    if not done.exists():
        t0 = time.perf_counter()
        n = generate(units, folder, seed, workers)
        done.write_text(f"{n} files\n")
        print(f"generated {units} units ({n} files) in {time.perf_counter() - t0:.0f} s: {folder}", flush=True)
    return folder


def _settle() -> None:
    """Untimed, before each measurement: write back and commit what the earlier ones wrote, so that the file
    system's catching up is not charged to the next measurement, pipeline or floor alike."""
    if hasattr(os, "sync"):
        os.sync()


def measure_scale(folder: Path, scratch: Path, workers: int) -> dict:
    """One measurement at one N: a full run into a fresh output folder, an unchanged rerun into it, the floor over
    the same inputs and the files the run wrote; each in a fresh process, each after _settle. Everything is written
    under `scratch` (a new folder, left in place: see cmd_run_scale)."""
    scratch.mkdir(parents=True)
    out = scratch / "out"
    common = ["--input", str(folder), "--workers", str(workers)]
    _settle()
    run = _subprocess_json(["one", *common, "--output", str(out)])
    _settle()
    again = _subprocess_json(["one", *common, "--output", str(out)])
    _settle()
    floor = _subprocess_json(["floor", *common, "--produced", str(out), "--scratch", str(scratch / "floor")])
    return {"run": run, "again": again, "floor": floor, "ratio": run["wall"] / floor["floor"]}


def _cpu_cell(run: dict, floor: dict) -> str:
    if run["cpu"] is None:
        return "–"
    return f"{run['cpu']:.1f} / {floor['cpu']:.1f} = {run['cpu'] / floor['cpu']:.2f}×"


def cmd_run_scale(args) -> int:
    from .parallel import default_workers

    workers = args.workers or default_workers()
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, {_mem_gb()} GB RAM, Python {platform.python_version()}; "
          f"workers {workers}; {args.repeat} measurement(s) per N", flush=True)
    # Every measurement's files (≈ 260 MB and 7,000 files per 1,000 units) are kept until the end: deleting them
    # before the next measurement charged the next full run, never the floor (measured after it), for the file
    # system's work on the deletion (ext4 passes over the inodes freed in the last minute or so when it creates
    # files: a 1,000-unit run started right after one was deleted took ≈ 7 % more CPU, median of 3 each).
    measurements = Path(tempfile.mkdtemp(prefix="measurements-", dir=args.work))
    try:
        _run_scale(args, workers, measurements)
    finally:
        shutil.rmtree(measurements, ignore_errors=True)
    return 0


def _run_scale(args, workers: int, measurements: Path) -> None:
    rows = []
    for n in args.units:
        folder = workload(args.work, n, args.seed, workers)
        done = []
        for k in range(args.repeat):
            m = measure_scale(folder, measurements / f"{n}-{k + 1}", workers)
            done.append(m)
            run, again, floor = m["run"], m["again"], m["floor"]
            print(f"N={n} #{k + 1}: {run['units']} units, {run['files']} input files → {run['written']} output "
                  f"files ({floor['output_mb']} MB)", flush=True)
            print(f"  pipeline: wall {run['wall']:.1f} s ({run['process_wall']:.1f} s with interpreter start), "
                  f"{run['units'] / run['wall']:.1f} units/s; read {run['read']:.1f} s, compute "
                  f"{run['compute']:.1f} s, write {run['write']:.1f} s; peak memory {run['peak_mb']:.0f} MiB main, "
                  f"{run['peak_child_mb']:.0f} MiB largest worker", flush=True)
            print(f"  unchanged rerun: wall {again['wall']:.1f} s (read {again['read']:.1f}, compute "
                  f"{again['compute']:.1f}, write {again['write']:.1f}); peak {again['peak_mb']:.0f} MiB", flush=True)
            print(f"  floor: read {floor['read']:.1f} s + write {floor['write']:.1f} s = {floor['floor']:.1f} s "
                  f"→ pipeline / floor = {m['ratio']:.2f}×", flush=True)
            if run["cpu"] is not None:
                print(f"  CPU seconds (all processes): pipeline {run['cpu']:.1f}, floor {floor['cpu']:.1f} "
                      f"→ {run['cpu'] / floor['cpu']:.2f}×", flush=True)
        ratios = sorted(m["ratio"] for m in done)
        middle = sorted(done, key=lambda m: m["ratio"])[(len(done) - 1) // 2]  # of an even number, the lower one
        if len(done) > 1:
            print(f"N={n}: pipeline / floor over {len(done)} measurements: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)} (median {middle['ratio']:.2f}×)", flush=True)
        rows.append((n, middle, ratios))
    print()
    print("| units | wall (s) | units/s | read / compute / write (s) | floor read + write (s) | × floor "
          "| CPU s: pipeline / floor | peak MiB main / worker | unchanged rerun (s) |")
    print("| ---: | ---: | ---: | --- | --- | ---: | --- | --- | ---: |")
    for n, m, ratios in rows:  # the measurement with the median ratio
        run, again, floor = m["run"], m["again"], m["floor"]
        spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f}, n={len(ratios)})" if len(ratios) > 1 else ""
        print(f"| {n} | {run['wall']:.1f} | {run['units'] / run['wall']:.1f} | {run['read']:.1f} / "
              f"{run['compute']:.1f} / {run['write']:.1f} | {floor['read']:.1f} + {floor['write']:.1f} = "
              f"{floor['floor']:.1f} | {m['ratio']:.2f}{spread} | {_cpu_cell(run, floor)} | {run['peak_mb']:.0f} / "
              f"{run['peak_child_mb']:.0f} | {again['wall']:.1f} |")


def _mem_gb() -> str:
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        return f"{kb / 2**20:.0f}"
    except (OSError, StopIteration, ValueError):
        return "?"


def cmd_single(args) -> int:
    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cmd = time_command(args.repeat)
    print(f"one unit, whole command `python -m pipeline run`: median {statistics.median(cmd):.2f} s "
          f"(min {min(cmd):.2f}, max {max(cmd):.2f}, n={args.repeat})")
    stages = time_stages(args.repeat)
    parts = ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in stages.items())
    print(f"one unit in-process (medians): {parts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    import json

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.bench",
        description="性能测量。无子命令时对内置示例单位计时（同 `single`）。",
        epilog="示例：\n  python -m pipeline.bench                        # 内置示例单位计时\n"
               "  python -m pipeline.bench generate --units 100 --out /tmp/units --seed 1\n"
               "  python -m pipeline.bench run --units 100 1000    # 与下限（只读写文件）对比",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    single = sub.add_parser("single", help="内置示例单位计时（取中位数）")
    single.add_argument("--repeat", type=int, default=5, help="重复次数（默认 5）")
    gen = sub.add_parser("generate", help="生成 N 个合成单位的输入（同一种子字节相同）")
    gen.add_argument("--units", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--workers", type=int, default=None)
    run = sub.add_parser("run", help="对 N 个合成单位计时，并与只读写文件的下限对比")
    run.add_argument("--units", type=int, nargs="+", default=[100, 1000])
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--workers", type=int, default=None, help="默认本机 CPU 核数")
    run.add_argument("--repeat", type=int, default=1,
                     help="每个 N 测量几次（默认 1）；多次时逐次列出并取与下限之比的中位数")
    run.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pipeline-bench",
                     help="生成的输入放在这里并复用（默认系统临时目录下 pipeline-bench/）")
    one = sub.add_parser("one")  # internal: one measured run, JSON on stdout
    one.add_argument("--input", type=Path, required=True)
    one.add_argument("--output", type=Path, required=True)
    one.add_argument("--workers", type=int, default=None)
    one.add_argument("--scheduler", default=None)
    floor = sub.add_parser("floor")  # internal: the floor, JSON on stdout
    floor.add_argument("--input", type=Path, required=True)
    floor.add_argument("--produced", type=Path, required=True)
    floor.add_argument("--scratch", type=Path, required=True)
    floor.add_argument("--workers", type=int, default=1)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["single", *argv]  # `python -m pipeline.bench [--repeat N]` as before
    args = parser.parse_args(argv)
    if args.command == "single":
        return cmd_single(args)
    if args.command == "generate":
        n = generate(args.units, args.out, args.seed, args.workers)
        print(f"已生成 {args.units} 个单位、{n} 个文件：{args.out}")
        return 0
    if args.command == "run":
        if args.repeat < 1:
            parser.error("--repeat 须为正整数")
        args.work.mkdir(parents=True, exist_ok=True)
        return cmd_run_scale(args)
    if args.command == "one":
        print(json.dumps(measure_pipeline(args.input, args.output, args.workers, args.scheduler)))
        return 0
    if args.command == "floor":
        print(json.dumps(measure_floor(args.input, args.produced, args.scratch, args.workers)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
