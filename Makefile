# LLMOps platform: `make up` runs everything locally, `make test` proves it works.
# Both install what they need (uv venv, Kafka jars, FerretDB) on first use.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
PY := $(VENV)/bin/python
DEVSTACK := $(PY) infra/local/devstack.py
PYTEST_ARGS ?=
LINT_PATHS := libs services tests bench infra
LITELLM_VENV := .llmops/bench/litellm-venv

.PHONY: help venv setup up down status test lint format schemas check-schemas bench bench-prompts bench-ingest bench-inference bench-gateway bench-eval bench-monitoring

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY): pyproject.toml uv.lock libs/llmops/pyproject.toml $(wildcard services/*/pyproject.toml)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv
	$(UV) sync --frozen --python $(PYTHON)
	@touch $(PY)

venv: $(PY) ## Create/refresh the Python environment (uv, one lock file)

setup: venv ## Install everything: venv, Kafka jars, FerretDB (idempotent)
	$(DEVSTACK) setup

up: setup ## Start Kafka, FerretDB and every service locally; prints the URLs
	$(DEVSTACK) up

down: ## Stop every local process started by `make up`
	@if [ -x $(PY) ]; then $(DEVSTACK) down; else echo "nothing to stop (no venv)"; fi

status: venv ## Show what is running
	$(DEVSTACK) status

test: setup ## Run every test against real Kafka and FerretDB (started if missing)
	$(DEVSTACK) with-infra -- $(PY) -m pytest $(PYTEST_ARGS)

lint: venv ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(LINT_PATHS)

format: venv ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

schemas: venv ## Regenerate code and docs from schemas/ (catalog module, docs/topics.md)
	$(PY) -m llmops.contracts generate

check-schemas: venv ## Fail on schema drift or a backward-incompatible schema
	$(PY) -m llmops.contracts check

bench: setup $(LITELLM_VENV)/bin/litellm ## Run every benchmark in bench/ (each prints one JSON line last)
	$(UV) sync --frozen --group bench --python $(PYTHON)
	$(DEVSTACK) with-infra -- $(PY) bench/run.py --litellm $(LITELLM_VENV)/bin/litellm

bench-prompts: setup ## Prompt resolve + render: gateway cache vs prompts service
	$(DEVSTACK) with-infra -- $(PY) bench/prompts_render.py

bench-ingest: setup ## RAG ingestion: pipeline vs raw encode vs LlamaIndex; search latency, recall
	$(UV) sync --frozen --group bench --python $(PYTHON)
	$(DEVSTACK) with-infra -- $(PY) bench/ingest_throughput.py

# LiteLLM gets its own venv: its pins conflict with the workspace lock.
$(LITELLM_VENV)/bin/litellm: bench/litellm-requirements.txt
	$(UV) venv --allow-existing --python $(PYTHON) $(LITELLM_VENV)
	$(UV) pip install --python $(LITELLM_VENV)/bin/python -r bench/litellm-requirements.txt
	@touch $@

bench-gateway: setup $(LITELLM_VENV)/bin/litellm ## Gateway overhead vs LiteLLM proxy vs direct call, one stub upstream
	$(DEVSTACK) with-infra -- $(PY) bench/gateway_overhead.py --litellm $(LITELLM_VENV)/bin/litellm

bench-inference: venv ## Transformers engine: dynamic batching vs one at a time, 16 concurrent requests
	$(PY) bench/inference_batching.py

bench-eval: venv ## Evaluation metrics: items/s over 10,000 items vs sacrebleu + rouge-score
	$(PY) bench/eval_metrics.py

bench-monitoring: setup ## Monitoring: completions folded and stored per second vs raw aiokafka
	$(DEVSTACK) with-infra -- $(PY) bench/monitoring_throughput.py
