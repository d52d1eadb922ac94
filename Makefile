# The one entry point: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := _build
HTML   := $(BUILD)/html

# Build options (see `make help`).
RECIPE ?=
SHARD  ?=
JOBS   ?= 1
STRICT ?= 0

# torch.compile's caches live in one project folder shared by builds and tests.
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/torch/inductor
export TRITON_CACHE_DIR        := $(CURDIR)/.cache/torch/triton
export MPLBACKEND              := Agg
export PYTHONDONTWRITEBYTECODE := 1

SHARDS_DIR ?= $(BUILD)/shards
SPHINXOPTS ?=
SPHINX_FLAGS := -b html -W --keep-going -c . \
	-D recipes_select="$(RECIPE)" -D recipes_shard="$(SHARD)" \
	-D recipes_jobs=$(JOBS) -D recipes_strict=$(STRICT) $(SPHINXOPTS)
SPHINX := $(PY) -m sphinx $(SPHINX_FLAGS)

# `make serve` and `make new`
PORT    ?= 8000
NAME    ?=
SECTION ?=

BUILD_STAMP := $(VENV)/.stamp-build
TEST_STAMP  := $(VENV)/.stamp-test

.PHONY: help html html-noplot merge serve new test bench clean venv

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  options: RECIPE=<name or glob>  JOBS=<n>  SHARD=<i/N>  STRICT=1"
	@echo "           serve: PORT=<n>   new: NAME=<name> SECTION=<section>"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(BUILD_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

$(TEST_STAMP): requirements.txt requirements-test.txt | $(BUILD_STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-test.txt
	@# The browser tests drive Debian's Chromium (never a downloaded browser).
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "note: install Debian's chromium for tests/test_browser.py"
	@touch $@

venv: $(BUILD_STAMP) ## Create .venv and install the pinned build requirements

html: $(BUILD_STAMP) ## Build the site into _build/html, executing stale recipes
	$(SPHINX) docs $(HTML)

html-noplot: $(BUILD_STAMP) ## Build the site without executing any recipe
	$(SPHINX) -D plot_gallery=0 docs $(HTML)

merge: $(BUILD_STAMP) ## Combine shard outputs under _build/shards/*/ (SHARDS_DIR) into one site, executing nothing
	PYTHONPATH=docs/_ext $(PY) -m recipes_site.merge $(SHARDS_DIR) docs/recipes
	$(SPHINX) -D plot_gallery=0 -D recipes_require_all=1 docs $(HTML)

serve: $(TEST_STAMP) ## Serve the site on 127.0.0.1 (PORT=8000), rebuild on save; only edited recipes run
	$(PY) -m sphinx_autobuild $(SPHINX_FLAGS) --host 127.0.0.1 --port $(PORT) \
		--watch recipes --watch docs/_ext \
		--ignore docs/recipes --ignore docs/sg_execution_times.rst \
		docs $(HTML)

new: ## Start a recipe from the template: make new NAME=<name> SECTION=<section>
	@test -n "$(NAME)" || { echo "usage: make new NAME=<name> [SECTION=<section>]" >&2; exit 2; }
	PYTHONPATH=docs/_ext $(PY) -m recipes_site.newrecipe --root recipes "$(NAME)" "$(SECTION)"

test: $(TEST_STAMP) lint ## Lint, build the site, then run every test (recipes, machinery, site)
	$(MAKE) html
	$(PY) -m pytest

include .github/lint.mk

bench: $(TEST_STAMP) ## Measure build speed: cold, no-op, one edit, JOBS=2, isolation, shards
	$(PY) tests/bench.py

clean: ## Remove the built site, generated pages and caches (keeps .venv)
	rm -rf $(BUILD) docs/recipes docs/sg_execution_times.rst .cache .pytest_cache
