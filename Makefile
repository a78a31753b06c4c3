# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; system packages come from apt-get
# when run as root and are skipped when already present.
PYTHON ?= python3
TEST_WORKERS ?= 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := prometheus prometheus-node-exporter prometheus-alertmanager chromium tesseract-ocr procps faketime \
	postgresql
# Tests that build state at a fixed date and then decide through the CLI or HTTP: run again
# with the wall clock 1,000 days ahead, so none of them can pass only on the day it was written.
LATER_DATE_TESTS := tests/remediations/test_api.py tests/remediations/test_safety.py \
	tests/remediations/test_cli.py tests/report/test_api.py tests/report/test_cli.py \
	tests/incidents/test_cli.py tests/detection/test_drift.py tests/notify/test_cli.py \
	tests/rollouts/test_faces.py tests/rollouts/test_report.py

.PHONY: demo test bench venv system-packages clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

system-packages:
	@bash .ci/system-packages $(SYSTEM_PACKAGES)

demo: venv system-packages
	$(BIN)/python -m demo

test: venv system-packages
	@echo "== lint (ruff) and types (mypy): rules and their reasons in pyproject.toml"
	$(BIN)/ruff check .
	$(BIN)/mypy
	@if command -v faketime >/dev/null; then \
	  echo "== the date-sensitive tests, 1,000 days from now"; \
	  faketime -f +1000d $(BIN)/python -m pytest -q -p no:cacheprovider $(LATER_DATE_TESTS); \
	else echo "faketime missing: the later-date run is skipped" >&2; fi
	@echo "== the whole suite, two workers (a file stays on one: the end-to-end stacks are per module)"
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: venv system-packages
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
