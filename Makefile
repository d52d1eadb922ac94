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
# The distributed build: `make plan SHARDS=N`, `make shard SHARD=i/N`, `make merge`.
SHARDS ?= 1
DEVICE ?=
PLAN   ?=
# `make test`: pytest workers (one per core, at most 4; 1 runs the tests in order).
TEST_WORKERS ?= auto
PLAN_FILE  := $(BUILD)/plan/plan.json
SHARDS_DIR ?= $(BUILD)/shards
STORE      := .cache/recipes/store

# torch.compile's caches live in one project folder shared by builds and tests.
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/torch/inductor
export TRITON_CACHE_DIR        := $(CURDIR)/.cache/torch/triton
export MPLBACKEND              := Agg
export PYTHONDONTWRITEBYTECODE := 1

SPHINXOPTS ?=
OPTIONS = -W --keep-going -c . \
	-D recipes_select="$(RECIPE)" -D recipes_shard="$(SHARD)" -D recipes_plan="$(PLAN)" \
	-D recipes_device="$(DEVICE)" -D recipes_jobs=$(JOBS) -D recipes_strict=$(STRICT) $(SPHINXOPTS)
SPHINX_FLAGS = -b html $(OPTIONS)
SPHINX = $(PY) -m sphinx $(SPHINX_FLAGS)
PIPELINE := PYTHONPATH=docs/_ext $(PY) -m recipes_site.pipeline --store $(STORE)

# `make serve` and `make new`
PORT    ?= 8000
NAME    ?=
SECTION ?=

BUILD_STAMP := $(VENV)/.stamp-build
TEST_STAMP  := $(VENV)/.stamp-test
SERVE_STAMP := $(VENV)/.stamp-serve

.PHONY: help html html-noplot plan shard merge store-id serve new test test-fast bench clean venv check-gpu

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  options: RECIPE=<name or glob>  JOBS=<n>  SHARD=<i/N>  STRICT=1  DEVICE=cpu|cuda"
	@echo "           plan: SHARDS=<N>   html: PLAN=<plan.json>"
	@echo "           serve: PORT=<n>   new: NAME=<name> SECTION=<section>   check-gpu: WHEELS=<dir>"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(BUILD_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

# The tests start `make serve` too, so they install what it needs.
$(TEST_STAMP): requirements.txt requirements-test.txt requirements-serve.txt | $(BUILD_STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-test.txt \
		-r requirements-serve.txt
	@# A browser for tests/test_browser.py: RECIPES_CHROMIUM, one found here, or one installed.
	$(PY) tests/browsers.py --install
	@touch $@

$(SERVE_STAMP): requirements-serve.txt | $(BUILD_STAMP)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-serve.txt
	@touch $@

venv: $(BUILD_STAMP) ## Create .venv and install the pinned build requirements

html: $(BUILD_STAMP) ## Build the site into _build/html, executing stale recipes
	$(SPHINX) docs $(HTML)

html-noplot: $(BUILD_STAMP) ## Build the site without executing any recipe
	$(SPHINX) -D plot_gallery=0 docs $(HTML)

plan: $(BUILD_STAMP) ## Plan a distributed build: split the stale recipes into SHARDS=N lists (DEVICE=cuda)
	$(PIPELINE) plan --shards $(SHARDS) --device "$(DEVICE)" --out $(PLAN_FILE)

shard: PLAN = $(PLAN_FILE)
shard: STRICT = 1
shard: $(BUILD_STAMP) ## Execute shard SHARD=i/N of the plan (STRICT); fresh outputs go to the store
	$(PY) -m sphinx -b dummy $(OPTIONS) docs $(BUILD)/shard

merge: $(BUILD_STAMP) ## Add the shards' outputs (SHARDS_DIR) to the store and render the site from it
	$(PIPELINE) merge --device "$(DEVICE)" --from $(SHARDS_DIR)
	$(SPHINX) -D plot_gallery=0 -D recipes_require_all=1 docs $(HTML)

store-id: ## Print a hash of the recipe output store's content (for cache keys)
	@$(PIPELINE) store-id

serve: $(SERVE_STAMP) ## Serve the site on 127.0.0.1 (PORT=8000), rebuild on save; only edited recipes run
	PYTHONPATH=docs/_ext $(PY) -m recipes_site.serve $(SPHINX_FLAGS) --host 127.0.0.1 --port $(PORT) \
		--watch recipes --watch docs/_ext \
		--ignore docs/recipes --ignore docs/sg_execution_times.rst \
		docs $(HTML)

new: ## Start a recipe from the template: make new NAME=<name> SECTION=<section>
	@test -n "$(NAME)" || { echo "usage: make new NAME=<name> [SECTION=<section>]" >&2; exit 2; }
	PYTHONPATH=docs/_ext $(PY) -m recipes_site.newrecipe --root recipes "$(NAME)" "$(SECTION)"

test: $(TEST_STAMP) lint ## Lint, build the site, then run every test (recipes, machinery, site, browser)
	$(MAKE) html
	RECIPES_EXPECT_DEVICE="$(DEVICE)" $(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 4 \
		--dist loadfile --durations=15

test-fast: $(TEST_STAMP) ## Unit tests only (seconds): the edit-test loop
	$(PY) -m pytest -m "not slow and not site"

include .github/lint.mk

check-gpu: ## On a machine with an NVIDIA GPU: build, test and time the site there (WHEELS=<dir> without network)
	$(PYTHON) tests/check_gpu.py $(if $(WHEELS),--wheels "$(WHEELS)")

bench: $(TEST_STAMP) $(SERVE_STAMP) ## Measure build speed: cold, no-op, one edit, JOBS=2, shards, the author's loop
	$(PY) tests/bench.py
	$(PY) tests/bench_loop.py

clean: ## Remove the built site, generated pages and caches (keeps .venv)
	rm -rf $(BUILD) docs/recipes docs/sg_execution_times.rst .cache .pytest_cache
