# One venv, pinned by pyproject.toml; every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup system-deps up demo test test-fast test-compose lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

system-deps:         ## Debian packages for the compose test (podman, runc, debootstrap), if missing
	bash compose/system-deps.sh

up: setup            ## the native stack in the foreground (Ctrl-C stops it)
	$(BIN)/lab up

demo: setup          ## fresh machine -> stack -> short comparison -> results/demo/summary.json
	$(BIN)/lab demo

test: setup lint system-deps  ## the whole suite (real Redis, real workers, real Flower, compose)
	$(BIN)/pytest

test-fast: setup     ## the quick loop: everything not marked slow/compose/monitoring
	$(BIN)/pytest -m "not slow and not compose and not monitoring"

test-compose: setup system-deps  ## docker-compose.yml for real under podman (builds images; base cached)
	$(BIN)/pytest -m compose tests/compose

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .lab results/stack
