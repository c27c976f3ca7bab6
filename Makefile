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

.PHONY: setup repro test bench benchmark lint clean-venv serve ui ui-check deploy studio plots gpu-pack gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

## make repro: create .venv if missing, install, run the whole pipeline (demo dataset unless configured); dvc.yaml's
## generated parts first (pipeline.tools.codedeps: an augment stage per method params.yaml makes)
repro: setup
	python -m pipeline.tools.codedeps --write
	dvc repro

## make test: same set-up, then the test suite, one worker per core (a test file stays on one worker)
test: setup
	python -m pytest -n auto --dist loadfile

## make gpu-pack: .gpu/ for a GPU machine that reaches no network: a compact Magnetic Tile copy + the wheels it lacks
gpu-pack: setup
	python -m pipeline.experiments.gpu_check --pack

## make gpu-check: ON the GPU machine (its own python3 with torch; carry .gpu): data/configs/gpu.yaml, timed per stage
gpu-check:
	python3 -m pipeline.experiments.gpu_check

## make bench: throughput numbers (ingest + rasterize on Magnetic Tile when present, GAN training, metrics)
bench: setup
	python -m pipeline.experiments.bench

## make benchmark [BENCH="data/configs/magnetic-tile.yaml data/configs/scarcity-magnetic-tile.yaml"]: the scarcity
## benchmark (k defect images per class x methods x seeds, each k through DVC in runs/scarcity-<dataset>/)
BENCH ?= data/configs/scarcity-demo.yaml
benchmark: setup
	python -m pipeline.experiments.scarcity --params $(BENCH)

# Address comes from params.yaml `flows.host` / `flows.port` (default 127.0.0.1:4200); `make serve PORT=4300`
# overrides it for one run (then use the same PORT for `make ui` / `make ui-check`).

PORT_ARG = $(if $(PORT),--port $(PORT))

## make serve: local Prefect server (database in .prefect/) + the deployments (reproduce on demand, retrain on a schedule and on an event); Ctrl-C stops both
serve: setup
	python -m flows.serve $(PORT_ARG)

## make ui: the Prefect UI address of this project's server
ui: setup
	@python -m flows.serve --print-url $(PORT_ARG)

## make ui-check: while `make serve` runs: deployments and last runs through the API, headless Chromium screenshots in runs/ui_check/
ui-check: setup
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { echo "ui-check needs Chromium: apt-get install -y chromium"; exit 2; }
	python -m flows.ui_check $(PORT_ARG)

## make plots: DVC's plots page with Vega inlined, viewable offline: dvc_plots/index.html
plots: setup
	python -m pipeline.tools.plots_page

## make studio [PORT=8765] [CHECKPOINT=...]: defect studio on http://127.0.0.1:8765/ (paint defects, save them as training data)
studio: setup
	python -m pipeline.tools.cli studio $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(PORT),--port $(PORT))

## make deploy POOL=name [IMAGE=registry/syndgan:tag]: the same deployments on a Prefect work pool (process, Kubernetes)
deploy: setup
	@test -n "$(POOL)" || { echo "usage: make deploy POOL=<work pool> [IMAGE=<image>]"; exit 2; }
	python -m flows.deploy --pool $(POOL) $(if $(IMAGE),--image $(IMAGE))

lint: setup
	ruff check syndgan pipeline flows tests
	ruff format --check syndgan pipeline flows tests

clean-venv:
	rm -rf $(VENV)
