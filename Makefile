# One venv, pinned by pyproject.toml; every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup map freethreaded compose-v2 compose-images compose-faults system-deps system-deps-monitoring system-deps-bench doctor bench bench-full bench-net rtt claims up demo soak test test-fast test-compose test-monitoring lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[full,dev]'
	touch $(STAMP)

setup: $(STAMP)

compose-v2:          ## Compose v2 as a project-local docker CLI plugin (.tools/docker; use DOCKER_CONFIG=.tools/docker), if missing
	bash tools/compose-v2.sh

# Free-threaded CPython (no GIL), built from Debian's source into a cache outside the clone
# (LAB_CACHE_DIR), plus a worker venv on it; docs/freethreaded.md. 3.14t: FT_PYTHON ?= 3.14.
FT_PYTHON ?= 3.13
FT_VENV ?= .venv-ft
freethreaded:        ## free-threaded CPython $(FT_PYTHON)t (cached build) + worker venv $(FT_VENV), GIL checked off
	FT_PYTHON=$(FT_PYTHON) bash tools/freethreaded.sh all --venv $(FT_VENV)

system-deps:         ## what the compose test's engine needs, if missing: docker: debootstrap + Compose v2; podman (no Docker Engine): podman, runc, netavark, iptables, ...
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

doctor:              ## which external programs the lab calls are here (versions) and which target installs each; informational
	@bash tools/doctor.sh

bench: setup system-deps-bench freethreaded  ## quick.toml (about 4 min), then the free-threaded four-way -> results/<name>/<timestamp>/report.md
	$(BIN)/lab bench config/experiments/quick.toml
	$(BIN)/lab bench config/experiments/freethreaded.toml

bench-full: setup system-deps-bench freethreaded  ## full.toml, then every claim at full size: results/full/ and results/claims-full/
	$(BIN)/lab bench config/experiments/full.toml
	$(BIN)/lab claims config/experiments/claims-full.toml

map: setup freethreaded  ## the decision map + convoy figure (< 20 min) -> results/map/<timestamp>/map.md
	$(BIN)/lab map config/experiments/map.toml

bench-net: setup     ## the latency server's and the delaying relay's own figures (about 6 min)
	$(BIN)/python -m benchmarks.latency_server
	$(BIN)/python -m benchmarks.relay

rtt: setup system-deps-bench  ## broker latency: workers behind a delaying relay to Redis (RTT 0-10 ms) x pools x prefetch (~20 min) -> results/rtt/<timestamp>/report.md
	$(BIN)/lab bench config/experiments/rtt.toml

claims: setup freethreaded  ## every claim of the article, small (12 min on 3.11 alone, about 20 min with claim 1 on 3.13t) -> results/claims/<timestamp>/verdicts.json
	$(BIN)/lab claims config/experiments/claims.toml

up: setup            ## the native stack in the foreground (Ctrl-C stops it); MONITORING=1 adds Prometheus
	$(BIN)/lab up $(if $(filter 1 yes true,$(MONITORING)),--monitoring)

SOAK_TASKS ?= 100000
soak: setup          ## benchmark: SOAK_TASKS mixed tasks, a worker SIGKILLed and Redis restarted -> results/soak/summary.json
	$(BIN)/lab soak --tasks $(SOAK_TASKS) --out results/soak

COMPOSE_FAULTS_TASKS ?= 100000
compose-faults: setup compose-v2 system-deps  ## benchmark: COMPOSE_FAULTS_TASKS mixed tasks on compose (2 replicas/pool) through a partition, a host loss, a broker restart and a rolling restart -> results/compose-faults/summary.json
	$(BIN)/python -m benchmarks.compose_faults --tasks $(COMPOSE_FAULTS_TASKS) --out results/compose-faults

demo: setup          ## fresh machine -> stack -> short comparison -> results/demo/summary.json
	$(BIN)/lab demo

compose-images: setup compose-v2 system-deps  ## every image the compose test runs, built ahead (the free-threaded one compiles CPython)
	bash compose/build-images.sh

# Two pytest workers (pytest-xdist): most of a test is waiting on real processes (a worker's start,
# a drain, Redis), so two at once took the suite from 14 min 20 s to about 6 min here, 2 cores.
# Compose and browser tests stay on one worker each (tests/conftest.py). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

test: setup lint freethreaded compose-v2 system-deps system-deps-monitoring compose-images  ## the whole suite (real Redis, real workers, real Flower, compose)
	@bash tools/doctor.sh --require test
	$(PYTEST)

test-fast: setup freethreaded compose-v2  ## the quick loop: everything not marked slow/compose/monitoring
	$(PYTEST) -m "not slow and not compose and not monitoring"

test-compose: setup compose-v2 system-deps  ## docker-compose.yml for real: Docker + Compose v2 where an engine answers, else podman (LAB_COMPOSE_ENGINE forces)
	$(BIN)/pytest -m compose tests/compose

test-monitoring: setup system-deps-monitoring  ## real Prometheus + headless Chromium (system browser)
	$(BIN)/pytest -m monitoring

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:               ## the venvs, run state and project-local tools (the free-threaded interpreter stays in LAB_CACHE_DIR)
	rm -rf $(VENV) $(FT_VENV) .lab results/stack .tools
