# st-prod: `make demo` to see the generated app, `make test` to prove the template.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= build/demo
PORT ?= 8501
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help demo test lint system-deps clean bench bench-quick bench-capacity

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# pip only brings uv, which installs the rest several times faster.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv

$(VENV)/.installed: tests/requirements.txt | $(BIN)/python
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r tests/requirements.txt
	touch $@

demo: $(VENV)/.installed ## Render the defaults into build/demo, install and serve them on http://localhost:$(PORT)
	rm -rf $(DEMO_DIR)
	$(BIN)/cookiecutter . --no-input --output-dir $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR)/streamlit-dashboard install run PORT=$(PORT) UV=$(abspath $(BIN)/uv)

system-deps: ## Install the system packages the tests use (Debian/Ubuntu)
	scripts/install-system-deps.sh

test: system-deps $(VENV)/.installed ## Run the whole template test suite
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

lint: $(VENV)/.installed ## Lint the template's own Python (tests and bench)
	$(BIN)/ruff check tests bench
	$(BIN)/ruff format --check tests bench

.PHONY: lock
lock: $(VENV)/.installed ## Re-lock the generated project (one uv.lock per auth value); UPGRADE=1 takes newest releases
	$(BIN)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

$(VENV)/.bench-installed: bench/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: system-deps $(VENV)/.bench-installed ## Benchmark generated vs naive app (20 sessions x 20), write docs/benchmarks.md
	BENCH_COMMAND="make bench" $(BIN)/python bench/run.py --out docs $(BENCH_ARGS)

bench-quick: system-deps $(VENV)/.bench-installed ## Short benchmark (under 3 minutes), print the table (build/bench/)
	BENCH_COMMAND="make bench-quick" $(BIN)/python bench/run.py --quick $(BENCH_ARGS)

bench-capacity: system-deps $(VENV)/.bench-installed ## Sessions one process holds, both apps (under 10 min), docs/img chart
	$(BIN)/python bench/capacity.py --out docs $(BENCH_ARGS)

clean: ## Remove the virtualenv and rendered demo
	rm -rf $(VENV) build .pytest_cache
