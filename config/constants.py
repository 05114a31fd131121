"""Names shared by every part of the lab: pools, queues, Redis keys, exit codes."""

from typing import Final

POOLS: Final = ("threads", "prefork", "gevent", "eventlet", "solo")
DEFAULT_POOLS: Final = ("threads", "prefork")
WORKLOADS: Final = ("square", "sleep", "noop")
TASK_NAMES: Final = {"square": "tasks.square", "sleep": "tasks.sleep", "noop": "tasks.noop"}

ENV_PREFIX: Final = "LAB_"
LEDGER_PREFIX: Final = "lab:run:"
RUN_HEADER: Final = "lab_run"
SENT_HEADER: Final = "lab_sent"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

MAX_TASKS_PER_RUN: Final = 10_000_000
MAX_SLEEP_SECONDS: Final = 3600.0
MAX_SQUARE_WORK: Final = 100_000_000
MAX_SQUARE_X: Final = 10**12
DEFAULT_SQUARE_WORK: Final = 120_000  # about 10 ms of pure-Python CPU on this machine
