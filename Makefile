# aymurai gateway: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PYTHONASYNCIODEBUG ?= 0

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv and install the gateway with its dev tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'

install-contract: ## Install the real WhisperLiveKit server code (0.2.26 and 0.2.17, stub ASR, no weights) into .venv-wlk*
	bash scripts/install-contract.sh

install-local: install ## Install a CPU WhisperLiveKit, faster-whisper and the tiny.en + base models (.venv-local, .models)
	bash scripts/install-local.sh

install-browser: ## Install Chromium and Firefox ESR for the browser tests (Debian packages, as root)
	bash scripts/install-browser.sh

install-node: ## Install the Node test clients (test/node: npm eventsource and openai) with npm ci
	bash scripts/install-node.sh

install-faketime: ## Install libfaketime for the clock-skew tests of replicas (Debian package, as root)
	bash scripts/install-faketime.sh

run: ## Run the gateway (migrates the database, serves on API_HOST:API_PORT)
	$(BIN)/aymurai-api

run-local: ## Run a local CPU WLK (LOCAL_ASR_MODEL=tiny.en|base, LOCAL_ASR_LANGUAGE, LOCAL_ASR_PORT) and the gateway; Ctrl-C stops both
	$(BIN)/aymurai-local

simulator: ## Run the WLK protocol simulator on 127.0.0.1:8000 (synthetic transcripts, no GPU)
	$(BIN)/aymurai-wlk-simulator --host 127.0.0.1 --port 8000 --speed 4

format: ## Format and fix lint in place
	$(BIN)/ruff format aymurai test bench alembic
	$(BIN)/ruff check --fix aymurai test bench alembic

lint: ## Check formatting, lint and types (read-only)
	$(BIN)/ruff format --check aymurai test bench alembic
	$(BIN)/ruff check aymurai test bench alembic
	$(BIN)/mypy

test: ## Run every test tier (unit, integration, postgres, redis, install, contract, realasr, browser, node)
	$(BIN)/pytest

test-unit: ## Run the unit tests only (no sockets)
	$(BIN)/pytest test/unit

test-integration: ## Run the integration tests (real HTTP, WLK simulator)
	$(BIN)/pytest test/integration

test-install: ## Run the install tier (fresh venv, non-editable pip install ., migrate, serve)
	$(BIN)/pytest test/install

test-distributed: ## Run the distributed-mode tests (replicas on PostgreSQL + Redis, Redis state)
	$(BIN)/pytest -m redis

test-contract: ## Run the contract tier against the real WhisperLiveKit server code (stub ASR)
	$(BIN)/pytest test/contract

test-realasr: ## Run the real-ASR tier: real Whisper (tiny.en, base) in a CPU WLK (make install-local)
	$(BIN)/pytest test/realasr

test-browser: ## Run the browser tier (headless Chromium through Playwright)
	$(BIN)/pytest test/browser

migrate: ## Upgrade the database to the newest migration (aymurai-api migrate)
	$(BIN)/aymurai-api migrate

revision: ## Create a migration: make revision m="what changed"
	$(BIN)/alembic revision --autogenerate -m "$(m)"

clean: ## Remove caches and build leftovers (keeps .venv and data/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info test-output


.PHONY: help install install-contract install-local install-browser install-node install-faketime run run-local simulator format lint test test-unit test-integration test-distributed test-install test-contract test-realasr test-browser migrate revision clean
