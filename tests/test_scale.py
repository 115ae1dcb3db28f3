"""Many units: the workload generator, incremental reruns, parallel and Dask runs equal to the single-process run,
progress and the end-of-run summary. No timing assertions: speed is measured by `python -m pipeline.bench run`."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import python_calamine

from pipeline import incremental, parallel, summary
from pipeline import run as run_module
from pipeline.bench import deal, generate, synthetic_unit
from pipeline.cli import EXAMPLE_INPUT, main
from pipeline.framework import default_framework_path, load_framework
from pipeline.issues import issues_frame
from pipeline.manifest import LEGACY_STATE_FILE, STATE_FILE, read_state
from pipeline.run import _NoBar, batch_sizes, check_input, evaluate, progress_bar, run_streaming, write_outputs
from pipeline.templates import write_workbook

REPO = Path(__file__).resolve().parent.parent

SEED = 7
UNITS = 4  # unit 3 carries a data error (an amount typed as 12.5左右)


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


@pytest.fixture(scope="module")
def units_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    generate(UNITS, d, SEED, workers=1)
    return d


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every output: an atomic rewrite changes both."""
    return {k: (os.stat(root / k).st_ino, os.stat(root / k).st_mtime_ns) for k in tree(root)}


def values(path: Path) -> dict[str, list]:
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}


def run(inp: Path, out: Path, *extra: str) -> int:
    return main(["run", "--input", str(inp), "--output", str(out), *extra])


