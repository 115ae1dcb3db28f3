"""部门整体支出绩效评价 pipeline: filled Excel templates in, scored evaluation workbooks out."""

__version__ = "0.1.0"
