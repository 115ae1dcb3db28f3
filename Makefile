# The README's commands. A fresh clone needs only python3 (≥ 3.11) and make.
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)

INPUT ?=
OUTPUT ?= output
RULES ?=
YEAR ?=
ASOF ?=
FROM ?=
WORKERS ?=
SCHEDULER ?=
UNITS ?= 100 1000

RUN_ARGS := $(if $(INPUT),--input $(INPUT)) --output $(OUTPUT) $(if $(RULES),--rules $(RULES)) \
            $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(ASOF),--as-of $(ASOF))

.PHONY: all run check test templates generated bench clean

all: run

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## 评分：input/ 中有文件时评 input/，否则评内置示例；make run ASOF=2023-06 为绩效运行监控
run: $(STAMP)
	$(PYTHON) -m pipeline run $(RUN_ARGS)

## 只检查数据，不出结果
check: $(STAMP)
	$(PYTHON) -m pipeline check $(if $(INPUT),--input $(INPUT))

## 运行全部测试
test: $(STAMP)
	$(PYTHON) -m pytest -q

## 生成空白模板：make templates YEAR=2024
templates: $(STAMP)
	@test -n "$(YEAR)" || (echo "请指定年度，例如：make templates YEAR=2024" && exit 2)
	$(PYTHON) -m pipeline templates --year $(YEAR) $(if $(FROM),--from $(FROM))

## Developers: regenerate the committed templates, frameworks, the shipped example and the report skeleton
generated: $(STAMP)
	$(PYTHON) -m pipeline.report
	$(PYTHON) -m pipeline templates --year 2023
	$(PYTHON) -m pipeline templates --year 2024
	$(PYTHON) -m pipeline.example

## Developers: regenerate tests/golden (the example's expected output) on purpose, then review git diff tests/golden
golden: $(STAMP)
	$(PYTHON) tests/test_golden.py

clean:
	rm -rf output/*/ output/.cache output/.pipeline-state.sqlite output/.pipeline-state.json .pytest_cache

## Developers: time one unit, then N generated units beside the floor (figures go into the README): make bench UNITS="100 1000" REPEAT=3
bench: $(STAMP)
	$(PYTHON) -m pipeline.bench
	$(PYTHON) -m pipeline.bench run --units $(UNITS) $(if $(WORKERS),--workers $(WORKERS)) $(if $(REPEAT),--repeat $(REPEAT))