def assert_same_results(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        if name.endswith(".csv"):
            assert ta[name] == tb[name], name
        elif name.endswith(".xlsx"):
            assert values(a / name) == values(b / name), name


# --- generator -------------------------------------------------------------------------------------------------


def test_generator_is_deterministic(tmp_path):
    generate(3, tmp_path / "a", SEED, workers=1)
    generate(3, tmp_path / "b", SEED, workers=2)
    generate(3, tmp_path / "c", SEED + 1, workers=1)
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert a != c
    assert 9 <= len(a) <= 15  # 3–5 files per unit


def test_generated_units_are_realistic(units_dir, tmp_path):
    code = run(units_dir, tmp_path / "out", "--workers", "1")
    assert code == 1  # unit 3's amount typed as “…左右” is an 错误; every other unit is still written
    books = sorted((tmp_path / "out" / "2023").glob("*_绩效评价.xlsx"))
    assert len(books) == UNITS
    work = [r for r in values(books[0])["工作统计汇总"] if any(v != "" for v in r)]
    assert len(work) > 80  # ~100 统计项 per unit


# --- incremental -----------------------------------------------------------------------------------------------


def _change_budget(units: Path, index: int) -> str:
    """Rewrite unit `index`'s 预算执行表 with a lower 实际支出数; returns the unit's code."""
    code, year, files = synthetic_unit(index, SEED)
    rel, spec, y, data = files[0]
    assert spec.type == "预算执行表"
    data["预算执行"][0]["实际支出数"] = round(data["预算执行"][0]["全年预算数"] * 0.5, 2)
    write_workbook(spec, units / rel, y, data, {"数据来源": "changed"})
    return code


def test_incremental_rerun(units_dir, tmp_path):
    inp = tmp_path / "in"
    for name, data in tree(units_dir).items():
        (inp / name).parent.mkdir(parents=True, exist_ok=True)
        (inp / name).write_bytes(data)
    out = tmp_path / "out"
    run(inp, out, "--workers", "1")
    assert (out / STATE_FILE).is_file() and (out / "2023" / "汇总.xlsx").is_file()
    first = stamps(out)

    # unchanged rerun: nothing written but the manifest
    run(inp, out, "--workers", "1")
    assert stamps(out) == first

    # one unit's file changed: only its workbook, and the year's CSV and 汇总, are rewritten
    changed = _change_budget(inp, 1)
    run(inp, out, "--workers", "1")
    second = stamps(out)
    redone = {k for k in first if first[k] != second.get(k)}
    assert f"2023/{changed}_" in " ".join(redone)  # its workbook (and any other file of that unit)
    assert {k for k in redone if changed not in k} == {"2023/评分明细.csv", "2023/汇总.xlsx"}
    assert f"{changed},2023" in (out / "2023" / "评分明细.csv").read_text(encoding="utf-8-sig")

    # a unit's files deleted: its workbook is removed, the others stay as they were
    code0, _, files0 = synthetic_unit(0, SEED)
    for rel, *_ in files0:
        (inp / rel).unlink()
    run(inp, out, "--workers", "1")
    third = stamps(out)
    gone = {k for k in second if k not in third}
    assert gone == {k for k in second if k.startswith(f"2023/{code0}_")} and gone
    assert {k for k in third if third[k] != second[k]} == {"2023/评分明细.csv", "2023/汇总.xlsx"}
    assert code0 not in (out / "2023" / "评分明细.csv").read_text(encoding="utf-8-sig")

    # --force renders everything again, with the same bytes
    before = tree(out)
    run(inp, out, "--workers", "1", "--force")
    forced = stamps(out)
    assert all(forced[k] != third[k] for k in third)
    assert tree(out) == before


def test_a_hand_edited_output_is_redone(units_dir, tmp_path):
    out = tmp_path / "out"
    run(units_dir, out, "--workers", "1")
    book = next((out / "2023").glob("*_绩效评价.xlsx"))
    original = book.read_bytes()
    book.write_bytes(b"not a workbook")
    run(units_dir, out, "--workers", "1")
    assert book.read_bytes() == original


def test_an_edited_report_template_rewrites_the_reports(units_dir, tmp_path, monkeypatch):
    """The README says: edit the report's wording, run again, and the reports follow it. The template is part of
    what a unit's outputs depend on: after an edit every unit's report is written again with the new wording (and
    its workbook, with the same bytes); a run after that writes nothing."""
    from pipeline import report

    template = tmp_path / "报告.md.j2"
    template.write_bytes(report.REPORT_TEMPLATE.read_bytes())
    monkeypatch.setattr(report, "REPORT_TEMPLATE", template)
    out = tmp_path / "out"
    run(units_dir, out, "--workers", "1")
    books = {k: v for k, v in tree(out).items() if k.endswith("_绩效评价.xlsx")}
    first = stamps(out)
    template.write_text(template.read_text(encoding="utf-8") + "\n本段为新增的统一说明。\n", encoding="utf-8")
    run(units_dir, out, "--workers", "1")
    second = stamps(out)
    reports = sorted(k for k in first if k.endswith(report.REPORT_SUFFIX))
    assert len(reports) == UNITS and all(first[k] != second[k] for k in reports)
    assert all("本段为新增的统一说明。" in docx_text(out / k) for k in reports)
    assert {k: v for k, v in tree(out).items() if k.endswith("_绩效评价.xlsx")} == books
    run(units_dir, out, "--workers", "1")
    assert stamps(out) == second


def docx_text(path: Path) -> str:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read("word/document.xml").decode("utf-8")


def test_a_damaged_manifest_means_everything_is_written_again(units_dir, tmp_path):
    """A manifest cut short (disk full, copied half-way) is no reason to stop: the run renders every unit again,
    with the same bytes, and writes a good manifest."""
    out = tmp_path / "out"
    run(units_dir, out, "--workers", "1")
    before, state = tree(out), read_state(out)
    first = stamps(out)
    path = out / STATE_FILE
    path.write_bytes(path.read_bytes()[:1000])
    assert read_state(out) == {}
    run(units_dir, out, "--workers", "1")
    again = stamps(out)
    assert all(again[k] != first[k] for k in first)  # every output written again
    assert tree(out) == before and read_state(out) == state


def test_the_manifest_of_an_earlier_version_still_removes_stale_outputs(units_dir, tmp_path):
    """Versions before 2026-11-27 wrote the manifest as one JSON document (format 1). The first run of this version
    reads it: a unit gone from the input still has its outputs removed, units unchanged are not rendered again;
    then the JSON is replaced by the SQLite manifest."""
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(units_dir, inp)
    run(inp, out, "--workers", "1")
    state = read_state(out)
    (out / STATE_FILE).unlink()
    (out / LEGACY_STATE_FILE).write_text(json.dumps({**state, "format": 1}, ensure_ascii=False), encoding="utf-8")
    before = stamps(out)
    code0, _, files0 = synthetic_unit(0, SEED)
    for rel, *_ in files0:
        (inp / rel).unlink()
    run(inp, out, "--workers", "1")
    after = stamps(out)
    assert {k for k in before if k not in after} == {k for k in before if k.startswith(f"2023/{code0}_")}
    assert {k for k in after if after[k] != before[k]} == {"2023/评分明细.csv", "2023/汇总.xlsx"}
    assert not (out / LEGACY_STATE_FILE).exists()
    assert read_state(out)["units"] == {uid: e for uid, e in state["units"].items() if uid != f"2023/{code0}"}


def test_outputs_not_written_by_the_pipeline_are_kept(units_dir, tmp_path):
    out = tmp_path / "out"
    (out / "2023").mkdir(parents=True)
    mine = out / "2023" / "我的笔记.xlsx"
    mine.write_bytes(b"x")
    run(units_dir, out, "--workers", "1")
    assert len(list((out / "2023").glob("*_绩效评价.xlsx"))) > 1
    # The next input holds another 2023 unit only: the generated 2023 units are gone from it, so their outputs go;
    # the file we did not write stays.
    run(EXAMPLE_INPUT, out, "--workers", "1")
    assert mine.read_bytes() == b"x"
    assert [p.name for p in (out / "2023").glob("*_绩效评价.xlsx")] == ["430399001_湘潭市市场监督管理局高新分局_绩效评价.xlsx"]


def test_an_empty_input_removes_nothing(units_dir, tmp_path):
    out = tmp_path / "out"
    run(units_dir, out, "--workers", "1")
    before = tree(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    run(empty, out, "--workers", "1")
    assert tree(out) == before  # years absent from the input keep their results


# --- parallel and distributed equal single-process ---------------------------------------------------------------


@pytest.fixture
def always_parallel(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 0)  # a handful of units would otherwise run in-process


def test_a_few_batches_still_go_to_the_workers(units_dir, tmp_path, monkeypatch):
    """Files: fewer than MIN_PARALLEL tasks run in-process; batches of units are heavy, so two already go to the
    workers (else a 50-unit run, 4 batches, would run serially in the main process)."""
    sent = []

    class Recording(parallel.Executor):
        workers = 2

        def imap(self, fn, items, *args, inline_below=None):
            sent.append((fn.__name__, inline_below))
            yield from super().imap(fn, items, *args)

    fw, _ = load_framework(default_framework_path())
    run_streaming(units_dir, fw, tmp_path / "out", executor=Recording())
    assert ("run_batch", 2) in sent and ("stage_files", None) in sent
    pool = parallel.make_executor(2)
    try:
        assert pool.workers == 2
        ran_in = [pid for _, pid in pool.imap(_pid, [0, 1], inline_below=2)]
        assert os.getpid() not in ran_in
        ran_in = [pid for _, pid in pool.imap(_pid, [0, 1])]  # below MIN_PARALLEL: here
        assert ran_in == [os.getpid()] * 2
    finally:
        pool.close()


def _pid(_):
    return os.getpid()


def test_two_workers_equal_one(units_dir, tmp_path, always_parallel):
    run(units_dir, tmp_path / "one", "--workers", "1")
    run(units_dir, tmp_path / "two", "--workers", "2")
    assert_same_results(tmp_path / "one", tmp_path / "two")


@pytest.fixture(scope="module")
def two_years_dir(tmp_path_factory):
    """Ten generated units, the tenth of 财年 2024."""
    d = tmp_path_factory.mktemp("two-years")
    generate(10, d, SEED, workers=1)
    return d


def test_the_workers_write_the_years_summaries_at_once_with_the_same_bytes(two_years_dir, tmp_path, always_parallel,
                                                                            monkeypatch):
    """With two workers each year's 汇总.xlsx is written by a worker from a snapshot of the unit store (taken once,
    gone with the run's spool), with the bytes one process writes."""
    from pipeline.unitstore import UnitStore

    snapshots = []
    taken = UnitStore.snapshot
    monkeypatch.setattr(UnitStore, "snapshot", lambda self, path: snapshots.append(path) or taken(self, path))
    run(two_years_dir, tmp_path / "one", "--workers", "1")
    assert snapshots == []
    run(two_years_dir, tmp_path / "two", "--workers", "2")
    assert len(snapshots) == 1 and not Path(snapshots[0]).exists()
    for year in ("2023", "2024"):
        one, two = (tmp_path / name / year / "汇总.xlsx" for name in ("one", "two"))
        assert one.read_bytes() == two.read_bytes(), year
    assert_same_results(tmp_path / "one", tmp_path / "two")


def test_dask_cluster_equals_single_process(two_years_dir, tmp_path, always_parallel):
    """Two fiscal years, so that the cluster's workers also write the years' 汇总 (from the store's snapshot and
    the issue spool in the output folder, which they reach as a shared file system)."""
    distributed = pytest.importorskip("distributed")
    run(two_years_dir, tmp_path / "one", "--workers", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert run(two_years_dir, tmp_path / "dask", "--scheduler", cluster.scheduler_address) == 1
    assert_same_results(tmp_path / "one", tmp_path / "dask")
    for year in ("2023", "2024"):
        one, dask = (tmp_path / name / year / "汇总.xlsx" for name in ("one", "dask"))
        assert one.read_bytes() == dask.read_bytes(), year


def test_unreachable_scheduler_is_a_usage_error(units_dir, tmp_path, capsys):
    dask = pytest.importorskip("dask")
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = run(units_dir, tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9", "--quiet")
    assert code == 2
    assert "无法连接 Dask 调度器" in capsys.readouterr().err


# --- progress and summary ----------------------------------------------------------------------------------------


def test_progress_bar_and_summary(units_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    run(units_dir, tmp_path / "out", "--workers", "1")
    said = capsys.readouterr()
    assert "读取" in said.err and "文件/s" in said.err or "s/文件" in said.err
    assert "评价" in said.err and ("单位/s" in said.err or "s/单位" in said.err)
    assert f"评价单位 {UNITS} 个（2023 年 {UNITS} 个），其中数据有错误的 1 个。" in said.out
    assert "等级分布：" in said.out
    assert re.search(r"输出文件：写入 \d+ 个，未变 0 个，删除 0 个。", said.out)

    run(units_dir, tmp_path / "out", "--workers", "1", "--quiet")
    said = capsys.readouterr()
    assert "单位/s" not in said.err and "s/单位" not in said.err
    assert re.search(r"输出文件：写入 0 个，未变 [1-9]\d* 个，删除 0 个。", said.out)
    assert isinstance(progress_bar(5, "评价", "单位", False), _NoBar)
    assert isinstance(progress_bar(0, "评价", "单位", True), _NoBar)


def test_a_run_without_a_bar_does_not_import_tqdm(units_dir, tmp_path):
    """Importing tqdm costs ≈ 15 ms at the start of a run, before any worker has a task: only for a bar shown."""
    code = ("import sys; from pipeline.cli import main; "
            f"main(['run', '--input', {str(units_dir)!r}, '--output', {str(tmp_path / 'out')!r}, '--workers', '1', "
            "'--quiet']); print('tqdm imported:', 'tqdm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert "tqdm imported: False" in done.stdout


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
def test_numpy_starts_no_blas_threads_under_the_program():
    """The program does no linear algebra: importing it (before numpy) makes OpenBLAS single-threaded, whose pool
    would otherwise spin beside the run; a setting already made by the caller is kept."""
    code = ("import os, pipeline, numpy, pipeline.cli; "
            "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert ours.stdout.split() == ["1", "1"]  # the setting, and one thread: the interpreter's own
    theirs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={**env, "OPENBLAS_NUM_THREADS": "2"}, check=True)
    assert theirs.stdout.split()[0] == "2"


# --- streaming in batches of units -----------------------------------------------------------------------------


def test_batches_split_consecutive_codes():
    assert batch_sizes(10, workers=1, size=4) == [4, 4, 2]
    assert batch_sizes(0, workers=2) == []
    # up to two rounds of full batches (2 workers × 2 × 50 = 200 units): equal batches, two per worker, or one per
    # worker when two would hold fewer than 10 units each
    assert batch_sizes(100, workers=2) == [25, 25, 25, 25]
    assert batch_sizes(200, workers=2) == [50, 50, 50, 50]
    assert batch_sizes(41, workers=2) == [11, 10, 10, 10]  # 41 = 4 × 10 + 1
    assert batch_sizes(40, workers=2) == [10, 10, 10, 10]
    assert batch_sizes(39, workers=2) == [20, 19]  # four batches would hold fewer than 10 units
    assert batch_sizes(10, workers=2) == [5, 5]
    assert batch_sizes(1, workers=4) == [1]
    assert batch_sizes(7, workers=8) == [1] * 7
    assert batch_sizes(100, workers=1) == [50, 50]
    # beyond that guided: ⌈remaining ÷ (2 × workers)⌉ units, at most 50 and at least 10; a remainder below the least
    # size joins the batch before it
    # 1,000 units, 2 workers: 50 while ⌈remaining ÷ 4⌉ ≥ 50 (remaining 1000, 950, …, 200: 17 batches), then
    # ⌈150/4⌉ = 38, ⌈112/4⌉ = 28, ⌈84/4⌉ = 21, ⌈63/4⌉ = 16, ⌈47/4⌉ = 12, 10 (35 left), 10 (25 left), 15 (5 would remain)
    assert batch_sizes(1000, workers=2) == [50] * 17 + [38, 28, 21, 16, 12, 10, 10, 15]
    # 201 units: ⌈201/4⌉ = 51 → 50, ⌈151/4⌉ = 38, ⌈113/4⌉ = 29, ⌈84/4⌉ = 21, ⌈63/4⌉ = 16, ⌈47/4⌉ = 12, 10, 10, then 15
    assert batch_sizes(201, workers=2) == [50, 38, 29, 21, 16, 12, 10, 10, 15]
    # every unit once
    assert sum(batch_sizes(12_345, workers=3)) == 12_345
    assert sum(batch_sizes(12_345, workers=3, size=7)) == 12_345


def test_one_unit_per_batch_equals_one_batch(units_dir, tmp_path):
    """Streaming (a worker evaluates a few units at a time) gives byte-identical outputs to evaluating every unit
    at once in memory: no stage may depend on which other units share its batch."""
    fw, _ = load_framework(default_framework_path())
    streamed = run_streaming(units_dir, fw, tmp_path / "streamed", batch_size=1)
    ev = evaluate(units_dir, fw)
    write_outputs(ev, fw, tmp_path / "memory")
    a, b = tree(tmp_path / "streamed"), tree(tmp_path / "memory")
    assert sorted(a) == sorted(b) and len(a) == 2 + 2 * UNITS  # CSV and 汇总; per unit a workbook and a report
    assert a == b
    sidecars = lambda root: {p.name: p.read_bytes() for p in (root / "2023" / ".data").glob("*.json")}  # noqa: E731
    assert len(sidecars(tmp_path / "streamed")) == UNITS
    assert sidecars(tmp_path / "streamed") == sidecars(tmp_path / "memory")
    assert issues_frame(streamed.issues).equals(issues_frame(ev.issues))  # as users see them: errors first, by unit
    assert streamed.store.frame().equals(ev.store.frame())  # each unit's 汇总 figures, in the same order
    years = sorted(set(ev.losses["财年"]))
    assert years
    for year in years:  # one batch per unit adds up to the points lost of all units at once
        assert summary.lost_points(streamed.losses[streamed.losses["财年"] == year]).equals(
            summary.lost_points(ev.losses[ev.losses["财年"] == year]))


DEFECTS = Path(__file__).resolve().parent / "fixtures" / "defects"


def _streamed_equals_in_memory(inp: Path, tmp_path: Path, **options) -> None:
    fw, _ = load_framework(default_framework_path())
    streamed = run_streaming(inp, fw, tmp_path / "streamed", **options)
    ev = evaluate(inp, fw)
    write_outputs(ev, fw, tmp_path / "memory")
    assert tree(tmp_path / "streamed") == tree(tmp_path / "memory")
    assert issues_frame(streamed.issues).equals(issues_frame(ev.issues))
    assert not (tmp_path / "streamed" / ".cache" / "parts").exists()  # the CSV parts are cleaned up


def test_broken_files_stream_like_in_memory(tmp_path):
    """Unreadable files, files of no unit (no 单位编码), a 评分标准 dropped among the inputs, duplicates: the file
    map hands them to the first batch, which reports them exactly as the in-memory evaluation does."""
    _streamed_equals_in_memory(DEFECTS, tmp_path, batch_size=2)


def test_an_unwritable_cache_sends_staged_files_inline(units_dir, tmp_path, monkeypatch):
    """When the staged-file cache cannot be written (a full disk, a read-only folder), staged files travel with the
    batch instead: same outputs."""
    monkeypatch.setattr(incremental, "pack_put", lambda *a: False)
    _streamed_equals_in_memory(units_dir, tmp_path, batch_size=3)


def test_check_streams_and_writes_nothing(tmp_path):
    """`check` evaluates in batches like `run` (bounded memory) and finds the same issues as the in-memory
    evaluation, writing nothing."""
    fw, _ = load_framework(default_framework_path())
    checked = check_input(DEFECTS, fw)
    assert issues_frame(checked.issues).equals(issues_frame(evaluate(DEFECTS, fw).issues))
    assert checked.has_errors and checked.outputs == {"written": [], "unchanged": [], "removed": []}
    assert checked.store.frame()["总分"].notna().any()  # the units that could be scored were scored


def test_a_cache_entry_gone_before_its_batch_is_staged_again(units_dir, tmp_path, monkeypatch):
    """Another run on the same output folder may prune the staged-file cache between the two maps: the batch stages
    those files again from the input instead of failing."""
    import shutil

    real = run_module.run_batch

    def after_a_prune(job):
        shutil.rmtree(Path(job.cache_dir) / "staged", ignore_errors=True)
        return real(job)

    monkeypatch.setattr(run_module, "run_batch", after_a_prune)
    _streamed_equals_in_memory(units_dir, tmp_path, batch_size=2)


def test_the_floor_deals_each_kind_of_file_evenly():
    # In a year folder a unit's workbook and report alternate; a share by position would give one worker all the
    # workbooks (the costly kind) and the other all the reports.
    outputs = ["2023/a.docx", "2023/a.xlsx", "2023/b.docx", "2023/b.xlsx", "2023/c.docx", "2023/c.xlsx",
               "2023/.data/a.json"]
    shares = deal(outputs, 2)
    assert sorted(p for s in shares for p in s) == sorted(outputs)
    assert [sum(p.endswith(".xlsx") for p in s) for s in shares] in ([2, 1], [1, 2])
    assert [sum(p.endswith(".docx") for p in s) for s in shares] in ([2, 1], [1, 2])
    assert deal(outputs, 1) == [sorted(outputs, key=lambda p: (Path(p).suffix, p))]


class _LastFirst(parallel.Executor):
    """In-process, but hands the results back in reverse order: as a pool does when a later task finishes first."""

    def imap(self, fn, items, *args, **options):
        yield from reversed(list(super().imap(fn, items, *args, **options)))


@pytest.mark.parametrize("inputs", ["units", "defects"])
def test_the_order_tasks_finish_in_changes_nothing(inputs, units_dir, tmp_path, monkeypatch):
    """The file map's results come back as its tasks complete; a unit whose files fall in two tasks (and the files
    of no unit) must still be assembled in input order, or its issues come in another order and an unchanged rerun
    renders it again (its hash changed). One file per task, the last task first, gives the same outputs, manifest
    and issues."""
    inp = units_dir if inputs == "units" else DEFECTS
    monkeypatch.setattr(run_module, "FILES_PER_TASK", 1)
    fw, _ = load_framework(default_framework_path())
    in_order = run_streaming(inp, fw, tmp_path / "in_order", batch_size=2)
    last_first = run_streaming(inp, fw, tmp_path / "last_first", executor=_LastFirst(), batch_size=2)
    assert tree(tmp_path / "last_first") == tree(tmp_path / "in_order")
    state = lambda name: read_state(tmp_path / name)  # noqa: E731
    assert state("last_first") == state("in_order")
    assert issues_frame(last_first.issues).equals(issues_frame(in_order.issues))
    assert list(last_first.issues) == list(in_order.issues)  # in spool order, before issues_frame sorts them
