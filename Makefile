# pgc: a PostgreSQL operator written as the Ansible collection postgres.cluster.
# `make run` starts everything locally; `make test` runs every test layer.
SHELL := /bin/bash
.DEFAULT_GOAL := help
HACK := hack
VENV := $(shell . $(HACK)/lib.sh && echo $$PGC_VENV)
export PATH := $(shell . $(HACK)/lib.sh && echo $$PATH)

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: venv
venv: ## Create the pinned Python virtualenv (outside the checkout)
	@$(HACK)/venv.sh

.PHONY: binaries
binaries: ## Build the control plane and operator binaries (outside the checkout, once per version)
	@$(HACK)/build-binaries.sh

.PHONY: run
run: ## Start the local control plane and the operator, apply the sample and wait for Running
	@$(HACK)/run.sh

.PHONY: down
down: ## Stop the operator and the local control plane
	@$(HACK)/cluster-down.sh

.PHONY: test
test: lint unit collection dataplane e2e faults molecule ## Run every test layer

.PHONY: lint
lint: venv ## yamllint and ansible-lint (production profile)
	yamllint --strict .
	ANSIBLE_COLLECTIONS_PATH=$$($(HACK)/collection-link.sh) ansible-lint --profile production

.PHONY: deps
deps: venv ## Install the Debian packages the tests run (PostgreSQL 15, promtool, the exporter; root)
	$(HACK)/test-deps.sh

.PHONY: unit
unit: venv binaries deps ## Unit tests of plugins, templates, role metadata and alert rules (promtool)
	python -m pytest tests/unit

.PHONY: collection
collection: venv ## Build the Galaxy tarball, install it and resolve its roles and playbooks by FQCN
	python -m pytest tests/collection

.PHONY: dataplane
dataplane: venv binaries deps ## Data plane: real Patroni, PostgreSQL 15 and the exporter on loopback
	python -m pytest tests/dataplane

.PHONY: e2e
e2e: venv binaries ## End-to-end tests: the real ansible-operator against the local control plane
	python -m pytest tests/e2e

.PHONY: faults
faults: venv binaries deps ## Fault injection: operator killed, owned objects deleted, API server stopped, leader lost
	python -m pytest tests/faults

.PHONY: molecule
molecule: venv binaries ## The molecule scenario against the local control plane
	. $(HACK)/lib.sh && PGC_COLLECTIONS=$$($(HACK)/collection-link.sh) MOLECULE_GLOB='molecule/*/molecule.yml' \
	  molecule test --scenario-name default

.PHONY: bench
bench: venv binaries ## Print reconcile, convergence and memory figures beside their floors (BENCH_ARGS=...)
	python bench/reconcile.py $(BENCH_ARGS)

.PHONY: bench-backup
bench-backup: venv deps ## Print backup and restore throughput of a 1 GB database beside pg_basebackup
	python bench/backup.py
