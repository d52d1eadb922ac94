# Linters. The Makefile includes this file (`include .github/lint.mk`); until it
# does, the same targets work as `make -f Makefile -f .github/lint.mk lint`.
#
#   make lint                      every linter below (what CI runs in `make test`)
#   make lint-python               ruff check + ruff format --check
#   make lint-docs                 sphinx-lint on the reStructuredText sources
#   make lint-spelling             codespell (settings: [tool.codespell] in pyproject.toml)
#   make lint-workflows            actionlint, zizmor and check-jsonschema on the workflows,
#                                  zizmor and check-jsonschema on .github/dependabot.yml
#   make lint-workflows WORKFLOWS_DIR=<dir>   the same on another folder of workflows
#
# Tools come from requirements-lint.txt (exact pins, all wheels, no network at
# run time), installed into $(VENV) by the stamp below.

ifndef LINT_MK_INCLUDED
LINT_MK_INCLUDED := 1

VENV ?= .venv
PY   ?= $(VENV)/bin/python
LINT_BIN    = $(VENV)/bin
LINT_STAMP := $(VENV)/.stamp-lint

# Workflows to lint; the tests point it at a temporary copy.
WORKFLOWS_DIR ?= .github/workflows
WORKFLOW_FILES = $(sort $(wildcard $(WORKFLOWS_DIR)/*.yml $(WORKFLOWS_DIR)/*.yaml))
# Dependabot's settings (linted only where the file exists).
DEPENDABOT_CONFIG ?= .github/dependabot.yml
DEPENDABOT_FILES = $(wildcard $(DEPENDABOT_CONFIG))
# zizmor fails on findings of this severity or higher: every severity but
# "informational". A false positive is silenced where it stands, with zizmor's
# `# zizmor: ignore[<audit>]` comment and the reason beside it.
ZIZMOR_MIN_SEVERITY ?= low

# reStructuredText sources: docs/**/*.rst without what the build generates, and
# the gallery's recipes/**/README.txt (sphinx-lint only reads *.rst files, so
# those are linted through .rst-named links in $(LINT_RST_TREE)).
RST_SOURCES = $(filter-out docs/sg_execution_times.rst docs/sg_api_usage.rst,\
	$(shell find docs -path docs/recipes -prune -o -name '*.rst' -print 2>/dev/null | sort))
GALLERY_READMES = $(shell find recipes -name README.txt -print 2>/dev/null | sort)
LINT_RST_TREE := _build/lint-rst

.PHONY: lint lint-python lint-docs lint-spelling lint-workflows \
	lint-actionlint lint-zizmor lint-workflow-schema lint-dependabot-schema

$(LINT_STAMP): requirements-lint.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-lint.txt
	@touch $@

lint: lint-python lint-docs lint-spelling lint-workflows ## Run every linter (ruff, sphinx-lint, codespell, actionlint, zizmor, check-jsonschema)

lint-python: $(LINT_STAMP) ## Lint and format-check Python with ruff
	rc=0; $(LINT_BIN)/ruff check . || rc=1; $(LINT_BIN)/ruff format --check . || rc=1; exit $$rc

lint-docs: $(LINT_STAMP) ## Lint the reStructuredText sources with sphinx-lint
	@echo "sphinx-lint $(strip $(RST_SOURCES) $(GALLERY_READMES))"
	@set -o pipefail; rm -rf $(LINT_RST_TREE) && mkdir -p $(LINT_RST_TREE) && \
	for f in $(RST_SOURCES) $(GALLERY_READMES); do \
		link="$(LINT_RST_TREE)/$$f"; case "$$f" in *.rst) ;; *) link="$$link.rst" ;; esac; \
		mkdir -p "$$(dirname "$$link")" && ln -s "$(CURDIR)/$$f" "$$link" || exit 1; \
	done; \
	(cd $(LINT_RST_TREE) && "$(CURDIR)/$(LINT_BIN)/sphinx-lint" .) 2>&1 | sed -e 's/\.txt\.rst:/.txt:/'; \
	rc=$$?; rm -rf $(LINT_RST_TREE); exit $$rc

lint-spelling: $(LINT_STAMP) ## Check spelling with codespell
	$(LINT_BIN)/codespell

lint-workflows: lint-actionlint lint-zizmor lint-workflow-schema lint-dependabot-schema ## Lint the GitHub workflows (WORKFLOWS_DIR=...)

# Fails rather than lint nothing (actionlint alone would fall back to this repo).
LINT_NEED_WORKFLOWS = @test -n "$(WORKFLOW_FILES)" || { echo "no workflow (*.yml) in $(WORKFLOWS_DIR)" >&2; exit 1; }

lint-actionlint: $(LINT_STAMP)
	$(LINT_NEED_WORKFLOWS)
	$(LINT_BIN)/actionlint -no-color -shellcheck=$(LINT_BIN)/shellcheck -pyflakes= $(WORKFLOW_FILES)

lint-zizmor: $(LINT_STAMP)
	$(LINT_NEED_WORKFLOWS)
	$(LINT_BIN)/zizmor --offline --no-progress --color=never -q \
		--min-severity=$(ZIZMOR_MIN_SEVERITY) $(WORKFLOW_FILES) $(DEPENDABOT_FILES)

lint-workflow-schema: $(LINT_STAMP)
	$(LINT_NEED_WORKFLOWS)
	$(LINT_BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOW_FILES)

lint-dependabot-schema: $(LINT_STAMP)
	$(if $(DEPENDABOT_FILES),$(LINT_BIN)/check-jsonschema --builtin-schema vendor.dependabot $(DEPENDABOT_FILES),@echo "no $(DEPENDABOT_CONFIG): nothing to check")

endif # LINT_MK_INCLUDED
