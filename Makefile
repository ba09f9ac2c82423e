# resurrect — development tasks. `make help` lists them.
#
# Variables you may override:  make test PYTHONS=3.12 PYTEST_ARGS="-k reload -x"
#   PYTHONS           Python versions to set up and test   (3.11 3.12 3.13)
#   PYTEST_ARGS       extra arguments for pytest
#   CARGO_TEST_SCOPE  what `cargo test` covers              (--workspace)
#   PYO3_PYTHON       interpreter pyo3 builds against for plain cargo commands

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHONS ?= 3.11 3.12 3.13
VENVS := $(foreach v,$(PYTHONS),.venv/py$(subst .,,$(v)))
LINT_VENV := .venv/py311
PYTEST_ARGS ?=
CARGO_TEST_SCOPE ?= --workspace

# Plain cargo commands (clippy, test) build the PyO3 crate outside maturin, so
# pyo3 needs to be told which interpreter to configure itself from.
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")
ifndef PYO3_PYTHON
PYO3_PYTHON := $(shell { ls -d $(PYENV_ROOT_DIR)/versions/3.11.[0-9]*/bin/python 2>/dev/null | sort -V | tail -n 1; command -v python3.11; } | head -n 1)
endif
export PYO3_PYTHON
# maturin sets this itself; plain cargo must not, or test binaries miss libpython.
unexport PYO3_BUILD_EXTENSION_MODULE
export CARGO_BUILD_JOBS ?= 2
# Without maturin, pyo3 links test binaries against libpython; cargo does not put
# a library directory outside target/ on the loader path, so we do.
PY_LIBDIR := $(if $(PYO3_PYTHON),$(shell $(PYO3_PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")' 2>/dev/null))
CARGO_TEST_ENV := LD_LIBRARY_PATH="$(PY_LIBDIR)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"

RUFF_PATHS := $(wildcard python tests scripts benches examples)

.PHONY: help setup example test lint bench stdlib-suite clean venvs

help: ## list these targets
	@echo "usage: make TARGET   (Pythons: $(PYTHONS))"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | \
		awk 'BEGIN { FS = ":.*## " } { printf "  %-14s %s\n", $$1, $$2 }'

setup: ## create .venv/py3XX for each Python, install tools, build and install the extension
	@PYTHONS="$(PYTHONS)" bash scripts/venvs.sh

venvs: ## create the venvs and install tools only, without building the extension
	@PYTHONS="$(PYTHONS)" bash scripts/venvs.sh --no-build

example: setup ## set up, then run the bundled example (examples/records_job.py)
	@test -f examples/records_job.py || { echo "error: examples/records_job.py is missing" >&2; exit 1; }
	.venv/py311/bin/resurrect run --on-error skip examples/records_job.py

test: setup ## set up, then run cargo test once and pytest under every Python
	@failed=""; \
	echo "==> cargo test $(CARGO_TEST_SCOPE)"; \
	$(CARGO_TEST_ENV) cargo test $(CARGO_TEST_SCOPE) || failed="$$failed cargo-test"; \
	for venv in $(VENVS); do \
		echo "==> pytest: $$($$venv/bin/python --version) ($$venv)"; \
		rc=0; $$venv/bin/python -m pytest -q tests $(PYTEST_ARGS) || rc=$$?; \
		if [ $$rc -eq 5 ]; then \
			echo "error: pytest collected no tests from tests/ under $$venv" >&2; \
		fi; \
		if [ $$rc -ne 0 ]; then failed="$$failed pytest-$${venv##*/}"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "==> FAILED:$$failed" >&2; exit 1; fi; \
	echo "==> all tests passed"

lint: ## cargo fmt --check, cargo clippy -D warnings, ruff check, ruff format --check
	@PYTHONS=3.11 bash scripts/venvs.sh --no-build >/dev/null
	@failed=""; \
	step() { echo "==> $$*"; "$$@" || failed="$$failed [$$*]"; }; \
	step cargo fmt --all -- --check $(if $(CI),--color=never); \
	step cargo clippy --workspace --all-targets -- -D warnings; \
	step $(LINT_VENV)/bin/ruff check $(RUFF_PATHS); \
	step $(LINT_VENV)/bin/ruff format --check $(RUFF_PATHS); \
	if [ -n "$$failed" ]; then echo "==> lint FAILED:$$failed" >&2; exit 1; fi; \
	echo "==> lint clean"

bench: setup ## set up, then run benches/run_all.py under every Python
	@if [ ! -f benches/run_all.py ]; then echo "no benches/run_all.py yet; nothing to run"; exit 0; fi; \
	failed=""; \
	for venv in $(VENVS); do \
		echo "==> bench: $$($$venv/bin/python --version) ($$venv)"; \
		$$venv/bin/python benches/run_all.py || failed="$$failed $${venv##*/}"; \
	done; \
	if [ -n "$$failed" ]; then echo "==> bench FAILED:$$failed" >&2; exit 1; fi

stdlib-suite: setup ## set up, then run scripts/stdlib_suite.py under every Python
	@if [ ! -f scripts/stdlib_suite.py ]; then echo "no scripts/stdlib_suite.py yet; nothing to run"; exit 0; fi; \
	failed=""; \
	for venv in $(VENVS); do \
		echo "==> stdlib-suite: $$($$venv/bin/python --version) ($$venv)"; \
		$$venv/bin/python scripts/stdlib_suite.py || failed="$$failed $${venv##*/}"; \
	done; \
	if [ -n "$$failed" ]; then echo "==> stdlib-suite FAILED:$$failed" >&2; exit 1; fi

clean: ## remove build output, venvs and caches (keeps .resurrect/ checkpoints)
	rm -rf target .venv dist build .pytest_cache .ruff_cache .hypothesis *.egg-info python/*.egg-info
	find python -name '*.so' -delete
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
