# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; system packages come from apt-get
# when run as root and are skipped when already present.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := prometheus prometheus-node-exporter chromium tesseract-ocr procps

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
	$(BIN)/python -m agent.demo

test: venv system-packages
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: venv system-packages
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) build *.egg-info
