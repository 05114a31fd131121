"""Names and limits shared by every part of the lab."""

from typing import Final

ENV_PREFIX: Final = "LAB_"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

MAX_TASKS_PER_RUN: Final = 10_000_000
