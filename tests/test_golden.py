"""Deterministic output: the shipped example gives byte-identical files on every run, equal to the committed golden
files in tests/golden/. The .xlsx and .docx packages are compared part by part (names in order, entry times and
contents), so a failure names the XML part that changed; the compressed bytes are not compared: ISA-L, which
compresses them, may choose other matches on another CPU.

A deliberate change of the output is committed by regenerating the golden files: `make golden` (which runs this
file as a script), then reviewing `git diff --stat tests/golden`.

The run time printed in the 说明 sheet comes from SOURCE_DATE_EPOCH; the example is copied under a fixed layout
(`input/`, `out/`) so that the relative links from the 数据问题 sheet to the input files are the same everywhere.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

if __name__ == "__main__":  # `make golden`: run as a script from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.cli import EXAMPLE_INPUT, main  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
EPOCH = "1700000000"  # 2023-11-14 22:13:20 UTC


def produce(work: Path) -> Path:
    """Score a copy of the example under `work` with the fixed run time; returns the output folder."""
    shutil.copytree(EXAMPLE_INPUT, work / "input")
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    try:
        code = main(["run", "--input", str(work / "input"), "--output", str(work / "out")])
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old
    assert code == 0, "the example must score without errors"
    return work / "out"


# The incremental run's own bookkeeping (manifest with the program's code digest, staged-file cache) is no output.
BOOKKEEPING = (".cache", ".pipeline-state.sqlite")


def files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in BOOKKEEPING}


def part_differences(expected: Path, actual: Path) -> list[str]:
    """Differences between two files; for .xlsx and .docx one entry per differing zip part, with the first changed
    lines."""
    if expected.read_bytes() == actual.read_bytes():
        return []
    if expected.suffix not in (".xlsx", ".docx"):
        return [f"{expected.name} differs"]
    out = []
    with zipfile.ZipFile(expected) as ze, zipfile.ZipFile(actual) as za:
        names_e, names_a = ze.namelist(), za.namelist()
        if names_e != names_a:
            out.append(f"{expected.name}: parts differ: missing {sorted(set(names_e) - set(names_a))}, "
                       f"extra {sorted(set(names_a) - set(names_e))}, or in another order")
        for name in [n for n in names_e if n in names_a]:
            a, b = ze.read(name), za.read(name)
            if ze.getinfo(name).date_time != za.getinfo(name).date_time:
                out.append(f"{expected.name}!{name}: another entry time")
            if a != b:
                lines_a = a.decode("utf-8", "replace").replace("><", ">\n<").splitlines()
                lines_b = b.decode("utf-8", "replace").replace("><", ">\n<").splitlines()
                diff = list(difflib.unified_diff(lines_a, lines_b, "golden", "now", n=0, lineterm=""))[2:8]
                out.append(f"{expected.name}!{name} differs:\n    " + "\n    ".join(diff))
    return out


def test_two_runs_are_byte_identical(tmp_path):
    first, second = produce(tmp_path / "1"), produce(tmp_path / "2")
    a, b = files(first), files(second)
    assert list(a) == list(b)
    assert [name for name in a if a[name].read_bytes() != b[name].read_bytes()] == []


def test_example_output_equals_golden_files(tmp_path):
    assert GOLDEN.is_dir(), "tests/golden is missing: run `make golden`"
    expected, actual = files(GOLDEN), files(produce(tmp_path))
    assert list(actual) == list(expected), "the output files changed; if on purpose, run `make golden`"
    problems = [d for name in expected for d in part_differences(expected[name], actual[name])]
    assert not problems, "output differs from tests/golden (if on purpose, run `make golden`):\n" + \
        "\n".join(problems)


def regenerate() -> None:
    """Replace tests/golden with the current output of the example."""
    with tempfile.TemporaryDirectory() as tmp:
        out = produce(Path(tmp))
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN, ignore=lambda folder, names: [n for n in names if n in BOOKKEEPING])
    for name in files(GOLDEN):
        print(f"golden: tests/golden/{name}")


if __name__ == "__main__":
    regenerate()
