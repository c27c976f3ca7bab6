# Two commands do all set-up on a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

# Offline by design: no analytics, no telemetry, anywhere the Makefile runs.
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench lint clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

## make repro: create .venv if missing, install, run the whole pipeline (demo dataset unless configured)
repro: setup
	dvc repro

## make test: same set-up, then the test suite
test: setup
	python -m pytest

## make bench: throughput numbers (ingest + rasterize on Magnetic Tile when present, GAN training, metrics)
bench: setup
	python -m pipeline.bench

lint: setup
	ruff check syndgan pipeline flows tests
	ruff format --check syndgan pipeline flows tests

clean-venv:
	rm -rf $(VENV)
