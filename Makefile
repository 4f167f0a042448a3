# Both `make local` and `make test` create and fill .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test local lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt client/pyproject.toml
	@echo "make install: creating $(VENV) and installing slipway's dependencies (boto3, chalice, moto,"
	@echo "  websockets, pytest, ruff, mypy...): about 1-3 minutes the first time, quiet while pip works."
	@echo "  Later runs do nothing until pyproject.toml or requirements.txt change."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt -e '.[dev]' -e './client[test]'
	touch $(STAMP)
	@echo "make install: done. Next: make local (or .venv/bin/chalice local), see README.md"

# Lint first: CI runs `make test` (.ci/run), so it checks both.
# Tests run in TEST_WORKERS processes (pytest-xdist), a whole file per process at a
# time (module-scoped fixtures such as an e2e module's `slipway local` start once).
# TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2
test: install lint
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) tests client/tests

local: install
	$(VENV)/bin/slipway local $(ARGS)

# mypy's scope and strictness: [tool.mypy] in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis

# -- deployment (docs/deploy.md) -------------------------------------------------
# `make package [STAGE=prod]`: the CloudFormation template (Chalice's functions and
# APIs merged with infra/resources.json) in build/package/sam.json, and the code in
# build/package/deployment.zip. Offline: no AWS call, no credentials; chalice
# package only needs a region name to write into the template's defaults.
STAGE          ?= dev
PACKAGE_DIR    ?= build/package
PACKAGE_REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)

.PHONY: package
package: install
	$(VENV)/bin/slipway check-target --warn-only --stage $(STAGE)
	rm -rf $(PACKAGE_DIR)
	AWS_DEFAULT_REGION=$(PACKAGE_REGION) $(VENV)/bin/chalice package --stage $(STAGE) \
		--merge-template infra/resources.json $(PACKAGE_DIR)
	@echo "wrote $(PACKAGE_DIR)/sam.json for stage $(STAGE); deploy it as docs/deploy.md says (path A: aws cloudformation package, then deploy with --s3-bucket)"
