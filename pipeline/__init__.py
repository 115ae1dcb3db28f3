"""部门整体支出绩效评价 pipeline: filled Excel templates in, scored evaluation workbooks out."""

import os

__version__ = "0.1.0"

# The program does no linear algebra, and a run uses every core with its own processes: numpy's OpenBLAS thread
# pool only costs (its thread spins ≈ 60–100 ms of CPU right after numpy's import, ≈ 50 ms of a one-unit run's wall
# time here). Set before numpy is first imported; a process that imported numpy already keeps its own setting.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
