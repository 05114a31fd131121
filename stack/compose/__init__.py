"""The compose stack driven from the host: an engine (Docker + Compose v2, podman as fallback) and the
fault harness that strikes containers while the ledger counts every task. The compose tests
(tests/compose) and the 100,000-task benchmark (benchmarks/compose_faults.py) both use it."""
