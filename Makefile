# Ironlink: `make lab` brings up the local lab; `make test` runs every test (what CI runs).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := false
# The repo-wide test helpers (tests/testsupport) for every suite, benchmark and Molecule verifier.
export PYTHONPATH := $(CURDIR)/tests
# The four Python distributions (edge_agent/DESIGN.md, docs/architecture.md), installed editable for the tests.
PY_DISTS := libs/contract libs/service edge_agent cloud_ingest
# make lab-status INVENTORY=<path>: the inventory whose hosts it shows.
INVENTORY ?= inventories/lab

.PHONY: help deps venv lab lab-init lab-down lab-status test lint test-collection test-molecule test-python
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt $(addsuffix /pyproject.toml,$(PY_DISTS))
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt $(foreach d,$(PY_DISTS),-e '$(d)[test]')
	touch $@

venv: $(VENV)/.installed ## Create the pinned Python venv

deps: venv ## Install apt packages, podman config and the test image (once)
	scripts/setup.sh

lab: deps ## deps, then scripts/lab/lab-up.sh: lab-init.sh (secrets, fleet_init.yml: once), containers, site_bringup.yml, cloud.yml, lab-status
	scripts/lab/lab-up.sh

lab-init: venv ## Create the lab's secrets and fleet CA if missing (make lab runs it first; never replaces them)
	scripts/lab/lab-init.sh

lab-status: venv ## What an inventory's hosts converged (INVENTORY=<path>, default inventories/lab)
	scripts/lab/lab-status.sh $(INVENTORY)

lab-down: ## Remove the local lab
	scripts/lab/lab-down.sh

lint: venv ## ruff, yamllint, ansible-lint (production), argument_specs and secret scans
	ruff check .
	ruff format --check .
	yamllint -s .
	ansible-lint -q
	python3 scripts/lint/check_argument_specs.py
	python3 scripts/lint/check_preflight_tags.py
	python3 scripts/lint/scan_secrets.py

test-collection: deps ## ironlink.fleet unit tests and ansible-test sanity
	scripts/test/collection.sh

test-molecule: deps ## Every Molecule scenario on podman systemd hosts (two at a time)
	scripts/test/molecule.sh

test-python: deps ## Repo tests and every Python suite: contract, service, agent, ingest (unit + integration)
	pytest -q -p no:cacheprovider tests libs/contract/tests libs/service/tests edge_agent/tests cloud_ingest/tests

test: lint test-collection test-molecule test-python ## Everything CI runs
