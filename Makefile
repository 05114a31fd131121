# One venv, pinned by pyproject.toml; every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup freethreaded system-deps system-deps-monitoring system-deps-bench bench bench-full claims up demo soak test test-fast test-compose test-monitoring lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[full,dev]'
	touch $(STAMP)

setup: $(STAMP)

# Free-threaded CPython (no GIL), built from Debian's source into a cache outside the clone
# (LAB_CACHE_DIR), plus a worker venv on it; docs/freethreaded.md. 3.14t: FT_PYTHON ?= 3.14.
FT_PYTHON ?= 3.13
FT_VENV ?= .venv-ft
freethreaded:        ## free-threaded CPython $(FT_PYTHON)t (cached build) + worker venv $(FT_VENV), GIL checked off
	FT_PYTHON=$(FT_PYTHON) bash tools/freethreaded.sh all --venv $(FT_VENV)

system-deps:         ## Debian packages for the compose test (podman, runc, debootstrap), if missing
	bash compose/system-deps.sh

system-deps-monitoring:  ## Debian packages for the monitoring tests (chromium, prometheus), if missing
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

system-deps-bench:   ## redis-benchmark (Debian redis-tools) for the Redis ops/s figure, if missing and root
	@command -v redis-benchmark >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing: redis-tools"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-tools; \
		else \
			echo "redis-benchmark missing: Redis ops/s will come from a pipelined redis-py loop (an upper bound)"; \
		fi; }

bench: setup system-deps-bench  ## config/experiments/quick.toml (< 3 min) -> results/quick/<timestamp>/report.md
	$(BIN)/producer experiment run config/experiments/quick.toml

bench-full: setup system-deps-bench  ## full.toml, then every claim at full size: results/full/ and results/claims-full/
	$(BIN)/producer experiment run config/experiments/full.toml
	$(BIN)/producer experiment claims config/experiments/claims-full.toml

claims: setup        ## every claim of the article, small (< 15 min) -> results/claims/<timestamp>/verdicts.json
	$(BIN)/producer experiment claims config/experiments/claims.toml

up: setup            ## the native stack in the foreground (Ctrl-C stops it); MONITORING=1 adds Prometheus
	$(BIN)/lab up $(if $(filter 1 yes true,$(MONITORING)),--monitoring)

SOAK_TASKS ?= 100000
soak: setup          ## benchmark: SOAK_TASKS mixed tasks, a worker SIGKILLed and Redis restarted -> results/soak/summary.json
	$(BIN)/python -m experiments.soak --tasks $(SOAK_TASKS) --out results/soak

demo: setup          ## fresh machine -> stack -> short comparison -> results/demo/summary.json
	$(BIN)/lab demo

test: setup lint system-deps system-deps-monitoring  ## the whole suite (real Redis, real workers, real Flower, compose)
	$(BIN)/pytest

test-fast: setup     ## the quick loop: everything not marked slow/compose/monitoring
	$(BIN)/pytest -m "not slow and not compose and not monitoring"

test-compose: setup system-deps  ## docker-compose.yml for real under podman (builds images; base cached)
	$(BIN)/pytest -m compose tests/compose

test-monitoring: setup system-deps-monitoring  ## real Prometheus + headless Chromium (system browser)
	$(BIN)/pytest -m monitoring

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:               ## the venvs and run state (the free-threaded interpreter stays in LAB_CACHE_DIR)
	rm -rf $(VENV) $(FT_VENV) .lab results/stack
